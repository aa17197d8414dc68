"""Shared pieces of the evolution tests: a small python tool, and model answers for it."""

from __future__ import annotations

import os
import subprocess
import tempfile
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.helpers import python_tool

GREET_V1 = '''
def run(data):
    name = data["name"]
    if not name.isalpha():
        raise ValueError("name must be letters only")
    return {"greeting": "hello " + name}
'''

GREET_V2 = '''
def run(data):
    name = " ".join(data["name"].split())
    if not name.replace(" ", "").isalpha():
        raise ValueError("name must be letters and spaces")
    return {"greeting": "hello " + name}
'''

MANIFEST_EXTRA: dict[str, Any] = {
    "version": "1.0.0",
    "input_schema": {"name": {"type": "string", "required": True}},
    "output_schema": {"type": "object", "required": ["greeting"], "properties": {"greeting": {"type": "string"}}},
    "tests": [{"name": "one word", "input": {"name": "ada"}, "expect": {"greeting": "hello ada"}}],
}


def settings(ws: Path, model: str = "", evolution: str = "") -> None:
    """tooldeck.toml for tests: no SDK retries, short timeouts (each overridable)."""
    model_lines = "\n".join(x for x in ("max_retries = 0", "timeout_seconds = 5") if x.split()[0] not in model)
    evo_lines = "sandbox_timeout_seconds = 3" if "sandbox_timeout_seconds" not in evolution else ""
    ws.joinpath("tooldeck.toml").write_text(f"[model]\n{model_lines}\n{model}\n[evolution]\n{evo_lines}\n{evolution}\n")


def greet_tool(ws: Path) -> Path:
    return python_tool(ws / "tools", "greet", GREET_V1, **MANIFEST_EXTRA)


def greet_answer(code: str = GREET_V2, *, tests: list[dict[str, Any]] | None = None, **changes: Any) -> dict[str, Any]:
    """A write_tool_version answer for greet (the runtime fixes version, entry and lineage)."""
    manifest = {"name": "greet", "type": "python", "description": "greet someone by name", "entry": "greet_v1_1_0.py:run",
                **MANIFEST_EXTRA, "version": "1.1.0"}
    manifest["tests"] = tests if tests is not None else [
        *MANIFEST_EXTRA["tests"],
        {"name": "two words", "input": {"name": "ada lovelace"}, "expect": {"greeting": "hello ada lovelace"}},
    ]
    manifest.update(changes)
    return {"code": textwrap.dedent(code), "manifest_yaml": yaml.safe_dump(manifest, sort_keys=False),
            "explanation": "allow spaces in names"}


def record_history(rt: Any) -> None:
    """A failing call (the scenario to fix) and a successful one (a regression case) of greet 1.0.0."""
    from tools.errors import ToolError

    assert rt.call("greet", {"name": "bob"}) == {"greeting": "hello bob"}
    try:
        rt.call("greet", {"name": "ada lovelace"})
    except ToolError:
        pass
    else:  # pragma: no cover - the base version must fail this input
        raise AssertionError("greet 1.0.0 accepted a space")
    rt.calls.flush()


@pytest.fixture(name="host_folder")
def host_folder_fixture() -> Iterator[Path]:
    """A folder outside /tmp, world-traversable like a normal project folder (/srv, /opt or /var/lib).

    The sandbox once hid /tmp and /var/tmp only, so escapes reproduce with workspaces and
    world-writable folders that live elsewhere.
    """
    base = next((p for p in ("/srv", "/opt", "/var/lib") if os.access(p, os.W_OK)), None)
    if base is None:  # pragma: no cover - CI runs as root
        pytest.skip("no writable folder outside /tmp")
    folder = Path(tempfile.mkdtemp(prefix="tooldeck-test-", dir=base))
    folder.chmod(0o755)
    try:
        yield folder
    finally:
        subprocess.run(["rm", "-rf", "--one-file-system", str(folder)], check=False)


@pytest.fixture(name="launcher_name", params=["bwrap", "unshare"])
def launcher_name_fixture(request: pytest.FixtureRequest) -> str:
    """Each namespace launcher in turn; on a root machine (CI) neither may be missing."""
    from tools.errors import ToolUnavailableError
    from tools.evolution.launchers import select

    try:
        select(request.param)
    except ToolUnavailableError as exc:
        if os.geteuid() == 0:  # CI runs as root and installs bubblewrap (.ci/run): both launchers run there
            raise
        pytest.skip(exc.message)
    return str(request.param)
