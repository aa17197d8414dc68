"""Failure ledger: the score rules (table-driven and under Hypothesis), negative tags, and what the runtime records."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.helpers import exec_tool, python_tool
from tools.errors import InvalidIdError, ToolError, UnknownToolError, UsageError
from tools.recovery.ledger import mark_tool_failure
from tools.recovery.rules import (
    SEVERITY_DELTA,
    demote,
    demotion,
    negative_tags,
    recover,
    scenario_formats,
)


def rows(rt, sql, params=()):
    return [dict(r) for r in rt.store.query(sql, params)]


# -- the rules ----------------------------------------------------------------------

@pytest.mark.parametrize("severity, error_class, source, recent, delta, circuit, trips, tags", [
    ("low", "reported", "workspace", 1, 0.01, True, False, False),
    ("medium", "reported", "workspace", 1, 0.05, True, False, True),
    ("high", "reported", "workspace", 1, 0.10, True, False, True),
    ("critical", "reported", "workspace", 1, 0.25, True, True, True),
    ("medium", "exit_code", "demo", 5, 0.05, True, False, True),     # the 5th failure: no acceleration yet
    ("medium", "exit_code", "demo", 6, 0.10, True, False, True),     # past 5: +0.05
    ("high", "timeout", "workspace", 10, 0.15, True, False, True),
    ("high", "timeout", "workspace", 11, 0.20, True, False, True),   # past 10: +0.10
    ("low", "crash", "evolved", 50, 0.11, True, False, False),
    ("high", "bad_input", "workspace", 1, 0.01, False, False, False),  # a caller's bad input: at most low
    ("critical", "bad_usage", "workspace", 20, 0.01, False, False, False),
    ("high", "bad_input", "builtin", 1, 0.0, False, False, False),   # builtins: recorded, never demoted
    ("medium", "all_failed", "builtin", 30, 0.0, False, False, False),
    ("medium", "exit_code", "builtin", 1, 0.0, False, False, False),
    ("medium", "crash", "builtin", 1, 0.05, True, False, True),      # a bug in the runtime's own tool still counts
    ("high", "reported", "builtin", 1, 0.10, True, False, True),
])
def test_demotion_table(severity, error_class, source, recent, delta, circuit, trips, tags):
    rule = demotion(severity, error_class, source, recent)
    assert rule.delta == pytest.approx(delta)
    assert (rule.counts_for_circuit, rule.trips_circuit, rule.may_tag) == (circuit, trips, tags)


@pytest.mark.parametrize("score, delta, expected", [
    (1.0, 0.05, 0.95), (0.03, 0.10, 0.0), (0.0, 0.25, 0.0), (0.5, 0.0, 0.5), (0.5, -0.3, 0.5),
])
def test_demote_table(score, delta, expected):
    assert demote(score, delta) == pytest.approx(expected)


@pytest.mark.parametrize("score, base, successes, expected", [
    (0.0, 1.0, 1, 0.002),      # a zero recovers slowly, never jumps back to 1.0
    (0.0, 1.0, 0, 0.0),
    (0.9, 1.0, 25, 0.95),
    (0.99, 1.0, 100, 1.0),     # capped at the manifest's quality_score
    (0.5, 0.6, 1000, 0.6),
    (0.7, 0.6, 10, 0.7),       # above base (base lowered by a manifest edit): successes do not move it
])
def test_recover_table(score, base, successes, expected):
    assert recover(score, base, successes) == pytest.approx(expected)


events = st.lists(st.one_of(
    st.tuples(st.just("fail"), st.sampled_from(list(SEVERITY_DELTA)), st.sampled_from(["reported", "crash", "bad_input", "timeout"]),
              st.sampled_from(["workspace", "builtin"]), st.integers(0, 40)),
    st.tuples(st.just("ok"), st.integers(0, 2000)),
), max_size=80)


@settings(max_examples=300, deadline=None)
@given(base=st.floats(0.0, 1.0), seq=events)
def test_scores_stay_in_unit_interval(base, seq):
    score = base
    for ev in seq:
        before = score
        if ev[0] == "fail":
            score = demote(score, demotion(ev[1], ev[2], ev[3], ev[4]).delta)
            assert score <= before
        else:
            score = recover(score, base, ev[1])
            assert before <= score <= max(base, before)
        assert 0.0 <= score <= 1.0


@pytest.mark.parametrize("scenario, tool_id, tool_tags, expected", [
    ("parse JSON data", "csv_parser", ["csv", "parsing"], ["not-for-json"]),
    ("parse JSON data", "json_parser", ["json"], []),             # its own format: score and circuit, not a tag
    ("convert the XML feed to YAML", "converter", [], ["not-for-xml", "not-for-yaml"]),
    ("read a latin-1 encoded file", "reader", [], ["not-for-non-utf8"]),
    ("summarise a very large input file", "summariser", [], ["not-for-large-input"]),
    ("extract tables from a PDF", "extractor", [], ["not-for-pdf"]),
    ("parse the comma-separated export", "json_parser", ["json"], ["not-for-csv"]),
    ("translate to french", "translator", [], []),                 # no format named: no tag
    ("Parse extraordinarily complicated things", "parser", [], []),  # long words never become tags
    ("", "parser", [], []),
])
def test_negative_tags_table(scenario, tool_id, tool_tags, expected):
    assert negative_tags(scenario, tool_id, tool_tags) == expected


def test_scenario_formats_word_boundaries():
    assert scenario_formats("jsonify the html page") == ["html"]
    assert scenario_formats("YAML and ndjson") == ["json", "yaml"]


# -- the ledger ------------------------------------------------------------------------

def _tools(folder: Path) -> None:
    python_tool(folder, "boom", "def run(data):\n    raise ValueError('boom ' + str(data.get('x')))\n", tags=["test"])
    python_tool(folder, "echo", "def run(data):\n    return {'echo': data.get('x')}\n", tags=["test"],
                input_schema={"x": {"type": "string", "required": True}})
    python_tool(folder, "liar", "def run(data):\n    return {'nope': 1}\n", output_schema={"type": "object", "required": ["yes"]})
    exec_tool(folder, "exits", "import sys\nsys.stdin.read()\nprint('went wrong', file=sys.stderr)\nsys.exit(3)\n")


def test_mark_tool_failure_records_row_event_score_tags(workspace, make_runtime):
    _tools(workspace / "tools")
    rt = make_runtime()
    out = mark_tool_failure(rt, "echo", "parse JSON data", "JSONDecodeError: Expecting value", "high")
    assert out["tool_id"] == "echo" and out["version"] == "1.0.0" and out["severity"] == "high"
    assert out["delta"] == pytest.approx(0.10) and out["score"] == pytest.approx(0.90)
    assert out["tags_added"] == ["not-for-json"]
    [row] = rows(rt, "SELECT * FROM failures")
    assert (row["tool_id"], row["scenario"], row["origin"], row["error_class"]) == ("echo", "parse JSON data", "manual", "reported")
    [ev] = rt.events.recent(10, kinds=["tool.failure"])
    assert ev.tool_id == "echo" and ev.payload["failure_id"] == row["id"] and ev.payload["tags_added"] == ["not-for-json"]
    tracker = rt.extensions["failures"]
    snap = tracker.scores_snapshot()[("echo", "1.0.0")]
    assert snap == {"score": 0.9, "tags": ["not-for-json"], "circuit": "closed", "disabled": False, "failures": 1}
    assert [h["reason"] for h in tracker.score_history("echo", "1.0.0")] == ["failure"]
    assert tracker.recent_failures("echo")[0]["tags_added"] == ["not-for-json"]
    # a second identical failure adds no duplicate tag; the score keeps falling
    out = mark_tool_failure(rt, "echo", "parse JSON data", "again", "high")
    assert out["tags_added"] == [] and out["tags"] == ["not-for-json"] and out["score"] == pytest.approx(0.80)


@pytest.mark.parametrize("args, exc, text", [
    (("nosuch", "s", "e", "high"), UnknownToolError, "unknown tool 'nosuch'"),
    (("Bad-Id", "s", "e", "high"), InvalidIdError, "invalid tool id"),
    (("echo", "s", "e", "severe"), UsageError, "invalid severity 'severe'"),
    (("echo", 42, "e", "low"), UsageError, "scenario must be a string"),
    (("echo", "s", None, "low"), UsageError, "error_message must be a string"),
    (("echo", "s", "  ", "low"), UsageError, "error_message is empty: say what went wrong"),
    (("echo", "", "e", "low"), UsageError, "scenario is empty: say what was asked"),
    (("echo", "s", "e", "low", "Not A Class"), UsageError, "invalid error_class"),
])
def test_mark_tool_failure_bad_input_is_one_line_and_records_nothing(workspace, make_runtime, args, exc, text):
    _tools(workspace / "tools")
    rt = make_runtime()
    with pytest.raises(exc) as info:
        mark_tool_failure(rt, *args)
    assert text in str(info.value) and "\n" not in str(info.value)
    assert rows(rt, "SELECT COUNT(*) AS n FROM failures")[0]["n"] == 0


def test_output_that_is_not_json_is_never_passed_on_as_json(workspace, make_runtime):
    """NaN and Infinity are not JSON, though Python's parser takes them: a python tool returning one fails as
    `bad_output` (before, a crash or a result that `--json` printed as invalid JSON); an executable printing one, or
    nesting past the parser's depth, answered text, as any output that is not JSON does (before: a float NaN, and a
    RecursionError counted as the tool's crash)."""
    folder = workspace / "tools"
    python_tool(folder, "nan_py", "def run(data):\n    return {'a': float('nan')}\n")
    python_tool(folder, "set_py", "def run(data):\n    return {'a': {1, 2}}\n")
    exec_tool(folder, "nan_exe", "import sys\nsys.stdin.read()\nprint('{\"a\": NaN}')\n")
    exec_tool(folder, "deep_exe", "import sys\nsys.stdin.read()\nprint('[' * 100000)\n")
    rt = make_runtime()
    for tool in ("nan_py", "set_py"):
        with pytest.raises(ToolError) as info:
            rt.call(tool, {})
        assert info.value.error_class == "bad_output" and "its result is not JSON" in info.value.message, info.value
    assert rt.call("nan_exe", {}) == '{"a": NaN}\n'
    assert rt.call("deep_exe", {}) == "[" * 100000 + "\n"
    with pytest.raises(ToolError) as again:  # the worker lives on: the next call is refused the same way
        rt.call("nan_py", {})
    assert again.value.error_class == "bad_output"


