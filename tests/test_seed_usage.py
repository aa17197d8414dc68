"""The original system's usage, verbatim, from a workspace laid out as its users laid theirs out.

Their scripts live in a project with its own `tools/` folder (manifests and code, no
`__init__.py`) and start with `from tools import call_tool`. Under an editable install that
folder must not shadow the runtime's `tools` package (it did with setuptools' editable
finder: "cannot import name 'call_tool' from 'tools' (unknown location)").
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

#: The five usage examples of the original system, as its README gave them (the sink named).
ORIGINAL_USAGE = '''\
import json
from tools import call_tool, call_tool_resilient

results = {}
results["buffer"] = call_tool("buffer", json.dumps({"operation": "write", "buffer_id": "usage_tracking",
    "data": {"tool_id": "translator", "increment": 1}, "max_size": 50, "pass_through_tool": "usage_sink"}))
results["mark"] = call_tool("mark_tool_failure", json.dumps({"tool_id": "csv_parser", "scenario": "parse JSON data",
    "error_message": "JSONDecodeError", "severity": "high"}))
results["resilient"] = call_tool_resilient("translate to french", {"text": "Hello", "target": "fr"}, tags=["translation"], max_attempts=5)
results["spec"] = call_tool("extract_spec_from_file", json.dumps({"file_path": "specs/big_spec.md", "summarize": True, "max_length": 10000}))
results["evolve"] = call_tool("evolve_tool", json.dumps({"tool_id": "csv_parser", "error_message": "JSONDecodeError",
    "mutation_hint": "Support JSON and CSV", "dynamic_schema": True}))
print(json.dumps({k: (v if isinstance(v, str) else json.dumps(v, default=str)) for k, v in results.items()}))
'''

BIG_SPEC = "# Usage ledger\n\n" + "".join(
    f"## Part {i}\n\nThe service MUST handle case {i}.\n\n```json\n{{\"case\": {i}}}\n```\n\n" for i in range(60))


def seed_workspace(root: Path) -> Path:
    """A project as the original users had it: tools/ (no __init__.py), specs/, their script."""
    from tools.catalog import DEMO_DIR

    ws = root / "project"
    shutil.copytree(DEMO_DIR, ws / "tools", ignore=shutil.ignore_patterns("__pycache__", "replay"))
    assert not (ws / "tools" / "__init__.py").exists()
    (ws / "specs").mkdir()
    (ws / "specs" / "big_spec.md").write_text(BIG_SPEC)
    # no API key here: evolution is served by the packaged recorded answers
    (ws / "tooldeck.toml").write_text('[model]\nprovider = "replay"\n')
    (ws / "usage.py").write_text(ORIGINAL_USAGE)
    return ws


def run_usage(python: str, ws: Path, env: dict[str, str] | None = None) -> dict[str, object]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("TOOLDECK_", "PYTHONPATH", "ANTHROPIC_"))}
    out = subprocess.run([python, "usage.py"], cwd=ws, capture_output=True, text=True, timeout=240, env={**clean, **(env or {})})
    assert out.returncode == 0, out.stderr[-3000:]
    return {k: json.loads(v) for k, v in json.loads(out.stdout.splitlines()[-1]).items()}


def check_results(results: dict[str, object]) -> None:
    assert results["buffer"]["success"] is True and results["buffer"]["buffer_id"] == "usage_tracking"
    assert results["mark"]["success"] is True and results["mark"]["tool_id"] == "csv_parser"
    assert results["resilient"]["result"] and results["resilient"]["tool_id"].startswith("translator")
    spec = results["spec"]
    assert len(json.dumps(spec, ensure_ascii=False)) <= 10_000 and "Part 0" in spec["summary"]  # the whole result in budget
    assert spec["stats"]["sections"] > 0 and "include_sections" in spec["outline"]
    assert results["evolve"]["tool_id"] == "csv_parser" and results["evolve"]["status"] in ("awaiting_review", "failed_validation")


def test_the_original_usage_runs_verbatim_from_a_workspace_with_its_own_tools_folder(tmp_path: Path) -> None:
    """Under the install this interpreter has: in CI, the README's `pip install -e ".[test]"`."""
    ws = seed_workspace(tmp_path)
    check_results(run_usage(sys.executable, ws))
    # what the buffer acknowledged reached the workspace's own sink when the script's runtime closed
    import sqlite3

    con = sqlite3.connect(ws / ".tooldeck" / "sink.db")
    assert con.execute("SELECT SUM(count) FROM batches WHERE buffer_id='usage_tracking'").fetchone()[0] == 1


def _fresh_venv(root: Path, name: str) -> str:
    """A new venv whose dependencies come from this one (no download), tooldeck not installed."""
    venv = root / name
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    python = str(venv / "bin" / "python")
    site = subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          capture_output=True, text=True, check=True).stdout.strip()
    (Path(site) / "_deps_from_parent.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    return python


@pytest.mark.slow
@pytest.mark.parametrize("editable", [True, False], ids=["editable", "regular"])
def test_both_installs_serve_the_runtime_over_workspace_folders_named_tools_state_tui(tmp_path: Path, editable: bool) -> None:
    python = _fresh_venv(tmp_path, "venv")
    # pip of this environment installs into the new one (no download: no build isolation, no deps)
    install = [sys.executable, "-m", "pip", "--python", python, "install", "-q", "--no-deps", "--no-build-isolation",
               *(["-e"] if editable else []), str(REPO)]
    done = subprocess.run(install, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    ws = seed_workspace(tmp_path)
    for name in ("state", "tui"):
        (ws / name).mkdir()
        (ws / name / "notes.txt").write_text("the project's own folder")
    probe = ("import tools, state, tui, json\nfrom tools import call_tool\n"
             "print(json.dumps([m.__file__ for m in (tools, state, tui)]))\n")
    out = subprocess.run([python, "-c", probe], cwd=ws, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    files = json.loads(out.stdout)
    assert all(f and not f.startswith(str(ws)) for f in files), files
    if editable:
        assert all(f.startswith(str(REPO)) for f in files), files
    check_results(run_usage(python, ws))
