"""Durable buffers in one process: strategies, timers, retries, dead-letter, when_full, bad input, the tool."""

from __future__ import annotations

import json
import math
import threading
import time
from pathlib import Path

import pytest

from tests.buffer_helpers import attempts, prepare_workspace, sink_batches, sink_items, wait_for
from tests.helpers import state_bytes
from tools.buffers.engine import BufferEngine, BufferFullError, UnknownBufferError, engine_for
from tools.errors import InvalidIdError, ToolError, ToolInputError


@pytest.fixture
def ws(workspace: Path) -> Path:
    return prepare_workspace(workspace)


@pytest.fixture
def engine(ws: Path, make_runtime) -> BufferEngine:
    return engine_for(make_runtime(ws))


def status(engine: BufferEngine, buffer_id: str):
    found = engine.status(buffer_id)
    assert found, buffer_id
    return found[0]


def events(engine: BufferEngine, kind: str) -> list:
    return engine.runtime.events.tail(0, kinds=[kind], limit=10_000)


# -- strategies ------------------------------------------------------------------------------


def test_batched_flushes_full_batches_by_size(engine: BufferEngine, ws: Path) -> None:
    (ws / "linger").write_text("0.3")  # the sink has stored a batch 0.3 s before its delivery completes
    for i in range(12):
        out = engine.write("sized", {"i": i}, max_size=5, flush_interval_seconds=60, pass_through_tool="sink")
        assert out["success"] and out["flushed"] is False
    # the sink stores a batch before the flush's completion commits: wait for the buffer's own record of both
    wait_for(lambda: status(engine, "sized").batches_total == 2)
    batches = sink_batches(ws, "sized")
    assert [b["count"] for b in batches] == [5, 5]
    assert [x["i"] for x in sink_items(ws, "sized")] == list(range(10))
    s = status(engine, "sized")
    assert (s.pending, s.waiting, s.flushed_total, s.batches_total) == (2, 2, 10, 2)
    assert s.last_flush_result == "ok" and s.last_flush_count == 5
    flushes = events(engine, "buffer.flush")
    assert len(flushes) == 2 and all(e.tool_id is None and e.payload["buffer_id"] == "sized" for e in flushes)
    assert {e.payload["batch_id"] for e in flushes} == {b["batch_id"] for b in batches}


def test_timed_flush_goes_out_with_no_further_writes(engine: BufferEngine, ws: Path) -> None:
    written_at = time.time()
    for i in range(3):
        engine.write("timed", i, max_size=100, flush_interval_seconds=0.3, pass_through_tool="sink")
    assert sink_items(ws, "timed") == []
    wait_for(lambda: sink_items(ws, "timed") == [0, 1, 2], timeout=5)
    stored_at = sink_batches(ws, "timed")[0]["stored_at"]
    assert stored_at - written_at >= 0.3  # by the timer, not early
    assert stored_at - written_at < 2.0


def test_immediate_delivers_before_the_write_returns(engine: BufferEngine, ws: Path) -> None:
    out = engine.write("now", {"a": 1}, flush_strategy="immediate", pass_through_tool="sink",
                       pass_through_input={"table": "usage"})
    assert out["flushed"] is True and out["buffered"] == 0
    batch = sink_batches(ws, "now")[0]
    assert batch["items"] == [{"a": 1}] and json.loads(batch["extra"]) == {"table": "usage"}
    with pytest.raises(ToolInputError, match="immediate needs a pass_through_tool"):
        engine.write("now2", 1, flush_strategy="immediate")


