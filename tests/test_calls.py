"""Calling tools of every kind, through real processes, and what failures look like; the call recorder under a failing store."""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from state.calls import CallRecord, CallRecorder
from state.db import SqliteStore as Store  # these tests hold SQLite's file lock from another process
from tests.buffer_helpers import wait_for
from tests.helpers import alive, exec_tool, python_tool, state_bytes
from tools.errors import (
    ToolCrashError,
    ToolError,
    ToolExitError,
    ToolInputError,
    ToolOutputError,
    ToolTimeoutError,
)
from tools.runtime import Runtime

SECRET = "sk-ant-test-secret-0123456789abcdef"


def test_executable_json_and_text_output(workspace: Path, make_runtime) -> None:
    tools = workspace / "tools"
    exec_tool(tools, "echo_json", "import json, sys\njson.dump({'got': json.load(sys.stdin)}, sys.stdout)\n")
    exec_tool(tools, "say_text", "import sys\nsys.stdin.read()\nprint('plain words')\n")
    runtime = make_runtime()
    assert runtime.call("echo_json", '{"a": 1}') == {"got": {"a": 1}}
    assert runtime.call("say_text", {}) == "plain words\n"


def test_exit_code_carries_class_code_and_stderr_tail(workspace: Path, make_runtime) -> None:
    exec_tool(workspace / "tools", "fails", "import sys\nprint('boom: disk on fire', file=sys.stderr)\nsys.exit(3)\n")
    runtime = make_runtime()
    with pytest.raises(ToolExitError) as info:
        runtime.call("fails", {})
    err = info.value
    assert err.exit_code == 3 and err.error_class == "exit_code"
    assert "disk on fire" in err.stderr_tail and "exited with code 3" in err.message


def test_timeout_kills_the_whole_process_group(workspace: Path, make_runtime, tmp_path: Path) -> None:
    pidfile = tmp_path / "grandchild.pid"
    script = (
        "import subprocess, sys, time\n"
        "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])\n"
        f"open({str(pidfile)!r}, 'w').write(str(child.pid))\n"
        "time.sleep(60)\n"
    )
    exec_tool(workspace / "tools", "spawner", script, timeout=1)
    runtime = make_runtime()
    started = time.monotonic()
    with pytest.raises(ToolTimeoutError, match="timed out after 1 s"):
        runtime.call("spawner", {})
    assert time.monotonic() - started < 10
    grandchild = int(pidfile.read_text())
    deadline = time.monotonic() + 5
    while alive(grandchild) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not alive(grandchild), "the grandchild outlived the timeout"


DETACHED = (  # a grandchild that leaves the tool's group and session and keeps stdout and stderr open
    "import json, os, sys, time\n"
    "pid = os.fork()\n"
    "if pid == 0:\n"
    "    os.setsid()\n"
    "    time.sleep(120)\n"
    "    os._exit(0)\n"
    "open({pidfile!r}, 'w').write(str(pid))\n"
    "{then}\n"
)


def wait_dead(pid: int, seconds: float = 5.0) -> bool:
    deadline = time.monotonic() + seconds
    while alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    return not alive(pid)


def test_a_detached_grandchild_holding_the_pipes_neither_holds_the_answer_nor_outlives_the_call(
        workspace: Path, make_runtime, tmp_path: Path) -> None:
    """It used to hold the answer until the timeout (the pipes never ended), then outlive the group kill."""
    pidfile = tmp_path / "detached.pid"
    then = "json.dump({'answer': 42}, sys.stdout); sys.stdout.flush()"
    exec_tool(workspace / "tools", "detacher", DETACHED.format(pidfile=str(pidfile), then=then), timeout=30)
    runtime = make_runtime()
    started = time.monotonic()
    assert runtime.call("detacher", {}) == {"answer": 42}
    assert time.monotonic() - started < 10, "the answer waited for the grandchild"
    assert wait_dead(int(pidfile.read_text())), "the detached grandchild outlived the call"


