"""What evolution remembers (tools/evolution/memory.py): approved fixes and rejected approaches of
similar failures are offered to the next evolution, recorded on its proposal, and a candidate that
repeats a rejected approach is flagged; `[evolution] memory = false` turns it off. Both backends."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.evolution_helpers import GREET_V1, MANIFEST_EXTRA, greet_answer, greet_tool, settings
from tests.helpers import python_tool
from tests.messages_server import MessagesServer, anthropic_server_fixture, messages_server_fixture  # noqa: F401
from tools.evolution.evolve import evolve_tool
from tools.evolution.memory import failure_text, prompt_section, recall
from tools.evolution.review import approve, get_proposal, reject

ERROR = "name must be letters only"
HINT = "Allow spaces in names"


def asked(server: MessagesServer) -> str:
    """The user message of the newest request the model received."""
    content = server.requests[-1].body["messages"][0]["content"]
    return content if isinstance(content, str) else " ".join(c.get("text", "") for c in content)


def evolved(rt: Any, server: MessagesServer, tool_id: str = "greet", error: str = ERROR, hint: str = HINT) -> dict[str, Any]:
    answer = greet_answer(name=tool_id, entry=f"{tool_id}_v1_1_0.py:run") if tool_id != "greet" else greet_answer()
    server.reply_tool_use("write_tool_version", answer)
    proposal = evolve_tool(rt, tool_id, error, hint)
    assert proposal["status"] == "awaiting_review", proposal.get("failure")
    return get_proposal(rt, proposal["id"])


def test_an_approved_fix_is_offered_to_a_similar_failure_of_another_tool(workspace: Path, make_runtime, anthropic_server):
    settings(workspace)
    greet_tool(workspace)
    python_tool(workspace / "tools", "salute", GREET_V1, **MANIFEST_EXTRA)
    rt = make_runtime()
    first = evolved(rt, anthropic_server)
    assert "Fixes reviewers approved" not in asked(anthropic_server) and first["memory"] == {}
    approve(rt, first["id"], "global", "alice", first["current_diff_sha256"])

    second = evolved(rt, anthropic_server, "salute", "salute: name must be letters only", "accept spaces in the name")
    prompt = asked(anthropic_server)
    assert "## Fixes reviewers approved for similar failures" in prompt
    assert f"### proposal {first['id']}: greet 1.1.0" in prompt and "+    name = \" \".join(data[\"name\"].split())" in prompt
    assert [f["proposal_id"] for f in second["memory"]["fixes"]] == [first["id"]]
    assert any(e.kind == "evolution.memory" and e.payload["fixes"] == [first["id"]] for e in rt.events.recent(50))


def test_a_rejected_approach_is_fed_back_and_a_repeat_of_it_is_flagged(workspace: Path, make_runtime, anthropic_server):
    settings(workspace)
    greet_tool(workspace)
    rt = make_runtime()
    first = evolved(rt, anthropic_server)
    reject(rt, first["id"], "collapsing inner whitespace changes names; keep them as typed", "bob")

    again = evolved(rt, anthropic_server)  # the model proposes the same change again
    prompt = asked(anthropic_server)
    assert "## Approaches reviewers rejected for similar failures (do not propose them again)" in prompt
    assert "collapsing inner whitespace changes names; keep them as typed" in prompt
    assert again["memory"]["avoid"][0]["proposal_id"] == first["id"]
    repeated = again["memory"]["repeats"]
    assert repeated["proposal_id"] == first["id"] and repeated["status"] == "rejected" and repeated["ratio"] >= 0.8


def test_memory_off_offers_nothing(workspace: Path, make_runtime, anthropic_server):
    settings(workspace, evolution="memory = false")
    greet_tool(workspace)
    rt = make_runtime()
    first = evolved(rt, anthropic_server)
    reject(rt, first["id"], "no", "bob")
    again = evolved(rt, anthropic_server)
    assert "reviewers rejected" not in asked(anthropic_server) and again["memory"] == {}


def test_recall_ranks_by_the_words_of_the_failure(store) -> None:
    """Offline: the most similar decided proposal first, dissimilar ones not at all."""
    from state import proposals

    with store.tx() as con:
        for tool, error, hint, status in [("a", "csv delimiter semicolon not detected", "detect the delimiter", "approved"),
                                          ("b", "timeout calling the remote api", "add a retry", "approved"),
                                          ("c", "semicolon separated csv rows parse as one column", "sniff delimiters", "rejected")]:
            pid = proposals.create(con, tool_id=tool, version="1.1.0", status=status, error_message=error, mutation_hint=hint,
                                   created=1.0, updated=1.0)
            assert pid is not None
            proposals.update(con, pid, {"approved_at": 1.0 if status == "approved" else None,
                                        "review_reason": "no" if status == "rejected" else None})
    fixes, avoid = recall(store, failure_text("rows with ; as delimiter come back as one csv column", "detect delimiter"))
    assert [r.tool_id for r in fixes] == ["a"] and [r.tool_id for r in avoid] == ["c"]


def test_review_show_tells_the_reviewer_a_candidate_repeats_a_rejected_approach(workspace: Path, make_runtime, anthropic_server,
                                                                               capsys) -> None:
    from tools.cli import main

    settings(workspace)
    greet_tool(workspace)
    rt = make_runtime()
    first = evolved(rt, anthropic_server)
    reject(rt, first["id"], "keep names as typed", "bob")
    again = evolved(rt, anthropic_server)
    capsys.readouterr()
    assert main(["-w", str(rt.workspace), "review", "show", str(again["id"])]) == 0
    assert f"REPEATS proposal {first['id']} (rejected): keep names as typed" in capsys.readouterr().out
    assert main(["-w", str(rt.workspace), "review", "show", str(first["id"])]) == 0
    assert "review: rejected by bob: keep names as typed" in capsys.readouterr().out  # the decision itself, in its own show


def test_review_stats_counts_approvals_rounds_failed_stages_and_tokens(workspace: Path, make_runtime, anthropic_server,
                                                                      capsys) -> None:
    import json

    from tools.cli import main
    from tools.evolution.stats import evolution_stats

    settings(workspace, evolution="max_rounds = 1")
    greet_tool(workspace)
    rt = make_runtime()
    first = evolved(rt, anthropic_server)
    approve(rt, first["id"], "global", "alice", first["current_diff_sha256"])
    second = evolved(rt, anthropic_server, hint="Trim the name")
    reject(rt, second["id"], "not needed", "bob")
    anthropic_server.reply_tool_use("write_tool_version", greet_answer("def run(data):\n    return {}\n"))  # fails its tests
    failed = evolve_tool(rt, "greet", ERROR, "Return nothing")
    assert failed["status"] == "failed_validation"

    stats = evolution_stats(rt.store)
    overall = stats["overall"]
    assert (overall["proposals"], overall["approved"], overall["rejected"], overall["failed_validation"]) == (3, 1, 1, 1)
    assert overall["approval_rate"] == 0.5 and overall["mean_rounds"] == 1.0 and overall["input_tokens"] > 0
    assert list(stats["by"]["failed_stage"]) == ["tests"] and stats["by"]["tool"]["greet"]["proposals"] == 3
    assert set(stats["by"]["hint"]) == {HINT, "Trim the name", "Return nothing"}
    capsys.readouterr()
    assert main(["-w", str(rt.workspace), "--json", "review", "stats"]) == 0
    assert json.loads(capsys.readouterr().out)["overall"]["approved"] == 1
    assert main(["-w", str(rt.workspace), "review", "stats"]) == 0
    out = capsys.readouterr().out
    assert "failed_stage\ttests\t1\t0\t0\t0\t1\t" in out and "all\tall\t3\t1\t1\t0\t1\t50%\t" in out


def test_auto_propose_evolves_a_falling_tool_and_never_approves_it(workspace: Path, make_runtime, anthropic_server) -> None:
    """A serving runtime with `auto_propose` starts an evolution once greet's score falls below the
    threshold with a recorded failing input; `auto_approve` does not apply to what it proposed."""
    from tests.buffer_helpers import wait_for
    from tools.errors import ToolError
    from tools.evolution.review import list_proposals

    settings(workspace, evolution='auto_propose = true\nauto_propose_below = 0.97\nauto_approve = "all-stages-passed"')
    greet_tool(workspace)
    anthropic_server.reply_tool_use("write_tool_version", greet_answer())
    rt = make_runtime(serve=True)
    rt.wait_ready(30)
    assert rt.call("greet", {"name": "bob"}) == {"greeting": "hello bob"}
    for _ in range(3):
        try:
            rt.call("greet", {"name": "ada lovelace"})
        except ToolError:
            pass
    rt.calls.flush()
    rt.extensions["auto_propose"].notify()  # the failures above woke it already; the calls' records are now written
    proposal = wait_for(lambda: next((p for p in list_proposals(rt, tool_id="greet") if p["status"] == "awaiting_review"), None),
                        timeout=60)
    assert proposal["origin"] == "auto_propose" and proposal["mutation_hint"].startswith("auto-proposed: the score of greet 1.0.0")
    assert rt.resolved_version("greet") == (None, "base")  # awaiting a person, not approved by the policy
    assert any(e.kind == "evolution.auto_proposed" for e in rt.events.recent(100))
    assert len(list_proposals(rt, tool_id="greet")) == 1  # once per version, not once per failure


def test_auto_propose_is_off_by_default(workspace: Path, make_runtime) -> None:
    settings(workspace)
    greet_tool(workspace)
    rt = make_runtime(serve=True)
    rt.wait_ready(30)
    assert "auto_propose" not in rt.extensions


def test_the_shape_of_a_wrong_answer_finds_a_fix_for_the_same_kind_of_bug(store) -> None:
    """`returned 5, expected 4` is off by one whatever the tool: memory offers the fix made for an off-by-one
    failure before the one made for a wrong type, though their errors and hints have the same words."""
    import json as _json

    from state import proposals
    from tools.evolution.memory import answer_shape, failure_shapes

    assert failure_shapes(["returned 5, expected 4", "expected [1, 2], got [2, 1]", "got 2.5, expected 2", "returned x"]) == [
        "shape_off_by_one", "shape_order", "shape_type_float_int"]
    assert answer_shape(True, False) == "shape_bool_flipped" and answer_shape(None, 3) == "shape_none"
    assert failure_shapes(["returned [11, 10], expected [10, 10]", "returned [0.0, 1.0], expected [0.25, 1.0]",
                           "tool: ValueError: max() arg is an empty sequence | Traceback", "returned 2.0, expected 2.5"]) == [
        "shape_truncated", "shape_off_by_one", "shape_raised_valueerror"]
    assert failure_shapes(["returned " + "[" * 5000 + ", expected 1"]) == []  # hostile text: no shape, no error
    with store.tx() as con:
        for tool, shapes in [("count_words", ["shape_off_by_one"]), ("mean_age", ["shape_type_float_int"])]:
            pid = proposals.create(con, tool_id=tool, version="1.1.0", status="approved", error_message=f"wrong answers of {tool}",
                                   mutation_hint="fix the wrong answers", created=1.0, updated=1.0,
                                   memory=_json.dumps({"shapes": shapes}))
            assert pid is not None
            proposals.update(con, pid, {"approved_at": 1.0})
    query = failure_text("wrong answers of sum_digits", "fix the wrong answers", [{"error": "returned 13, expected 12"}])
    fixes, _ = recall(store, query)
    assert [r.tool_id for r in fixes][:1] == ["count_words"], fixes
    query = failure_text("wrong answers of sum_digits", "fix the wrong answers", [{"error": "returned 6.5, expected 6"}])
    assert [r.tool_id for r in recall(store, query)[0]][:1] == ["mean_age"]


def diff_of(old: str, new: str) -> str:
    import difflib

    return "".join(difflib.unified_diff(old.splitlines(True), new.splitlines(True), "a/tool.py", "b/tool.py"))


@pytest.mark.parametrize(("old", "new", "kind"), [
    ("    for i in range(3, n):\n", "    for i in range(2, n):\n", "fix_off_by_one"),
    ("    return a - b\n", "    return a + b\n", "fix_operator"),
    ("    if x < y:\n", "    if x <= y:\n", "fix_operator"),
    ("    return float(total)\n", "    return int(total)\n", "fix_type"),
    ("    return total // n\n", "    return total / n\n", "fix_type"),
    ("    return pow(b, a)\n", "    return pow(a, b)\n", "fix_swap"),
    ("    pass\n", "    if not items:\n        return []\n", "fix_guard"),
    ("    return parse(text)\n", "    return json.loads(text, strict=False)\n", None),
])
def test_a_fix_is_known_by_the_kind_of_change_its_diff_makes(old: str, new: str, kind: str | None) -> None:
    from tools.evolution.memory import fix_kind

    head = "def f(a, b):\n    x = 1\n"
    assert fix_kind(diff_of(head + old + "    return x\n", head + new + "    return x\n")) == kind
    assert fix_kind("") is None and fix_kind("+" + "x = 1\n" * 40) is None


def test_approvals_teach_which_kind_of_fix_a_shape_wants_and_the_offer_shows_several_kinds(store) -> None:
    """Two off-by-one answers were fixed by moving a constant and a float-for-int answer by a conversion; a new
    off-by-one failure is offered the constant fixes first, and the third fix offered is of another kind."""
    import json as _json

    from state import proposals
    from tools.evolution.memory import kind_prior

    fixes_made = [("count_words", "shape_off_by_one", diff_of("    n = 3\n", "    n = 2\n")),
                  ("last_index", "shape_off_by_one", diff_of("    i = len(s) - 2\n", "    i = len(s) - 1\n")),
                  ("mean_age", "shape_type_float_int", diff_of("    return float(t)\n", "    return int(t)\n")),
                  ("ratio", "shape_type_float_int", diff_of("    return a // b\n", "    return a / b\n"))]
    with store.tx() as con:
        for tool, shape, diff in fixes_made:
            pid = proposals.create(con, tool_id=tool, version="1.1.0", status="approved", error_message=f"wrong answers of {tool}",
                                   mutation_hint="fix the wrong answers", created=1.0, updated=1.0, diff=diff,
                                   memory=_json.dumps({"shapes": [shape]}))
            assert pid is not None
            proposals.update(con, pid, {"approved_at": 1.0})
    prior = kind_prior(["shape_off_by_one"], [(["shape_off_by_one"], "fix_off_by_one")] * 2 + [(["shape_type_float_int"], "fix_type")])
    assert prior["fix_off_by_one"] > 0.5 > prior["fix_type"]
    query = failure_text("wrong answers of sum_digits", "fix the wrong answers", [{"error": "returned 13, expected 12"}])
    fixes, _ = recall(store, query)
    assert [r.kind for r in fixes][:2] == ["fix_off_by_one", "fix_off_by_one"] or \
        [r.kind for r in fixes][:2] == ["fix_off_by_one", "fix_type"], fixes
    assert {r.kind for r in fixes} == {"fix_off_by_one", "fix_type"}, fixes
    assert "off by one" in prompt_section(fixes, [])


@pytest.mark.parametrize("cols", [80, 200])
def test_review_stats_on_a_terminal_is_a_table_where_it_fits_else_one_block_a_row(tmp_path: Path, cols: int) -> None:
    """`tooldeck review stats` in a terminal, as the dashboard's `S` shows it: at 80 columns the eleven-column table
    cut every header to a few letters (`prop/osal/s`); there it is one block a row, every name whole. A hint's
    escape sequence is shown, never run."""
    import sys

    from state import proposals
    from tests.tui_pty import PtyProcess
    from tools.runtime import Runtime

    ws = tmp_path / "ws"
    (ws / "tools").mkdir(parents=True)
    with Runtime(ws) as rt, rt.store.tx() as con:
        for version, status, hint in [("1.1.0", "approved", "detect the delimiter"), ("1.2.0", "rejected", "retry\x1b[31m")]:
            assert proposals.create(con, tool_id="csv_parser", version=version, status=status, mutation_hint=hint,
                                    created=1.0, updated=1.0, rounds=1, input_tokens=100, output_tokens=50) is not None
    proc = PtyProcess([sys.executable, "-m", "tools", "-w", str(ws), "review", "stats"], cols=cols, rows=50)
    try:
        assert proc.wait(60) == 0
    finally:
        proc.kill()
    text = proc.text()
    assert "retry\\x1b[31m" in text and "\x1b[31m" not in text.replace("\\x1b", "")
    if cols == 80:
        assert "all: all" in text and "tokens/approval -" in text and "rolled back 0" in text, text
        assert "hint: detect the delimiter" in text, text
    else:
        assert "all: all" not in text and "tokens/approval" in text and "rolled back" in text, text


def test_a_repeat_is_judged_on_the_code_it_changes_not_on_the_manifests_lineage(store) -> None:
    """Offline: the same code change under a manifest whose lineage names another hint and error is still a repeat
    (the manifest's changed lines, many more than the code's, hid it), and a different code change is not."""
    from state import proposals
    from tools.evolution.memory import repeats

    code = ("--- a/greet.py (1.0.0)\n+++ b/greet_v1_1_0.py (1.1.0)\n@@ -1,4 +1,4 @@\n def run(data):\n"
            "-    name = data['name']\n+    name = ' '.join(data['name'].split())\n     return {'greeting': 'hello ' + name}\n")

    def manifest(hint: str, error: str) -> str:
        return ("--- a/greet.yaml (1.0.0)\n+++ b/greet.yaml (1.1.0)\n@@ -1,6 +1,12 @@\n name: greet\n-version: 1.0.0\n"
                "+version: 1.1.0\n-entry: greet.py:run\n+entry: greet_v1_1_0.py:run\n+lineage:\n+  parent: 1.0.0\n"
                f"+  hint: {hint}\n+  error: {error}\n+  model: replay\n+  prompt_sha256: {hash(hint) & 0xffffffff:08x}\n"
                f"+  created: {len(hint)}\n")

    with store.tx() as con:
        pid = proposals.create(con, tool_id="greet", version="1.1.0", status="rejected", error_message="e", mutation_hint="h",
                               created=1.0, updated=1.0)
        assert pid is not None
        proposals.update(con, pid, {"review_reason": "keep names as typed",
                                    "diff": manifest("allow spaces", "ValueError: letters only") + code})
    again = manifest("names with several words should work", "name must be letters only, got 'ada lovelace'") + code
    found = repeats(store, "greet", again)
    assert found is not None and found["proposal_id"] == pid and found["reason"] == "keep names as typed"
    other = again.replace("' '.join(data['name'].split())", "data['name'].strip().title()")
    assert repeats(store, "greet", other) is None
