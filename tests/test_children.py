"""Every child the runtime starts dies with it: closed gracefully, or killed with kill -9.

Real processes throughout: a runtime in a subprocess killed with SIGKILL, children found by the
pid files they write, their fate read from /proc (a zombie counts as gone: only its exit status
is left, and init reaps it).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from tests.helpers import alive, exec_tool, python_tool
from tools.errors import ToolExitError, ToolUnavailableError
from tools.invoke import Children, kill_group, launcher, spawn
from tools.invoke.spawn import python_launcher

ROOT = Path(__file__).resolve().parents[1]
#: a tool that records its pid (and, for the executables, a grandchild's pid) and then hangs
PID_WRITER = """
import os, subprocess, sys, time
from pathlib import Path
out = Path(os.environ["TOOLDECK_WORKSPACE"]) / "pids"
out.mkdir(exist_ok=True)
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
(out / "{name}.grandchild").write_text(str(child.pid))
(out / "{name}").write_text(str(os.getpid()))
time.sleep(600)
"""


def wait_for(condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(0.05)


def read_pids(folder: Path, names: list[str]) -> dict[str, int]:
    """The pids the tools wrote: a file exists a moment before its digits are in it (write_text), so wait for them."""
    def text(name: str) -> str:
        path = folder / name
        return path.read_text().strip() if path.exists() else ""

    wait_for(lambda: all(text(n) for n in names), 60, f"the pids of {', '.join(names)}")
    return {name: int(text(name)) for name in names}


@pytest.fixture(autouse=True)
def _no_strays(workspace: Path):
    """Whatever the outcome, nothing a test here started is left running."""
    yield
    folder = workspace / "pids"
    for path in folder.glob("*") if folder.is_dir() else []:
        pid = int(path.read_text() or 0)
        if pid and alive(pid):
            os.kill(pid, signal.SIGKILL)


def _hanging_tools(tools: Path) -> None:
    exec_tool(tools, "hang_exec", PID_WRITER.format(name="hang_exec"), timeout=600)
    exec_tool(tools, "hang_sink", "import sys\nsys.stdin.read()\n" + PID_WRITER.format(name="hang_sink"), timeout=600)
    python_tool(tools, "py_pid", "import os\nfrom pathlib import Path\n\ndef run(data):\n"
                "    out = Path(os.environ['TOOLDECK_WORKSPACE']) / 'pids'\n    out.mkdir(exist_ok=True)\n"
                "    (out / 'py_pid').write_text(str(os.getpid()))\n    return os.getpid()\n")


RUNTIME_SCRIPT = """
import sys, threading, time
from tools.runtime import Runtime

runtime = Runtime(sys.argv[1])
# a warm worker first started from a thread that then ends: it must outlive that thread
first = threading.Thread(target=lambda: runtime.call("py_pid", {}))
first.start()
first.join()
# an executable in flight, and a pass-through sink in flight (an ordinary tool call of the flusher)
threading.Thread(target=lambda: runtime.call("hang_exec", {}), daemon=True).start()
runtime.call("buffer", {"operation": "write", "buffer_id": "events", "data": {"n": 1},
                        "flush_strategy": "batched", "max_size": 1, "pass_through_tool": "hang_sink"})
print(runtime.call("py_pid", {}), flush=True)
time.sleep(600)
"""


def test_kill_9_of_a_runtime_kills_every_child_it_started(workspace: Path) -> None:
    _hanging_tools(workspace / "tools")
    proc = subprocess.Popen([sys.executable, "-c", RUNTIME_SCRIPT, str(workspace)], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        pids_dir = workspace / "pids"
        names = ["py_pid", "hang_exec", "hang_sink"]
        wait_for(lambda: all((pids_dir / n).exists() for n in names), 60, "the worker, the executable and the sink")
        # each hanging tool writes its grandchild's pid before its own
        worker_pid_again = int(proc.stdout.readline() or 0)  # type: ignore[union-attr]
        pids = read_pids(pids_dir, [*names, "hang_exec.grandchild", "hang_sink.grandchild"])
        assert worker_pid_again == pids["py_pid"], "the worker died with the thread that first called it"
        assert all(alive(pid) for pid in pids.values())
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        wait_for(lambda: not any(alive(pid) for pid in pids.values()), 30,
                 f"the runtime's children and what they spawned {pids} to die after its kill -9")
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()


def test_close_kills_calls_in_flight_with_their_process_groups(workspace: Path, make_runtime) -> None:
    _hanging_tools(workspace / "tools")
    runtime = make_runtime()
    errors: list[BaseException] = []

    def call() -> None:
        try:
            runtime.call("hang_exec", {})
        except BaseException as exc:  # noqa: BLE001 - the test looks at it
            errors.append(exc)

    caller = threading.Thread(target=call)
    caller.start()
    runtime.call("py_pid", {})
    pids_dir = workspace / "pids"
    wait_for(lambda: (pids_dir / "hang_exec.grandchild").exists() and (pids_dir / "hang_exec").exists(), 60,
             "the executable and its grandchild")
    pids = read_pids(pids_dir, ["hang_exec", "hang_exec.grandchild", "py_pid"])
    runtime.close(timeout=5)
    wait_for(lambda: not any(alive(pid) for pid in pids.values()), 30, f"{pids} to die on close")
    caller.join(timeout=30)
    assert not caller.is_alive()
    assert len(errors) == 1 and isinstance(errors[0], ToolUnavailableError), errors
    assert "runtime is closing" in str(errors[0])


def test_a_closed_child_set_refuses_new_children(tmp_path: Path) -> None:
    children = Children()
    proc = spawn(["sleep", "600"], children=children)
    assert children.pids() == [proc.pid]
    assert children.close() == 1
    assert proc.wait(timeout=30) == -signal.SIGKILL
    with pytest.raises(ToolUnavailableError, match="runtime is closing"):
        spawn(["sleep", "600"], children=children)


def test_a_missing_program_is_an_os_error_naming_it(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError) as info:
        spawn(["no-such-program-here"], cwd=tmp_path)
    assert info.value.filename == "no-such-program-here"
    script = tmp_path / "not_executable.sh"
    script.write_text("#!/bin/sh\n")
    with pytest.raises(PermissionError):
        spawn(["./not_executable.sh"], cwd=tmp_path)


SPAWN_SCRIPT = """
import os, subprocess, sys, threading, time
from tools.invoke import spawn
from tools.invoke.spawn import find_launcher, python_launcher

