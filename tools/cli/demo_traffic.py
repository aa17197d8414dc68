"""Traffic for `tooldeck demo`: a separate process that keeps every panel of the dashboard alive.

- five buffers that differ in strategy, rate and size, so their fill levels differ (BUFFERS):
  `usage_tracking` ~1,000 writes/s in batches of 50; `audit_log` a trickle, each write flushed at
  once; `metrics_rollup` bursts that outrun its slow sink, so it backs up and drains;
  `orders_outbox` small batches on a 3 s timer to a sink that refuses a fifth of them (retries,
  and now and then a dead letter); `exports` manual, filling until an operator flushes it;
- resilient calls where `csv_parser` meets JSON and the call falls back to `json_parser`,
  and "translate to french" where `translator_remote` (offline here) falls back to
  `translator_dictionary`;
- `flaky_tool` called a few times a second, so its circuit opens, half-opens and closes;
- one evolution of `csv_parser` served by the `replay` provider, left waiting for review.

Run: python -m tools.cli.demo_traffic --workspace W [--rate 1000] [--seconds N]
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from tools.errors import ToolError
from tools.runtime import Runtime

log = logging.getLogger("tooldeck.traffic")


def start_generator(workspace: Path, log_path: Path) -> subprocess.Popen[bytes]:
    """This module as its own process, started like every child (its own process group, dying with its parent
    even on kill -9), its stderr appended to `log_path`; `stop_generator` lets it flush first."""
    from tools.invoke import spawn

    with open(log_path, "ab") as out:
        return spawn([sys.executable, "-m", "tools.cli.demo_traffic", "--workspace", str(workspace)],
                     stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=out)


def stop_generator(proc: subprocess.Popen[bytes] | None) -> None:
    """SIGTERM the generator's process group (it flushes what it wrote), SIGKILL after 5 s."""
    if proc is None or proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=5)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait()


#: buffer id -> (settings, writes per second as a fraction of --rate, burst: (items, every seconds) or None)
BUFFERS: dict[str, tuple[dict[str, Any], float, tuple[int, float] | None]] = {
    "usage_tracking": ({"flush_strategy": "batched", "max_size": 50, "flush_interval_seconds": 2,
                        "pass_through_tool": "usage_sink"}, 1.0, None),
    "audit_log": ({"flush_strategy": "immediate", "max_size": 10, "flush_interval_seconds": 1,
                   "pass_through_tool": "usage_sink"}, 0.003, None),
    "metrics_rollup": ({"flush_strategy": "batched", "max_size": 20, "flush_interval_seconds": 1, "max_pending": 5000,
                        "when_full": "drop_oldest", "pass_through_tool": "slow_sink"}, 0.0, (1200, 30.0)),
    "orders_outbox": ({"flush_strategy": "batched", "max_size": 10, "flush_interval_seconds": 3,
                       "pass_through_tool": "flaky_sink"}, 0.002, None),
    "exports": ({"flush_strategy": "manual", "max_size": 100, "max_pending": 2000, "when_full": "drop_oldest",
                 "pass_through_tool": "usage_sink"}, 0.002, None),
}


def buffer_writes(runtime: Runtime, stop: threading.Event, rate: float) -> None:
    """Every buffer at its own pace from one thread: a steady share of `rate`, or a burst every so often."""
    engine = runtime.extensions["buffers"]
    for buffer_id, (settings, _, _) in BUFFERS.items():
        engine.configure(buffer_id, **settings)
    tools = ["translator_dictionary", "json_parser", "csv_parser", "flaky_tool"]
    n = 0
    tick = 0.01
    owed = dict.fromkeys(BUFFERS, 0.0)
    next_burst = {b: time.monotonic() + 5 for b, (_, _, burst) in BUFFERS.items() if burst}
    next_at = time.monotonic()
    while not stop.is_set():
        for buffer_id, (_, share, burst) in BUFFERS.items():
            owed[buffer_id] += rate * share * tick
            count = int(owed[buffer_id])
            owed[buffer_id] -= count
            if burst and time.monotonic() >= next_burst[buffer_id]:
                next_burst[buffer_id] = time.monotonic() + burst[1]
                engine.write_many(buffer_id, [{"metric": "latency_ms", "value": i % 97, "n": n + i} for i in range(burst[0])])
                n += burst[0]
            for _ in range(count):
                engine.write(buffer_id, {"tool_id": tools[n % len(tools)], "increment": 1, "n": n})
                n += 1
        next_at += tick
        delay = next_at - time.monotonic()
        if delay > 0:
            stop.wait(delay)
        elif delay < -1:  # fell behind (a slow disk): do not try to catch up in a burst
            next_at = time.monotonic()