def test_runtime_records_every_failure_with_its_class(workspace, make_runtime):
    _tools(workspace / "tools")
    rt = make_runtime()
    for tool, data, cls in (("boom", {"x": "1"}, "crash"), ("exits", {}, "exit_code"), ("liar", {}, "bad_output"),
                            ("echo", {"x": 5}, "bad_input")):
        with pytest.raises(ToolError) as info:
            rt.call(tool, data)
        assert info.value.error_class == cls
    got = {r["tool_id"]: r for r in rows(rt, "SELECT * FROM failures")}
    assert {t: (r["error_class"], r["origin"], r["severity"], r["delta"]) for t, r in got.items()} == {
        "boom": ("crash", "runtime", "medium", 0.05), "exits": ("exit_code", "runtime", "medium", 0.05),
        "liar": ("bad_output", "runtime", "medium", 0.05), "echo": ("bad_input", "runtime", "low", 0.01),
    }
    assert "went wrong" in got["exits"]["error"]  # the stderr tail is kept
    assert got["boom"]["scenario"] == "" and json.loads(got["boom"]["tags_added"]) == []


def test_builtin_is_not_demoted_for_a_callers_bad_input(workspace, make_runtime):
    rt = make_runtime()
    with pytest.raises(ToolError) as info:
        rt.call("mark_tool_failure", {"tool_id": "nosuch_tool_at_all", "scenario": "x"})
    assert info.value.error_class == "bad_input"
    with pytest.raises(UnknownToolError):
        rt.call("mark_tool_failure", {"tool_id": "nosuch_tool_at_all", "scenario": "x", "error_message": "e"})
    got = rows(rt, "SELECT * FROM failures ORDER BY id")
    assert [(r["tool_id"], r["error_class"], r["delta"]) for r in got] == [
        ("mark_tool_failure", "bad_input", 0.0), ("mark_tool_failure", "unknown_tool", 0.0)]
    assert rt.extensions["failures"].scores_snapshot()[("mark_tool_failure", "1.0.0")]["score"] == 1.0