@pytest.mark.parametrize("outcome", ["delivered", "failed"])
def test_an_immediate_write_whose_item_another_flusher_claimed_waits_for_that_delivery(engine: BufferEngine, ws: Path,
                                                                                       outcome: str) -> None:
    """The background flusher (or another process's) can claim an immediate write's item between its commit and
    the caller's own claim. The write then returned flushed=False at once (CI on PostgreSQL); it waits for that
    delivery instead, and says whether it went out."""
    engine.write("race", {"a": 1}, flush_strategy="manual", pass_through_tool="sink")
    other = engine.tables.claim_new("race", "another-flusher", 30)
    assert other is not None and other.first_seq == other.last_seq

    def elsewhere() -> None:
        time.sleep(0.3)
        if outcome == "delivered":
            engine.flusher.deliver(other)
        else:
            engine.tables.fail(other, "sink unreachable", 5, lambda attempt: 60.0)

    helper = threading.Thread(target=elsewhere)
    helper.start()
    started = time.monotonic()
    delivered = engine.flusher.deliver_through("race", other.last_seq, "sink")
    helper.join(10)
    assert delivered is (outcome == "delivered") and time.monotonic() - started >= 0.25
    assert sink_items(ws, "race") == ([{"a": 1}] if outcome == "delivered" else [])


def test_manual_waits_for_an_explicit_flush(engine: BufferEngine, ws: Path) -> None:
    for i in range(7):
        engine.write("man", i, flush_strategy="manual", max_size=3, flush_interval_seconds=0.05, pass_through_tool="sink")
    time.sleep(0.3)  # several timer periods: a manual buffer must not flush on its own
    assert sink_items(ws, "man") == []
    assert status(engine, "man").next_flush_at is None
    out = engine.flush("man")
    assert out["success"] and out["count"] == 7 and out["batches"] == 3
    assert sink_items(ws, "man") == list(range(7))
    assert status(engine, "man").pending == 0


def test_flush_without_pass_through_hands_items_back(engine: BufferEngine) -> None:
    engine.write("drain", 0)
    assert status(engine, "drain").warning == "1 item pending and no pass_through_tool: it waits for `tooldeck buffer flush drain`"
    engine.clear("drain")
    engine.write_many("drain", [1, 2, 3])
    assert status(engine, "drain").warning == "3 items pending and no pass_through_tool: they wait for `tooldeck buffer flush drain`"
    out = engine.flush("drain")
    assert out["items"] == [1, 2, 3] and out["remaining"] == 0
    assert status(engine, "drain").pending == 0


# -- failures, retries, dead-letter ----------------------------------------------------------


def test_pass_through_failure_keeps_every_item_then_delivers(engine: BufferEngine, ws: Path) -> None:
    engine.configure("flaky", max_size=5, flush_interval_seconds=0.05, pass_through_tool="sink")
    (ws / "fail").write_text("")
    engine.runtime.settings  # noqa: B018 - loaded
    engine.max_attempts = 50  # keep retrying for this test
    engine.write_many("flaky", list(range(10)))
    wait_for(lambda: status(engine, "flaky").retries_total >= 4)
    s = status(engine, "flaky")
    assert s.pending == 10 and s.dead_letter_items == 0 and s.last_flush_result == "failed"
    assert "sink is down" in (s.last_flush_error or "")
    assert sink_items(ws, "flaky") == []
    (ws / "fail").unlink()
    wait_for(lambda: sorted(sink_items(ws, "flaky")) == list(range(10)))
    tried = attempts(ws)
    assert set(tried) == {b["batch_id"] for b in sink_batches(ws, "flaky")}  # the same batch ids on every retry
    assert len(tried) > 2
    wait_for(lambda: status(engine, "flaky").pending == 0)
    retry_events = events(engine, "buffer.retry")
    assert retry_events and all(e.payload["buffer_id"] == "flaky" and e.tool_id is None for e in retry_events)


