"""The README tells the truth: its settings reference, its commands and its Python example."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

from tools.settings import DEFAULTS

REPO = Path(__file__).resolve().parents[1]
README = (REPO / "README.md").read_text()


def blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", README, flags=re.S)


def test_the_settings_reference_is_every_key_with_its_default() -> None:
    section = README[README.index("## Settings"):]
    reference = tomllib.loads(blocks("toml")[[b in section for b in blocks("toml")].index(True)])
    assert reference == DEFAULTS, "README's settings block and tools/settings.py DEFAULTS differ"


def test_other_toml_examples_use_only_known_settings() -> None:
    for block in blocks("toml"):
        for section, values in tomllib.loads(block).items():
            if section in ("keymap", "mcp"):
                continue
            assert section in DEFAULTS, f"README shows an unknown section [{section}]"
            unknown = set(values) - set(DEFAULTS[section])
            assert not unknown, f"README shows unknown keys in [{section}]: {unknown}"


def test_ci_runs_exactly_the_readme_test_command() -> None:
    command = next(line for b in blocks("sh") for line in b.splitlines() if "pytest" in line)
    assert command in (REPO / ".ci" / "run").read_text().splitlines()


def test_the_python_example_runs_outside_the_demo_workspace(tmp_path: Path) -> None:
    example = next(b for b in blocks("python") if "from tools import Runtime, call_tool" in b)
    env = {k: v for k, v in os.environ.items() if not k.startswith("TOOLDECK_")}
    out = subprocess.run([sys.executable, "-c", example], cwd=tmp_path, capture_output=True, text=True, timeout=120, env=env)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "unknown_tool unknown tool 'no_such_tool'" in out.stdout
