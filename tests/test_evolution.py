"""The whole evolution flow through the real anthropic SDK against a loopback Messages server."""

from __future__ import annotations

import json
import threading
import time

import pytest
import yaml

from tests.evolution_helpers import GREET_V2, greet_answer, greet_tool, record_history, settings
from tests.messages_server import MessagesServer, anthropic_server_fixture, messages_server_fixture  # noqa: F401
from tools.errors import ToolError, ToolUnavailableError
from tools.evolution.evolve import evolve_tool
from tools.evolution.review import approve, cancel, get_proposal, list_proposals


def test_propose_validate_approve_then_the_new_version_answers(workspace, make_runtime, anthropic_server: MessagesServer):
    settings(workspace)
    greet_tool(workspace)
    rt = make_runtime()
    record_history(rt)
    anthropic_server.reply_tool_use("write_tool_version", greet_answer(), input_tokens=1500, output_tokens=700)
    seen: list[str] = []
    proposal = evolve_tool(rt, "greet", "name must be letters only", "Allow spaces in names",
                           progress=lambda e: seen.append(e["stage"]))
    assert proposal["status"] == "awaiting_review", proposal.get("failure")
    assert proposal["version"] == "1.1.0" and proposal["parent_version"] == "1.0.0"
    assert [s["name"] for s in proposal["stages"]] == ["manifest", "compile", "tests", "failing_scenario", "regression"]
    assert all(s["passed"] and not s.get("skipped") for s in proposal["stages"])
    assert proposal["protections"]["rlimits"] is True and proposal["protections"]["timeout"] == 3.0
    assert proposal["tokens"] == {"input": 1500, "output": 700} and proposal["model"] == "claude-test-model"
    assert {"model", "validating", "tests", "regression"} <= set(seen)

    # what the model was sent: the code, the manifest, the failure, the hint
    prompt = anthropic_server.requests[0].user_text
    assert "name must be letters only" in prompt and 'if not name.isalpha()' in prompt and "Allow spaces" in prompt

    folder = rt.home / "evolved" / "greet" / "1.1.0"
    assert sorted(p.name for p in folder.iterdir()) == ["greet.yaml", "greet_v1_1_0.py"]
    manifest = yaml.safe_load((folder / "greet.yaml").read_text())
    assert manifest["entry"] == "greet_v1_1_0.py:run" and manifest["version"] == "1.1.0"
    lineage = manifest["lineage"]
    assert lineage["parent_version"] == "1.0.0" and lineage["hint"] == "Allow spaces in names"
    assert lineage["tokens"] == {"input": 1500, "output": 700} and len(lineage["prompt_sha256"]) == 64
    assert (rt.home / "evolved" / "greet" / "1.1.0" / "greet_v1_1_0.py").read_text().strip() == GREET_V2.strip()
    assert (workspace / "tools" / "greet.py").read_text().count("isalpha()") == 1  # the original is untouched

    # not served, and not callable, before approval
    with pytest.raises(ToolError):
        rt.call("greet", {"name": "ada lovelace"})
    rt.catalog.reload_path(folder / "greet.yaml")
    with pytest.raises(ToolUnavailableError, match="awaiting_review"):
        rt.call("greet", {"name": "ada lovelace"}, version="1.1.0")

    shown = get_proposal(rt, proposal["id"])
    assert "+++ b/greet_v1_1_0.py (1.1.0)" in shown["diff"] and shown["current_diff_sha256"] == proposal["diff_sha256"]
    with pytest.raises(ToolUnavailableError, match="stale diff hash"):
        approve(rt, proposal["id"], "global", "tester", "0" * 64)
    approved = approve(rt, proposal["id"], "global", "tester", proposal["diff_sha256"])
    assert approved["status"] == "approved" and approved["reviewer"] == "tester"
    assert rt.call("greet", {"name": "ada  lovelace"}) == {"greeting": "hello ada lovelace"}
    assert rt.resolved_version("greet") == ("1.1.0", "global")
    kinds = [e.kind for e in rt.events.recent(500) if e.kind.startswith(("evolution.", "promotion."))]
    assert kinds[0] == "evolution.started" and "evolution.proposed" in kinds and kinds[-1] == "promotion.approved"