def test_dead_letter_then_replay_with_the_same_batch_id(engine: BufferEngine, ws: Path) -> None:
    (ws / "fail").write_text("")
    engine.write_many("dl", ["a", "b", "c"], max_size=10, flush_interval_seconds=0.05, pass_through_tool="sink")
    wait_for(lambda: status(engine, "dl").dead_letter_batches == 1)
    s = status(engine, "dl")
    assert (s.pending, s.dead_letter_items, s.last_flush_result) == (0, 3, "dead_letter")
    dead = engine.dead_letters("dl")
    assert len(dead) == 1 and dead[0]["attempts"] == 3 and dead[0]["count"] == 3
    assert dead[0]["last_error"].startswith("sink: ") and not dead[0]["last_error"].startswith("sink: sink: "), dead[0]
    assert events(engine, "buffer.dead_letter")[0].payload["batch_id"] == dead[0]["batch_id"]
    time.sleep(0.3)
    assert len(attempts(ws)) == 3  # parked: no further attempts
    failed_again = engine.replay("dl")
    assert failed_again["failed"] == [dead[0]["batch_id"]]
    (ws / "fail").unlink()
    wait_for(lambda: sink_items(ws, "dl") == ["a", "b", "c"])  # back on the retry path, delivered by the timer
    assert sink_batches(ws, "dl")[0]["batch_id"] == dead[0]["batch_id"]
    wait_for(lambda: status(engine, "dl").pending == 0)
    assert engine.dead_letters("dl") == []


def test_replay_delivers_now(engine: BufferEngine, ws: Path) -> None:
    (ws / "fail").write_text("")
    engine.write_many("dl2", [1, 2], flush_strategy="manual", pass_through_tool="sink")
    for _ in range(3):
        engine.flush("dl2")
    assert status(engine, "dl2").dead_letter_items == 2
    (ws / "fail").unlink()
    with pytest.raises(ToolInputError, match="no dead-letter batch"):
        engine.replay("dl2", "no-such-batch")
    out = engine.replay("dl2")
    assert out["success"] and len(out["delivered"]) == 1
    assert sink_items(ws, "dl2") == [1, 2]
    s = status(engine, "dl2")
    assert (s.pending, s.dead_letter_items, s.dead_letter_batches) == (0, 0, 0)


# -- when_full ---------------------------------------------------------------------------------


def test_block_times_out_and_writes_nothing(engine: BufferEngine) -> None:
    engine.configure("blk", flush_strategy="manual", max_pending=3, when_full="block", block_timeout_seconds=0.2)
    for i in range(3):
        engine.write("blk", i)
    started = time.monotonic()
    with pytest.raises(BufferFullError, match="stayed full"):
        engine.write("blk", 99)
    assert time.monotonic() - started >= 0.2
    s = status(engine, "blk")
    assert (s.pending, s.writes_total, s.pending_ratio) == (3, 3, 1.0)


def test_block_waits_for_room(engine: BufferEngine, ws: Path) -> None:
    engine.configure("blk2", flush_strategy="manual", max_pending=2, block_timeout_seconds=10, pass_through_tool="sink")
    engine.write_many("blk2", [1, 2])
    threading.Timer(0.2, lambda: engine.flush("blk2")).start()
    started = time.monotonic()
    out = engine.write("blk2", 3)
    assert out["success"] and time.monotonic() - started >= 0.15
    engine.flush("blk2")  # item 3 may be in the timer's flush still, claimed: that delivery completes it
    wait_for(lambda: sink_items(ws, "blk2") == [1, 2, 3], timeout=30)


def test_block_presses_a_batched_buffer_to_flush(engine: BufferEngine, ws: Path) -> None:
    engine.configure("press", max_size=100, flush_interval_seconds=3600, max_pending=5, pass_through_tool="sink")
    out = engine.write_many("press", list(range(12)))  # more than max_pending: waits while the flusher makes room
    assert out["written"] == 12
    wait_for(lambda: len(sink_items(ws, "press")) >= 7)


def test_drop_newest_and_drop_oldest(engine: BufferEngine) -> None:
    engine.configure("dn", flush_strategy="manual", max_pending=3, when_full="drop_newest")
    results = [engine.write("dn", i) for i in range(5)]
    assert [r["success"] for r in results] == [True, True, True, False, False]
    assert results[-1]["dropped"] == 1
    assert engine.flush("dn")["items"] == [0, 1, 2]
    engine.configure("do", flush_strategy="manual", max_pending=3, when_full="drop_oldest")
    for i in range(5):
        assert engine.write("do", i)["success"]
    many = engine.write_many("do", [10, 11, 12, 13])
    assert many["written"] == 3 and many["dropped"] == 4  # the 3 old ones and the oldest of this call
    assert status(engine, "do").dropped_total == 6
    assert engine.flush("do")["items"] == [11, 12, 13]
    assert status(engine, "dn").dropped_total == 2
    engine.flusher._persist_counts(force=True)
    drops = {e.payload["buffer_id"]: e.payload for e in events(engine, "buffer.drop")}
    assert drops["dn"]["dropped"] == 2 and drops["do"]["dropped"] == 6  # one event per burst, not per item
    assert len(events(engine, "buffer.drop")) == 2


