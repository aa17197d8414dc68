"""Hot reload: 50 edits of a tool's code file in a serving runtime.

Measures write -> reload done (the watcher reloaded the manifest and recycled the
worker) and write -> first successful call of the new version, with the watcher
at tooldeck's settings (debounce=50, step=10) and, in the same run, at
watchfiles' defaults (debounce=1600, step=50) as the baseline.

Run: python tests/benchmarks/bench_reload.py [--edits 50]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tools.catalog.watcher import Watcher  # noqa: E402
from tools.runtime import Runtime  # noqa: E402

CODE = "def run(data):\n    return {{'v': {v}}}\n"
MANIFEST = "name: hot\ntype: python\nversion: 1.0.0\ndescription: hot reload bench\nentry: hot.py:run\n"


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def run(edits: int, debounce: int, step: int) -> tuple[list[float], list[float]]:
    ws = Path(tempfile.mkdtemp(prefix="bench-reload-"))
    (ws / "tools").mkdir()
    (ws / "tools" / "hot.yaml").write_text(MANIFEST)
    code = ws / "tools" / "hot.py"
    code.write_text(CODE.format(v=0))
    rt = Runtime(ws, serve=True)
    try:
        rt.wait_ready(60)
        default = rt.extensions["watcher"]
        default.ready.wait(5)
        if (debounce, step) != (default.debounce, default.step):
            default.stop(5)
            watcher = Watcher(rt, debounce=debounce, step=step)
            watcher.start()
            watcher.ready.wait(5)
        else:
            watcher = default
        done = threading.Event()
        stamps: list[float] = []

        def reloaded(result: dict) -> None:
            stamps.append(time.perf_counter())
            done.set()

        watcher.listeners.append(reloaded)
        assert rt.call("hot") == {"v": 0}
        to_event: list[float] = []
        to_call: list[float] = []
        for i in range(1, edits + 1):
            done.clear()
            stamps.clear()
            time.sleep(0.02)  # let the previous batch settle: edits are separate, as a person makes them
            started = time.perf_counter()
            code.write_text(CODE.format(v=i))
            while True:
                if rt.call("hot") == {"v": i}:
                    to_call.append((time.perf_counter() - started) * 1000)
                    break
            if not done.wait(10):
                raise SystemExit(f"edit {i}: no reload within 10 s")
            to_event.append((stamps[0] - started) * 1000)
        return to_event, to_call
    finally:
        rt.close()


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--edits", type=int, default=50)
    args = parser.parse_args()
    ours_event, ours_call = run(args.edits, 50, 10)
    base_event, base_call = run(args.edits, 1600, 50)
    p50e, p95e, p50c = statistics.median(ours_event), pct(ours_event, 0.95), statistics.median(ours_call)
    b50e, b95e, b50c = statistics.median(base_event), pct(base_event, 0.95), statistics.median(base_call)
    print(f"hot reload, {args.edits} edits of a python tool's code file (serving runtime, warm worker recycled)")
    print(f"write -> reload event     p50 {p50e:6.1f} ms  p95 {p95e:6.1f} ms   (targets p50 <= 50, p95 <= 150: "
          f"{'met' if p50e <= 50 and p95e <= 150 else 'MISSED'})")
    print(f"  watchfiles defaults     p50 {b50e:6.1f} ms  p95 {b95e:6.1f} ms   ratio p50 {b50e / p50e:4.1f}x faster, "
          f"p95 {b95e / p95e:4.1f}x faster")
    print(f"write -> first call of v  p50 {p50c:6.1f} ms  p95 {pct(ours_call, 0.95):6.1f} ms   (target p50 <= 100: "
          f"{'met' if p50c <= 100 else 'MISSED'})")
    print(f"  watchfiles defaults     p50 {b50c:6.1f} ms  p95 {pct(base_call, 0.95):6.1f} ms   ratio p50 {b50c / p50c:4.1f}x faster")
    return 0


if __name__ == "__main__":
    sys.exit(main())
