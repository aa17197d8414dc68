"""Sandbox validation of a small tool with 5 tests, end to end, with each stage's time.

Two candidates: a `python` tool (all inputs through one sandboxed runner) and
the demo's evolved csv_parser (`executable`: one child per input inside the one
sandbox). Each also has 2 recorded failing inputs and 3 recorded calls, so all
five stages run. Baseline in the same run: the same 5 tests with one sandboxed
process per test (how a naive sandbox would do it). Target: <= 1.5 s end to end.

Run: python tests/benchmarks/bench_sandbox.py [--repeat 5]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tools.catalog.manifest import Manifest, load_manifest  # noqa: E402
from tools.errors import ToolUnavailableError  # noqa: E402
from tools.evolution.launchers import select  # noqa: E402
from tools.evolution.sandbox import run_cases  # noqa: E402
from tools.evolution.stages import Cascade, Inputs  # noqa: E402

PY_CODE = '''
def run(data):
    words = data["text"].split()
    return {"words": len(words), "upper": data["text"].upper()}
'''


def python_candidate(root: Path) -> tuple[Path, Inputs]:
    folder = root / "evolved" / "counter" / "1.1.0"
    folder.mkdir(parents=True)
    (folder / "counter_v1_1_0.py").write_text(PY_CODE)
    tests = [{"name": f"t{i}", "input": {"text": "a b " * i}, "expect_contains": {"words": 2 * i}} for i in range(5)]
    (folder / "counter.yaml").write_text(yaml.safe_dump({
        "name": "counter", "version": "1.1.0", "type": "python", "entry": "counter_v1_1_0.py:run",
        "input_schema": {"text": {"type": "string", "required": True}},
        "output_schema": {"type": "object", "required": ["words"]}, "tests": tests}))
    scenarios = [{"input": {"text": "x y"}, "error_class": "crash", "error": "boom"},
                 {"input": {"text": ""}, "error_class": "crash", "error": "boom"}]
    regressions = [{"input": {"text": w}, "output": {"words": 1, "upper": w.upper()}} for w in ("a", "b", "c")]
    return folder / "counter.yaml", Inputs("counter", "1.1.0", "counter_v1_1_0.py", parent_of(folder / "counter.yaml"), False,
                                           scenarios, regressions, 10, 512)


def csv_candidate(root: Path) -> tuple[Path, Inputs]:
    replay = json.loads((Path(__file__).resolve().parents[2] / "tools" / "demo" / "replay" / "csv_parser.json").read_text())
    answer = replay["responses"][0]["tool_input"]
    folder = root / "evolved" / "csv_parser" / "1.1.0"
    folder.mkdir(parents=True)
    (folder / "csv_parser_v1_1_0.py").write_text(answer["code"])
    (folder / "csv_parser.yaml").write_text(answer["manifest_yaml"])
    scenarios = [{"input": {"text": '[{"a": 1}]'}, "error_class": "exit_code", "error": "JSONDecodeError"},
                 {"input": {"text": '{"b": 2}'}, "error_class": "exit_code", "error": "JSONDecodeError"}]
    regressions = [{"input": {"text": f"h\n{i}\n"}, "output": {"columns": ["h"], "rows": [{"h": str(i)}]}} for i in range(3)]
    return folder / "csv_parser.yaml", Inputs("csv_parser", "1.1.0", "csv_parser_v1_1_0.py", parent_of(folder / "csv_parser.yaml"),
                                               True, scenarios, regressions, 10, 512)


def parent_of(path: Path) -> Manifest:
    """The 1.0.0 the candidate evolved from (same type and schemas), so every stage runs."""
    data = yaml.safe_load(path.read_text())
    data.update(version="1.0.0", tests=[])
    return Manifest.model_validate(data)


def validate(path: Path, inputs: Inputs) -> tuple[float, list[dict[str, Any]]]:
    started = time.perf_counter()
    cascade = Cascade(inputs, path, lambda: None, lambda s, m: None)
    ok = cascade.run()
    total = (time.perf_counter() - started) * 1000
    if not ok:
        raise SystemExit(f"{path}: validation failed: {cascade.stages[-1]}")
    return total, cascade.stages


def naive(path: Path, launcher: str) -> float:
    """The same tests, one sandboxed process per test."""
    manifest = load_manifest(path)
    started = time.perf_counter()
    for case in manifest.tests:
        run_cases(path.parent, manifest, [case.input], timeout=10, launcher=select(launcher))
    return (time.perf_counter() - started) * 1000


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    for name in ("bwrap", "unshare"):
        try:
            launcher = select(name)
        except ToolUnavailableError as exc:
            print(f"sandbox: {name} not available here: {exc.message}")
            continue
        print(f"sandbox: {launcher.name}; protections {json.dumps(launcher.protections)}")
        for label, make in (("python tool", python_candidate), ("executable csv_parser", csv_candidate)):
            root = Path(tempfile.mkdtemp(prefix="bench-sandbox-"))
            path, inputs = make(root)
            inputs = dataclasses.replace(inputs, launcher=name)
            runs = [validate(path, inputs) for _ in range(args.repeat)]
            totals = [t for t, _ in runs]
            median = statistics.median(totals)
            stage_ms = {s["name"]: statistics.median([st[i]["ms"] for _, st in runs]) for i, s in enumerate(runs[0][1])}
            naive_ms = statistics.median([naive(path, name) for _ in range(args.repeat)])
            tests_ms = stage_ms["tests"]
            stages = "  ".join(f"{k} {v:.1f}" for k, v in stage_ms.items())
            print(f"[{name}] {label}: 5 tests + 2 failing inputs + 3 recorded calls, end to end p50 {median:.0f} ms "
                  f"(target <= 1500 ms: {'met' if median <= 1500 else 'MISSED'}, {1500 / median:.1f}x under)")
            print(f"  stages (ms, p50): {stages}")
            print(f"  tests stage {tests_ms:.0f} ms vs one sandbox process per test {naive_ms:.0f} ms: "
                  f"{naive_ms / tests_ms:.1f}x faster")
    return 0


if __name__ == "__main__":
    sys.exit(main())