def test_drop_oldest_never_drops_items_in_flight(engine: BufferEngine, ws: Path) -> None:
    (ws / "fail").write_text("")
    engine.max_attempts = 100
    engine.configure("dofl", flush_strategy="manual", max_pending=2, when_full="drop_oldest", pass_through_tool="sink")
    engine.write_many("dofl", [1, 2])
    engine.flush("dofl")  # fails: both items are now in a retry batch
    out = engine.write("dofl", 3)
    assert out["success"] is False and out["dropped"] == 1
    (ws / "fail").unlink()
    engine.flush("dofl")
    assert sink_items(ws, "dofl") == [1, 2]


# -- settings ------------------------------------------------------------------------------------


def test_explicit_settings_are_persisted_even_when_equal_to_the_default(engine: BufferEngine, make_runtime,
                                                                        ws: Path) -> None:
    engine.configure("cfg", max_size=50)
    v1 = engine.config("cfg", fresh=True).config_version
    engine.write("cfg", 1, max_size=100)  # the default value, given explicitly: applied
    config = engine.config("cfg", fresh=True)
    assert config.max_size == 100 and config.config_version == v1 + 1
    engine.write("cfg", 2)  # no settings: keeps what was persisted
    other = engine_for(make_runtime(ws))
    assert other.config("cfg", fresh=True).max_size == 100
    other.configure("cfg", max_size=7)  # another process changes it
    engine.write("cfg", 3, max_size=9)  # this process's cache is stale: its explicit value still wins
    assert other.config("cfg", fresh=True).max_size == 9
    engine.write("cfg", 4)
    assert status(other, "cfg").max_size == 9


def test_bad_input_is_refused_and_nothing_is_written(engine: BufferEngine, ws: Path) -> None:
    engine.write("good", {"keep": True}, flush_strategy="manual")
    before = status(engine, "good")
    cases = [
        (lambda: engine.write("../../x", 1), InvalidIdError, "buffer_id"),
        (lambda: engine.write("", 1), InvalidIdError, "buffer_id"),
        (lambda: engine.write("a" * 200, 1), InvalidIdError, "buffer_id"),
        (lambda: engine.write("good", {1, 2}), ToolInputError, "not JSON-serialisable"),
        (lambda: engine.write("good", {"x": math.nan}), ToolInputError, "not JSON-serialisable"),
        (lambda: engine.write("good", {"x": object()}), ToolInputError, "not JSON-serialisable"),
        (lambda: engine.write("good", "x" * (1 << 20)), ToolInputError, "the limit is 1048576"),
        (lambda: engine.write_many("good", [1, "é" * 600_000]), ToolInputError, r"items\[1\].*limit"),
        (lambda: engine.write("good", "\ud800"), ToolInputError, "not valid Unicode"),
        (lambda: engine.write("good", 1, pass_through_tool="no_such_tool"), ToolInputError, "unknown tool"),
        (lambda: engine.write("good", 1, pass_through_tool="../x"), ToolInputError, "pass_through_tool"),
        (lambda: engine.write("good", 1, max_size=0), ToolInputError, "max_size"),
        (lambda: engine.write("good", 1, max_size="10"), ToolInputError, "max_size"),
        (lambda: engine.write("good", 1, flush_strategy="sometimes"), ToolInputError, "flush_strategy"),
        (lambda: engine.write("good", 1, when_full="explode"), ToolInputError, "when_full"),
        (lambda: engine.write("good", 1, flush_interval_seconds=-1), ToolInputError, "flush_interval_seconds"),
        (lambda: engine.write("good", 1, pass_through_input=[1]), ToolInputError, "pass_through_input"),
        (lambda: engine.write("good", 1, pass_through_tool="buffer"), ToolInputError, "buffer tool itself"),
        (lambda: engine.write("fresh", 1, pass_through_tool="no_such_tool"), ToolInputError, "unknown tool"),
        (lambda: engine.flush("never_seen"), UnknownBufferError, "unknown buffer"),
    ]
    for call, error, text in cases:
        with pytest.raises(error, match=text) as info:
            call()
        assert "\n" not in str(info.value)
    after = status(engine, "good")
    assert (after.pending, after.writes_total, after.max_size, after.pass_through_tool) == (
        before.pending, before.writes_total, before.max_size, before.pass_through_tool)
    assert engine.buffer_ids() == ["good"]  # no bad id and no half-made buffer reached the database


