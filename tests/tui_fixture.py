"""A fixed dashboard frame for layout snapshots: every panel populated, no clocks, no pids that vary."""

from __future__ import annotations

from state.events import Event
from tui.snapshot import Snapshot, ToolRow, summary_line

T0 = 1_700_000_000.0  # a fixed instant; tests set TZ=UTC

DIFF = """--- a/csv_parser.py (1.0.0)
+++ b/csv_parser_v1_1_0.py (1.1.0)
@@ -1,12 +1,18 @@
 import csv
 import io
 import json
 import sys
 
 
 def main() -> int:
     request = json.load(sys.stdin)
     text = request["text"]
-    if text.lstrip()[:1] in ("{", "["):
-        print("this looks like JSON, not CSV", file=sys.stderr)
-        return 1
+    stripped = text.lstrip()
+    if stripped[:1] in ("{", "["):
+        data = json.loads(stripped)
+        rows = data if isinstance(data, list) else [data]
+        columns = sorted({k for row in rows for k in row})
+        json.dump({"columns": columns, "rows": rows}, sys.stdout)
+        return 0
     reader = csv.DictReader(io.StringIO(text))
"""


def proposal() -> dict:
    return {
        "id": 1, "tool_id": "csv_parser", "version": "1.1.0", "parent_version": "1.0.0", "status": "awaiting_review",
        "mutation_hint": "Support JSON input too", "error_message": "JSONDecodeError: input looks like JSON",
        "provider": "replay", "model": "replay", "replay": True, "tokens": {"input": 0, "output": 0}, "updated": T0,
        "stages": [
            {"name": "manifest", "passed": True, "ms": 1.2, "detail": "executable tool, 4 tests"},
            {"name": "compile", "passed": True, "ms": 8.0, "detail": "csv_parser_v1_1_0.py compiles"},
            {"name": "tests", "passed": True, "ms": 140.0, "detail": "4/4 passed"},
            {"name": "scenario", "passed": True, "ms": 40.0, "detail": "JSON input no longer fails"},
            {"name": "regression", "passed": True, "ms": 90.0, "detail": "12 recorded calls, same shape"},
        ],
        "protections": {"rlimits": True, "unprivileged_user": True, "no_network": True, "timeout": 10},
        "diff": DIFF, "current_diff_sha256": "3f2a" + "0" * 60,
    }


