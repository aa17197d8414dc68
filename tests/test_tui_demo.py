"""The demo exercises what the panels are for, and the history the charts draw from."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tools.cli.demo_workspace import prepare_demo_workspace


@pytest.fixture
def demo_ws(tmp_path: Path) -> Path:
    ws, _ = prepare_demo_workspace(str(tmp_path / "demo"))
    return ws


@pytest.mark.slow
def test_demo_traffic_fills_buffers_of_every_kind(demo_ws: Path) -> None:
    """Different strategies, rates and sizes; a burst that backs up and drains; a sink that refuses now and then."""
    proc = subprocess.run([sys.executable, "-m", "tools.cli.demo_traffic", "--workspace", str(demo_ws), "--rate", "300",
                           "--seconds", "14"], capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr
    out = subprocess.run([sys.executable, "-m", "tools", "--workspace", str(demo_ws), "buffer", "status", "--json"],
                         capture_output=True, text=True, timeout=60)
    status = {b["buffer_id"]: b for b in json.loads(out.stdout)}
    assert len(status) >= 3
    assert {b["flush_strategy"] for b in status.values()} == {"batched", "immediate", "manual"}
    assert len({b["max_size"] for b in status.values()}) >= 3
    from tools.cli.demo_traffic import BUFFERS

    size = BUFFERS["metrics_rollup"][2][0]
    burst = status["metrics_rollup"]
    assert burst["writes_total"] >= size and burst["flushed_total"] >= size, burst  # backed up by a burst, then drained
    assert burst["max_pending"] == 5000
    flaky = status["orders_outbox"]
    assert flaky["retries_total"] + flaky["dead_letter_batches"] >= 1, flaky  # its sink refused a batch
    assert flaky["pass_through_tool"] == "flaky_sink"
    assert status["exports"]["pending"] > 0 and status["exports"]["flush_strategy"] == "manual"
    assert status["usage_tracking"]["pending"] == 0 and status["usage_tracking"]["flushed_total"] > 100


def test_pending_samples_are_kept_once_a_period_and_pruned_by_retention(workspace: Path, make_runtime) -> None:
    from state.history import buffer_samples, record_buffer_samples
    from tui.history import Sampler, pending_history

    (workspace / "tooldeck.toml").write_text("[retention]\nevents_days = 1\n")
    rt = make_runtime()
    rt.wait_ready(60)
    old = time.time() - 3 * 86400
    record_buffer_samples(rt.store, {"orders": (7, 0)}, old)
    sampler = Sampler(rt)
    status = [{"buffer_id": "orders", "pending": 12, "dead_letter_items": 3}]
    sampler(status)
    sampler(status)  # the same period: one row
    assert [(p, d) for _, p, d in buffer_samples(rt.store, "orders", time.time() - 3600)] == [(12, 3)]
    assert not [s for s in buffer_samples(rt.store, "orders", 0) if s[0] < time.time() - 86400], "older than retention"
    xs, pending = pending_history(rt, "orders")
    assert pending == [12.0] and len(xs) == 1


def test_circuit_timeline_shows_half_open_after_the_cooldown() -> None:
    from tui.history import LEVELS, circuit_timeline

    start, now = 1000.0, 2000.0
    changes = [(1100.0, "circuit.opened", "{}"), (1200.0, "circuit.closed", "{}"), (1300.0, "circuit.opened", "{}"),
               (1400.0, "control.circuit", '{"state": "open"}')]
    xs, ys, marks = circuit_timeline(changes, 30.0, start, now)
    states = [LEVELS[int(y)] for y in ys]
    assert list(zip(xs, states, strict=True)) == [(1000.0, "closed"), (1100.0, "open"), (1130.0, "half-open"), (1200.0, "closed"),
                                                  (1300.0, "open"), (1330.0, "half-open"), (1400.0, "open")]
    assert len(marks) == 4