# -- the tool, as the original callers used it --------------------------------------------------------


def test_buffer_tool_with_the_original_json(engine: BufferEngine, ws: Path) -> None:
    runtime = engine.runtime
    request = json.dumps({"operation": "write", "buffer_id": "usage_tracking", "data": {"tool_id": "translator",
                          "increment": 1}, "max_size": 50, "pass_through_tool": "sink"})
    out = runtime.call("buffer", request)
    assert out["success"] is True and out["buffered"] == 1 and out["flushed"] is False
    runtime.call("buffer", {"operation": "write", "buffer_id": "usage_tracking", "data": {"n": 2},
                            "flush_strategy": "batched", "flush_interval_seconds": 30})
    st = runtime.call("buffer", {"operation": "status", "buffer_id": "usage_tracking"})
    assert st["buffered"] == 2 and st["max_size"] == 50 and st["flush_interval_seconds"] == 30
    assert runtime.call("buffer", {"operation": "status", "buffer_id": "nothing"})["exists"] is False
    assert any(b["buffer_id"] == "usage_tracking" for b in runtime.call("buffer", {"operation": "status"})["buffers"])
    fl = runtime.call("buffer", {"operation": "flush", "buffer_id": "usage_tracking"})
    assert fl["success"] and fl["flushed"] is True and fl["count"] == 2
    assert sink_items(ws, "usage_tracking") == [{"tool_id": "translator", "increment": 1}, {"n": 2}]
    runtime.call("buffer", {"operation": "write_many", "buffer_id": "usage_tracking", "items": [1, 2, 3]})
    cleared = runtime.call("buffer", {"operation": "clear", "buffer_id": "usage_tracking"})
    assert (cleared["cleared"], cleared["in_flight"]) == (3, 0)
    assert events(engine, "buffer.clear")[-1].payload == {"buffer_id": "usage_tracking", "removed": 3, "in_flight": 0}
    with pytest.raises(ToolInputError, match="unknown operation 'explode'"):
        runtime.call("buffer", {"operation": "explode", "buffer_id": "usage_tracking"})
    with pytest.raises(ToolInputError, match="needs 'data'"):
        runtime.call("buffer", {"operation": "write", "buffer_id": "usage_tracking"})
    with pytest.raises(ToolError, match="buffer_id"):
        runtime.call("buffer", {"operation": "write", "buffer_id": "../../x", "data": 1})
    with pytest.raises(ToolInputError, match="unknown tool"):
        runtime.call("buffer", {"operation": "write", "buffer_id": "u2", "data": 1, "pass_through_tool": "qdrant_batch"})
    assert runtime.run_tests("buffer") and all(r["passed"] for r in runtime.run_tests("buffer"))


def test_status_figures(engine: BufferEngine, ws: Path) -> None:
    engine.configure("fig", max_size=10, max_pending=40, flush_interval_seconds=3600, pass_through_tool="sink")
    for i in range(25):
        engine.write("fig", i)
    s = status(engine, "fig")
    assert s.pending == 5 or s.pending == 25  # the flusher may still be delivering the two full batches
    wait_for(lambda: status(engine, "fig").pending == 5)
    time.sleep(max(0.0, math.ceil(time.time()) - time.time()) + 0.05)  # let the write second finish
    engine.flusher._persist_counts(force=True)
    s = status(engine, "fig")
    assert (s.fill_ratio, s.pending_ratio, s.flushed_total, s.batches_total) == (0.5, 5 / 40, 20, 2)
    assert sum(s.writes_history) == 25 and sum(s.flushed_history) == 20 and len(s.writes_history) == 60
    assert s.writes_per_s == pytest.approx(25 / 60) and s.flushed_per_s == pytest.approx(20 / 60)
    assert s.next_flush_at is not None and s.next_flush_at > time.time() + 3000
    assert s.flushing and s.warning is None
    assert s.to_dict()["buffer_id"] == "fig"


