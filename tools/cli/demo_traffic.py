"""Traffic for `tooldeck demo`: a separate process that keeps every panel of the dashboard alive.

- about 1,000 buffer writes/s into `usage_tracking` (max_size 50), flushed to `usage_sink`;
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
import signal
import sys
import threading
import time
from typing import Any

from tools.errors import ToolError
from tools.runtime import Runtime

log = logging.getLogger("tooldeck.traffic")


def buffer_writes(runtime: Runtime, stop: threading.Event, rate: float) -> None:
    engine = runtime.extensions["buffers"]
    engine.configure("usage_tracking", max_size=50, flush_interval_seconds=2, pass_through_tool="usage_sink",
                     flush_strategy="batched")
    tools = ["translator_dictionary", "json_parser", "csv_parser", "flaky_tool"]
    n = 0
    tick = 0.01
    per_tick = max(1, int(rate * tick))
    next_at = time.monotonic()
    while not stop.is_set():
        for _ in range(per_tick):
            engine.write("usage_tracking", {"tool_id": tools[n % len(tools)], "increment": 1, "n": n})
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


def _guard(fn: Any, runtime: Runtime, stop: threading.Event, *args: Any) -> None:
    """A generator thread that dies is logged, not silent."""
    try:
        fn(runtime, stop, *args)
    except Exception:
        log.exception("traffic generator %s stopped", getattr(fn, "__name__", fn))


if __name__ == "__main__":
    sys.exit(main())
