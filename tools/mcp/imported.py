"""An MCP server's tool as a catalog tool, and its results as a tool's output: schema.py's rules in reverse.

A tool definition (the plain JSON of `tools/list`) becomes a Manifest of type `mcp`: its
description, its input JSON Schema passed through, its output schema (unwrapped when it is the
`{"result": ...}` wrapper tooldeck's own server uses for non-object output), MCP's annotations as
`read_only` / `destructive` / `idempotent`, the tags `mcp` and the server's name, the server's
`timeout_seconds` as the call timeout. A result's `structured_content` is the output when there
is one (unwrapped likewise); otherwise its text, parsed as JSON when it is JSON, as an executable
tool's stdout is. `is_error` is the tool's failure, with its text as the one-line error.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tools.catalog import Manifest
from tools.errors import ToolError, ToolInputError
from tools.mcp.schema import RESULT_KEY
from tools.mcp.servers import ServerConfig, import_id, long_import_id

VERSION = "1.0.0"
MAX_DESCRIPTION = 4000
ERROR_LINE = 500


class McpToolError(ToolError):
    """The MCP tool answered with `is_error`: it ran and reported a failure."""

    error_class = "tool_error"


def is_wrapped(schema: Any) -> bool:
    """Whether an output schema is the `{"result": X}` object tooldeck serves non-object output as."""
    return (isinstance(schema, dict) and schema.get("type") == "object" and set(schema.get("properties") or {}) == {RESULT_KEY}
            and schema.get("required") == [RESULT_KEY])


def tool_path(config: ServerConfig, settings_path: Path | None, tool_id: str) -> Path:
    """Where an imported tool says it comes from (no file: `<tooldeck.toml>#mcp.servers.NAME/<id>`)."""
    base = settings_path if settings_path is not None else Path("tooldeck.toml")
    return base.with_name(f"{base.name}#mcp.servers.{config.name}") / tool_id


def manifest_for(config: ServerConfig, tool: dict[str, Any], tool_id: str | None = None) -> Manifest:
    """The catalog's manifest of one tool definition (camelCase keys, as on the wire), under `tool_id` (the hub's
    choice between the short and the long form, see `ids_for`), else `import_id`."""
    name = str(tool["name"])
    annotations = tool.get("annotations") or {}
    output = tool.get("outputSchema")
    wrapped = is_wrapped(output)
    if wrapped and isinstance(output, dict):
        output = output["properties"][RESULT_KEY]
    data: dict[str, Any] = {
        "name": tool_id or import_id(config.prefix, name),
        "type": "mcp",
        "version": VERSION,
        "description": str(tool.get("description") or tool.get("title") or name)[:MAX_DESCRIPTION],
        "tags": ["mcp", config.prefix],
        "mcp": {"server": config.name, "tool": name, "result_wrapped": wrapped},
        "input_schema": tool.get("inputSchema") or {"type": "object"},
        "output_schema": output if isinstance(output, dict) else None,
    }
    if config.timeout_seconds is not None:
        data["timeout"] = config.timeout_seconds
    for hint, key in (("readOnlyHint", "read_only"), ("destructiveHint", "destructive"), ("idempotentHint", "idempotent")):
        if isinstance(annotations.get(hint), bool):
            data[key] = annotations[hint]
    return Manifest.model_validate(data)


def ids_for(config: ServerConfig, names: list[str], taken: Callable[[str], str | None],
            pinned: set[str]) -> tuple[dict[str, str], dict[str, str]]:
    """Each tool name's id, and the reasons a tool kept its long form (`<server>_<tool>`).

    The short form (`import_id`) is used unless it is another id of this server's list, another tool's id in the
    catalog (`taken` says whose), or approvals are keyed on the long form (`pinned`): then the long form stays,
    so nothing that worked by it stops working, and the reason is said.
    """
    long = {n: long_import_id(config.prefix, n) for n in names}
    short = {n: import_id(config.prefix, n) for n in names}
    counts: dict[str, int] = {}
    for n in names:
        for form in {short[n], long[n]}:
            counts[form] = counts.get(form, 0) + 1
    ids: dict[str, str] = {}
    kept: dict[str, str] = {}
    for n in names:
        if short[n] == long[n]:
            ids[n] = long[n]
            continue
        holder = taken(short[n])
        why = (f"approved or proposed versions are keyed on {long[n]!r}" if long[n] in pinned
               else f"{short[n]!r} is also an id of another tool of this server" if counts[short[n]] > 1
               else f"{short[n]!r} is taken by {holder}" if holder else None)
        ids[n] = long[n] if why else short[n]
        if why:
            kept[n] = why
    return ids, kept


def output_of(tool_id: str, version: str, result: dict[str, Any], wrapped: bool) -> Any:
    """The tool's output from a CallToolResult (plain JSON); raises McpToolError on `isError`."""
    content = result.get("content") or []
    texts = [c.get("text", "") for c in content if isinstance(c, dict) and c.get("type") == "text"]
    if result.get("isError"):
        text = " ".join(" ".join(texts).split()) or "the tool reported an error without a message"
        details = {"structured_content": result["structuredContent"]} if result.get("structuredContent") is not None else {}
        raise McpToolError(f"{tool_id}: {text[:ERROR_LINE]}", tool_id=tool_id, version=version, details=details)
    structured = result.get("structuredContent")
    if structured is not None:
        if wrapped and isinstance(structured, dict) and RESULT_KEY in structured:
            return structured[RESULT_KEY]
        return structured
    others = [c for c in content if not (isinstance(c, dict) and c.get("type") == "text")]
    if others:
        return {"content": content}
    text = "\n".join(texts)
    try:
        return json.loads(text)
    except (json.JSONDecodeError, RecursionError):
        return text


def check_arguments(tool_id: str, version: str, data: Any) -> dict[str, Any]:
    """MCP passes arguments as an object."""
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ToolInputError(f"{tool_id}: an MCP tool takes a JSON object as input, got {type(data).__name__}",
                             tool_id=tool_id, version=version)
    return data