def test_close_delivers_the_partial_batch_unless_another_runtime_flushes(ws: Path, make_runtime) -> None:
    writer = engine_for(make_runtime(ws))
    writer.write_many("part", [1, 2, 3], max_size=100, flush_interval_seconds=3600, pass_through_tool="sink")
    writer.runtime.close()
    assert sink_items(ws, "part") == [1, 2, 3]  # a script that writes and exits sees its items delivered
    server = engine_for(make_runtime(ws, serve=True))
    wait_for(lambda: server.runtime.live_runtimes())
    writer2 = engine_for(make_runtime(ws))
    writer2.write_many("part", [4, 5])
    writer2.runtime.close()
    assert sink_items(ws, "part") == [1, 2, 3]  # left to the live serving runtime, so batching is kept
    s = status(server, "part")
    assert s.pending == 2 and s.flushing and s.flushed_by[0].startswith("serve:")
    server.flush("part")
    assert sink_items(ws, "part") == [1, 2, 3, 4, 5]


def test_secrets_never_reach_the_database(ws: Path, make_runtime, monkeypatch: pytest.MonkeyPatch) -> None:
    secret = "sk-ant-api03-" + "x1y2z3" * 6
    monkeypatch.setenv("ANTHROPIC_API_KEY", secret)
    engine = engine_for(make_runtime(ws))
    engine.write("sec", {"note": f"key={secret}"}, flush_strategy="manual", pass_through_tool="sink",
                 pass_through_input={"auth": secret})
    engine.runtime.close()
    raw = state_bytes(ws / ".tooldeck")
    assert b"sec" in raw and secret.encode() not in raw


def test_a_slow_delivery_keeps_its_lease(ws: Path, make_runtime) -> None:
    (ws / "slow").write_text("2.5")  # longer than the 1 s lease
    writer = engine_for(make_runtime(ws))
    server = engine_for(make_runtime(ws, serve=True))  # a second flusher, polling every 50 ms
    server.runtime.get_tool("sink")
    writer.write_many("slowsink", list(range(5)), max_size=5, pass_through_tool="sink")
    wait_for(lambda: sink_items(ws, "slowsink") == list(range(5)), timeout=15)
    wait_for(lambda: status(server, "slowsink").pending == 0)
    assert len(attempts(ws)) == 1  # the lease was renewed: nobody re-claimed the batch mid-delivery


def test_close_waits_for_a_retry_due_within_its_budget(workspace: Path, make_runtime) -> None:
    ws = prepare_workspace(workspace, backoff_base=1.0, backoff_max=1.0)
    engine = engine_for(make_runtime(ws))
    (ws / "fail").write_text("")
    engine.write_many("late", [1, 2, 3], max_size=100, flush_interval_seconds=3600, pass_through_tool="sink")
    assert engine.flush("late")["success"] is False  # now a retry batch, due in 0.5-1 s
    (ws / "fail").unlink()
    started = time.monotonic()
    engine.runtime.close(timeout=5.0)
    assert sink_items(ws, "late") == [1, 2, 3]  # the script that wrote and exited still delivered
    assert time.monotonic() - started < 3.0