def frame() -> Snapshot:
    tools = [
        ToolRow("csv_parser", "ready", "1.0.0", "", "executable", "demo", 0.8, "closed", 42, 7, 31.0, ""),
        ToolRow("flaky_tool", "ready", "1.0.0", "", "python", "demo", 0.42, "open", 120, 61, 0.4, ""),
        ToolRow("json_parser", "ready", "1.1.0", "global", "python", "demo", 1.0, "closed", 88, 0, 0.3, ""),
        ToolRow("translator_remote", "ready", "1.0.0", "", "executable", "demo", 0.9, "half_open", 10, 10, 2950.0, ""),
        ToolRow("usage_sink", "ready", "1.0.0", "", "python", "demo", 1.0, "closed", 4000, 0, 1.1, ""),
        ToolRow("audit_sink", "ready", "1.2.0", "s-7f3a9c", "python", "workspace", 0.55, "closed", 12345, 17, 12.0, "",
                disabled=True),
        ToolRow("broken_tool", "error", "", "", "", "workspace", None, "", 0, 0, None,
                "tools/broken_tool.yaml: field 'type': Input should be 'executable', 'python', 'builtin' or 'llm'"),
    ]
    buffers = [{
        "buffer_id": "usage_tracking", "flush_strategy": "batched", "max_size": 50, "max_pending": 10000, "flush_interval_seconds": 2,
        "pending": 37, "fill_ratio": 0.74, "pending_ratio": 0.0037, "writes_per_s": 1003.0, "flushed_per_s": 1000.0,
        "writes_history": [980, 1010, 1003, 995, 1020, 990, 1004, 1001, 999, 1000, 1002, 998], "last_flush_at": T0,
        "last_flush_count": 50, "last_flush_result": "ok", "next_flush_at": None, "retries_total": 2, "dead_letter_batches": 0,
        "dropped_total": 0, "warning": None, "last_flush_error": None,
    }, {
        "buffer_id": "audit", "flush_strategy": "manual", "max_size": 100, "max_pending": None, "flush_interval_seconds": 5,
        "pending": 100, "fill_ratio": 1.0, "pending_ratio": None, "writes_per_s": 0.0, "flushed_per_s": 0.0,
        "writes_history": [], "last_flush_at": T0, "last_flush_count": 20, "last_flush_result": "dead_letter",
        "next_flush_at": None, "retries_total": 5, "dead_letter_batches": 1, "dropped_total": 3,
        "warning": "100 pending and no live runtime is flushing this buffer", "last_flush_error": "sink timed out",
    }, {
        "buffer_id": "metrics", "flush_strategy": "batched", "max_size": 50, "max_pending": None, "flush_interval_seconds": 1,
        "pending": 62297, "waiting": 62247, "in_flight": 50, "fill_ratio": 1245.94, "pending_ratio": None, "writes_per_s": 4000.0,
        "flushed_per_s": 900.0, "writes_history": [4000] * 12, "flushed_history": [900] * 12, "last_flush_at": T0,
        "last_flush_count": 50, "last_flush_result": "ok", "next_flush_at": None, "retries_total": 0, "dead_letter_batches": 0,
        "dropped_total": 0, "warning": None, "last_flush_error": None,
    }, {
        "buffer_id": "orders", "flush_strategy": "batched", "max_size": 20, "max_pending": 5000, "flush_interval_seconds": 5,
        "pending": 5715, "waiting": 5715, "in_flight": 0, "fill_ratio": 285.75, "pending_ratio": 1.143, "writes_per_s": 60.0,
        "flushed_per_s": 0.0, "writes_history": [60] * 12, "flushed_history": [0] * 12, "last_flush_at": T0,
        "last_flush_count": 20, "last_flush_result": "failed", "next_flush_at": None, "retries_total": 9, "dead_letter_batches": 2,
        "dropped_total": 0, "warning": None, "last_flush_error": "orders_sink: exited with code 1",
    }]
    scores = [
        {"tool_id": "flaky_tool", "version": "1.0.0", "score": 0.42, "tags": [], "circuit": "open", "disabled": False, "failures": 61,
         "trend": [1.0, 0.95, 0.9, 0.8, 0.7, 0.6, 0.5, 0.42]},
        {"tool_id": "csv_parser", "version": "1.0.0", "score": 0.8, "tags": ["not-for-json"], "circuit": "closed", "disabled": False,
         "failures": 7, "trend": [1.0, 0.9, 0.85, 0.8]},
    ]
    failures = [
        {"id": 2, "ts": T0, "tool_id": "csv_parser", "scenario": "parse JSON data", "error_class": "exit_code", "severity": "high",
         "error": "csv_parser: exited with code 1: this looks like JSON, not CSV"},
        {"id": 1, "ts": T0 - 5, "tool_id": "flaky_tool", "scenario": "", "error_class": "crash", "severity": "medium",
         "error": "flaky_tool: RuntimeError: flaky failure (rate 0.5)"},
    ]
    resilient = [{"id": 10, "ts": T0, "scenario": "parse tabular records", "ok": True, "hops": [
        {"tool_id": "csv_parser", "version": "1.0.0", "outcome": "exit_code", "similarity": 0.71, "score": 0.8, "ms": 31.0,
         "why": "best match", "error": "looks like JSON"},
        {"tool_id": "json_parser", "version": "1.1.0", "outcome": "ok", "similarity": 0.66, "score": 1.0, "ms": 0.4, "why": "next best"},
    ]}]
    events = [
        Event(1, T0, 1000, "s-1", "load.finished", None, None, {"summary": "Ready: 6 tools, 1 error", "seconds": 0.02}),
        Event(2, T0, 1000, "s-1", "buffer.flush", None, None, {"buffer_id": "usage_tracking", "count": 50}),
        Event(3, T0, 1001, "s-2", "evolution.proposed", "csv_parser", "1.1.0", {"proposal_id": 1}),
        Event(4, T0, 1001, "s-2", "tool.error", "broken_tool", None, {"error": "field 'type'"}),
    ]
    rolled_back = {**proposal(), "id": 2, "tool_id": "json_parser", "status": "rolled_back", "mutation_hint": "Faster parsing"}
    failed = {**proposal(), "id": 3, "tool_id": "flaky_tool", "status": "failed_validation", "mutation_hint": "Never fail",
              "diff": "", "failure": "tests: 0/2 passed"}
    return Snapshot(T0, summary_line(tools, True), False, tools=tools, buffers=buffers, scores=scores, failures=failures,
                    resilient=resilient, proposals=[failed, rolled_back, proposal()], sessions=[], events=events)
