"""Small helpers shared by the tests: writing tools into a catalog folder."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import yaml


def write_tool(folder: Path, name: str, manifest: dict[str, Any] | str, code: str | None = None,
               code_name: str | None = None) -> Path:
    """Write `<folder>/<name>.yaml` (and its code file); returns the manifest path."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.yaml"
    text = manifest if isinstance(manifest, str) else yaml.safe_dump(manifest, sort_keys=False)
    path.write_text(text)
    if code is not None:
        (folder / (code_name or f"{name}.py")).write_text(textwrap.dedent(code))
    return path


def python_tool(folder: Path, name: str, body: str, *, func: str = "run", **extra: Any) -> Path:
    """A `python` tool whose function is `body` (a full `def`)."""
    manifest = {"name": name, "type": "python", "description": f"test tool {name}", "entry": f"{name}.py:{func}", **extra}
    return write_tool(folder, name, manifest, body)


def exec_tool(folder: Path, name: str, script: str, **extra: Any) -> Path:
    """An `executable` tool running `script` with tooldeck's interpreter."""
    executable = {"command": "python", "args": ["{tool_dir}/" + f"{name}.py"], "timeout": extra.pop("timeout", 10)}
    executable.update(extra.pop("executable", {}))
    manifest = {"name": name, "type": "executable", "description": f"test tool {name}", "executable": executable, **extra}
    return write_tool(folder, name, manifest, script)