LOCKER = '''
import json, os, subprocess, sys, time
from pathlib import Path

HOLD = """
import sqlite3, sys, time
from pathlib import Path
con = sqlite3.connect(sys.argv[1], isolation_level=None)
con.execute("BEGIN IMMEDIATE")
Path(sys.argv[2]).write_text("held")
time.sleep(float(sys.argv[3]))
con.execute("COMMIT")
"""


def run(data):
    folder = Path(data["folder"])
    with (folder / "calls.jsonl").open("a") as out:
        out.write(json.dumps([item["n"] for item in data["buffered_items"]]) + "\\n")
    marker = folder / "held"
    if not (folder / "first").exists():  # the first delivery: another process takes the database's write lock
        (folder / "first").write_text("1")
        subprocess.Popen([sys.executable, "-c", HOLD, data["db"], str(marker), "1.5"], start_new_session=True)
        deadline = time.monotonic() + 10
        while not marker.exists() and time.monotonic() < deadline:
            time.sleep(0.01)
    return {"success": True}
'''


def test_an_immediate_write_that_committed_is_acknowledged_when_its_delivery_bookkeeping_fails(tmp_path: Path) -> None:
    """The item is committed before the in-line delivery starts: if recording that delivery fails (here the
    database is locked by another process past the busy timeout), the write still succeeds and the flusher
    delivers the item again. Raising would make the caller write it a second time."""
    from tests.helpers import python_tool
    from tools.runtime import Runtime

    ws = tmp_path / "ws"
    python_tool(ws / "tools", "locker", LOCKER)
    runtime = Runtime(ws)
    try:
        engine = engine_for(runtime)
        runtime.wait_ready(30)
        runtime.store.busy_timeout_ms = 300  # give up on the held lock quickly
        engine.lease_seconds = 1.0  # the undelivered batch is claimed again soon
        folder = tmp_path / "sinkdata"
        folder.mkdir()
        out = engine.write("now", {"n": 1}, flush_strategy="immediate", pass_through_tool="locker",
                           pass_through_input={"folder": str(folder), "db": str(runtime.store.path)})
        assert out["success"] is True and out["flushed"] is False
        assert (folder / "held").exists()  # the lock really was taken during the delivery
        # once the lock is gone, the flusher delivers the batch whose completion was never recorded
        wait_for(lambda: status(engine, "now").pending == 0, timeout=20)
        calls = [json.loads(line) for line in (folder / "calls.jsonl").read_text().splitlines()]
        assert calls[0] == [1] and calls[-1] == [1] and len(calls) == 2  # at least once: delivered, then again
        assert status(engine, "now").writes_total == 1  # written once
    finally:
        runtime.close()


@pytest.fixture
def sqlite_runtime(tmp_path: Path):
    """A runtime on an empty workspace's SQLite file (these tests hold SQLite's write lock from another process)."""
    from tools.runtime import Runtime

    ws = tmp_path / "ws"
    (ws / "tools").mkdir(parents=True)
    runtime = Runtime(ws)
    yield runtime
    runtime.close()


HOLD_LOCK = """
import sqlite3, sys, time
from pathlib import Path
con = sqlite3.connect(sys.argv[1], isolation_level=None)
con.execute("BEGIN IMMEDIATE")
Path(sys.argv[2]).write_text("held")
while not Path(sys.argv[3]).exists():
    time.sleep(0.01)
con.execute("COMMIT")
"""


def _writers_behind_a_held_lock(tmp_path: Path, runtime, writes) -> tuple[list, list[str]]:
    """Run `writes` (callables) on threads while another process holds SQLite's write lock, then let it go:
    every write queues behind the lock. Returns (results or exceptions, the statements the threads ran)."""
    import subprocess
    import sys

    held, release = tmp_path / "held", tmp_path / "release"
    holder = subprocess.Popen([sys.executable, "-c", HOLD_LOCK, str(runtime.store.path), str(held), str(release)])
    statements: list[str] = []
    results: list = [None] * len(writes)
    lock = threading.Lock()

    def trace(sql: str) -> None:
        with lock:
            statements.append(sql)

    def writer(i: int) -> None:
        runtime.store.conn().set_trace_callback(trace)  # the driver's own record of what this thread runs
        try:
            results[i] = writes[i]()
        except Exception as exc:
            results[i] = exc

    try:
        wait_for(held.exists, timeout=10)
        threads = [threading.Thread(target=writer, args=(i,)) for i in range(len(writes))]
        for t in threads:
            t.start()
        time.sleep(0.5)  # every writer is waiting for the lock
        release.write_text("go")
        for t in threads:
            t.join(30)
    finally:
        release.write_text("go")
        holder.wait(10)
    return results, statements


