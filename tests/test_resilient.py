"""Self-recovering calls: the original's stories, skips in the trace, no unrelated fallback, bad input."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import exec_tool, python_tool
from tools.catalog.discovery import DEMO_DIR
from tools.errors import ToolError, ToolInputError, UsageError
from tools.recovery import controls
from tools.recovery.resilient import ResilientCallError, call_tool_resilient
from tools.recovery.selection import select_candidates

REPO = Path(__file__).resolve().parents[1]
HELLO = {"text": "Hello", "target": "fr"}
FRENCH = "Translate English text into French."


def translators(folder: Path) -> None:
    """Three French translators ranked alpha > beta > gamma by quality; only gamma works."""
    exec_tool(folder, "translator_alpha",
              "import sys\nsys.stdin.read()\nprint('service unreachable', file=sys.stderr)\nsys.exit(2)\n",
              description=FRENCH, tags=["translation"], quality_score=1.0)
    python_tool(folder, "translator_beta", "def run(data):\n    raise ConnectionError('quota exceeded')\n",
                description=FRENCH, tags=["translation"], quality_score=0.9)
    python_tool(folder, "translator_gamma", "def run(data):\n    return {'translation': 'bonjour'}\n",
                description=FRENCH, tags=["translation"], quality_score=0.8)


def copy_demo(folder: Path, *names: str) -> None:
    for name in names:
        for suffix in (".yaml", ".py"):
            shutil.copy(DEMO_DIR / f"{name}{suffix}", folder / f"{name}{suffix}")


def test_translate_to_french_third_candidate_succeeds(workspace, make_runtime):
    translators(workspace / "tools")
    rt = make_runtime()
    out = call_tool_resilient(rt, "translate to french", HELLO, tags=["translation"], max_attempts=5)
    assert out["ok"] and out["result"] == {"translation": "bonjour"} and out["tool_id"] == "translator_gamma"
    hops = out["hops"]
    assert [(h["tool_id"], h["outcome"]) for h in hops] == [
        ("translator_alpha", "exit_code"), ("translator_beta", "crash"), ("translator_gamma", "ok")]
    assert "service unreachable" in hops[0]["error"] and "quota exceeded" in hops[1]["error"]
    assert all(h["ms"] > 0 and h["similarity"] >= 0.35 and "similarity" in h["why"] for h in hops)
    snap = rt.extensions["failures"].scores_snapshot()
    assert snap[("translator_alpha", "1.0.0")]["score"] == pytest.approx(0.95)
    assert snap[("translator_beta", "1.0.0")]["score"] == pytest.approx(0.85)
    assert snap[("translator_gamma", "1.0.0")]["score"] == pytest.approx(0.8)
    failures = rt.store.query("SELECT tool_id, scenario, origin FROM failures ORDER BY id")
    assert [tuple(r) for r in failures] == [("translator_alpha", "translate to french", "resilient"),
                                            ("translator_beta", "translate to french", "resilient")]
    [run] = rt.extensions["failures"].recent_resilient(5)
    assert run["ok"] and [h["tool_id"] for h in run["hops"]] == [h["tool_id"] for h in hops]
    # the failure memory now predicts: the next similar scenario ranks the two that failed lower
    sel = select_candidates(rt, "translate this to french", tags=["translation"])
    assert sel.candidates[0].tool_id == "translator_gamma"
    assert all(c.penalty < 1 for c in sel.candidates if c.tool_id != "translator_gamma")


def test_demo_translation_never_tries_builtins_or_the_sink(make_runtime):
    rt = make_runtime(demo=True)
    out = call_tool_resilient(rt, "translate to french", HELLO)
    assert out["result"]["translation"] == "bonjour"
    tried = {h["tool_id"] for h in out["hops"]}
    assert tried <= {"translator_dictionary", "translator_remote"}
    sel = select_candidates(rt, "translate to french", limit=50)
    assert {c.tool_id for c in sel.candidates} == {"translator_dictionary", "translator_remote"}
    reasons = {s.tool_id: s.reason for s in sel.skipped}
    assert all(not t.startswith(("buffer", "usage_sink")) for t in {c.tool_id for c in sel.candidates})
    for tool_id, reason in reasons.items():
        assert "builtin" in reason or "sink" in reason, (tool_id, reason)


def test_csv_parser_fed_json_is_tagged_and_skipped_next_time(make_runtime):
    rt = make_runtime(demo=True)
    controls.set_disabled(rt, "json_parser", True, actor="tester", reason="force the fallback")
    with pytest.raises(ResilientCallError) as info:
        call_tool_resilient(rt, "parse JSON data", {"text": '{"a": 1}'}, tags=["parsing"])
    err = info.value
    assert err.error_class == "all_failed" and [h["tool_id"] for h in err.hops] == ["csv_parser"]
    assert err.hops[0]["outcome"] == "exit_code"
    assert {"tool_id": "json_parser", "reason": "disabled by tester"}.items() <= next(
        s for s in err.skipped if s["tool_id"] == "json_parser").items()
    assert rt.extensions["failures"].scores_snapshot()[("csv_parser", "1.0.0")]["tags"] == ["not-for-json"]
    controls.set_disabled(rt, "json_parser", False, actor="tester")
    out = call_tool_resilient(rt, "parse JSON records", {"text": "[1, 2]"}, tags=["parsing"])
    assert out["tool_id"] == "json_parser" and [h["tool_id"] for h in out["hops"]] == ["json_parser"]
    assert any(s["tool_id"] == "csv_parser" and s["reason"] == "negative tag not-for-json" for s in out["skipped"])
    # CSV work still goes to csv_parser: the tag is about JSON only
    out = call_tool_resilient(rt, "parse csv", {"text": "a,b\n1,2\n"}, tags=["parsing"])
    assert out["tool_id"] == "csv_parser"


def test_open_circuit_is_skipped_with_the_reason(workspace, make_runtime):
    translators(workspace / "tools")
    rt = make_runtime()
    controls.force_circuit(rt, "translator_alpha", "open", actor="ops", reason="vendor outage")
    out = call_tool_resilient(rt, "translate to french", HELLO, tags=["translation"])
    assert "translator_alpha" not in [h["tool_id"] for h in out["hops"]]
    assert any(s["tool_id"] == "translator_alpha" and s["reason"] == "circuit open (vendor outage)" for s in out["skipped"])


def test_nothing_unrelated_is_tried(workspace, make_runtime):
    translators(workspace / "tools")
    rt = make_runtime(demo=True)
    with pytest.raises(ResilientCallError) as info:
        call_tool_resilient(rt, "send an email to my boss", {"to": "boss"})
    err = info.value
    assert err.error_class == "no_candidates" and err.hops == [] and "nothing was tried" in str(err)
    assert rt.store.query_one("SELECT COUNT(*) FROM failures")[0] == 0
    [run] = rt.extensions["failures"].recent_resilient(5)
    assert run["ok"] is False and run["hops"] == []


def test_max_attempts_bounds_the_hops(workspace, make_runtime):
    translators(workspace / "tools")
    rt = make_runtime()
    with pytest.raises(ResilientCallError) as info:
        call_tool_resilient(rt, "translate to french", HELLO, tags=["translation"], max_attempts=2)
    assert [h["tool_id"] for h in info.value.hops] == ["translator_alpha", "translator_beta"]
    assert "all 2 candidates failed" in str(info.value)
    assert info.value.to_dict()["hops"][0]["outcome"] == "exit_code"


def test_mark_failures_false_keeps_the_scenario_out(workspace, make_runtime):
    translators(workspace / "tools")
    rt = make_runtime()
    call_tool_resilient(rt, "translate json to french", HELLO, tags=["translation"], mark_failures=False)
    rows = rt.store.query("SELECT scenario, origin, tags_added FROM failures")
    assert len(rows) == 2 and all(r["scenario"] == "" and r["tags_added"] == "[]" for r in rows)


@pytest.mark.parametrize("kwargs, exc, text", [
    ({"scenario": "  "}, UsageError, "scenario must be a non-empty string"),
    ({"scenario": 5}, UsageError, "scenario must be a non-empty string"),
    ({"max_attempts": 0}, UsageError, "max_attempts must be an integer from 1 to 50"),
    ({"max_attempts": True}, UsageError, "max_attempts"),
    ({"tags": [1]}, UsageError, "tags must be a list"),
    ({"input_data": "{not json"}, ToolInputError, "input is not valid JSON"),
])
def test_bad_input_is_refused_before_anything_runs(workspace, make_runtime, kwargs, exc, text):
    translators(workspace / "tools")
    rt = make_runtime()
    args = {"scenario": "translate to french", "input_data": HELLO, **kwargs}
    with pytest.raises(exc) as info:
        call_tool_resilient(rt, args.pop("scenario"), args.pop("input_data"), **args)
    assert text in str(info.value)
    assert rt.events.recent(10, kinds=["resilient.run"]) == []


def test_failure_in_one_process_changes_selection_in_another(workspace, make_runtime):
    copy_demo(workspace / "tools", "csv_parser", "json_parser")
    rt = make_runtime()
    before = select_candidates(rt, "parse JSON data", tags=["parsing"])
    assert [c.tool_id for c in before.candidates] == ["json_parser", "csv_parser"]
    assert all(c.penalty == 1.0 for c in before.candidates)
    script = ("from tools.runtime import Runtime\nfrom tools.recovery.ledger import mark_tool_failure\n"
              f"with Runtime({str(workspace)!r}) as rt:\n"
              "    mark_tool_failure(rt, 'json_parser', 'parse JSON data', 'RecursionError', 'high')\n")
    subprocess.run([sys.executable, "-c", script], check=True, timeout=60, cwd=REPO)
    out = subprocess.run([sys.executable, "-m", "tools", "-w", str(workspace), "fail", "csv_parser", "--scenario",
                          "parse JSON data", "--error", "JSONDecodeError", "--severity", "high"],
                         capture_output=True, text=True, timeout=60, cwd=REPO)
    assert out.returncode == 0 and "not-for-json" in out.stdout, out.stderr
    after = select_candidates(rt, "parse JSON data", tags=["parsing"])
    [json_parser] = after.candidates
    assert json_parser.tool_id == "json_parser" and json_parser.penalty < 1 and json_parser.score == pytest.approx(0.9)
    assert "failed on similar scenario" in json_parser.why
    assert [(s.tool_id, s.reason) for s in after.skipped if "builtin" not in s.reason] == [
        ("csv_parser", "negative tag not-for-json")]


def test_resilient_tool_call_builtin_takes_the_original_json(workspace, make_runtime):
    translators(workspace / "tools")
    rt = make_runtime()
    out = rt.call("resilient_tool_call", json.dumps({"scenario": "translate to french", "input_data": HELLO,
                                                      "tags": ["translation"], "max_attempts": 5}))
    assert out["tool_id"] == "translator_gamma" and len(out["hops"]) == 3
    with pytest.raises(ToolError) as info:
        rt.call("resilient_tool_call", {"scenario": "send an email to my boss", "input_data": {}})
    assert info.value.error_class == "no_candidates"
    row = rt.store.query_one("SELECT delta FROM failures WHERE tool_id='resilient_tool_call'")
    assert row["delta"] == 0  # the builtin is not demoted because nothing matched


def test_thin_executables_for_non_python_callers(workspace):
    translators(workspace / "tools")
    env = {"PATH": "/usr/bin:/bin", "TOOLDECK_WORKSPACE": str(workspace)}
    exe = REPO / "tools" / "builtins"
    run = subprocess.run([sys.executable, str(exe / "resilient_tool_call.py")], input=json.dumps(
        {"scenario": "translate to french", "input_data": HELLO, "tags": ["translation"]}), capture_output=True, text=True,
        timeout=90, env=env)
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout)["result"] == {"translation": "bonjour"}
    run = subprocess.run([sys.executable, str(exe / "mark_tool_failure.py")], input=json.dumps(
        {"tool_id": "translator_gamma", "scenario": "parse XML", "error_message": "bad", "severity": "low"}),
        capture_output=True, text=True, timeout=60, env=env)
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout)["score"] == pytest.approx(0.79)
    run = subprocess.run([sys.executable, str(exe / "mark_tool_failure.py")], input="{oops", capture_output=True, text=True,
                         timeout=60, env=env)
    assert run.returncode == 1 and "input is not valid JSON: " in json.loads(run.stdout)["error"]


def test_a_candidate_predicted_to_fail_is_tried_last_or_skipped_with_its_evidence(workspace, make_runtime):
    """Failures remembered on similar scenarios predict the next: a candidate predicted to fail at least
    0.5 likely is tried after the others, one past `skip_predicted_above` is skipped with the prediction
    and its evidence (while another candidate is left), and 1 never skips."""
    from tools.recovery import mark_tool_failure
    from tools.recovery.selection import SelectionSettings

    translators(workspace / "tools")
    (workspace / "tooldeck.toml").write_text("[resilient]\nskip_predicted_above = 0.6\n")
    rt = make_runtime()
    for scenario in ("translate to french", "translate this into french"):
        for _ in range(2):  # four failures: fewer than the circuit's minimum of five calls
            mark_tool_failure(rt, "translator_alpha", scenario, "service unreachable", "high")
    for _ in range(3):
        mark_tool_failure(rt, "translator_beta", "translate to french", "quota exceeded", "high")
    sel = select_candidates(rt, "translate to french", tags=["translation"])
    assert [c.tool_id for c in sel.candidates] == ["translator_gamma", "translator_beta"]
    beta = sel.candidates[1]
    assert 0.4 <= beta.predicted_failure < 0.6 and sel.candidates[0].predicted_failure == 0.0
    [alpha] = [s for s in sel.skipped if s.tool_id == "translator_alpha"]
    assert alpha.reason.startswith("predicted to fail (0.") and ">= 0.6): failed on similar scenario" in alpha.reason
    out = call_tool_resilient(rt, "translate to french", HELLO, tags=["translation"])
    assert [h["tool_id"] for h in out["hops"]] == ["translator_gamma"] and out["hops"][0]["predicted_failure"] == 0.0
    never = select_candidates(rt, "translate to french", tags=["translation"],
                              settings=SelectionSettings(skip_predicted_above=1.0))
    assert [c.tool_id for c in never.candidates][-1] == "translator_alpha"
    assert "tried last" in never.candidates[-1].why


def test_near_copies_of_a_candidate_are_tried_after_the_distinct_candidates(workspace, make_runtime):
    """Three copies of one CSV parser outrank a different tool that serves the scenario too: the
    best copy goes first, then the distinct tool, then the other copies (five copies of one tool
    are one option tried five times); `near_copy_similarity = 1` keeps the plain rank order."""
    from tools.recovery.selection import SelectionSettings

    folder = workspace / "tools"
    parse = "Parse CSV text into a list of rows, one dictionary per row keyed by the header."
    for name, quality in (("csv_rows", 1.0), ("csv_rows_mirror", 0.95), ("csv_rows_backup", 0.9)):
        python_tool(folder, name, "def run(data):\n    return {'rows': []}\n", description=parse, tags=["csv"], quality_score=quality)
    python_tool(folder, "spreadsheet_import", "def run(data):\n    return {'rows': []}\n",
                description="Import spreadsheet files (CSV, TSV) and return their cells by column.", tags=["csv"],
                quality_score=0.5)
    rt = make_runtime()
    plain = select_candidates(rt, "parse this CSV text into rows", tags=["csv"], settings=SelectionSettings(near_copy_similarity=1.0))
    assert [c.tool_id for c in plain.candidates] == ["csv_rows", "csv_rows_mirror", "csv_rows_backup", "spreadsheet_import"]
    assert not any("near-copy" in c.why for c in plain.candidates)
    sel = select_candidates(rt, "parse this CSV text into rows", tags=["csv"])
    assert [c.tool_id for c in sel.candidates] == ["csv_rows", "spreadsheet_import", "csv_rows_mirror", "csv_rows_backup"]
    assert "near-copy of csv_rows (similarity 0.9" in sel.candidates[2].why
    assert "tried after the distinct candidates" in sel.candidates[3].why
    assert "near-copy" not in sel.candidates[0].why + sel.candidates[1].why
    (workspace / "tooldeck.toml").write_text("[resilient]\nnear_copy_similarity = 0\n")
    with pytest.raises(UsageError, match="near_copy_similarity must be in"):
        select_candidates(make_runtime(), "parse this CSV text into rows", tags=["csv"])


def test_a_distinct_candidate_ranked_below_many_copies_still_comes_second(workspace, make_runtime):
    """The near-copy pass looks at a prefix of the ranking when it holds enough distinct candidates, and at
    all of it when it does not: twenty copies of one parser rank above the one different tool."""
    folder = workspace / "tools"
    parse = "Parse CSV text into a list of rows, one dictionary per row keyed by the header."
    for n in range(20):
        python_tool(folder, f"csv_rows_{n:02d}", "def run(data):\n    return {'rows': []}\n", description=parse, tags=["csv"],
                    quality_score=round(1.0 - 0.01 * n, 2))
    python_tool(folder, "spreadsheet_import", "def run(data):\n    return {'rows': []}\n",
                description="Import spreadsheet files (CSV, TSV) and return their cells by column.", tags=["csv"],
                quality_score=0.3)
    rt = make_runtime()
    sel = select_candidates(rt, "parse this CSV text into rows", tags=["csv"], limit=3)
    assert [c.tool_id for c in sel.candidates] == ["csv_rows_00", "spreadsheet_import", "csv_rows_01"]
    assert "near-copy of csv_rows_00" in sel.candidates[2].why


def test_a_hops_error_keeps_the_message_whole_and_the_end_of_a_long_traceback(workspace, make_runtime):
    """A crash's message says what failed and the end of stderr where; a long traceback is cut from
    its start, never the message (the joined text cut from the end left `eet | Traceback ...`)."""
    folder = workspace / "tools"
    python_tool(folder, "deep_parser", "def run(data, depth=40):\n    if depth:\n        return run(data, depth - 1)\n"
                "    raise ValueError('no sheet in this workbook')\n", description="Parse spreadsheet workbooks into sheets",
                tags=["sheets"])
    rt = make_runtime()
    with pytest.raises(ResilientCallError) as info:
        call_tool_resilient(rt, "parse a spreadsheet workbook", {"path": "x"}, tags=["sheets"], mark_failures=False)
    [hop] = info.value.hops
    error = hop["error"]
    assert len(error) <= 300 and error.startswith("deep_parser: ValueError: no sheet in this workbook | "), error
    assert error.rstrip().endswith("ValueError: no sheet in this workbook"), error
