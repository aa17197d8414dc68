"""A new tool written by the model from a specification document (`tooldeck generate`).

The same proposal path as evolution, with no parent: the diff is against
nothing, there are no recorded failures or calls to replay (those stages say
so), and the candidate lands in `.tooldeck/evolved/<id>/<version>/` where it
serves nothing until a person approves it.
"""

from __future__ import annotations

import re
import threading
from pathlib import Path
from typing import Any

from tools.errors import ToolInputError, UsageError
from tools.evolution.evolve import Progress, _evolve
from tools.ids import check_tool_id

#: longer specifications are sent as their extractive summary (tools.spec.extract), which keeps every section
FULL_TEXT_LIMIT = 24_000


def _spec_text(runtime: Any, spec_path: str | Path) -> str:
    from tools.spec import extract_spec_from_file, read_spec_file, resolve_in_workspace

    path = resolve_in_workspace(runtime.workspace, str(spec_path))
    text, _warnings = read_spec_file(path, display=str(spec_path))
    if len(text) <= FULL_TEXT_LIMIT:
        return text
    summary = extract_spec_from_file(path, max_length=FULL_TEXT_LIMIT, display=str(spec_path)).get("summary") or ""
    return f"(summary of {spec_path}, {len(text)} characters in full)\n\n{summary}"


def generate_tool_from_spec(runtime: Any, spec_path: str | Path, tool_name: str, *, progress: Progress | None = None,
                            cancel: threading.Event | None = None) -> dict[str, Any]:
    """Propose a brand-new tool `tool_name` from the spec at `spec_path` (inside the workspace)."""
    from tools.invoke import get_provider

    check_tool_id(tool_name, "tool name")
    runtime.catalog.discovered.wait(30)
    if runtime.catalog.find(tool_name) is not None:
        raise UsageError(f"generate: a tool {tool_name!r} already exists; use `tooldeck evolve {tool_name}` to change it")
    try:
        spec = _spec_text(runtime, spec_path)
    except ToolInputError as exc:
        raise UsageError(f"generate: {exc.message}") from exc
    if not spec.strip():
        raise UsageError(f"generate: {spec_path} is empty")
    provider = get_provider(runtime)
    minors = [int(m.group(1)) for r in runtime.store.query("SELECT version FROM proposals WHERE tool_id=?", (tool_name,))
              if (m := re.match(r"1\.(\d+)", str(r[0])))]
    base_version = f"1.{max(minors) + 1}.0" if minors else "1.0.0"
    return _evolve(runtime, provider, tool_id=tool_name, parent=None, parent_path=None, parent_raw=None, parent_code="",
                   error_message="", mutation_hint=f"new tool from the specification {spec_path}", dynamic_schema=True,
                   progress=progress, cancel=cancel, spec_text=spec, base_version=base_version)