def test_concurrent_writes_of_one_process_are_committed_together(tmp_path: Path, sqlite_runtime) -> None:
    """SQLite has one writer at a time: writes that queue while a transaction commits are committed together
    (group commit), each acknowledged only once committed. Counted by the driver: fewer commits than writes."""
    runtime = sqlite_runtime
    engine = engine_for(runtime)
    engine.configure("grouped", flush_strategy="manual")
    results, statements = _writers_behind_a_held_lock(
        tmp_path, runtime, [lambda i=i: engine.write("grouped", {"i": i}) for i in range(8)])
    assert all(isinstance(r, dict) and r["success"] for r in results), results
    commits = [s for s in statements if s.strip().upper() == "COMMIT"]
    inserts = [s for s in statements if s.startswith("INSERT INTO buffer_items")]
    assert 1 <= len(commits) < 8 and len(inserts) < 8, statements  # one statement for a group's items too
    assert status(engine, "grouped").pending == 8
    items = [json.loads(r["data"])["i"] for r in runtime.store.query(
        "SELECT data FROM buffer_items WHERE bkey=(SELECT bkey FROM buffers WHERE buffer_id='grouped') ORDER BY seq")]
    assert sorted(items) == list(range(8))


def test_one_failing_append_does_not_fail_the_others_committed_with_it(tmp_path: Path, sqlite_runtime) -> None:
    runtime = sqlite_runtime
    engine = engine_for(runtime)
    engine.configure("grouped", flush_strategy="manual")
    bkey = engine.config("grouped").bkey
    tables = engine.tables
    writes = [lambda i=i: tables.append(bkey, json.dumps({"i": i}), time.time()) for i in range(6)]
    writes.insert(3, lambda: tables.append(987654, '{"lost": true}', time.time()))  # a buffer that is gone
    results, _ = _writers_behind_a_held_lock(tmp_path, runtime, writes)
    assert isinstance(results[3], LookupError) and "vanished" in str(results[3])
    good = [r for i, r in enumerate(results) if i != 3]
    assert all(r.written == 1 for r in good), results
    assert status(engine, "grouped").pending == 6


def test_a_group_that_does_not_fit_leaves_each_item_to_when_full(tmp_path: Path, sqlite_runtime) -> None:
    runtime = sqlite_runtime
    engine = engine_for(runtime)
    engine.configure("small", flush_strategy="manual", max_pending=5, when_full="drop_newest")
    results, statements = _writers_behind_a_held_lock(
        tmp_path, runtime, [lambda i=i: engine.write("small", {"i": i}) for i in range(8)])
    assert all(isinstance(r, dict) and r["success"] is (not r.get("dropped")) for r in results), results
    assert sum(1 for r in results if r.get("dropped")) == 3
    s = status(engine, "small")
    assert (s.pending, s.writes_total, s.dropped_total) == (5, 5, 3)


def test_settings_repeated_on_every_write_are_applied_once_and_a_change_still_applies(engine: BufferEngine) -> None:
    """Callers pass the same settings with each write: they are checked once, not on every write; a write that
    changes one, or another process's change of the buffer, is applied as before."""
    for _ in range(3):
        engine.write("rep", {"a": 1}, max_size=7, flush_strategy="manual")
    assert engine.config("rep").max_size == 7
    engine.write("rep", {"a": 2}, max_size=9, flush_strategy="manual")
    assert engine.config("rep").max_size == 9
    engine.tables.configure("rep", {"max_size": 11})  # as another process would, behind this engine's cache
    engine.write("rep", {"a": 3}, max_size=9, flush_strategy="manual")  # its explicit setting wins again
    wait_for(lambda: engine.config("rep", fresh=True).max_size == 9, timeout=5)
    with pytest.raises(ToolInputError, match="max_size"):
        engine.write("rep", {"a": 4}, max_size=-1, flush_strategy="manual")
