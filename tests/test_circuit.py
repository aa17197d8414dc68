"""Circuit breaker: opens, rejects, half-opens, closes; bounded probes; shared across processes; operator override."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from tests.helpers import python_tool
from tools.errors import ToolError, ToolUnavailableError, UsageError
from tools.recovery import controls
from tools.recovery.circuit import Circuit, CircuitConfig

COOLDOWN = 0.4
SETTINGS = f"""
[circuit]
window = 10
min_calls = 4
failure_rate = 0.5
consecutive_failures = 3
cooldown_seconds = {COOLDOWN}
half_open_probes = 2
probe_timeout_seconds = 5
"""
TOGGLE = """
def run(data):
    if data.get("fail"):
        raise RuntimeError("asked to fail")
    return {"ok": True}
"""


@pytest.fixture
def ws(workspace: Path) -> Path:
    (workspace / "tooldeck.toml").write_text(SETTINGS)
    python_tool(workspace / "tools", "toggle", TOGGLE)
    return workspace


def call(rt, fail: bool):
    return rt.call("toggle", {"fail": fail})


def fail_n(rt, n: int) -> None:
    for _ in range(n):
        with pytest.raises(ToolError) as info:
            call(rt, True)
        assert info.value.error_class == "crash"


def state(rt) -> str:
    return rt.extensions["failures"].scores_snapshot()[("toggle", "1.0.0")]["circuit"]


def wait_for(predicate, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached")
        time.sleep(0.02)


def test_circuit_unit_window_and_rates():
    cfg = CircuitConfig(window=4, min_calls=4, failure_rate=0.5, consecutive_failures=3, significance=1.0)
    c = Circuit(cfg.window)
    assert c.failed(cfg) is None and c.failed(cfg) is None
    assert c.failed(cfg) == "3 consecutive failures"
    c = Circuit(cfg.window)
    for _ in range(10):
        c.ok()
    assert c.failed(cfg) is None
    c.ok()
    assert c.failed(cfg) == "2 failures in the last 4 calls"
    assert c.fails == 2 and len(c.outcomes) == 4


def trips(cfg: CircuitConfig, outcomes: list[bool]) -> int:
    """How often a circuit opens over a run of outcomes (True = failed), starting afresh after each opening."""
    c, opened = Circuit(cfg.window), 0
    for failed in outcomes:
        if not failed:
            c.ok()
        elif c.failed(cfg) is not None:
            opened += 1
            c = Circuit(cfg.window)
    return opened


def test_a_tool_failing_under_its_failure_rate_keeps_its_circuit_closed():
    """30% failures against a failure_rate of 0.5: the default breaker must not open on small-sample noise."""
    import random

    rng = random.Random(11)
    outcomes = [rng.random() < 0.3 for _ in range(10_000)]
    cfg = CircuitConfig.from_settings({})  # the defaults
    assert trips(cfg, outcomes) <= 2  # a plain share rule over 5..20 calls opened it ~100 times
    assert trips(CircuitConfig.from_settings({"significance": 1, "consecutive_failures": 5}), outcomes) > 50
    # a tool that is down still opens at once: 5 of 5 is significant (p = 0.031), 4 of 4 is not (p = 0.0625)
    c = Circuit(cfg.window)
    assert [c.failed(cfg) for _ in range(5)] == [None, None, None, None, "5 failures in the last 5 calls"]
    # a window full of successes, then a tool failing every call: 15 of 20 is significant (p = 0.021), 14 not (0.058)
    no_runs = CircuitConfig(consecutive_failures=100)
    c = Circuit(no_runs.window)
    for _ in range(20):
        c.ok()
    reasons = [c.failed(no_runs) for _ in range(15)]
    assert reasons == [None] * 14 + ["15 failures in the last 20 calls"]
    assert trips(cfg, [False] * 20 + [True] * 10) == 1  # and ten in a row open it sooner
    # significance 1 is the plain share rule
    plain = CircuitConfig(window=20, min_calls=5, consecutive_failures=100, significance=1.0)
    c = Circuit(plain.window)
    assert [c.failed(plain) if f else c.ok() for f in (True, True, False, False, True)][-1] == "3 failures in the last 5 calls"


@pytest.mark.parametrize("section, text", [
    ({"window": 0}, "must be >= 1"), ({"failure_rate": 1.5}, "failure_rate"), ({"cooldown_seconds": "soon"}, "[circuit]"),
    ({"significance": 0}, "significance"),
])
def test_circuit_settings_are_validated(section, text):
    with pytest.raises(UsageError) as info:
        CircuitConfig.from_settings(section)
    assert text in str(info.value)


def test_opens_rejects_half_opens_and_closes(ws, make_runtime):
    rt = make_runtime(ws)
    assert call(rt, False) == {"ok": True}
    fail_n(rt, 3)
    assert state(rt) == "open"
    with pytest.raises(ToolUnavailableError) as info:
        call(rt, False)
    assert "circuit open (3 consecutive failures)" in str(info.value)
    assert rt.store.query_one("SELECT COUNT(*) FROM failures")[0] == 3  # a refusal is not a failure
    wait_for(lambda: state(rt) == "half_open")
    assert call(rt, False) == {"ok": True}  # probe 1
    assert state(rt) == "half_open"
    assert call(rt, False) == {"ok": True}  # probe 2 closes it
    assert state(rt) == "closed"
    kinds = [e.kind for e in rt.events.recent(50, kinds=["circuit.opened", "circuit.closed"])]
    assert kinds == ["circuit.opened", "circuit.closed"]
    # closed again with a fresh window: one failure does not reopen it
    fail_n(rt, 1)
    assert state(rt) == "closed"


def test_failure_rate_over_the_window_opens(ws, make_runtime):
    (ws / "tooldeck.toml").write_text(SETTINGS + "significance = 1\n")  # the plain share: 2 of 4 is enough
    rt = make_runtime(ws)
    call(rt, False)
    fail_n(rt, 1)
    call(rt, False)
    assert state(rt) == "closed"
    fail_n(rt, 1)  # 2 of the last 4
    assert state(rt) == "open"


def test_a_failed_probe_reopens(ws, make_runtime):
    rt = make_runtime(ws)
    fail_n(rt, 3)
    first = rt.extensions["failures"].health("toggle", "1.0.0")["opened_at"]
    wait_for(lambda: state(rt) == "half_open")
    fail_n(rt, 1)
    assert state(rt) == "open"
    assert rt.extensions["failures"].health("toggle", "1.0.0")["opened_at"] > first
    with pytest.raises(ToolUnavailableError):
        call(rt, False)


def test_half_open_admits_a_bounded_number_of_probes(ws, make_runtime):
    rt = make_runtime(ws)
    fail_n(rt, 3)
    wait_for(lambda: state(rt) == "half_open")
    tracker = rt.extensions["failures"]
    entry = rt.resolve("toggle")
    tracker.before_call(rt, entry)  # two probes in flight, neither has reported
    tracker.before_call(rt, entry)
    with pytest.raises(ToolUnavailableError) as info:
        tracker.before_call(rt, entry)
    assert "probe" in str(info.value)
    row = rt.store.query_one("SELECT probes, circuit FROM tool_health WHERE tool_id='toggle'")
    assert (row["probes"], row["circuit"]) == (2, "half_open")


def test_circuit_state_is_shared_across_processes(ws, make_runtime):
    rt = make_runtime(ws)
    assert call(rt, False) == {"ok": True}
    script = textwrap.dedent(f"""
        from tools.runtime import Runtime
        from tools.errors import ToolError
        with Runtime({str(ws)!r}) as rt:
            for _ in range(3):
                try:
                    rt.call("toggle", {{"fail": True}})
                except ToolError:
                    pass
            print(rt.extensions["failures"].scores_snapshot()[("toggle", "1.0.0")]["circuit"])
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, cwd=Path(__file__).parents[1])
    assert out.stdout.strip() == "open", out.stderr
    rt.extensions["failures"].sync(force=True)
    with pytest.raises(ToolUnavailableError):
        call(rt, False)


def test_operator_holds_open_then_closes(ws, make_runtime, monkeypatch):
    rt = make_runtime(ws)
    out = controls.force_circuit(rt, "toggle", "open", actor="alice", reason="maintenance")
    assert out["state"] == "open"
    clock = rt.store.now
    monkeypatch.setattr(rt.store, "now", lambda: clock() + COOLDOWN + 1)  # the store's clock, past the cooldown
    assert state(rt) == "open"  # held: no half-open after the cooldown
    with pytest.raises(ToolUnavailableError) as info:
        call(rt, False)
    assert "held open by an operator (maintenance)" in str(info.value)
    controls.force_circuit(rt, "toggle", "closed", actor="bob")
    assert state(rt) == "closed" and call(rt, False) == {"ok": True}
    actors = [(e.kind, e.payload["actor"], e.payload["state"]) for e in rt.events.recent(10, kinds=["control.circuit"])]
    assert actors == [("control.circuit", "alice", "open"), ("control.circuit", "bob", "closed")]
