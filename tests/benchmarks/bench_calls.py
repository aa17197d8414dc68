"""Calls/s: a `python` tool through its warm worker vs a process per call, and `builtin` calls;
and a python tool's 100 MB reply against a bare pipe read of the same bytes.

Same tool code, same run, usage tracking on. Run: python tests/benchmarks/bench_calls.py
(`--big-only` runs the 100 MB reply part alone; its old-read baseline takes ~80 s; `--no-big` skips it).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.helpers import write_tool  # noqa: E402
from tools.runtime import Runtime  # noqa: E402

CODE = "def run(data):\n    return {'n': data.get('n', 0) + 1}\n"
EXEC_WRAPPER = "import json, sys\nfrom add_one import run\njson.dump(run(json.load(sys.stdin)), sys.stdout)\n"


def rate(fn, seconds: float) -> tuple[float, int]:
    n = 0
    start = time.perf_counter()
    while time.perf_counter() - start < seconds:
        for _ in range(50):
            fn(n)
            n += 1
    return n / (time.perf_counter() - start), n


BIG = 100_000_000
#: what the worker writes for a 100 MB string result: one JSON line, as worker_main does
BIG_WRITER = ("import json, sys\n"
              "line = json.dumps({'id': 1, 'ok': True, 'result': 'x' * int(sys.argv[1])}) + '\\n'\n"
              "sys.stdout.write(line)\nsys.stdout.flush()\n")


def bare_reply(n: int) -> float:
    """The ceiling: a child writes the same JSON line; read it in chunks, join once, parse."""
    started = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-c", BIG_WRITER, str(n)], stdout=subprocess.PIPE)
    fd = proc.stdout.fileno()  # type: ignore[union-attr]
    parts = []
    while chunk := os.read(fd, 1 << 20):
        parts.append(chunk)
    reply = json.loads(b"".join(parts))
    proc.wait()
    assert len(reply["result"]) == n
    return time.perf_counter() - started


def worker_reply(tool_dir: Path, n: int, *, quadratic: bool) -> float:
    """A real worker (worker_main.py) returning an n-byte string, its reply read the way the
    runtime read it before issue 11 (`buf += chunk`, the whole buffer scanned per chunk) or
    with today's LineReader."""
    from tools.invoke import LineReader
    from tools.invoke.worker import WORKER_MAIN

    proc = subprocess.Popen([sys.executable, str(WORKER_MAIN), str(tool_dir), "big.py", "run"],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, bufsize=0)
    fd = proc.stdout.fileno()  # type: ignore[union-attr]
    reader = LineReader(fd)
    reader.read_line(time.monotonic() + 30, 1 << 20)  # the hello
    started = time.perf_counter()
    proc.stdin.write(json.dumps({"id": 1, "input": {"n": n}}).encode() + b"\n")  # type: ignore[union-attr]
    if quadratic:
        buf = b""
        while b"\n" not in buf:
            buf += os.read(fd, 1 << 16)
        line = buf.split(b"\n", 1)[0]
    else:
        line = reader.read_line(time.monotonic() + 600, 1 << 30) or b""
    assert len(json.loads(line)["result"]) == n
    elapsed = time.perf_counter() - started
    proc.stdin.close()  # type: ignore[union-attr]
    proc.wait()
    return elapsed


