"""`mcp` tools: a tool of an MCP server named in tooldeck.toml `[mcp.servers.NAME]`.

The connection lives in the runtime's MCP hub (tools.mcp, installed as `runtime.extensions["mcp"]`),
so this room never imports the SDK or the mcp room: it hands the call over, and the hub answers
with the tool's output or its failure as a ToolError (unavailable while the server is not ready,
timeout, tool_error for an `is_error` result, crash when the connection ends mid-call).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tools.catalog import ToolEntry
from tools.errors import ToolUnavailableError

if TYPE_CHECKING:
    from tools.host import RuntimeHost


def run_mcp_tool(runtime: RuntimeHost, entry: ToolEntry, data: Any, timeout: float) -> Any:
    hub = runtime.extensions.get("mcp")
    if hub is None:
        ref = entry.manifest.mcp if entry.manifest is not None else None
        server = ref.server if ref is not None else "?"
        raise ToolUnavailableError(f"{entry.tool_id}: no MCP server {server!r} is configured ([mcp.servers] in tooldeck.toml)",
                                   tool_id=entry.tool_id, version=entry.served_version)
    return hub.call(entry, data, timeout)
