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

5. Load (issue 21's targets), over stdio and Streamable HTTP: 20 concurrent clients x 100 calls of a
   fast tool (`buffer` status; the minimal server's constant), the client load in separate processes
   (over HTTP 4 processes of 5 sessions; over stdio one process with 20 calls in flight on its
   session, the only way one stdio server has 20 clients), against the minimal SDK server exposing
   one equivalent tool. Targets: server CPU per call <= 1.1x, throughput >= 0.95x, p99 <= 1.2x.
   Sessions are warm when the span starts (100 calls over stdio, 10 per HTTP session); over HTTP the
   first call of each session is timed apart and printed (it opens the session's GET stream).
6. `tools/list` of 1,000 tools (every page) vs the minimal server listing the same 1,000. Target <= 2x.

Rounds alternate between a measure and its baseline so drift on a shared machine hits both; the
median counts. Run: python tests/benchmarks/bench_mcp.py [--only serve,import,frame,ready,load,list]
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


# -- 5, 6: load and tools/list of 1,000, in separate client processes --------------------------------------------

LOAD_CLIENTS = 20
LOAD_CALLS = 100
LOAD_PROCESSES = 4  # over HTTP: 4 processes x 5 sessions
LOAD_ROUNDS = 3
LIST_TOOLS = 1000
LIST_REPEAT = 15

#: the minimal SDK server for load and listing: `constant` plus `gen_N` tools shaped like tooldeck's, over stdio or HTTP
MINIMAL_MANY = textwrap.dedent("""
    import socket, sys
    import anyio
    import mcp_types as types
    from mcp.server.lowlevel import Server

    transport, count = sys.argv[1], int(sys.argv[2])
    SCHEMA = {"type": "object", "properties": {"text": {"type": "string", "description": "What to echo"}},
              "required": ["text"]}
    TOOLS = [types.Tool(name="constant", description="returns a constant", input_schema={"type": "object"})]
    TOOLS += [types.Tool(name=f"gen_{i}", title=f"gen_{i} 1.0.0", description=f"generated tool number {i}",
                         input_schema=SCHEMA, _meta={"tooldeck/version": "1.0.0"}) for i in range(count)]

    async def list_tools(ctx, params):
        return types.ListToolsResult(tools=TOOLS)

    async def call_tool(ctx, params):
        return types.CallToolResult(content=[types.TextContent(text='{"success": true}')],
                                    structured_content={"success": True})

    server = Server("minimal", version="1", on_list_tools=list_tools, on_call_tool=call_tool)

    async def main():
        if transport == "stdio":
            from mcp.server.stdio import stdio_server
            async with stdio_server() as (read, write):
                await server.run(read, write, server.create_initialization_options())
            return
        import uvicorn
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        sock.listen(128)
        sys.stderr.write(f"listening on http://127.0.0.1:{sock.getsockname()[1]}/mcp\\n")
        sys.stderr.flush()
        app = server.streamable_http_app(streamable_http_path="/mcp")
        await uvicorn.Server(uvicorn.Config(app, log_config=None, access_log=False, ws="none")).serve(sockets=[sock])

    anyio.run(main)
""")

#: one client process: `sessions` sessions (HTTP) or `sessions` calls in flight on one session (stdio, where it starts
#: the server itself and reports the server's CPU over the measured span), each making `calls` calls once told to go
#: (it says `ready` on stdout when connected and warmed up, and waits for a line on stdin)
LOAD_DRIVER = textwrap.dedent("""
    import json, os, sys, time
    import anyio
    import mcp_types as types
    from mcp.client.session import ClientSession

    mode, target, sessions, calls, tool, args = sys.argv[1:7]
    sessions, calls, args = int(sessions), int(calls), json.loads(args)
    TICK = os.sysconf("SC_CLK_TCK")
    info = types.Implementation(name="load", version="1")

    def children_cpu():
        kids = []
        for tid in os.listdir(f"/proc/{os.getpid()}/task"):
            kids += open(f"/proc/{os.getpid()}/task/{tid}/children").read().split()
        total = 0.0
        for pid in kids:
            fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
            total += sum(int(x) for x in fields[11:15]) / TICK  # utime stime cutime cstime
        return total

    async def run_calls(session, out):
        for _ in range(calls):
            t = time.perf_counter()
            result = await session.call_tool(tool, args)
            out.append((time.perf_counter() - t) * 1000)
            assert not result.is_error, result.content

    async def wait_start():
        print("ready", flush=True)
        await anyio.to_thread.run_sync(sys.stdin.readline)

    async def main():
        latencies, report = [], {}
        if mode == "stdio":
            from mcp.client.stdio import StdioServerParameters, stdio_client
            argv = json.loads(target)
            params = StdioServerParameters(command=argv[0], args=argv[1:], cwd=os.getcwd())
            with open(os.devnull, "w") as errlog:
                async with stdio_client(params, errlog=errlog) as (r, w), ClientSession(r, w, client_info=info) as s:
                    await s.initialize()
                    await s.list_tools()
                    for _ in range(100):
                        await s.call_tool(tool, args)
                    await wait_start()
                    cpu0 = children_cpu()
                    async with anyio.create_task_group() as tg:
                        for _ in range(sessions):
                            tg.start_soon(run_calls, s, latencies)
                    report["end"], report["cpu"] = time.time(), children_cpu() - cpu0
        else:
            import httpx2
            from contextlib import AsyncExitStack
            from mcp.client.streamable_http import streamable_http_client
            async with AsyncExitStack() as stack:
                opened = []
                for _ in range(sessions):
                    http = await stack.enter_async_context(httpx2.AsyncClient(timeout=120))
                    r, w = await stack.enter_async_context(streamable_http_client(target, http_client=http))
                    s = await stack.enter_async_context(ClientSession(r, w, client_info=info))
                    await s.initialize()
                    opened.append(s)
                for s in opened:  # warm, as over stdio: a session's first call (its GET stream opens) is timed apart
                    t = time.perf_counter()
                    await s.call_tool(tool, args)
                    report.setdefault("first", []).append((time.perf_counter() - t) * 1000)
                    for _ in range(9):
                        await s.call_tool(tool, args)
                await wait_start()
                async with anyio.create_task_group() as tg:
                    for s in opened:
                        tg.start_soon(run_calls, s, latencies)
                report["end"] = time.time()
        report["latencies"] = latencies
        print(json.dumps(report), flush=True)

    anyio.run(main)
""")


def _proc_cpu(pid: int) -> float:
    import os

    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return sum(int(x) for x in fields[11:15]) / os.sysconf("SC_CLK_TCK")


def _drive(driver: Path, mode: str, target: str, processes: int, sessions: int, tool: str, args: dict,
           server_pid: int | None = None) -> dict:
    """One round: the client processes, connected and warm, start together; (calls/s, p99 ms, server CPU ms per call)."""
    import json
    import subprocess

    procs = [subprocess.Popen([sys.executable, str(driver), mode, target, str(sessions), str(LOAD_CALLS), tool,
                               json.dumps(args)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True, cwd=REPO) for _ in range(processes)]
    for proc in procs:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready", proc.communicate(timeout=60)[1][-3000:]
    cpu0 = _proc_cpu(server_pid) if server_pid is not None else 0.0
    start = time.time()
    for proc in procs:
        assert proc.stdin is not None
        proc.stdin.write("go\n")
        proc.stdin.flush()
    reports = []
    for proc in procs:
        out, err = proc.communicate(timeout=600)
        assert proc.returncode == 0, err[-3000:]
        reports.append(json.loads(out.strip().splitlines()[-1]))
    calls = processes * sessions * LOAD_CALLS
    cpu = (_proc_cpu(server_pid) - cpu0) if server_pid is not None else sum(r["cpu"] for r in reports)
    latencies = sorted(x for r in reports for x in r["latencies"])
    span = max(r["end"] for r in reports) - start
    first = sorted(x for r in reports for x in r.get("first", []))
    return {"rate": calls / span, "p99": latencies[int(len(latencies) * 0.99) - 1], "cpu": cpu * 1000 / calls,
            "first": first[len(first) // 2] if first else 0.0}


class _HttpProc:
    """A server process that says `listening on URL` on stderr."""

    def __init__(self, argv: list[str]) -> None:
        import subprocess
        import threading

        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                     text=True, cwd=REPO)
        self.lines: list[str] = []
        threading.Thread(target=lambda: self.lines.extend(self.proc.stderr or []), daemon=True).start()
        deadline = time.monotonic() + 120
        while not any("listening on " in line for line in self.lines):
            assert self.proc.poll() is None and time.monotonic() < deadline, "".join(self.lines)[-2000:]
            time.sleep(0.05)
        self.url = next(line for line in self.lines if "listening on " in line).split("listening on ", 1)[1].split()[0]

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(60)


def _ratios(name: str, ours: list[dict], base: list[dict]) -> None:
    med = {k: (statistics.median(r[k] for r in ours), statistics.median(r[k] for r in base)) for k in ("cpu", "rate", "p99")}
    print(f"{name}: minimal SDK server {med['rate'][1]:.0f} calls/s, p99 {med['p99'][1]:.1f} ms, server CPU "
          f"{med['cpu'][1]:.2f} ms/call; tooldeck {med['rate'][0]:.0f} calls/s, p99 {med['p99'][0]:.1f} ms, server CPU "
          f"{med['cpu'][0]:.2f} ms/call (medians of {LOAD_ROUNDS} rounds, {LOAD_CLIENTS} clients x {LOAD_CALLS} calls)")
    print(f"ratio tooldeck / minimal ({name}): server CPU per call {med['cpu'][0] / med['cpu'][1]:.2f}x (target <= 1.1x), "
          f"throughput {med['rate'][0] / med['rate'][1]:.2f}x (target >= 0.95x), p99 {med['p99'][0] / med['p99'][1]:.2f}x "
          f"(target <= 1.2x)")
    if any(r["first"] for r in ours):  # over HTTP: each session's first call, sequential, before the timed span
        print(f"first call of a session ({name}, not in the span): median {statistics.median(r['first'] for r in base):.1f} ms "
              f"minimal, {statistics.median(r['first'] for r in ours):.1f} ms tooldeck")


def bench_load() -> None:
    tmp = Path(tempfile.mkdtemp(prefix="bench-mcp-load-"))
    ws = tmp / "ws"
    (ws / "tools").mkdir(parents=True)
    driver, minimal = tmp / "driver.py", tmp / "minimal_many.py"
    driver.write_text(LOAD_DRIVER)
    minimal.write_text(MINIMAL_MANY)
    status = {"operation": "status"}
    ours_argv = [sys.executable, "-m", "tools", "--workspace", str(ws), "mcp", "serve"]
    base_argv = [sys.executable, str(minimal), "stdio", "0"]
    import json

    ours, base = [], []
    for _ in range(LOAD_ROUNDS):
        base.append(_drive(driver, "stdio", json.dumps(base_argv), 1, LOAD_CLIENTS, "constant", {}))
        ours.append(_drive(driver, "stdio", json.dumps(ours_argv), 1, LOAD_CLIENTS, "buffer", status))
    _ratios("stdio", ours, base)

    ours_server = _HttpProc([*ours_argv, "--http", "127.0.0.1:0"])
    base_server = _HttpProc([sys.executable, str(minimal), "http", "0"])
    per_process = LOAD_CLIENTS // LOAD_PROCESSES
    try:
        _drive(driver, "http", ours_server.url, 1, 2, "buffer", status, ours_server.proc.pid)  # warm-up
        _drive(driver, "http", base_server.url, 1, 2, "constant", {}, base_server.proc.pid)
        ours, base = [], []
        for _ in range(LOAD_ROUNDS):
            base.append(_drive(driver, "http", base_server.url, LOAD_PROCESSES, per_process, "constant", {},
                               base_server.proc.pid))
            ours.append(_drive(driver, "http", ours_server.url, LOAD_PROCESSES, per_process, "buffer", status,
                               ours_server.proc.pid))
    finally:
        ours_server.stop()
        base_server.stop()
    _ratios("Streamable HTTP", ours, base)


LIST_DRIVER = textwrap.dedent("""
    import json, os, sys, time
    import anyio
    import mcp_types as types
    from mcp.client.session import ClientSession
    from mcp.client.stdio import StdioServerParameters, stdio_client

    argv, repeat, expect = json.loads(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])

    async def list_all(s):
        tools, cursor = [], None
        while True:
            page = await s.list_tools(params=types.PaginatedRequestParams(cursor=cursor) if cursor else None)
            tools += page.tools
            cursor = page.next_cursor
            if cursor is None:
                return tools

    async def main():
        params = StdioServerParameters(command=argv[0], args=argv[1:], cwd=os.getcwd())
        with open(os.devnull, "w") as errlog:
            async with stdio_client(params, errlog=errlog) as (r, w), ClientSession(r, w) as s:
                await s.initialize()
                deadline = time.monotonic() + 300
                while len([t for t in await list_all(s) if t.name.startswith("gen_")]) < expect:  # the catalog loads
                    assert time.monotonic() < deadline, "the tools did not all load"
                    await anyio.sleep(0.5)
                times = []
                for _ in range(repeat):
                    t = time.perf_counter()
                    await list_all(s)
                    times.append((time.perf_counter() - t) * 1000)
        print(json.dumps(times), flush=True)

    anyio.run(main)
""")


def bench_list() -> None:
    import json
    import subprocess

    tmp = Path(tempfile.mkdtemp(prefix="bench-mcp-list-"))
    ws = tmp / "ws"
    tools = ws / "tools"
    tools.mkdir(parents=True)
    for i in range(LIST_TOOLS):
        (tools / f"gen_{i}.py").write_text("def run(data):\n    return {'echo': data['text']}\n")
        (tools / f"gen_{i}.yaml").write_text(
            f"name: gen_{i}\ntype: python\nversion: 1.0.0\nentry: gen_{i}.py:run\ndescription: generated tool number {i}\n"
            "input_schema:\n  text: {type: string, required: true, description: What to echo}\n")
    (ws / "tooldeck.toml").write_text(f"[mcp.serve]\npage_size = {LIST_TOOLS}\n")
    driver, minimal = tmp / "list_driver.py", tmp / "minimal_many.py"
    driver.write_text(LIST_DRIVER)
    minimal.write_text(MINIMAL_MANY)

    def run(argv: list[str]) -> list[float]:
        done = subprocess.run([sys.executable, str(driver), json.dumps(argv), str(LIST_REPEAT), str(LIST_TOOLS)],
                              capture_output=True, text=True, timeout=900, cwd=REPO)
        assert done.returncode == 0, done.stderr[-3000:]
        times: list[float] = json.loads(done.stdout.strip().splitlines()[-1])
        return times

    base = run([sys.executable, str(minimal), "stdio", str(LIST_TOOLS)])
    ours = run([sys.executable, "-m", "tools", "--workspace", str(ws), "mcp", "serve"])
    b, o = statistics.median(base), statistics.median(ours)
    print(f"tools/list of {LIST_TOOLS} tools (stdio, every page, median of {LIST_REPEAT}): minimal SDK server {b:.1f} ms, "
          f"tooldeck {o:.1f} ms")
    print(f"ratio tooldeck / minimal (tools/list of {LIST_TOOLS}): {o / b:.2f}x   target <= 2x")


def main() -> None:
    import argparse

    parser = argparse.ArgumentParser()
    parser.add_argument("--only", default="serve,import,frame,ready,load,list")
    chosen = parser.parse_args().only.split(",")
    if "load" in chosen:
        bench_load()
    if "list" in chosen:
        bench_list()
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
