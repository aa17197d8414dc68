"""Buffers and circuit breakers: a refusal by an open circuit is not a delivery attempt.

The batch waits ("waiting for circuit" in status) with its attempts untouched and goes out once
the half-open probe admits it; replaying a dead batch while the circuit is open queues it.
"""

from __future__ import annotations

from pathlib import Path

from tests.buffer_helpers import attempts, prepare_workspace, sink_batches, sink_items, wait_for
from tests.helpers import write_tool
from tools.buffers.engine import BufferEngine, engine_for
from tools.recovery import controls

#: two failures in a row open the circuit; 2 s later one successful probe closes it
QUICK_CIRCUIT = """consecutive_failures = 2
min_calls = 100000
cooldown_seconds = 2
half_open_probes = 1
probe_timeout_seconds = 5
"""


def status(engine: BufferEngine, buffer_id: str):
    found = engine.status(buffer_id)
    assert found, buffer_id
    return found[0]


def test_a_circuit_open_refusal_is_not_an_attempt_and_the_batch_waits_for_the_probe(workspace: Path,
                                                                                      make_runtime) -> None:
    ws = prepare_workspace(workspace, max_attempts=5, circuit=QUICK_CIRCUIT)
    engine = engine_for(make_runtime(ws))
    (ws / "fail").write_text("")
    engine.write_many("cb", list(range(5)), max_size=5, flush_interval_seconds=60, pass_through_tool="sink")
    # two real failures open the circuit; the retries that follow are refused without running the sink
    s = wait_for(lambda: (st := status(engine, "cb")).last_flush_result in ("waiting", "dead_letter") and st, timeout=20)
    assert s.dead_letter_batches == 0, f"dead-lettered by refusals: {s.last_flush_error}"
    assert (s.refused_batches, s.pending, s.last_flush_result) == (1, 5, "waiting")
    assert "waiting for circuit" in (s.warning or "") and "circuit" in (s.refused_reason or "")
    engine.write_many("cb", list(range(5, 10)))  # a second full batch while the circuit is open
    (ws / "fail").unlink()
    wait_for(lambda: sink_items(ws, "cb") == list(range(10)), timeout=30)  # after the half-open probe
    wait_for(lambda: status(engine, "cb").pending == 0)
    s = status(engine, "cb")
    assert (s.dead_letter_batches, s.refused_batches, s.retry_batches, s.last_flush_result) == (0, 0, 0, "ok")
    first = sink_batches(ws, "cb")[0]["batch_id"]
    flushed = {e.payload["batch_id"]: e.payload["attempt"] for e in engine.runtime.events.tail(0, kinds=["buffer.flush"])}
    ran = attempts(ws).count(first)  # each time the sink really ran with it
    assert ran >= 3 and flushed[first] == ran  # refusals were not counted as attempts
    waiting = engine.runtime.events.tail(0, kinds=["buffer.waiting"])
    assert waiting and all(e.payload["reason"].startswith("waiting for circuit") for e in waiting)
    assert engine.runtime.events.tail(0, kinds=["buffer.dead_letter"]) == []