def test_a_failed_round_goes_back_to_the_model_with_the_errors(workspace, make_runtime, anthropic_server: MessagesServer):
    settings(workspace)
    greet_tool(workspace)
    rt = make_runtime()
    broken = GREET_V2.replace('"hello " + name', '"hi " + name')
    anthropic_server.reply_tool_use("write_tool_version", greet_answer(broken))
    anthropic_server.reply_tool_use("write_tool_version", greet_answer())
    proposal = evolve_tool(rt, "greet", "", "Allow spaces in names")
    assert proposal["status"] == "awaiting_review" and proposal["rounds"] == 2
    second = anthropic_server.requests[1].body["messages"]
    assert [m["role"] for m in second] == ["user", "assistant", "user"]
    result = second[2]["content"][0]
    assert result["type"] == "tool_result" and result["is_error"] is True
    assert result["tool_use_id"] == second[1]["content"][0]["id"]
    assert "Validation failed at stage 'tests'" in result["content"] and "hi ada" in result["content"]
    assert proposal["tokens"] == {"input": 2400, "output": 1600}


def test_a_candidate_that_never_passes_is_failed_validation(workspace, make_runtime, anthropic_server: MessagesServer):
    settings(workspace, evolution="max_rounds = 1")
    greet_tool(workspace)
    rt = make_runtime()
    anthropic_server.reply_tool_use("write_tool_version", greet_answer("def run(data:\n    return 1\n"))
    proposal = evolve_tool(rt, "greet", "", "Allow spaces")
    assert proposal["status"] == "failed_validation"
    assert [s["name"] for s in proposal["stages"]] == ["manifest", "compile"]
    assert "SyntaxError" in proposal["stages"][-1]["detail"] and proposal["failure"].startswith("compile:")
    with pytest.raises(ToolUnavailableError, match="only a proposal awaiting review"):
        approve(rt, proposal["id"], "global", "t", proposal["diff_sha256"])


def test_a_model_written_alias_bomb_manifest_is_refused_without_expanding_it(workspace, make_runtime,
                                                                           anthropic_server: MessagesServer):
    """The evolution path reads the model's manifest with the same node bound as the loader."""
    import tracemalloc

    settings(workspace, evolution="max_rounds = 1")
    greet_tool(workspace)
    rt = make_runtime()
    bomb = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{chr(98 + i)}: &{chr(98 + i)} [*{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)},"
        f" *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}]\n" for i in range(8))
    answer = greet_answer()
    answer["manifest_yaml"] = "name: greet\ntype: python\nentry: greet_v1_1_0.py:run\n" + bomb
    anthropic_server.reply_tool_use("write_tool_version", answer)
    tracemalloc.start()
    try:
        proposal = evolve_tool(rt, "greet", "", "Allow spaces")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert proposal["status"] == "failed_validation"
    assert "YAML nodes" in proposal["stages"][0]["detail"], proposal["stages"][0]
    assert peak < 50 * 2**20, f"peak {peak / 2**20:.0f} MB"


def test_model_error_status_fails_the_proposal_with_a_clear_error(workspace, make_runtime, anthropic_server: MessagesServer):
    settings(workspace)
    greet_tool(workspace)
    rt = make_runtime()
    anthropic_server.reply_error(500, "internal trouble")
    with pytest.raises(ToolError) as err:
        evolve_tool(rt, "greet", "", "Allow spaces")
    assert "HTTP 500" in err.value.message and "internal trouble" in err.value.message and "proposal 1" in err.value.message
    shown = get_proposal(rt, 1)
    assert shown["status"] == "model_error"  # a status of its own: nothing was validated
    assert shown["diff"] is None and shown["current_diff_sha256"] is None  # no candidate: not a diff deleting the tool
    assert any(e.kind == "evolution.model_error" for e in rt.events.recent(20))


def test_model_timeout_fails_the_proposal(workspace, make_runtime, anthropic_server: MessagesServer):
    settings(workspace, model="timeout_seconds = 0.4")
    greet_tool(workspace)
    rt = make_runtime()
    anthropic_server.reply_tool_use("write_tool_version", greet_answer(), delay=1.5)
    with pytest.raises(ToolError, match="no answer .* within 0.4 s"):
        evolve_tool(rt, "greet", "", "Allow spaces")
    assert get_proposal(rt, 1)["status"] == "model_error"


def test_a_plain_text_answer_is_not_scraped(workspace, make_runtime, anthropic_server: MessagesServer):
    settings(workspace, evolution="max_rounds = 1")
    greet_tool(workspace)
    rt = make_runtime()
    anthropic_server.reply_text("```python\ndef run(data):\n    return {}\n```")
    proposal = evolve_tool(rt, "greet", "", "Allow spaces")
    assert proposal["status"] == "failed_validation"
    assert "without calling write_tool_version" in proposal["failure"]