CHILD = "import sys; print('ready', flush=True); sys.stdin.readline(); print('pong', flush=True); sys.stdin.read()"
using = python_launcher() if sys.argv[1] == "python" else find_launcher()
assert using.kind == sys.argv[1], using
started = []

def start():
    proc = spawn([sys.executable, "-c", CHILD], using=using, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    assert proc.stdout.readline() == b"ready\\n"  # exec'd: the launcher has set the death signal
    started.append((proc, threading.get_native_id()))

thread = threading.Thread(target=start)
thread.start()
thread.join()
proc, tid = started[0]
while os.path.exists(f"/proc/self/task/{tid}"):  # until the OS thread is gone (a signal tied to it is sent by then)
    time.sleep(0.01)
proc.stdin.write(b"ping\\n")
proc.stdin.flush()
print(proc.stdout.readline().decode().strip() or "dead", proc.pid, flush=True)
sys.stdin.read()
"""


@pytest.mark.parametrize("kind", ["setpriv", "python"])
def test_each_launcher_ties_children_to_the_process_not_the_thread(kind: str) -> None:
    if kind == "setpriv" and launcher().kind != "setpriv":
        pytest.fail("setpriv and prlimit (util-linux) are expected on this machine")
    proc = subprocess.Popen([sys.executable, "-c", SPAWN_SCRIPT, kind], cwd=ROOT, stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)
    try:
        answer, pid = proc.stdout.readline().split()  # type: ignore[union-attr]
        child = int(pid)
        assert answer == "pong", "the child died with the thread that spawned it"
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        wait_for(lambda: not alive(child), 30, f"child {child} to die after its parent's kill -9")
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()


def test_limits_apply_through_either_launcher(tmp_path: Path) -> None:
    from tools.invoke import Limits

    code = "import resource; print(resource.getrlimit(resource.RLIMIT_AS)[0], resource.getrlimit(resource.RLIMIT_CPU))"
    for using in (launcher(), python_launcher()):
        proc = spawn([sys.executable, "-c", code], limits=Limits(memory_mb=300, cpu_seconds=7), using=using,
                     stdout=subprocess.PIPE)
        out, _ = proc.communicate(timeout=30)
        assert out.decode().split(maxsplit=1) == [str(300 << 20), "(7, 8)\n"], using.kind


def test_memory_limit_of_an_executable_still_holds(workspace: Path, make_runtime) -> None:
    exec_tool(workspace / "tools", "hog", "import sys\nsys.stdin.read()\nx = bytearray(400 << 20)\nprint('no limit')\n",
              executable={"memory_limit_mb": 200})
    runtime = make_runtime()
    with pytest.raises(ToolExitError) as info:
        runtime.call("hog", {})
    assert "MemoryError" in info.value.stderr_tail


def test_kill_group_after_exit_is_harmless() -> None:
    proc = spawn(["true"])
    proc.wait(timeout=30)
    kill_group(proc)


def test_a_call_after_close_starts_no_child(workspace: Path, make_runtime) -> None:
    exec_tool(workspace / "tools", "quick", "print('hi')\n")
    runtime = make_runtime()
    runtime.get_tool("quick")
    runtime.close()
    with pytest.raises(ToolUnavailableError, match="runtime is closing"):
        runtime.call_entry(runtime.catalog.find("quick"), {}, observe=False)


REAPER_SCRIPT = """
import os, signal, subprocess, sys
from tools.invoke import Children, spawn
from tools.invoke.spawn import _reaper

children = Children()
SHELL = "sleep 600 & echo $! ; wait"

def grandchild():
    proc = spawn(["sh", "-c", SHELL], children=children, stdout=subprocess.PIPE)
    return int(proc.stdout.readline())

first = grandchild()
reaper = _reaper.pid()
os.kill(reaper, signal.SIGKILL)  # someone killed it: the next child starts a new one that knows every group
os.waitpid(reaper, 0)
second = grandchild()
assert _reaper.pid() not in (None, reaper)
print(first, second, flush=True)
sys.stdin.read()
"""


def test_what_a_child_spawned_dies_after_a_kill_9_even_if_the_reaper_was_replaced() -> None:
    proc = subprocess.Popen([sys.executable, "-c", REAPER_SCRIPT], cwd=ROOT, stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    grandchildren: list[int] = []
    try:
        line = proc.stdout.readline()  # type: ignore[union-attr]
        assert line, proc.stderr.read()  # type: ignore[union-attr]
        grandchildren = [int(pid) for pid in line.split()]
        assert all(alive(pid) for pid in grandchildren)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        wait_for(lambda: not any(alive(pid) for pid in grandchildren), 30, f"grandchildren {grandchildren} to die")
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        for pid in grandchildren:
            if alive(pid):
                os.kill(pid, signal.SIGKILL)