def test_a_detached_grandchild_of_a_tool_that_times_out_dies_with_it(workspace: Path, make_runtime,
                                                                     tmp_path: Path) -> None:
    pidfile = tmp_path / "detached.pid"
    exec_tool(workspace / "tools", "detached_hang", DETACHED.format(pidfile=str(pidfile), then="time.sleep(60)"),
              timeout=1)
    runtime = make_runtime()
    with pytest.raises(ToolTimeoutError):
        runtime.call("detached_hang", {})
    assert wait_dead(int(pidfile.read_text())), "the detached grandchild outlived the timeout"


def test_a_detached_grandchild_of_a_python_tool_dies_with_its_worker(workspace: Path, make_runtime,
                                                                      tmp_path: Path) -> None:
    """A worker's children live as long as the worker; one that left the worker's group with its stderr open
    used to outlive it (and its stderr reader thread with it)."""
    pidfile = tmp_path / "detached.pid"
    body = (
        "import os, time\n"
        "def run(data):\n"
        "    pid = os.fork()\n"
        "    if pid == 0:\n"
        "        os.setsid()\n"
        "        time.sleep(120)\n"
        "        os._exit(0)\n"
        f"    open({str(pidfile)!r}, 'w').write(str(pid))\n"
        "    return {'forked': True}\n"
    )
    python_tool(workspace / "tools", "py_detacher", body)
    runtime = make_runtime()
    assert runtime.call("py_detacher", {}) == {"forked": True}
    grandchild = int(pidfile.read_text())
    assert alive(grandchild)
    runtime.close()
    assert wait_dead(grandchild), "the detached grandchild outlived its worker"


