"""Calls/s: a `python` tool through its warm worker vs a process per call, and `builtin` calls.

Same tool code, same run, usage tracking on. Run: python tests/benchmarks/bench_calls.py
"""

from __future__ import annotations

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


def main() -> None:
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
    runtime.calls.flush()
    recorded = runtime.store.query_one("SELECT COUNT(*) FROM calls")[0]
    runtime.close()
    print(f"process per call : {per_process:10.1f} calls/s ({n_proc} calls)")
    print(f"warm worker      : {warm:10.1f} calls/s ({n_warm} calls)   target >= 5,000")
    print(f"builtin          : {builtin:10.1f} calls/s ({n_builtin} calls)   target >= 20,000")
    print(f"ratio warm / process per call: {warm / per_process:.0f}x   target >= 100x")
    print(f"call records written (tracking on): {recorded} of {n_proc + n_warm + n_builtin + 1}")


if __name__ == "__main__":
    main()
