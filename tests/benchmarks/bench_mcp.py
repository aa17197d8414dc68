"""Per-call cost over MCP stdio: tooldeck's cheapest builtin call vs a minimal SDK server's constant tool.

The same SDK client (ClientSession over stdio_client) calls `buffer` with `operation: status` on an
empty workspace through `tooldeck mcp serve` (recorded, scored, circuit-tracked like any call), and a
minimal low-level SDK server whose one tool returns a constant (text and structured content). Rounds
alternate between the two so drift on a shared machine hits both; the median round counts.
Target: <= 1.3x per call. Run: python tests/benchmarks/bench_mcp.py
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import anyio

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

CALLS_PER_ROUND = 300
ROUNDS = 5
WARMUP = 100

MINIMAL_SERVER = textwrap.dedent('''
    import anyio
    import mcp_types as types
    from mcp.server.lowlevel import Server
    from mcp.server.stdio import stdio_server

    TOOL = types.Tool(name="constant", description="returns a constant", input_schema={"type": "object"})

    async def list_tools(ctx, params):
        return types.ListToolsResult(tools=[TOOL])

    async def call_tool(ctx, params):
        return types.CallToolResult(content=[types.TextContent(text='{"success": true}')],
                                    structured_content={"success": True})

    server = Server("minimal", version="1", on_list_tools=list_tools, on_call_tool=call_tool)

    async def main():
        async with stdio_server() as (read, write):
            await server.run(read, write, server.create_initialization_options())

    anyio.run(main)
''')


async def per_call_ms(session, name: str, arguments: dict, calls: int) -> float:
    start = time.perf_counter()
    for _ in range(calls):
        result = await session.call_tool(name, arguments)
        assert not result.is_error, result.content
    return (time.perf_counter() - start) * 1000 / calls


async def main() -> None:
    import mcp_types as types
    from mcp.client.session import ClientSession
    from mcp.client.stdio import StdioServerParameters, stdio_client

    tmp = Path(tempfile.mkdtemp(prefix="bench-mcp-"))
    ws = tmp / "ws"
    (ws / "tools").mkdir(parents=True)
    script = tmp / "minimal_server.py"
    script.write_text(MINIMAL_SERVER)
    info = types.Implementation(name="bench", version="1")
    tooldeck = StdioServerParameters(command=sys.executable, args=["-m", "tools", "--workspace", str(ws), "mcp", "serve"],
                                     cwd=str(REPO))
    minimal = StdioServerParameters(command=sys.executable, args=[str(script)])
    status = {"operation": "status"}
    with open(tmp / "stderr.log", "w") as errlog:
        async with stdio_client(tooldeck, errlog=errlog) as (r1, w1), ClientSession(r1, w1, client_info=info) as ours, \
                stdio_client(minimal, errlog=errlog) as (r2, w2), ClientSession(r2, w2, client_info=info) as base:
            await ours.initialize()
            await base.initialize()
            await ours.list_tools()
            await base.list_tools()
            await per_call_ms(ours, "buffer", status, WARMUP)
            await per_call_ms(base, "constant", {}, WARMUP)
            ours_ms, base_ms = [], []
            for _ in range(ROUNDS):
                base_ms.append(await per_call_ms(base, "constant", {}, CALLS_PER_ROUND))
                ours_ms.append(await per_call_ms(ours, "buffer", status, CALLS_PER_ROUND))
    ratios = [o / b for o, b in zip(ours_ms, base_ms, strict=True)]
    ours_med, base_med = statistics.median(ours_ms), statistics.median(base_ms)
    print(f"minimal SDK server, constant tool     : {base_med:7.3f} ms/call (rounds: {', '.join(f'{x:.3f}' for x in base_ms)})")
    print(f"tooldeck mcp serve, buffer status     : {ours_med:7.3f} ms/call (rounds: {', '.join(f'{x:.3f}' for x in ours_ms)})")
    print(f"ratio tooldeck / minimal SDK server (stdio, per call): {statistics.median(ratios):.2f}x   target <= 1.3x")


if __name__ == "__main__":
    anyio.run(main)
