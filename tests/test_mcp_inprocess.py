"""tooldeck's MCP server in the test's own process, driven by the SDK's in-memory client: what a real
process cannot easily show (the workspace database failing under a running server)."""

from __future__ import annotations

from pathlib import Path

from tests.mcp_helpers import make_workspace
from tools.mcp import load_serve_config


async def test_a_database_failure_during_a_call_is_an_is_error_answer(workspace: Path, make_runtime) -> None:
    import mcp_types as types
    from mcp import Client

    from tools.mcp.server import ToolServer

    make_workspace(workspace)
    runtime = make_runtime(serve=True)
    config, _ = load_serve_config(runtime.settings)
    server = ToolServer(runtime, config, transport="memory", pinned=None)
    async with Client(server.server, mode="legacy", client_info=types.Implementation(name="inproc", version="1")) as client:
        assert (await client.call_tool("echo", {"text": "a"})).structured_content == {"echo": "a", "length": 1}
        runtime.invalidate_promotions()
        runtime.calls.flush()  # nothing left for the call recorder's thread to write once the store is gone
        runtime.store.close()  # every thread's next query fails: "store is closed"
        result = await client.call_tool("echo", {"text": "b"})
        assert result.is_error
        assert "store is closed" in result.content[0].text and result.structured_content is None
        assert result.meta["tooldeck/error"]["error_class"] == "state"