def test_mark_tool_failure_builtin_takes_the_original_json(workspace, make_runtime):
    _tools(workspace / "tools")
    rt = make_runtime()
    out = rt.call("mark_tool_failure", json.dumps({"tool_id": "echo", "scenario": "parse JSON data",
                                                   "error_message": "JSONDecodeError", "severity": "high"}))
    assert out["success"] is True and out["tags_added"] == ["not-for-json"] and out["score"] == pytest.approx(0.9)


def test_successes_recover_slowly_in_batches(workspace, make_runtime):
    _tools(workspace / "tools")
    rt = make_runtime()
    mark_tool_failure(rt, "echo", "anything", "e", "medium")
    for _ in range(10):
        rt.call("echo", {"x": "a"})
    tracker = rt.extensions["failures"]
    assert tracker.scores_snapshot()[("echo", "1.0.0")]["score"] == pytest.approx(0.97)  # in memory at once
    tracker.sync(force=True)
    row = rows(rt, "SELECT score, successes FROM tool_health WHERE tool_id='echo'")[0]
    assert row["score"] == pytest.approx(0.97) and row["successes"] == 10
    assert [h["reason"] for h in tracker.score_history("echo")] == ["failure", "recovery"]


def test_zero_stays_zero_until_successes(workspace, make_runtime):
    _tools(workspace / "tools")
    rt = make_runtime()
    for _ in range(5):
        out = mark_tool_failure(rt, "echo", "s", "e", "critical")
    assert out["score"] == 0.0
    rt.close()
    rt2 = make_runtime()  # a fresh process view reads 0.0 back, not 1.0
    rt2.wait_ready(10)
    assert rt2.extensions["failures"].scores_snapshot()[("echo", "1.0.0")]["score"] == 0.0