def test_secrets_never_reach_a_tool_and_are_redacted_from_stderr(workspace: Path, make_runtime,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", SECRET)
    monkeypatch.setenv("QDRANT_API_KEY", "qdrant-secret-value-42")
    tools = workspace / "tools"
    exec_tool(tools, "show_env", "import json, os, sys\nsys.stdin.read()\njson.dump(sorted(os.environ), sys.stdout)\n",
              executable={"environment": {"ANTHROPIC_API_KEY": "smuggled", "HARMLESS": "1"}})
    exec_tool(tools, "leaky", f"import sys\nprint('key is {SECRET}', file=sys.stderr)\nsys.exit(1)\n")
    python_tool(tools, "py_env", "import os\ndef run(d):\n    return sorted(os.environ)\n")
    runtime = make_runtime()
    names = runtime.call("show_env", {})
    assert "HARMLESS" in names
    assert "ANTHROPIC_API_KEY" not in names and "QDRANT_API_KEY" not in names
    assert "ANTHROPIC_API_KEY" not in runtime.call("py_env", {})
    with pytest.raises(ToolExitError) as info:
        runtime.call("leaky", {})
    assert SECRET not in info.value.stderr_tail and SECRET not in info.value.message
    assert "***" in info.value.stderr_tail
    runtime.calls.flush()
    db = state_bytes(runtime.home)
    assert b"leaky" in db and SECRET.encode() not in db


def test_warm_worker_survives_a_raise_and_a_hard_exit(workspace: Path, make_runtime) -> None:
    body = (
        "import os\n"
        "def run(d):\n"
        "    print('noise on stdout must not break the protocol')\n"
        "    if d.get('mode') == 'raise':\n"
        "        raise ValueError('bad value in tool')\n"
        "    if d.get('mode') == 'exit':\n"
        "        os._exit(7)\n"
        "    if d.get('mode') == 'sysexit':\n"
        "        raise SystemExit(2)\n"
        "    return {'pid': os.getpid()}\n"
    )
    python_tool(workspace / "tools", "fragile", body)
    # this test is about the worker, not the circuit breaker: keep the circuit from opening
    (workspace / "tooldeck.toml").write_text("[circuit]\nmin_calls = 1000\nconsecutive_failures = 1000\n")
    runtime = make_runtime()
    pid = runtime.call("fragile", {})["pid"]
    with pytest.raises(ToolCrashError, match="ValueError: bad value in tool") as info:
        runtime.call("fragile", {"mode": "raise"})
    assert "ValueError" in info.value.stderr_tail
    assert runtime.call("fragile", {})["pid"] == pid  # same warm worker
    with pytest.raises(ToolCrashError, match="SystemExit"):
        runtime.call("fragile", {"mode": "sysexit"})
    assert runtime.call("fragile", {})["pid"] == pid
    with pytest.raises(ToolCrashError, match="died") as info:
        runtime.call("fragile", {"mode": "exit"})
    assert info.value.exit_code == 7
    new_pid = runtime.call("fragile", {})["pid"]
    assert new_pid != pid and not alive(pid)


def test_worker_timeout_kills_and_restarts(workspace: Path, make_runtime) -> None:
    python_tool(workspace / "tools", "sleepy", "import os, time\ndef run(d):\n    time.sleep(d.get('s', 0))\n    return os.getpid()\n",
                timeout=0.5)
    runtime = make_runtime()
    first = runtime.call("sleepy", {})
    with pytest.raises(ToolTimeoutError):
        runtime.call("sleepy", {"s": 5})
    assert runtime.call("sleepy", {}) != first


def test_worker_that_cannot_import_fails_clearly(workspace: Path, make_runtime) -> None:
    python_tool(workspace / "tools", "broken_import", "import not_a_module_anywhere\ndef run(d):\n    return d\n")
    runtime = make_runtime()
    with pytest.raises(ToolCrashError, match="cannot load broken_import.py:run"):
        runtime.call("broken_import", {})


def test_bad_input_is_refused_before_the_tool_runs(workspace: Path, make_runtime, tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    exec_tool(workspace / "tools", "strict", f"open({str(marker)!r}, 'w').write('x')\nprint('{{}}')\n",
              input_schema={"text": {"type": "string", "required": True}})
    runtime = make_runtime()
    with pytest.raises(ToolInputError, match="text"):
        runtime.call("strict", {"other": 1})
    with pytest.raises(ToolInputError, match="not valid JSON"):
        runtime.call("strict", "{not json")
    assert not marker.exists()


def test_output_schema_violation_and_garbage_output(workspace: Path, make_runtime) -> None:
    tools = workspace / "tools"
    exec_tool(tools, "garbage", "import sys\nsys.stdout.buffer.write(b'\\x89PNG\\x00garbage')\n",
              output_schema={"type": "object", "required": ["rows"]})
    python_tool(tools, "wrong_shape", "def run(d):\n    return {'nope': 1}\n", output_schema={"type": "object", "required": ["rows"]})
    python_tool(tools, "unserialisable", "def run(d):\n    return {1, 2}\n")
    runtime = make_runtime()
    with pytest.raises(ToolOutputError, match="garbage: output is not JSON: "):  # not a schema complaint about an 'input'
        runtime.call("garbage", {})
    with pytest.raises(ToolOutputError, match="rows"):
        runtime.call("wrong_shape", {})
    with pytest.raises(ToolOutputError, match="its result is not JSON .*not JSON serializable"):  # the tool ran: its output is bad
        runtime.call("unserialisable", {})


def test_working_dir_must_stay_inside_the_workspace(workspace: Path, make_runtime) -> None:
    exec_tool(workspace / "tools", "escaper", "print(1)\n", executable={"working_dir": "../../"})
    runtime = make_runtime()
    with pytest.raises(Exception, match="outside"):
        runtime.call("escaper", {})


def test_calls_are_recorded_unless_tracking_is_off(workspace: Path, make_runtime, monkeypatch: pytest.MonkeyPatch) -> None:
    tools = workspace / "tools"
    python_tool(tools, "counted", "def run(d):\n    if d.get('fail'):\n        raise RuntimeError('x')\n    return d\n")
    python_tool(tools, "private", "def run(d):\n    if d.get('fail'):\n        raise RuntimeError('x')\n    return d\n",
                track_usage=False)
    runtime = make_runtime()
    runtime.call("counted", {"n": 1})
    runtime.call("counted", {"n": 2}, disable_tracking=True)
    runtime.call("private", {"n": 3})
    with pytest.raises(ToolCrashError):
        runtime.call("private", {"fail": True})
    runtime.calls.flush()
    rows = [dict(r) for r in runtime.store.query("SELECT tool_id, outcome, input FROM calls ORDER BY id")]
    assert [(r["tool_id"], r["outcome"]) for r in rows] == [("counted", "ok"), ("private", "crash")]
    assert rows[0]["input"] == '{"n":1}'
    assert rows[1]["input"] is None  # failures are always recorded; the input only when tracking is on
    counters = {(r[0], r[1], r[2]) for r in runtime.store.query("SELECT tool_id, calls, failures FROM call_counters")}
    assert counters == {("counted", 2, 0), ("private", 2, 1)}  # untracked successes are still counted


def test_a_buffer_write_moves_the_counters_and_writes_no_call_row(workspace: Path, make_runtime) -> None:
    """The original callers' hot path: 1,000 writes/s must not be 1,000 call rows/s."""
    import json

    runtime = make_runtime()
    request = json.dumps({"operation": "write", "buffer_id": "seedpath", "data": {"n": 1}, "flush_strategy": "manual"})
    for _ in range(50):
        runtime.call("buffer", request)
    runtime.calls.flush()
    assert runtime.store.query_one("SELECT COUNT(*) FROM calls WHERE tool_id='buffer'")[0] == 0
    assert runtime.store.query_one("SELECT calls, failures FROM call_counters WHERE tool_id='buffer'")[:] == (50, 0)
    with pytest.raises(ToolError):
        runtime.call("buffer", {"operation": "write", "buffer_id": "../x", "data": 1})
    runtime.calls.flush()
    failed = runtime.store.query("SELECT outcome, input FROM calls WHERE tool_id='buffer'")
    assert [(r[0], r[1]) for r in failed] == [("bad_id", None)]  # a failure is still a record


def test_tracking_env_switch(workspace: Path, make_runtime, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TOOLDECK_DISABLE_USAGE_TRACKING", "1")
    python_tool(workspace / "tools", "quiet", "def run(d):\n    return d\n")
    runtime = make_runtime()
    runtime.call("quiet", {})
    runtime.calls.flush()
    assert runtime.store.query_one("SELECT COUNT(*) FROM calls")[0] == 0


def test_manifest_tests_run(make_runtime) -> None:
    runtime = make_runtime(demo=True)
    results = runtime.run_tests("csv_parser")
    assert results and all(r["passed"] for r in results), results


def test_workers_are_gone_after_close(workspace: Path, make_runtime) -> None:
    python_tool(workspace / "tools", "pidder", "import os\ndef run(d):\n    return os.getpid()\n")
    runtime = make_runtime()
    pid = runtime.call("pidder", {})
    assert alive(pid)
    runtime.close()
    deadline = time.monotonic() + 5
    while alive(pid) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not alive(pid)
    assert os.getpid() != pid


def test_guard_hooks_run_before_unobserved_calls(workspace: Path, make_runtime) -> None:
    """`run_tests` skips observation hooks but never a guard (unapproved code must not run)."""
    python_tool(workspace / "tools", "guarded", "def run(d):\n    return d\n", tests=[{"input": {}, "expect": {}}])
    runtime = make_runtime()
    seen: list[str] = []

    class Observer:
        def before_call(self, rt, entry) -> None:
            seen.append("observer")

        def after_call(self, *args) -> None:
            pass

    class Guard(Observer):
        guard = True

        def before_call(self, rt, entry) -> None:
            seen.append("guard")
            raise ToolCrashError("refused by guard")

    runtime.hooks.extend([Observer(), Guard()])
    results = runtime.run_tests("guarded")
    assert seen == ["guard"] and not results[0]["passed"] and "refused by guard" in results[0]["detail"]


# -- the call recorder under a failing store -------------------------------------------------------------

#: holds the write lock of the database at argv[1] for argv[2] seconds, from another process
LOCK_HOLDER = """
import sqlite3, sys, time
con = sqlite3.connect(sys.argv[1], isolation_level=None, timeout=30)
con.execute("BEGIN IMMEDIATE")
print("locked", flush=True)
time.sleep(float(sys.argv[2]))
con.execute("COMMIT")
"""


def hold_lock(path: Path, seconds: float) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-c", LOCK_HOLDER, str(path), str(seconds)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "locked"
    return proc


def recorded(store: Store) -> list[int]:
    return [json.loads(r[0])["i"] for r in store.query("SELECT input FROM calls ORDER BY id")]


def dropped_events(store: Store) -> list[dict]:
    return [json.loads(r[0]) for r in store.query("SELECT payload FROM events WHERE kind='calls.dropped' ORDER BY id")]


def a_call(i: int) -> CallRecord:
    return CallRecord("echo", "1.0.0", "s-test", 1.0, "ok", {"i": i}, {"ok": True}, ts=time.time())


def test_the_call_recorder_outlives_a_database_locked_by_another_process(tmp_path: Path) -> None:
    """Held past the busy timeout (as a 35 s lock is past the default 30 s): records wait, in order, and go in."""
    store = Store(tmp_path / "calls.db", busy_timeout_ms=300)
    recorder = CallRecorder(store, interval=0.05)
    recorder.start()
    try:
        holder = hold_lock(store.path, 2.0)  # ~6 busy timeouts
        for i in range(300):
            recorder.record(a_call(i))
        assert holder.wait(timeout=60) == 0
        wait_for(lambda: recorded(store) == list(range(300)), timeout=30)
        assert recorder.alive and recorder.dropped_total == 0 and dropped_events(store) == []
        recorder.record(a_call(300))  # and it keeps recording
        wait_for(lambda: len(recorded(store)) == 301, timeout=30)
    finally:
        recorder.close()
        store.close()


def test_past_max_queued_records_the_oldest_are_dropped_and_counted(tmp_path: Path) -> None:
    store = Store(tmp_path / "calls.db", busy_timeout_ms=300)
    recorder = CallRecorder(store, interval=0.05, max_queued=100, session="s-test")
    recorder.start()
    try:
        holder = hold_lock(store.path, 1.5)
        for i in range(250):
            recorder.record(a_call(i))
            assert recorder.queued <= 100
        assert holder.wait(timeout=60) == 0
        wait_for(lambda: dropped_events(store), timeout=30)
        assert recorded(store) == list(range(150, 250))  # the newest 100
        events = dropped_events(store)
        assert [e["dropped"] for e in events] == [150] and events[0]["max_queued_records"] == 100
        assert "locked" in events[0]["error"]
        kinds = [r[0] for r in store.query("SELECT kind FROM events")]
        assert kinds == ["calls.dropped"]  # one counted event, not one per record
    finally:
        recorder.close()
        store.close()


def _fill(path: Path) -> None:
    """Write zeros to `path` until the file system is full."""
    with open(path, "wb", buffering=0) as f:
        for size in (1 << 20, 1 << 12, 1 << 9):
            chunk = b"\0" * size
            try:
                while f.write(chunk) == size:
                    pass
            except OSError as exc:
                if exc.errno != errno.ENOSPC:
                    raise


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting a small tmpfs needs root (CI runs as root)")
def test_a_full_disk_costs_the_oldest_call_records_not_the_recorder(workspace: Path, tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    small = tmp_path / "small"
    small.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(small)], check=True)
    try:
        monkeypatch.setenv("TOOLDECK_HOME", str(small / "home"))
        (workspace / "tooldeck.toml").write_text("[calls]\nmax_queued_records = 200\n")
        python_tool(workspace / "tools", "echo", "def run(d):\n    return {'i': d['i']}\n")
        runtime = Runtime(workspace)
        try:
            pad = "x" * 4000
            runtime.call("echo", {"i": -1, "pad": pad})
            wait_for(lambda: recorded(runtime.store) == [-1], timeout=30)
            _fill(small / "filler")
            for i in range(500):
                runtime.call("echo", {"i": i, "pad": pad})
            wait_for(lambda: runtime.calls.failures >= 2, timeout=30)  # it tried, failed, and tried again
            assert runtime.calls.alive and runtime.calls.queued <= 200
            (small / "filler").unlink()
            wait_for(lambda: len(recorded(runtime.store)) == 201, timeout=30)
            assert recorded(runtime.store) == [-1, *range(300, 500)]
            events = dropped_events(runtime.store)
            assert sum(e["dropped"] for e in events) == 300 and "full" in events[0]["error"]
        finally:
            runtime.close()
    finally:
        subprocess.run(["umount", "-l", str(small)], check=False)
