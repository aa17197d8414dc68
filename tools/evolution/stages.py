"""The validation cascade for an evolved candidate; it stops at the first failing stage.

1. manifest: the candidate's manifest is valid, keeps the id, type and (unless
   `dynamic_schema`) the output schema, and runs its own code file;
2. compile: the code is UTF-8, read by Python as the diff shows it (no coding cookie that says otherwise:
   tools.evolution.candidate), and compiles (compiling executes nothing, so this runs here);
3. tests: the candidate manifest's `tests` pass, run in the sandbox;
4. failing_scenario: every recorded failing input now succeeds;
5. regression: recorded successful calls of the parent still succeed with
   outputs of the same shape (with `dynamic_schema`: valid under the new schema).

Stages 3-5 each run all their inputs in one sandbox process (tools.evolution.sandbox), and
each says which kernel walls its run had (`sandbox`: seccomp filter, keyring, cgroup, inode limit).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tools.catalog import Manifest, ToolEntry, check_case, code_file, load_manifest
from tools.errors import ToolError
from tools.evolution.candidate import name_inside, source_problem

MAX_CODE_BYTES = 512 * 1024
#: the walls each sandboxed stage reports, as its run saw them (tools.evolution.sandbox)
WALLS = ("seccomp", "keyring", "cgroup", "inode_limit")


class Cancelled(Exception):
    """The operator cancelled the evolution while it validated."""


@dataclass
class Inputs:
    """What the cascade checks a candidate against."""

    tool_id: str
    version: str
    code_name: str
    parent: Manifest | None
    dynamic_schema: bool
    scenarios: list[dict[str, Any]]  # {"input", "error", "error_class"}
    regressions: list[dict[str, Any]]  # {"input", "output" (or None when cut)}
    timeout: float
    memory_mb: int
    disk_mb: int = 64
    launcher: str = "auto"  # [evolution] sandbox_launcher


def _stage(name: str, passed: bool, detail: str, started: float, **extra: Any) -> dict[str, Any]:
    return {"name": name, "passed": passed, "detail": detail, "ms": round((time.perf_counter() - started) * 1000, 1), **extra}


def shape_problem(old: Any, new: Any, path: str = "output") -> str | None:
    """Why `new` does not have the shape of `old` (keys may be added, none removed), or None."""
    if old is None:
        return None
    if isinstance(old, bool):
        ok = isinstance(new, bool)
    elif isinstance(old, (int, float)):
        ok = isinstance(new, (int, float)) and not isinstance(new, bool)
    elif isinstance(old, str):
        ok = isinstance(new, str)
    elif isinstance(old, dict):
        if not isinstance(new, dict):
            return f"{path}: expected an object, got {type(new).__name__}"
        for key, value in old.items():
            if key not in new:
                return f"{path}.{key}: missing"
            problem = shape_problem(value, new[key], f"{path}.{key}")
            if problem:
                return problem
        return None
    elif isinstance(old, list):
        if not isinstance(new, list):
            return f"{path}: expected an array, got {type(new).__name__}"
        return shape_problem(old[0], new[0], f"{path}[0]") if old and new else None
    else:
        ok = True
    return None if ok else f"{path}: expected {type(old).__name__}, got {type(new).__name__}"


class Cascade:
    """Runs the stages in order; `check_cancel` raises Cancelled between stages."""

    def __init__(self, inputs: Inputs, manifest_path: Path, check_cancel: Callable[[], None],
                 progress: Callable[[str, str], None]) -> None:
        self.inputs = inputs
        self.path = manifest_path
        self.check_cancel = check_cancel
        self.progress = progress
        self.stages: list[dict[str, Any]] = []
        self.protections: dict[str, Any] = {}
        self.walls: dict[str, Any] = {}  # what the last sandbox run reported of its kernel walls
        self.manifest: Manifest | None = None
        self.entry: ToolEntry | None = None

    def run(self) -> bool:
        for name, fn in (("manifest", self._manifest), ("compile", self._compile), ("tests", self._tests),
                         ("failing_scenario", self._scenario), ("regression", self._regression)):
            self.check_cancel()
            self.progress(name, f"validating: {name}")
            started = time.perf_counter()
            try:
                result = fn(started)
            except ToolError as exc:
                result = _stage(name, False, exc.message, started)
            except Cancelled:
                raise
            except Exception as exc:  # any fault of the machinery ends the candidate's validation, with the reason
                result = _stage(name, False, f"{type(exc).__name__}: {exc}"[:1000], started, internal_error=True)
            self.stages.append(result)
            if not result["passed"]:
                return False
        return True

    # -- stages ---------------------------------------------------------------------------

    def _manifest(self, started: float) -> dict[str, Any]:
        i = self.inputs
        manifest = load_manifest(self.path, expected_id=i.tool_id, expected_version=i.version)
        if manifest.type not in ("python", "executable"):
            return _stage("manifest", False, f"type {manifest.type!r}: evolved tools must be python or executable", started)
        if i.parent is not None and manifest.type != i.parent.type and i.parent.type != "mcp":  # an MCP tool is replaced
            return _stage("manifest", False, f"type changed from {i.parent.type} to {manifest.type}; keep the type", started)
        code = code_file(manifest, self.path.parent)
        if code is None or code.name != i.code_name:
            where = "entry" if manifest.type == "python" else "executable.args"
            return _stage("manifest", False, f"field '{where}' must run {i.code_name} (the candidate's code file)", started)
        if name_inside(self.path.parent, code) is None:
            return _stage("manifest", False, f"{code}: the code file is outside the candidate's folder", started)
        if not code.is_file():
            return _stage("manifest", False, f"{code.name}: the code file is missing", started)
        if i.parent is not None and not i.dynamic_schema and manifest.output_schema != i.parent.output_schema:
            return _stage("manifest", False, "output_schema changed but dynamic_schema is off", started)
        self.manifest = manifest
        self.entry = ToolEntry(i.tool_id, self.path, "evolved", version=i.version, manifest=manifest)
        return _stage("manifest", True, f"{manifest.type} tool, {len(manifest.tests)} tests", started)

    def _compile(self, started: float) -> dict[str, Any]:
        assert self.manifest is not None
        code = code_file(self.manifest, self.path.parent)
        assert code is not None
        raw = code.read_bytes()
        if len(raw) > MAX_CODE_BYTES:
            return _stage("compile", False, f"{code.name}: {len(raw)} bytes; the limit is {MAX_CODE_BYTES}", started)
        problem = source_problem(code.name, raw)  # what Python would run must be the text the reviewer reads
        if problem is not None:
            return _stage("compile", False, problem, started)
        try:
            compile(raw, code.name, "exec", dont_inherit=True)  # compiles only: nothing of it runs here
        except SyntaxError as exc:
            return _stage("compile", False, f"{code.name}:{exc.lineno}: SyntaxError: {exc.msg}", started)
        except ValueError as exc:
            return _stage("compile", False, f"{code.name}: {exc}", started)
        return _stage("compile", True, f"{code.name} compiles", started)

    def _run(self, inputs: list[Any]) -> tuple[list[tuple[Any, ToolError | None]], str | None]:
        """Each input through input validation, the sandbox, and output validation."""
        from tools.evolution.launchers import select
        from tools.evolution.sandbox import run_cases
        from tools.invoke import check_input, check_output

        assert self.entry is not None and self.manifest is not None
        prepared: list[tuple[Any, ToolError | None]] = []
        for data in inputs:
            try:
                prepared.append((check_input(self.entry, data), None))
            except ToolError as exc:
                prepared.append((None, exc))
        to_run = [d for d, err in prepared if err is None]
        run = run_cases(self.path.parent, self.manifest, to_run, timeout=self.inputs.timeout, memory_mb=self.inputs.memory_mb,
                        disk_mb=self.inputs.disk_mb, launcher=select(self.inputs.launcher)) if to_run else None
        if run is not None:
            self.protections = run.protections
            self.walls = {key: run.protections.get(key) for key in WALLS}
        results = iter(run.results if run else [])
        out: list[tuple[Any, ToolError | None]] = []
        for _data, err in prepared:
            if err is not None:
                out.append((None, err))
                continue
            case = next(results)
            if not case.ok:
                out.append((None, ToolError(case.error or "failed", error_class=case.error_class or "crash",
                                            tool_id=self.inputs.tool_id)))
                continue
            try:
                check_output(self.entry, case.result)
                out.append((case.result, None))
            except ToolError as exc:
                out.append((None, exc))
        return out, run.fatal if run else None

    def _tests(self, started: float) -> dict[str, Any]:
        assert self.manifest is not None
        tests = self.manifest.tests
        dropped = []
        if self.inputs.parent is not None:
            names = {t.name for t in tests}
            dropped = [t.name or f"test {n}" for n, t in enumerate(self.inputs.parent.tests, 1) if t.name not in names]
        if not tests:
            return _stage("tests", True, "the candidate manifest has no tests", started, skipped=True, dropped_parent_tests=dropped)
        outcomes, fatal = self._run([t.input if t.input is not None else {} for t in tests])
        cases = []
        for n, (case, (result, err)) in enumerate(zip(tests, outcomes, strict=True), 1):
            passed, detail = check_case(case, result, err)
            cases.append({"name": case.name or f"test {n}", "passed": passed, "detail": detail})
        failed = [c for c in cases if not c["passed"]]
        detail = f"{len(cases) - len(failed)}/{len(cases)} tests passed"
        if failed:
            detail += f"; first failure: {failed[0]['name']}: {failed[0]['detail']}"
        if fatal:
            detail += f" ({fatal})"
        if dropped:
            detail += f"; parent tests not kept: {', '.join(dropped)}"
        return _stage("tests", not failed, detail, started, cases=cases, dropped_parent_tests=dropped, sandbox=self.walls)

    def _scenario(self, started: float) -> dict[str, Any]:
        scenarios = self.inputs.scenarios
        if not scenarios:
            return _stage("failing_scenario", True, "no recorded failing input for this tool: nothing to replay", started,
                          skipped=True)
        outcomes, fatal = self._run([s["input"] for s in scenarios])
        cases = []
        for s, (_result, err) in zip(scenarios, outcomes, strict=True):
            was = f"{s.get('error_class') or 'error'}: {str(s.get('error') or '')[:120]}"
            if err is None:
                cases.append({"input": _short(s["input"]), "passed": True, "detail": f"now succeeds (was {was})"})
            else:
                same = err.error_class == s.get("error_class")
                cases.append({"input": _short(s["input"]), "passed": False,
                              "detail": f"{'still fails the same way' if same else 'fails differently'}: "
                                        f"{err.error_class}: {err.message[:200]}"})
        failed = [c for c in cases if not c["passed"]]
        detail = f"{len(cases) - len(failed)}/{len(cases)} recorded failing inputs now succeed"
        if failed:
            detail += f"; {failed[0]['detail']}"
        if fatal:
            detail += f" ({fatal})"
        return _stage("failing_scenario", not failed, detail, started, cases=cases, sandbox=self.walls)

    def _regression(self, started: float) -> dict[str, Any]:
        calls = self.inputs.regressions
        if self.inputs.parent is None:
            return _stage("regression", True, "a new tool has no parent version: regression skipped", started, skipped=True)
        if not calls:
            return _stage("regression", True, "no recorded successful call of the parent: nothing to replay", started,
                          skipped=True)
        outcomes, fatal = self._run([c["input"] for c in calls])
        cases = []
        for c, (result, err) in zip(calls, outcomes, strict=True):
            if err is not None:
                cases.append({"input": _short(c["input"]), "passed": False,
                              "detail": f"regression: {err.error_class}: {err.message[:200]}"})
                continue
            problem = None if self.inputs.dynamic_schema else shape_problem(c.get("output"), result)
            cases.append({"input": _short(c["input"]), "passed": problem is None,
                          "detail": "same shape" if problem is None else f"output shape changed: {problem}"})
        failed = [c for c in cases if not c["passed"]]
        how = "valid under the new output_schema" if self.inputs.dynamic_schema else "with outputs of the same shape"
        detail = f"{len(cases) - len(failed)}/{len(cases)} recorded calls of the parent still succeed {how}"
        if failed:
            detail += f"; {failed[0]['detail']}"
        if fatal:
            detail += f" ({fatal})"
        return _stage("regression", not failed, detail, started, cases=cases, sandbox=self.walls)


def _short(value: Any, limit: int = 160) -> str:
    text = json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= limit else text[: limit - 3] + "..."