def resilient_calls(runtime: Runtime, stop: threading.Event) -> None:
    from tools.recovery import call_tool_resilient

    jobs = [
        ("parse tabular records from this data", {"text": '[{"name": "ada", "age": 36}]'}),
        ("translate to french", {"text": "Hello world", "target": "fr"}),
    ]
    i = 0
    while not stop.wait(2.5):
        scenario, data = jobs[i % len(jobs)]
        i += 1
        try:
            call_tool_resilient(runtime, scenario, data, max_attempts=4)
        except ToolError as exc:
            log.info("resilient %r failed: %s", scenario, exc)


def flaky_calls(runtime: Runtime, stop: threading.Event) -> None:
    i = 0
    while not stop.wait(0.3):
        i += 1
        try:
            runtime.call("flaky_tool", {"value": f"ping {i}"})
        except ToolError:
            pass  # failures and open-circuit refusals are what the dashboard shows


def one_evolution(runtime: Runtime) -> None:
    from tools.evolution import evolve_tool, list_proposals

    waiting = [p for p in list_proposals(runtime, tool_id="csv_parser") if p["status"] in ("awaiting_review", "generating", "validating")]
    if waiting:
        return
    try:
        evolve_tool(runtime, "csv_parser", "JSONDecodeError: input looks like JSON, not CSV", "Support JSON input too")
    except ToolError as exc:
        log.warning("demo evolution failed: %s", exc)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.cli.demo_traffic")
    parser.add_argument("--workspace", required=True)
    parser.add_argument("--rate", type=float, default=1000.0, help="buffer writes per second")
    parser.add_argument("--seconds", type=float, default=0, help="stop after this long (0: until SIGTERM)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s traffic %(levelname)s %(message)s")
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    runtime = Runtime(args.workspace, label="demo-traffic")
    try:
        runtime.get_tool("usage_sink", timeout=60)
        runtime.wait_ready(60)
        threads: list[threading.Thread] = []
        for target, extra in ((buffer_writes, (args.rate,)), (resilient_calls, ()), (flaky_calls, ())):
            thread = threading.Thread(target=_guard, args=(target, runtime, stop, *extra), name=target.__name__, daemon=True)
            thread.start()
            threads.append(thread)
        _guard(lambda rt, st: one_evolution(rt), runtime, stop)
        deadline = time.monotonic() + args.seconds if args.seconds else None
        while not stop.wait(0.5):
            if deadline is not None and time.monotonic() > deadline:
                stop.set()
        for thread in threads:
            thread.join(timeout=5)
    finally:
        runtime.close()
    return 0


#: a generator that failed (a database locked past the busy timeout, a full disk) starts again after this long
RESTART_SECONDS = 1.0


def _guard(fn: Any, runtime: Runtime, stop: threading.Event, *args: Any) -> None:
    """Run a generator until it returns or `stop` is set. One that fails is logged and started again: a
    database locked by another process for longer than the store's busy timeout made the buffer writes fail
    once, and the thread that died with them left the demo's buffers without writes for good."""
    name = getattr(fn, "__name__", fn)
    while not stop.is_set():
        try:
            fn(runtime, stop, *args)
            return
        except Exception as exc:  # noqa: BLE001 - any failure: said, then the generator goes on
            log.warning("traffic generator %s failed, starting it again in %g s: %s: %s", name, RESTART_SECONDS,
                        type(exc).__name__, exc)
            stop.wait(RESTART_SECONDS)


if __name__ == "__main__":
    sys.exit(main())
