"""MCP benchmarks, each against a baseline measured in the same run.

1. Serving, per call over stdio: the same SDK client (ClientSession over stdio_client) calls `buffer`
   with `operation: status` on an empty workspace through `tooldeck mcp serve` (recorded, scored,
   circuit-tracked like any call), and a minimal low-level SDK server whose one tool returns a constant.
   Target: <= 1.3x per call.
2. Importing, per call: `Runtime.call` of an imported tool (the minimal server's constant tool, via
   [mcp.servers]) vs the SDK client calling another instance of that server directly. Target <= 1.2x.
3. The dashboard's first frame in a real terminal (a pty at 160x50, the method of bench_dashboard.py)
   with 3 imported servers of 50 tools each vs the same workspace without them. Target <= 1.05x.
4. Each of 3 servers' 50 tools ready in the catalog after its tools/list reply (a serving runtime,
   no cache). Target <= 0.5 s.

Rounds alternate between a measure and its baseline so drift on a shared machine hits both; the
median counts. Run: python tests/benchmarks/bench_mcp.py [--only serve,import,frame,ready]
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


async def bench_serve() -> None:
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


async def bench_import() -> None:
    """Runtime.call of an imported tool vs the SDK client calling the same server program directly."""
    import json

    import mcp_types as types
    from mcp.client.session import ClientSession
    from mcp.client.stdio import StdioServerParameters, stdio_client

    from tools.runtime import Runtime

    tmp = Path(tempfile.mkdtemp(prefix="bench-mcp-import-"))
    ws = tmp / "ws"
    (ws / "tools").mkdir(parents=True)
    script = tmp / "minimal_server.py"
    script.write_text(MINIMAL_SERVER)
    (ws / "tooldeck.toml").write_text(f"[mcp.servers.minimal]\ncommand = {json.dumps(sys.executable)}\n"
                                      f"args = [{json.dumps(str(script))}]\n")
    runtime = Runtime(ws)
    info = types.Implementation(name="bench", version="1")
    direct = StdioServerParameters(command=sys.executable, args=[str(script)])

    def ours(calls: int) -> float:
        start = time.perf_counter()
        for _ in range(calls):
            assert runtime.call("minimal_constant", {}) == {"success": True}
        return (time.perf_counter() - start) * 1000 / calls

    try:
        with open(tmp / "stderr.log", "w") as errlog:
            async with stdio_client(direct, errlog=errlog) as (r, w), ClientSession(r, w, client_info=info) as base:
                await base.initialize()
                await base.list_tools()
                await anyio.to_thread.run_sync(ours, WARMUP)
                await per_call_ms(base, "constant", {}, WARMUP)
                ours_ms, base_ms = [], []
                for _ in range(IMPORT_ROUNDS):  # short rounds, alternating: load from other processes hits both alike
                    base_ms.append(await per_call_ms(base, "constant", {}, IMPORT_CALLS))
                    ours_ms.append(await anyio.to_thread.run_sync(ours, IMPORT_CALLS))
    finally:
        runtime.close()
    ratios = [o / b for o, b in zip(ours_ms, base_ms, strict=True)]
    print(f"SDK client -> minimal server, direct  : {statistics.median(base_ms):7.3f} ms/call (median of {IMPORT_ROUNDS} "
          f"rounds of {IMPORT_CALLS}; min {min(base_ms):.3f})")
    print(f"Runtime.call of the imported tool     : {statistics.median(ours_ms):7.3f} ms/call (median of {IMPORT_ROUNDS} "
          f"rounds of {IMPORT_CALLS}; min {min(ours_ms):.3f})")
    print(f"ratio Runtime.call / SDK client direct (imported tool, per call): {statistics.median(ratios):.2f}x   target <= 1.2x")


IMPORT_ROUNDS = 21
IMPORT_CALLS = 100
SERVERS = 3
TOOLS_PER_SERVER = 50
FRAME_REPEAT = 7


def import_workspace(root: Path, name: str, servers: int) -> Path:
    import json

    ws = root / name
    (ws / "tools").mkdir(parents=True, exist_ok=True)
    sections = []
    for i in range(servers):
        args = [str(REPO / "tests" / "mcp_import_server.py"), "--state", str(root / f"{name}-state-{i}"), "--bare",
                "--extra", str(TOOLS_PER_SERVER), "--page-size", "100"]
        sections.append(f"[mcp.servers.s{i}]\ncommand = {json.dumps(sys.executable)}\nargs = {json.dumps(args)}\n")
    (ws / "tooldeck.toml").write_text("\n".join(sections))
    return ws


def warm_cache(ws: Path) -> None:
    """Connect every server once so their tool lists are cached, then close (the servers stop with the runtime)."""
    from tools.runtime import Runtime

    runtime = Runtime(ws, serve=True)
    try:
        hub = runtime.extension("mcp")
        hub.wait(list(hub.links), 120)
        assert all(link.status == "ready" for link in hub.links.values()), hub.statuses()
    finally:
        runtime.close()


def bench_frame() -> None:
    """First frame with 3 imported servers x 50 tools vs the same workspace without them (real pty, interleaved)."""
    from tests.benchmarks.bench_dashboard import LAUNCHER, frame_in_terminal

    root = Path(tempfile.mkdtemp(prefix="bench-mcp-frame-"))
    launcher = root / "tooldeck.py"
    launcher.write_text(LAUNCHER)
    with_servers = import_workspace(root, "with", SERVERS)
    without = import_workspace(root, "without", 0)
    warm_cache(with_servers)  # the catalog knows the 150 imported tools from the start, as after any earlier run
    plain: list[float] = []
    imported: list[float] = []
    for _ in range(FRAME_REPEAT):
        plain.append(frame_in_terminal([sys.executable, str(launcher), "--workspace", str(without)]))
        imported.append(frame_in_terminal([sys.executable, str(launcher), "--workspace", str(with_servers)]))
    base, ours = statistics.median(plain), statistics.median(imported)
    cached = len(list((with_servers / ".tooldeck" / "mcp").glob("*.tools.json")))
    print(f"dashboard first frame, no MCP servers       : {base * 1000:.0f} ms (median of {FRAME_REPEAT})")
    print(f"dashboard first frame, {SERVERS} servers x {TOOLS_PER_SERVER} tools: {ours * 1000:.0f} ms (median of {FRAME_REPEAT}; "
          f"{cached} tool lists cached, so the catalog holds their {SERVERS * TOOLS_PER_SERVER} tools from the start)")
    print(f"ratio with / without imported servers (first frame, real terminal 160x50): {ours / base:.2f}x   target <= 1.05x")


def bench_ready() -> None:
    """Per server: the last of its tools ready in the catalog, after the server answered tools/list (no cache)."""
    from tools.runtime import Runtime

    worst: list[float] = []
    for _round in range(3):
        root = Path(tempfile.mkdtemp(prefix="bench-mcp-ready-"))
        ws = import_workspace(root, "ws", SERVERS)
        ready_at: dict[str, float] = {}
        runtime = Runtime(ws, serve=True)

        def seen(changes: list, ready_at: dict[str, float] = ready_at) -> None:
            now = time.time()
            for change in changes:
                if change.status == "ready":
                    ready_at.setdefault(change.tool_id, now)

        runtime.subscribe(seen)
        try:
            deadline = time.monotonic() + 120
            expected = {f"s{i}_gen_{n}" for i in range(SERVERS) for n in range(TOOLS_PER_SERVER)}
            while not expected <= set(ready_at) and time.monotonic() < deadline:
                time.sleep(0.02)
            for i in range(SERVERS):
                replied = max(float(line.split()[0]) for line in (root / f"ws-state-{i}" / "list.log").read_text().splitlines())
                last = max(ready_at[f"s{i}_gen_{n}"] for n in range(TOOLS_PER_SERVER))
                worst.append(last - replied)
        finally:
            runtime.close()
    print(f"tools ready after the tools/list reply ({SERVERS} servers x {TOOLS_PER_SERVER} tools, 3 rounds): "
          f"median {statistics.median(worst) * 1000:.0f} ms, worst {max(worst) * 1000:.0f} ms   target <= 500 ms")


def main() -> None:
    import argparse

    parser = argparse.ArgumentParser()
    parser.add_argument("--only", default="serve,import,frame,ready")
    chosen = parser.parse_args().only.split(",")
    if "serve" in chosen:
        anyio.run(bench_serve)
    if "import" in chosen:
        anyio.run(bench_import)
    if "ready" in chosen:
        bench_ready()
    if "frame" in chosen:
        bench_frame()


if __name__ == "__main__":
    main()
