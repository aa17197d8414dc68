"""Running a manifest's own `tests`: by `tooldeck test`, and by the evolution sandbox."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

from tools.catalog.entry import ToolEntry
from tools.catalog.manifest import ToolTest
from tools.errors import ToolError


def contains(actual: Any, expected: Any) -> bool:
    """Subset match: dict keys recursively, list elements, substrings."""
    if isinstance(expected, dict):
        return isinstance(actual, dict) and all(k in actual and contains(actual[k], v) for k, v in expected.items())
    if isinstance(expected, list):
        if isinstance(actual, list):
            return all(any(contains(a, e) for a in actual) for e in expected)
        return False
    if isinstance(expected, str):
        if isinstance(actual, str):
            return expected in actual
        if isinstance(actual, (dict, list)):
            return expected in json.dumps(actual)
    return actual == expected


def check_case(case: ToolTest, result: Any, error: ToolError | None) -> tuple[bool, str]:
    if case.expect_error is not None and case.expect_error is not False:
        if error is None:
            return False, f"expected an error, got {json.dumps(result)[:200]}"
        if isinstance(case.expect_error, str) and case.expect_error not in (error.message + " " + error.error_class):
            return False, f"expected error containing {case.expect_error!r}, got {error.message[:200]}"
        return True, "failed as expected"
    if error is not None:
        return False, f"{error.error_class}: {error.message[:300]}"
    if case.expect is not None and result != case.expect:
        return False, f"expected {json.dumps(case.expect)[:200]}, got {json.dumps(result)[:200]}"
    if case.expect_contains is not None and not contains(result, case.expect_contains):
        return False, f"expected to contain {json.dumps(case.expect_contains)[:200]}, got {json.dumps(result)[:200]}"
    return True, "ok"


def run_manifest_tests(call: Callable[[Any], Any], entry: ToolEntry) -> list[dict[str, Any]]:
    assert entry.manifest is not None
    results = []
    for index, case in enumerate(entry.manifest.tests, 1):
        started = time.perf_counter()
        result: Any = None
        error: ToolError | None = None
        try:
            result = call(case.input if case.input is not None else {})
        except ToolError as exc:
            error = exc
        passed, detail = check_case(case, result, error)
        results.append({
            "name": case.name or f"test {index}", "passed": passed, "detail": detail,
            "ms": round((time.perf_counter() - started) * 1000, 1),
        })
    return results
