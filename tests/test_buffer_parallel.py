"""Deliveries of different buffers do not wait on each other; one batch of a buffer is in flight at a time."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.buffer_helpers import SINK_CODE, prepare_workspace, sink_items, wait_for
from tests.helpers import exec_tool, python_tool
from tools.buffers.engine import BufferEngine, engine_for

#: An executable pass-through (a process per call, so calls can overlap) that logs "start <batch>" to
#: <workspace>/hang.log, blocks until <workspace>/release exists, then logs "end <batch>".
HANG_SINK = '''
import json, os, sys, time
from pathlib import Path
ws = Path(os.environ["TOOLDECK_WORKSPACE"])
batch = json.load(sys.stdin)["buffer_metadata"]["batch_id"]
def log(word):
    with open(ws / "hang.log", "a") as f:
        f.write(f"{word} {batch} {time.time()}\\n")
log("start")
while not (ws / "release").exists():
    time.sleep(0.02)
log("end")
print(json.dumps({"stored": batch}))
'''

#: One python sink for every buffer (warm workers, not a process per call): the batches of buffer `hung` hang
#: as HANG_SINK's do, logged to hang.log the same way; the others are stored as `sink` stores them.
SHARED_SINK = SINK_CODE + '''

def shared(data):
    ws = Path(os.environ["TOOLDECK_WORKSPACE"])
    batch = data["buffer_metadata"]["batch_id"]
    if data["buffer_metadata"]["buffer_id"] != "hung":
        return store(data)
    def log(word):
        with open(ws / "hang.log", "a") as f:
            f.write(f"{word} {batch} {time.time()}\\n")
    log("start")
    while not (ws / "release").exists():
        time.sleep(0.02)
    log("end")
    return {"stored": batch}
'''


def hang_log(ws: Path) -> list[tuple[str, str, float]]:
    path = ws / "hang.log"
    if not path.exists():
        return []
    lines = [line.split() for line in path.read_text().splitlines()]
    return [(w, b, float(t)) for w, b, t in lines]


def starts(ws: Path) -> list[str]:
    return [b for w, b, _ in hang_log(ws) if w == "start"]


def status(engine: BufferEngine, buffer_id: str):
    return engine.status(buffer_id)[0]


def prepare(workspace: Path, buffers: str = "") -> Path:
    ws = prepare_workspace(workspace, buffers=buffers)
    exec_tool(ws / "tools", "hang_sink", HANG_SINK, timeout=120)
    python_tool(ws / "tools", "shared_sink", SHARED_SINK, func="shared", timeout=120)
    return ws


@pytest.mark.parametrize(("hung_sink", "quick_sink"), [("hang_sink", "sink"), ("shared_sink", "shared_sink")],
                         ids=["own-sinks", "shared-python-sink"])
def test_a_hung_sink_does_not_hold_up_other_buffers(workspace: Path, make_runtime, hung_sink: str,
                                                    quick_sink: str) -> None:
    """Shared: one worker per python tool held buffer B's deliveries behind A's hung call (p99 0.5 s -> 30 s)."""
    ws = prepare(workspace)
    engine = engine_for(make_runtime(ws))
    try:
        engine.write_many("hung", list(range(10)), max_size=5, flush_interval_seconds=60, pass_through_tool=hung_sink)
        wait_for(lambda: starts(ws), timeout=30)  # buffer A's first batch is in its sink, which hangs
        engine.write_many("quick", ["a", "b", "c"], max_size=100, flush_interval_seconds=0.2,
                          pass_through_tool=quick_sink)
        wait_for(lambda: sink_items(ws, "quick") == ["a", "b", "c"], timeout=30)  # buffer B is delivered meanwhile
        engine.write_many("quick", ["d"])
        wait_for(lambda: sink_items(ws, "quick") == ["a", "b", "c", "d"], timeout=30)
        assert len(starts(ws)) == 1  # one batch of a buffer in flight at a time: A's second batch waits
        a = status(engine, "hung")
        assert (a.pending, a.in_flight, a.waiting) == (10, 5, 5)
    finally:
        (ws / "release").write_text("")
    wait_for(lambda: status(engine, "hung").pending == 0, timeout=30)
    assert [b.rsplit("-", 1)[1] for b in starts(ws)] == ["1", "6"]  # in order, one after the other
    ends = {b: t for w, b, t in hang_log(ws) if w == "end"}
    second_start = next(t for w, b, t in hang_log(ws) if w == "start" and b.endswith("-6"))
    assert second_start >= ends[starts(ws)[0]]


def test_parallel_deliveries_are_bounded(workspace: Path, make_runtime) -> None:
    ws = prepare(workspace, buffers="max_parallel_deliveries = 2\n")
    engine = engine_for(make_runtime(ws))
    try:
        for name in ("h1", "h2", "h3"):
            engine.write_many(name, [name], max_size=1, pass_through_tool="hang_sink")
        wait_for(lambda: len(starts(ws)) == 2, timeout=30)
        busy = engine.flusher.pool.busy()
        assert len(busy) == 2 and engine.flusher.pool.free() == 0  # the third buffer waits for a delivery thread
        assert sum(status(engine, name).in_flight for name in ("h1", "h2", "h3")) == 2
    finally:
        (ws / "release").write_text("")
    wait_for(lambda: len([w for w, _, _ in hang_log(ws) if w == "end"]) == 3, timeout=30)
    events = sorted((t, +1 if w == "start" else -1) for w, _, t in hang_log(ws))
    running = peak = 0
    for _, step in events:
        running += step
        peak = max(peak, running)
    assert peak == 2


def test_a_sink_past_its_timeout_is_a_failed_attempt(workspace: Path, make_runtime) -> None:
    ws = prepare(workspace)
    exec_tool(ws / "tools", "slow_sink", HANG_SINK, timeout=1)
    engine = engine_for(make_runtime(ws))
    engine.max_attempts = 100
    engine.write_many("late", [1], max_size=1, pass_through_tool="slow_sink")
    s = wait_for(lambda: (st := status(engine, "late")).retries_total >= 1 and st, timeout=30)
    assert "timed out after 1 s" in (s.last_flush_error or "") and s.pending == 1
    engine.write_many("other", [2], max_size=1, pass_through_tool="sink")
    wait_for(lambda: sink_items(ws, "other") == [2], timeout=30)