def test_replay_while_the_circuit_is_open_is_queued_then_delivered(workspace: Path, make_runtime) -> None:
    ws = prepare_workspace(workspace, max_attempts=2)
    runtime = make_runtime(ws)
    engine = engine_for(runtime)
    (ws / "fail").write_text("")
    engine.write_many("rq", [1, 2], flush_strategy="manual", pass_through_tool="sink")
    for _ in range(2):
        engine.flush("rq")
    dead = engine.dead_letters("rq")
    assert len(dead) == 1
    (ws / "fail").unlink()
    controls.force_circuit(runtime, "sink", "open", actor="ops", reason="maintenance")
    out = engine.replay("rq")
    assert out["failed"] == [], "a replay refused by the open circuit counted as a failed delivery"
    assert (out["success"], out["delivered"], out["queued"]) == (True, [], [dead[0]["batch_id"]])
    s = status(engine, "rq")
    assert (s.dead_letter_batches, s.refused_batches, s.pending) == (0, 1, 2)
    assert "held open by an operator (maintenance)" in (s.refused_reason or "")
    assert "waiting for circuit" in (s.warning or "")
    assert sink_items(ws, "rq") == [] and len(attempts(ws)) == 2  # the sink was not run
    flushed = engine.flush("rq")  # an explicit flush while it is held open: refused, nothing spent
    assert (flushed["success"], flushed["waiting_batches"], flushed["failed_batches"]) == (False, 1, 0)
    assert "waiting for circuit" in flushed["error"]
    controls.force_circuit(runtime, "sink", "closed", actor="ops")
    wait_for(lambda: sink_items(ws, "rq") == [1, 2], timeout=20)  # the replaying runtime flushes it
    assert sink_batches(ws, "rq")[0]["batch_id"] == dead[0]["batch_id"]
    wait_for(lambda: status(engine, "rq").pending == 0)
    assert engine.dead_letters("rq") == []


def test_a_disabled_sink_holds_batches_without_spending_attempts(workspace: Path, make_runtime) -> None:
    ws = prepare_workspace(workspace, max_attempts=1)
    runtime = make_runtime(ws)
    engine = engine_for(runtime)
    runtime.get_tool("sink")
    controls.set_disabled(runtime, "sink", True, actor="ops", reason="migrating")
    engine.write_many("off", [1, 2, 3], max_size=3, pass_through_tool="sink")
    s = wait_for(lambda: (st := status(engine, "off")).last_flush_result in ("waiting", "dead_letter") and st, timeout=20)
    assert s.dead_letter_batches == 0, f"dead-lettered by a refusal: {s.last_flush_error}"
    assert s.refused_batches == 1 and "disabled by ops: migrating" in (s.refused_reason or "")
    controls.set_disabled(runtime, "sink", False, actor="ops")
    wait_for(lambda: sink_items(ws, "off") == [1, 2, 3], timeout=20)
    assert status(engine, "off").dead_letter_batches == 0



def test_a_sink_that_cannot_run_fails_its_attempts(workspace: Path, make_runtime) -> None:
    """Only the runtime's own refusals (circuit, disabled) wait: an llm sink with no model configured is a failure."""
    ws = prepare_workspace(workspace, max_attempts=2)
    write_tool(ws / "tools", "llm_sink", {"name": "llm_sink", "type": "llm", "description": "summarise a batch",
                                          "prompt": "Summarise {buffered_items}"})
    (ws / "tooldeck.toml").write_text((ws / "tooldeck.toml").read_text() + '\n[model]\nprovider = "none"\n')
    engine = engine_for(make_runtime(ws))
    engine.write_many("nomodel", [1], max_size=1, pass_through_tool="llm_sink")
    s = wait_for(lambda: (st := status(engine, "nomodel")).dead_letter_batches == 1 and st, timeout=20)
    assert s.refused_batches == 0 and s.last_flush_result == "dead_letter"


def test_replay_delivers_in_the_caller_even_while_its_own_flusher_runs(workspace: Path, make_runtime) -> None:
    """The revival and the replaying claim are one transaction: the runtime's flusher cannot take a batch between them."""
    ws = prepare_workspace(workspace, max_attempts=1)
    engine = engine_for(make_runtime(ws))
    engine.poll_seconds = 0.001  # the flusher looks at due batches all the time
    (ws / "fail").write_text("")
    engine.write_many("race", list(range(40)), max_size=2, flush_interval_seconds=0.01, pass_through_tool="sink")
    wait_for(lambda: status(engine, "race").dead_letter_batches == 20, timeout=30)
    (ws / "fail").unlink()
    out = engine.replay("race")
    assert (len(out["delivered"]), out["queued"], out["failed"]) == (20, [], [])
    assert sorted(sink_items(ws, "race")) == list(range(40))
