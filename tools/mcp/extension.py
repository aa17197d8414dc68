"""The runtime's hook into MCP (named in tools.runtime's EXTENSIONS): the hub of imported servers.

The hub (hub.py: asyncio, the links, the import rules; ~30 ms of imports) is imported only when
`[mcp.servers]` names a server, not at every runtime's start: a plain runtime, and every CLI
command that starts one, imports none of it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tools.mcp.servers import load_server_configs

if TYPE_CHECKING:
    from tools.host import RuntimeHost


def install(runtime: RuntimeHost) -> Any:
    """The MCP hub (`runtime.extensions["mcp"]`) when `[mcp.servers]` names a server, else None."""
    configs = load_server_configs(runtime.settings)
    if not configs:
        return None
    from tools.mcp.hub import install as install_hub

    return install_hub(runtime, configs)
