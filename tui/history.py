"""Charts over time for the details screens, and the buffer fill samples the poller keeps.

No pending history is kept by the buffers themselves (their rates are kept 300 s), so the
dashboard's poller samples each buffer's pending count every SAMPLE_SECONDS into
`buffer_samples`, and prunes it with the event log's retention. Runs in thread workers.
"""

from __future__ import annotations

import json
import time
from typing import Any

from state.history import (
    SAMPLE_SECONDS,
    buffer_samples,
    call_outcomes,
    circuit_changes,
    prune_buffer_samples,
    record_buffer_samples,
)
from tui.details import Chart

LEVELS = ("closed", "half-open", "open")
PRUNE_EVERY = 600.0


class Sampler:
    """Called by the collector with every snapshot; writes at most once per sample period."""

    def __init__(self, runtime: Any) -> None:
        self.runtime = runtime
        self._period = -1.0
        self._pruned = 0.0

    def __call__(self, buffers: list[dict[str, Any]]) -> None:
        now = time.time()
        period = now // SAMPLE_SECONDS
        if period == self._period or not buffers:
            return
        self._period = period
        store = self.runtime.store
        record_buffer_samples(store, {b["buffer_id"]: (int(b["pending"]), int(b.get("dead_letter_items") or 0)) for b in buffers}, now)
        if now - self._pruned > PRUNE_EVERY:
            self._pruned = now
            days = float(self.runtime.settings.section("retention").get("events_days", 7))
            prune_buffer_samples(store, days * 86400)


def pending_history(runtime: Any, buffer_id: str, window: float = 1800.0) -> tuple[list[float], list[float]]:
    rows = buffer_samples(runtime.store, buffer_id, time.time() - window)
    return [r[0] for r in rows], [float(r[1]) for r in rows]


def tool_charts(runtime: Any, tool_id: str, version: str | None, window: float = 3600.0) -> list[Chart]:
    """The failure rate per minute and the circuit's state over the last hour."""
    now = time.time()
    outcomes = call_outcomes(runtime.store, tool_id, version, now - window, 60.0)
    rate = Chart(f"{tool_id}: share of calls failed, per minute", [min(b + 30, now) for b, _, _ in outcomes],
                 [("failed %", [100.0 * failed / calls if calls else 0.0 for _, calls, failed in outcomes])], ylabel="% failed",
                 yrange=(0.0, 100.0), x_unit="min", window=window)
    cooldown = float(runtime.settings.section("circuit").get("cooldown_seconds", 30))
    xs, states, marks = circuit_timeline(circuit_changes(runtime.store, tool_id, version, now - window), cooldown, now - window, now)
    circuit = Chart(f"{tool_id}: circuit state", xs, [("circuit", states)], levels=LEVELS, marks=marks, x_unit="min", window=window)
    return [rate, circuit]


def circuit_timeline(changes: list[tuple[float, str, str]], cooldown: float, start: float,
                     now: float) -> tuple[list[float], list[float], list[tuple[float, str]]]:
    """State changes as (times, level index, marks); half-open is when an unforced open's cooldown ends."""
    xs: list[float] = [start]
    ys: list[float] = [0.0]
    marks: list[tuple[float, str]] = []
    half_open_at: float | None = None

    def at(ts: float, level: str) -> None:
        xs.append(ts)
        ys.append(float(LEVELS.index(level)))

    for ts, kind, payload in changes:
        if half_open_at is not None and half_open_at <= ts:
            at(half_open_at, "half-open")
            half_open_at = None
        data = json.loads(payload or "{}")
        if kind == "circuit.opened" or (kind == "control.circuit" and data.get("state") == "open"):
            at(ts, "open")
            half_open_at = None if kind == "control.circuit" else ts + cooldown
            marks.append((ts, "opened"))
        else:
            at(ts, "closed")
            half_open_at = None
            marks.append((ts, "closed"))
    if half_open_at is not None and half_open_at <= now:
        at(half_open_at, "half-open")
    return xs, ys, marks