def test_without_a_model_evolution_says_how_to_configure_one(workspace, make_runtime):
    settings(workspace)
    greet_tool(workspace)
    rt = make_runtime()
    with pytest.raises(ToolUnavailableError, match="ANTHROPIC_API_KEY"):
        evolve_tool(rt, "greet", "", "Allow spaces")
    assert list_proposals(rt) == []


def test_cancel_a_running_evolution(workspace, make_runtime, anthropic_server: MessagesServer):
    settings(workspace)
    greet_tool(workspace)
    rt = make_runtime()
    anthropic_server.reply_tool_use("write_tool_version", greet_answer(), delay=2.0)
    out: dict[str, object] = {}
    worker = threading.Thread(target=lambda: out.update(p=evolve_tool(rt, "greet", "", "Allow spaces")))
    worker.start()
    deadline = time.monotonic() + 5
    while not anthropic_server.requests and time.monotonic() < deadline:
        time.sleep(0.02)
    started = time.monotonic()
    cancelled = cancel(rt, 1)
    assert cancelled["status"] == "cancelled"
    worker.join(5)
    assert time.monotonic() - started < 1.0  # noticed while the model was still thinking
    assert out["p"]["status"] == "cancelled"  # type: ignore[index]
    assert not (rt.home / "evolved" / "greet" / "1.1.0" / "greet.yaml").exists()
    with pytest.raises(ToolUnavailableError, match="only a running evolution"):
        cancel(rt, 1)
    assert [e.kind for e in rt.events.recent(50)].count("evolution.cancelled") == 1


def test_inputs_the_schema_refused_are_not_replayed_unless_the_error_names_them(workspace, make_runtime):
    """A caller's input the tool's schema refused (`bad_input`) says nothing of what to fix: the failing_scenario
    stage does not hold a candidate to it, unless the evolution's error message points at those failures."""
    settings(workspace, model='provider = "replay"')
    rt = make_runtime(demo=True)
    with pytest.raises(ToolError):
        rt.call("csv_parser", {"text": '[{"name": "ada"}]'})
    for _ in range(2):
        with pytest.raises(ToolError) as refused:
            rt.call("csv_parser", {"rows": "no text field"})
        assert refused.value.error_class == "bad_input"
    rt.calls.flush()
    out = rt.call("evolve_tool", {"tool_id": "csv_parser", "error_message": "Support JSON input too",
                                  "mutation_hint": "Support JSON and CSV", "dynamic_schema": True})
    stage = {s["name"]: s for s in get_proposal(rt, out["proposal_id"])["stages"]}["failing_scenario"]
    assert stage["passed"], stage["detail"]
    assert len(stage["cases"]) == 1 and "no text field" not in stage["cases"][0]["input"], stage["cases"]


def test_the_builtin_tool_evolves_the_demo_csv_parser_with_replay(workspace, make_runtime):
    """call_tool("evolve_tool", ...) exactly as the original callers did; the packaged replay passes validation."""
    settings(workspace, model='provider = "replay"')
    rt = make_runtime(demo=True)
    rt.call("csv_parser", {"text": "name,age\nada,36\n"})
    with pytest.raises(ToolError):
        rt.call("csv_parser", {"text": '[{"name": "ada"}]'})
    rt.calls.flush()
    out = rt.call("evolve_tool", json.dumps({"tool_id": "csv_parser", "error_message": "JSONDecodeError",
                                             "mutation_hint": "Support JSON and CSV", "dynamic_schema": True}))
    assert out["success"] is True and out["status"] == "awaiting_review", out
    assert out["version"] == "1.1.0" and out["evolved_file"] == "csv_parser_v1_1_0.py"
    assert out["provider"] == "replay" and out["model"] == "replay" and out["replay"] is True
    assert {s["name"]: s["passed"] for s in out["stages"]} == {
        "manifest": True, "compile": True, "tests": True, "failing_scenario": True, "regression": True}
    shown = get_proposal(rt, out["proposal_id"])
    assert shown["explanation"].startswith("[replay]")
    approve(rt, out["proposal_id"], "global", "tester", out["diff_sha256"])
    assert rt.call("csv_parser", {"text": '[{"name": "ada"}]'}) == {"columns": ["name"], "rows": [{"name": "ada"}]}