def big_replies() -> None:
    ws = Path(tempfile.mkdtemp(prefix="bench-big-"))
    (ws / "tooldeck.toml").write_text(f"[calls]\nmax_output_bytes = {2 * BIG}\n")
    write_tool(ws / "tools", "big", {"name": "big", "type": "python", "entry": "big.py:run", "timeout": 300,
                                     "track_usage": False}, "def run(data):\n    return 'x' * data['n']\n")
    write_tool(ws / "tools", "capped", {"name": "capped", "type": "python", "entry": "capped.py:run", "timeout": 300,
                                        "track_usage": False, "executable": {"max_output_bytes": 16 << 20}},
               "def run(data):\n    return 'x' * data['n']\n")
    runtime = Runtime(ws)
    runtime.call("big", {"n": 1})
    runtime.call("capped", {"n": 1})
    bare = bare_reply(BIG)
    started = time.perf_counter()
    assert len(runtime.call("big", {"n": BIG})) == BIG
    tooldeck = time.perf_counter() - started
    started = time.perf_counter()
    try:
        runtime.call("capped", {"n": BIG})
    except Exception as exc:  # output_too_large: the worker is killed at the cap
        assert getattr(exc, "error_class", "") == "output_too_large", exc
    capped = time.perf_counter() - started
    runtime.close()
    linear_read = worker_reply(ws / "tools", BIG, quadratic=False)
    old_read = worker_reply(ws / "tools", BIG, quadratic=True)  # ~80 s
    print(f"100 MB reply, bare pipe read (chunks, one join, json.loads): {bare:7.2f} s")
    print(f"100 MB reply, tooldeck call (cap raised to 200 MB)          : {tooldeck:7.2f} s"
          f"   ratio to bare {tooldeck / bare:.2f}x   target <= 2x")
    print(f"100 MB reply past the default 16 MiB cap                     : {capped:7.2f} s   (output_too_large)")
    print(f"100 MB worker reply read as before issue 11 (buf += chunk)   : {old_read:7.2f} s"
          f"   vs LineReader {linear_read:.2f} s: ratio {old_read / linear_read:.0f}x")


def worker_starts(runtime: Runtime, n: int) -> float:
    """Median time of a first call on a fresh worker: start, load the tool's source, answer."""
    times = []
    for i in range(n):
        runtime.workers.recycle("add_one")
        started = time.perf_counter()
        runtime.call("add_one", {"n": i})
        times.append(time.perf_counter() - started)
    return sorted(times)[n // 2]


def main() -> None:
    if "--big-only" in sys.argv:
        big_replies()
        return
    ws = Path(tempfile.mkdtemp(prefix="bench-calls-"))
    tools = ws / "tools"
    write_tool(tools, "add_one", {"name": "add_one", "type": "python", "entry": "add_one.py:run",
                                  "input_schema": {"n": {"type": "integer"}}}, CODE)
    write_tool(tools, "add_one_exec", {"name": "add_one_exec", "type": "executable",
                                       "executable": {"command": "python", "args": ["{tool_dir}/add_one_exec.py"]},
                                       "input_schema": {"n": {"type": "integer"}}}, EXEC_WRAPPER)
    write_tool(tools, "echo_builtin", {"name": "echo_builtin", "type": "builtin", "entry": "tools.invoke.builtin:echo",
                                       "input_schema": {"n": {"type": "integer"}}})
    runtime = Runtime(ws)
    runtime.wait_ready(30)
    runtime.call("add_one", {"n": 1})  # start the worker
    per_process, n_proc = rate(lambda i: runtime.call("add_one_exec", {"n": i}), 3.0)
    warm, n_warm = rate(lambda i: runtime.call("add_one", {"n": i}), 3.0)
    builtin, n_builtin = rate(lambda i: runtime.call("echo_builtin", {"n": i}), 3.0)
    starts = worker_starts(runtime, 20)
    runtime.calls.flush()
    recorded = runtime.store.query_one("SELECT COUNT(*) FROM calls")[0]
    runtime.close()
    print(f"process per call : {per_process:10.1f} calls/s ({n_proc} calls)")
    print(f"warm worker      : {warm:10.1f} calls/s ({n_warm} calls)   target >= 5,000")
    print(f"builtin          : {builtin:10.1f} calls/s ({n_builtin} calls)   target >= 20,000")
    print(f"ratio warm / process per call: {warm / per_process:.0f}x   target >= 100x")
    print(f"call records written (tracking on): {recorded} of {n_proc + n_warm + n_builtin + 21}")
    print(f"worker start (recycle + first call), median of 20: {starts * 1000:7.1f} ms")
    if "--no-big" not in sys.argv:
        big_replies()


if __name__ == "__main__":
    main()
