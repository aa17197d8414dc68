"""Catalog load: `Runtime(...)` return time, cold and warm full load, vs a plain yaml.safe_load loop.

Run: python tests/benchmarks/bench_load.py [--sizes 1000,5000]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tools.runtime import Runtime  # noqa: E402

MANIFEST = """\
name: {name}
type: python
version: 1.{minor}.0
description: Generated tool number {i} that parses records of kind {i} and returns them normalised.
tags: [generated, parsing, kind{k}]
entry: {name}.py:run
input_schema:
  text: {{type: string, description: The text to parse, required: true}}
  limit: {{type: integer, description: Maximum records, default: 100}}
  mode: {{type: string, enum: [fast, strict], default: fast}}
output_schema:
  type: object
  required: [records]
  properties:
    records: {{type: array}}
examples:
  - input: {{text: "a,b"}}
    output: {{records: [a, b]}}
tests:
  - input: {{text: "a,b"}}
    expect_contains: {{records: [a]}}
quality_score: 0.9
priority: {k}
cost_tier: low
speed_tier: fast
"""


def generate(folder: Path, n: int) -> None:
    folder.mkdir(parents=True)
    for i in range(n):
        name = f"gen_tool_{i:05d}"
        (folder / f"{name}.yaml").write_text(MANIFEST.format(name=name, i=i, k=i % 7, minor=i % 3))


def full_load(ws: Path) -> tuple[float, float, Runtime]:
    t0 = time.perf_counter()
    runtime = Runtime(ws)
    ctor = time.perf_counter() - t0
    runtime.catalog.finished.wait(300)
    return ctor, time.perf_counter() - t0, runtime


def bench(n: int) -> None:
    ws = Path(tempfile.mkdtemp(prefix=f"bench-load-{n}-"))
    generate(ws / "tools", n)
    files = sorted((ws / "tools").glob("*.yaml"))
    # baseline: the plain loop the original system ran
    t0 = time.perf_counter()
    for path in files:
        with open(path) as fh:
            yaml.safe_load(fh)
    baseline = time.perf_counter() - t0

    ctors, colds, warms = [], [], []
    for _ in range(3):
        shutil.rmtree(ws / ".tooldeck", ignore_errors=True)
        ctor, cold, runtime = full_load(ws)
        assert runtime.catalog.counts()["ready"] >= n, runtime.summary()
        runtime.close()
        ctor2, warm, runtime = full_load(ws)
        assert runtime.catalog.cache_hits >= n
        runtime.close()
        ctors += [ctor, ctor2]
        colds.append(cold)
        warms.append(warm)
    cold, warm, ctor = statistics.median(colds), statistics.median(warms), max(ctors)
    print(f"{n} tools: Runtime(...) returned in {ctor * 1000:.2f} ms (worst of 6)   target < 5 ms")
    print(f"{n} tools: full load cold {cold:.3f} s, warm (cache) {warm:.3f} s   targets at 1,000: <= 0.5 s / <= 0.15 s")
    print(f"{n} tools: plain yaml.safe_load loop {baseline:.3f} s; ratio baseline / cold = {baseline / cold:.1f}x   target >= 4x"
          f"; baseline / warm = {baseline / warm:.1f}x")
    shutil.rmtree(ws, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="1000,5000")
    args = parser.parse_args()
    for n in (int(s) for s in args.sizes.split(",")):
        bench(n)


if __name__ == "__main__":
    main()