def test_an_evolved_version_starts_clean(workspace, make_runtime):
    _tools(workspace / "tools")
    evolved = workspace / ".tooldeck" / "evolved" / "echo" / "1.1.0"
    python_tool(evolved, "echo", "def run(data):\n    return {'echo': data.get('x')}\n", version="1.1.0", tags=["test"])
    rt = make_runtime()
    rt.wait_ready(10)
    mark_tool_failure(rt, "echo", "parse JSON data", "e", "critical")
    snap = rt.extensions["failures"].scores_snapshot()
    assert snap[("echo", "1.0.0")]["tags"] == ["not-for-json"] and snap[("echo", "1.0.0")]["circuit"] == "open"
    assert snap[("echo", "1.1.0")] == {"score": 1.0, "tags": [], "circuit": "closed", "disabled": False, "failures": 0}


def test_a_long_error_keeps_its_message_and_its_end_in_the_ledger_and_the_event(workspace, make_runtime):
    """A tool that floods stderr before it exits: the recorded error is cut in the middle, so the row and
    the tool.failure event still say what happened (the message comes first) and how it ended."""
    exec_tool(workspace / "tools", "noisy", "import sys\nsys.stdin.read()\nsys.stderr.write('E' * 20000)\n"
                                          "print('last words', file=sys.stderr)\nsys.exit(3)\n")
    rt = make_runtime()
    with pytest.raises(ToolError) as caught:
        rt.call("noisy", {})
    message = caught.value.message
    [row] = rows(rt, "SELECT error FROM failures")
    [ev] = rt.events.recent(10, kinds=["tool.failure"])
    for stored, limit in ((row["error"], 2000), (ev.payload["error"], 300)):
        assert len(stored) <= limit and stored.startswith(message[:60]) and "\u2026" in stored
        assert stored.endswith("last words"), stored[-80:]
