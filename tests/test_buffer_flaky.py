"""A flaky pass-through sink under real processes, default settings: self-healing must not dead-letter healthy traffic.

Both runs of the issue side by side (one test, so the suite pays ~70 s once):
(a) the sink fails 30% of its calls throughout; 3 writer processes, 300 batches;
(b) the sink fails 30% of its calls for 60 s (writes spread over 55 s), then succeeds.
What the suite asserts is behaviour: no acknowledged item is lost, every item that was not
dead-lettered is delivered once the sink works, and dead-letter stays rare (five attempts at 30%
failure dead-letter 0.24% of batches; the bound, 2%, is far from chance). The timed targets (>= 99%
delivered within 150 s of the last write, within `[circuit] cooldown_seconds` + 10 s of recovery) are
printed here and by `tests/benchmarks/bench_buffer.py`, never asserted: a loaded machine moves them.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.buffer_helpers import FlakyRun

COOLDOWN = 30.0  # the default [circuit] cooldown_seconds
WRITERS, ITEMS, MAX_SIZE = 3, 2000, 20


@pytest.mark.slow  # ~70 s: `pytest --all` and CI
def test_a_flaky_sink_delivers_nearly_everything_and_loses_nothing(tmp_path: Path) -> None:
    runs = {
        "a": FlakyRun(tmp_path / "a" / "ws", writers=WRITERS, items=ITEMS, max_size=MAX_SIZE),
        "b": FlakyRun(tmp_path / "b" / "ws", writers=WRITERS, items=ITEMS, max_size=MAX_SIZE, fail_for=60.0, spread=55.0),
    }
    budget = {"a": 150.0, "b": COOLDOWN + 10.0}  # the targets, reported
    settle = 240.0  # far past them: only a run that never settles fails
    reached: dict[str, float | None] = {}
    settled: dict[str, bool] = {}
    try:
        while len(settled) < len(runs):
            for name, run in runs.items():
                if name in settled or not run.writers_done():
                    continue
                assert run.acked is not None and run.last_write is not None
                since = run.last_write if run.recover_at is None else run.recover_at
                delivered = len(run.delivered() & run.acked)
                if name not in reached and delivered >= 0.99 * len(run.acked):
                    reached[name] = time.time() - since
                if run.pending() == 0 and (run.recover_at is None or time.time() > run.recover_at):
                    settled[name] = True  # nothing left to deliver: delivered or dead-lettered
                elif time.time() > since + settle:
                    settled[name] = False
            time.sleep(0.5)
        report = {}
        for name, run in runs.items():
            assert run.acked is not None
            held, dead, _ = run.buffer_figures()
            lost = run.lost()
            delivered = run.delivered() & run.acked
            report[name] = {"reached_99_after_s": reached.get(name), "target_s": budget[name], "acked": len(run.acked),
                            "delivered": len(delivered), "dead_batches": dead, "lost": len(lost)}
            assert len(run.acked) == WRITERS * ITEMS, report
            assert not lost, f"{name}: {len(lost)} acknowledged items lost, e.g. {sorted(lost)[:5]}; {report}"
        print(f"flaky sink: {report}")
        for name, run in runs.items():
            assert settled[name], f"({name}) items still pending {settle:.0f} s after the sink worked: {report}"
            assert report[name]["dead_batches"] <= 0.02 * WRITERS * ITEMS / MAX_SIZE, report
            held, _, _ = run.buffer_figures()
            assert report[name]["delivered"] + len(held & run.acked) == len(run.acked), report  # the rest is dead-letter
    finally:
        for run in runs.values():
            run.stop()
