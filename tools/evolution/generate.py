"""A new tool written by the model: from a specification document, or to replace an MCP tool (`tooldeck generate`).

From a spec, the same proposal path as evolution with no parent: the diff is against nothing,
there are no recorded failures or calls to replay (those stages say so), and the candidate lands
in `.tooldeck/evolved/<id>/<version>/` where it serves nothing until a person approves it.

`--from-tool ID` replaces an imported MCP tool, whose code lives in its server and cannot be
evolved: the model gets the tool's description, schemas and recorded calls, and writes a local
python tool of the same id as the next version (1.1.0 beside the imported 1.0.0). Validation
replays the MCP tool's recorded successful calls against it, and once a person approves it for a
scope, calls there run the local tool; a rollback to 1.0.0 serves the MCP tool again.
"""

from __future__ import annotations

import json
import re
import threading
from pathlib import Path
from typing import Any

from state import proposals
from state.redact import redact
from tools.errors import ToolInputError, UsageError
from tools.evolution.context import regressions
from tools.evolution.evolve import Progress, _evolve
from tools.ids import check_tool_id

#: longer specifications are sent as their extractive summary (tools.spec.extract), which keeps every section
FULL_TEXT_LIMIT = 24_000
#: recorded calls of an MCP tool shown to the model when it writes a replacement
RECORDED_CALLS = 10
CALL_TEXT_LIMIT = 1500


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
    minors = [int(m.group(1)) for v in proposals.versions_of(runtime.store, tool_name) if (m := re.match(r"1\.(\d+)", v))]
    base_version = f"1.{max(minors) + 1}.0" if minors else "1.0.0"
    return _evolve(runtime, provider, tool_id=tool_name, parent=None, parent_path=None, parent_raw=None, parent_code="",
                   error_message="", mutation_hint=f"new tool from the specification {spec_path}", dynamic_schema=True,
                   progress=progress, cancel=cancel, spec_text=spec, base_version=base_version)


def _recorded_calls(runtime: Any, tool_id: str, version: str) -> str:
    """The MCP tool's recorded successful calls as JSON lines (input and output), redacted; its failures are in the
    prompt's own section, as for any evolution."""
    lines = [json.dumps({"input": call["input"], "output": call["output"]}, ensure_ascii=False, default=str)[:CALL_TEXT_LIMIT]
             for call in regressions(runtime, tool_id, version, RECORDED_CALLS)]
    return redact("\n".join(lines))


def generate_replacement(runtime: Any, tool_id: str, *, progress: Progress | None = None,
                         cancel: threading.Event | None = None) -> dict[str, Any]:
    """Propose a local tool replacing the MCP tool `tool_id` (same id, next version), queued for review."""
    from tools.invoke import get_provider

    check_tool_id(tool_id)
    entry = runtime.get_tool(tool_id, timeout=30.0)  # an id not known yet connects the server whose name it starts with
    manifest = entry.manifest
    if manifest.type != "mcp" or manifest.mcp is None:
        raise UsageError(f"generate --from-tool {tool_id}: it is a {manifest.type} tool, not one imported from an MCP server; "
                         f"use `tooldeck evolve {tool_id}` to change it")
    provider = get_provider(runtime)  # no model configured: say how, before anything is written
    template: dict[str, Any] = {"name": tool_id, "type": "python", "version": manifest.version,
                                "description": manifest.description, "input_schema": manifest.input_schema}
    if manifest.output_schema is not None:
        template["output_schema"] = manifest.output_schema
    recorded = _recorded_calls(runtime, tool_id, manifest.version)
    hint = f"a local replacement for the tool {manifest.mcp.tool!r} of MCP server {manifest.mcp.server!r}"
    return _evolve(runtime, provider, tool_id=tool_id, parent=manifest, parent_path=None, parent_raw=template, parent_code="",
                   error_message="", mutation_hint=hint, dynamic_schema=False, progress=progress, cancel=cancel,
                   spec_text=recorded)
