"""A python tool's pool of warm workers: a hung call holds its own worker, not the tool; the pool grows only
while every worker is busy, never past its limit, and shrinks back when the extras idle."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pytest

from tests.buffer_helpers import wait_for
from tests.helpers import alive, python_tool
from tools.errors import ManifestError

#: Logs "start <tag> <pid> <time>" to <workspace>/nap.log, waits until <workspace>/release exists when asked
#: to hang (else sleeps `s`), logs "end ...", and answers its pid.
NAP = '''
import os, time
from pathlib import Path

def run(data):
    ws = Path(os.environ["TOOLDECK_WORKSPACE"])
    def log(word):
        with open(ws / "nap.log", "a") as f:
            f.write(f"{word} {data.get('tag', '-')} {os.getpid()} {time.time()}\\n")
    log("start")
    if data.get("hang"):
        while not (ws / "release").exists():
            time.sleep(0.02)
    time.sleep(data.get("s", 0))
    log("end")
    return os.getpid()
'''


def nap_log(ws: Path) -> list[tuple[str, str, int, float]]:
    path = ws / "nap.log"
    if not path.exists():
        return []
    return [(w, tag, int(pid), float(t)) for w, tag, pid, t in (line.split() for line in path.read_text().splitlines())]


def peak_overlap(ws: Path) -> int:
    """The most calls that were inside the tool at once, from its own log."""
    running = peak = 0
    for _, step in sorted((t, 1 if w == "start" else -1) for w, _, _, t in nap_log(ws)):
        running += step
        peak = max(peak, running)
    return peak


class Caller(threading.Thread):
    """One call in a thread of its own: its result or its error."""

    def __init__(self, runtime: Any, tool: str, data: dict[str, Any]) -> None:
        super().__init__(daemon=True)
        self.runtime, self.tool, self.data = runtime, tool, data
        self.result: Any = None
        self.error: BaseException | None = None
        self.start()

    def run(self) -> None:
        try:
            self.result = self.runtime.call(self.tool, self.data)
        except BaseException as exc:  # noqa: BLE001 - handed to the test
            self.error = exc


def started(ws: Path, tag: str) -> bool:
    return any(w == "start" and t == tag for w, t, _, _ in nap_log(ws))


def test_a_hung_call_holds_its_own_worker_not_the_tool(workspace: Path, make_runtime) -> None:
    """One worker per tool made every call of a tool wait behind a hung one (until its 30 s timeout)."""
    python_tool(workspace / "tools", "nap", NAP, timeout=60)
    runtime = make_runtime()
    first = runtime.call("nap", {"tag": "warm"})
    hung = Caller(runtime, "nap", {"tag": "hung", "hang": True})
    try:
        wait_for(lambda: started(workspace, "hung"), timeout=30)
        quick = Caller(runtime, "nap", {"tag": "quick"})
        quick.join(10)  # a new worker starts in ~50 ms; on one worker per tool this waits for the hung call
        assert not quick.is_alive() and quick.error is None
        assert quick.result != first  # the hung call holds the first worker; the second call got one of its own
        assert runtime.call("nap", {"tag": "again"}) == quick.result  # the idle warm worker is reused, not a third
        assert sorted(runtime.workers.pids()) == sorted([first, quick.result])
    finally:
        (workspace / "release").write_text("")
    hung.join(30)
    assert hung.result == first


def test_max_workers_1_keeps_the_calls_of_a_tool_one_at_a_time(workspace: Path, make_runtime) -> None:
    """A tool with module-level state says `executable.max_workers: 1`: its calls wait for each other."""
    python_tool(workspace / "tools", "nap", NAP, timeout=60, executable={"max_workers": 1})
    runtime = make_runtime()
    try:
        hung = Caller(runtime, "nap", {"tag": "hung", "hang": True})
        wait_for(lambda: started(workspace, "hung"), timeout=30)
        waiting = [Caller(runtime, "nap", {"tag": f"w{i}"}) for i in range(3)]
        time.sleep(1.5)
        assert all(c.is_alive() for c in waiting) and len(runtime.workers.pids()) == 1
    finally:
        (workspace / "release").write_text("")
    for caller in (hung, *waiting):
        caller.join(30)
        assert caller.error is None
    assert {c.result for c in (hung, *waiting)} == {hung.result}  # one worker served every call
    assert peak_overlap(workspace) == 1


def test_max_workers_per_tool_in_tooldeck_toml_is_the_default_limit(workspace: Path, make_runtime) -> None:
    (workspace / "tooldeck.toml").write_text("[calls]\nmax_workers_per_tool = 2\n")
    python_tool(workspace / "tools", "nap", NAP, timeout=60)
    runtime = make_runtime()
    try:
        callers = [Caller(runtime, "nap", {"tag": f"h{i}", "hang": True}) for i in range(3)]
        wait_for(lambda: len([w for w, *_ in nap_log(workspace) if w == "start"]) == 2, timeout=30)
        time.sleep(1.0)
        assert len([w for w, *_ in nap_log(workspace) if w == "start"]) == 2  # the third waits for a worker
        assert runtime.workers.sizes() == {"nap": 2}
    finally:
        (workspace / "release").write_text("")
    for caller in callers:
        caller.join(30)
        assert caller.error is None
    assert len({c.result for c in callers}) == 2


@pytest.mark.parametrize(("value", "message"), [("0", "must be a positive integer"), ("\"many\"", "must be a whole number, got 'many'"),
                                              ("true", "must be a whole number, got True")])
def test_a_bad_max_workers_per_tool_is_one_line_naming_the_setting(workspace: Path, make_runtime, value: str,
                                                                   message: str) -> None:
    (workspace / "tooldeck.toml").write_text(f"[calls]\nmax_workers_per_tool = {value}\n")
    python_tool(workspace / "tools", "nap", NAP)
    runtime = make_runtime()
    with pytest.raises(Exception, match=r"tooldeck.toml: \[calls\] max_workers_per_tool " + message):
        runtime.call("nap", {})


@pytest.mark.parametrize(("kind", "value", "message"), [
    ("python", 0, "executable.max_workers"),
    ("python", 65, "executable.max_workers"),
    ("executable", 2, "field 'executable.max_workers': only a python tool has warm workers"),
])
def test_a_bad_max_workers_in_a_manifest_names_the_field(tmp_path: Path, kind: str, value: int, message: str) -> None:
    from tools.catalog.manifest import load_manifest

    path = tmp_path / "t.yaml"
    extra = "entry: t.py:run\n" if kind == "python" else ""
    path.write_text(f"name: t\ntype: {kind}\n{extra}executable:\n  command: python\n  max_workers: {value}\n")
    with pytest.raises(ManifestError, match=message):
        load_manifest(path)


def test_the_pool_never_passes_its_limit_and_retires_idle_extras(workspace: Path, make_runtime) -> None:
    python_tool(workspace / "tools", "nap", NAP, timeout=60)
    runtime = make_runtime()
    runtime.call("nap", {"tag": "warm"})
    runtime.workers.idle_seconds = 1.0
    sizes: list[int] = []
    callers = [Caller(runtime, "nap", {"tag": f"c{i}", "s": 0.3}) for i in range(20)]
    while any(c.is_alive() for c in callers):
        sizes.append(runtime.workers.sizes().get("nap", 0))
        time.sleep(0.01)
    assert all(c.error is None for c in callers)
    assert max(sizes) == 4 and len({c.result for c in callers}) == 4  # grew to [calls] max_workers_per_tool
    assert peak_overlap(workspace) == 4
    extras = set(runtime.workers.pids())
    wait_for(lambda: runtime.workers.sizes() == {"nap": 1}, timeout=15)  # idle extras retired; one stays warm
    kept = runtime.workers.pids()
    wait_for(lambda: all(not alive(pid) for pid in extras - set(kept)), timeout=10)  # and stopped
    assert runtime.call("nap", {"tag": "after"}) == kept[0]


def test_sequential_calls_keep_one_warm_worker(workspace: Path, make_runtime) -> None:
    python_tool(workspace / "tools", "nap", NAP)
    runtime = make_runtime()
    pids = {runtime.call("nap", {"tag": f"s{i}"}) for i in range(20)}
    assert len(pids) == 1 and runtime.workers.sizes() == {"nap": 1}


def test_a_reload_with_a_call_in_flight_lets_it_finish_and_does_not_wait_for_it(workspace: Path,
                                                                                 make_runtime) -> None:
    python_tool(workspace / "tools", "nap", NAP, timeout=60)
    runtime = make_runtime()
    hung = Caller(runtime, "nap", {"tag": "hung", "hang": True})
    try:
        wait_for(lambda: started(workspace, "hung"), timeout=30)
        old = runtime.workers.pids()
        began = time.monotonic()
        assert runtime.recycle_workers("nap") == 1
        assert time.monotonic() - began < 5  # the reload does not wait for the hung call
        fresh = runtime.call("nap", {"tag": "fresh"})
        assert fresh not in old
    finally:
        (workspace / "release").write_text("")
    hung.join(30)
    assert hung.error is None and hung.result == old[0]  # the call in flight finished on its old worker
    wait_for(lambda: not alive(old[0]), timeout=10)  # and that worker stopped after it
    assert runtime.workers.pids() == [fresh]


def test_a_call_waiting_for_a_worker_can_be_cancelled(workspace: Path, make_runtime) -> None:
    from tools.errors import ToolCancelledError
    from tools.invoke import CallScope

    python_tool(workspace / "tools", "nap", NAP, timeout=60, executable={"max_workers": 1})
    runtime = make_runtime()
    hung = Caller(runtime, "nap", {"tag": "hung", "hang": True})
    try:
        wait_for(lambda: started(workspace, "hung"), timeout=30)
        scope = CallScope()
        errors: list[BaseException] = []

        def waiting() -> None:
            with scope.active():
                try:
                    runtime.call("nap", {"tag": "waits"})
                except BaseException as exc:  # noqa: BLE001 - handed to the test
                    errors.append(exc)

        thread = threading.Thread(target=waiting, daemon=True)
        thread.start()
        time.sleep(0.5)
        scope.cancel()
        thread.join(10)
        assert not thread.is_alive() and isinstance(errors[0], ToolCancelledError)
        assert not started(workspace, "waits")
    finally:
        (workspace / "release").write_text("")
    hung.join(30)
    assert hung.error is None
