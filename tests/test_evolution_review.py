"""Review and promotion: scopes, restarts, rollback, rejection, stale hashes, ids, secrets, CLI, policy."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from tests.evolution_helpers import GREET_V2, greet_answer, greet_tool, record_history, settings
from tests.helpers import state_bytes
from tests.messages_server import FAKE_KEY, MessagesServer, anthropic_server_fixture, messages_server_fixture  # noqa: F401
from tools.errors import InvalidIdError, NotFoundError, StaleReviewError, ToolError, ToolUnavailableError, UsageError
from tools.evolution.evolve import evolve_tool, tool_entry
from tools.evolution.review import approve, get_proposal, list_proposals, reject, rollback


def proposed(rt, server: MessagesServer) -> dict:
    server.reply_tool_use("write_tool_version", greet_answer())
    proposal = evolve_tool(rt, "greet", "name must be letters only", "Allow spaces in names")
    assert proposal["status"] == "awaiting_review", proposal.get("failure")
    return proposal


SPACED = {"name": "ada lovelace"}
NEW = {"greeting": "hello ada lovelace"}


def test_session_scope_does_not_leak_into_another_session(workspace, make_runtime, anthropic_server):
    settings(workspace)
    greet_tool(workspace)
    mine = make_runtime(session="s-mine")
    other = make_runtime(session="s-other")
    p = proposed(mine, anthropic_server)
    approve(mine, p["id"], "s-mine", "tester", p["diff_sha256"])
    assert mine.call("greet", SPACED) == NEW
    assert mine.resolved_version("greet") == ("1.1.0", "s-mine")
    other.invalidate_promotions()
    assert other.resolved_version("greet") == (None, "base")
    with pytest.raises(ToolError):
        other.call("greet", SPACED)


def test_global_promotion_survives_a_restart(workspace, make_runtime, anthropic_server):
    settings(workspace)
    greet_tool(workspace)
    rt = make_runtime()
    p = proposed(rt, anthropic_server)
    approve(rt, p["id"], "global", "tester", p["diff_sha256"])
    rt.close()
    again = make_runtime()
    assert again.call("greet", SPACED) == NEW
    assert again.resolved_version("greet") == ("1.1.0", "global")


def test_rollback_to_the_base_and_forward_again(workspace, make_runtime, anthropic_server):
    settings(workspace)
    greet_tool(workspace)
    rt = make_runtime()
    p = proposed(rt, anthropic_server)
    approve(rt, p["id"], "global", "tester", p["diff_sha256"])
    out = rollback(rt, "greet", "1.0.0")
    assert out == {"tool_id": "greet", "scope": "global", "version": "1.0.0", "previous_version": "1.1.0"}
    assert get_proposal(rt, p["id"])["status"] == "rolled_back"
    with pytest.raises(ToolError):
        rt.call("greet", SPACED)
    assert rollback(rt, "greet", "1.0.0")["unchanged"] is True  # a no-op, not an error
    rollback(rt, "greet", "1.1.0")  # an approved version may serve again
    assert rt.call("greet", SPACED) == NEW
    with pytest.raises(NotFoundError, match="neither the base version"):
        rollback(rt, "greet", "1.7.0")
    kinds = [e.kind for e in rt.events.recent(200)]
    assert kinds.count("promotion.rolled_back") == 2


def test_rejection_burns_the_version_and_needs_a_reason(workspace, make_runtime, anthropic_server):
    settings(workspace)
    greet_tool(workspace)
    rt = make_runtime()
    p = proposed(rt, anthropic_server)
    with pytest.raises(UsageError, match="needs a reason"):
        reject(rt, p["id"], "  ")
    rejected = reject(rt, p["id"], "prefer trimming in the caller", reviewer="rev")
    assert rejected["status"] == "rejected" and rejected["review_reason"] == "prefer trimming in the caller"
    with pytest.raises(ToolUnavailableError, match="is rejected: only a proposal awaiting review, or approved or rolled back before"):
        approve(rt, p["id"], "global", "t", p["diff_sha256"])
    anthropic_server.reply_tool_use("write_tool_version", greet_answer())
    second = evolve_tool(rt, "greet", "", "Allow spaces again")
    assert second["version"] == "1.2.0"
    assert (rt.home / "evolved" / "greet" / "1.2.0" / "greet_v1_2_0.py").is_file()
    assert [p["version"] for p in list_proposals(rt)] == ["1.2.0", "1.1.0"]
    assert [p["id"] for p in list_proposals(rt, "rejected")] == [p["id"]]


def rejected_proposal(workspace: Path, make_runtime: Any, anthropic_server: Any) -> dict[str, Any]:
    """greet's candidate 1.1.0, proposed and rejected, its runtime closed."""
    settings(workspace)
    greet_tool(workspace)
    rt = make_runtime()
    p = proposed(rt, anthropic_server)
    reject(rt, p["id"], "prefer trimming in the caller")
    rt.close()
    return p


def test_a_decision_the_proposals_status_does_not_allow_is_stale_review(workspace, make_runtime, anthropic_server, capsys):
    """Approve, reject, cancel or revalidate a proposal whose status does not allow it: one class (`stale_review`,
    exit 2, the request must change), one wording; before, `unavailable` (exit 1) or `bad_usage` by command."""
    from tools.cli import main

    p = rejected_proposal(workspace, make_runtime, anthropic_server)
    for argv in (["approve", str(p["id"]), "--diff", p["diff_sha256"], "--scope", "global"],
                 ["reject", str(p["id"]), "--reason", "again"], ["cancel", str(p["id"])], ["revalidate", str(p["id"])]):
        assert main(["-w", str(workspace), "--json", "review", *argv]) == 2, argv
        error = json.loads(capsys.readouterr().out)
        assert error["error_class"] == "stale_review", (argv, error)
        assert error["error"].startswith(f"proposal {p['id']} is rejected: only "), (argv, error)


def test_serve_lists_an_unapproved_candidate_by_its_proposals_status(workspace, make_runtime, anthropic_server):
    """`tooldeck serve` prints each tool as it loads: a rejected candidate is `rejected`, as `tools` lists it, not
    `ready` (it is never served)."""
    import subprocess
    import sys

    p = rejected_proposal(workspace, make_runtime, anthropic_server)
    proc = subprocess.Popen([sys.executable, "-m", "tools", "-w", str(workspace), "serve"], stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True, cwd=Path(__file__).resolve().parents[1])
    try:
        assert proc.stdout is not None
        deadline, line = time.monotonic() + 90, ""
        while " greet 1.1.0 " not in line and time.monotonic() < deadline:
            line = proc.stdout.readline()
        assert line.split()[:3] == ["rejected", "greet", "1.1.0"], line
        assert f"proposal {p['id']}: not served until approved" in line
    finally:
        proc.terminate()
        proc.wait(60)


def entering_tx(store: Any, monkeypatch: pytest.MonkeyPatch) -> threading.Event:
    """Set when `store` next opens a transaction (the real one, only watched)."""
    entering, real = threading.Event(), store.tx

    def tx(*args: Any, **kwargs: Any) -> Any:
        entering.set()
        return real(*args, **kwargs)

    monkeypatch.setattr(store, "tx", tx)
    return entering


def test_an_approval_racing_a_rejection_that_commits_first_is_refused(workspace, make_runtime, anthropic_server, monkeypatch):
    """The approval read `awaiting_review`, but another reviewer's rejection (another node) commits
    before the approval's transaction: the approval is refused, nothing is promoted or pinned."""
    settings(workspace)
    greet_tool(workspace)
    rt = make_runtime()
    p = proposed(rt, anthropic_server)
    other = make_runtime()
    holding, done = threading.Event(), threading.Event()
    entering = entering_tx(rt.store, monkeypatch)

    def reject_slowly() -> None:
        with other.store.tx() as con:
            con.execute("UPDATE proposals SET status='rejected', review_reason='not this way' WHERE id=?", (p["id"],))
            holding.set()
            entering.wait(30)  # the approval has read `awaiting_review` and opens its transaction: commit now
        done.set()

    thread = threading.Thread(target=reject_slowly)
    thread.start()
    assert holding.wait(10)
    with pytest.raises(ToolUnavailableError, match="is rejected \\(decided meanwhile\\)"):
        approve(rt, p["id"], "global", "late reviewer", p["diff_sha256"])
    thread.join(10)
    assert done.is_set()
    assert rt.store.query("SELECT * FROM promotions WHERE tool_id='greet'") == []
    assert rt.store.query("SELECT * FROM approved_files WHERE tool_id='greet'") == []
    assert rt.call("greet", {"name": "bob"}) == {"greeting": "hello bob"}


def test_an_evolution_racing_another_nodes_for_the_same_version_takes_the_next(workspace, make_runtime, anthropic_server,
                                                                               monkeypatch):
    """Another node's evolution of greet holds version 1.1.0 in a transaction not yet committed: this
    one waits for it and takes 1.2.0 instead of failing on the taken version."""
    settings(workspace)
    greet_tool(workspace)
    rt = make_runtime()
    other = make_runtime()
    holding = threading.Event()
    entering = entering_tx(rt.store, monkeypatch)

    def start_elsewhere() -> None:
        now = time.time()
        with other.store.tx() as con:
            con.execute("INSERT INTO proposals(tool_id, version, parent_version, status, created, updated, node)"
                        " VALUES ('greet', '1.1.0', '1.0.0', 'generating', ?, ?, 'elsewhere:1:abc')", (now, now))
            holding.set()
            entering.wait(30)  # this evolution opens its transaction (it waits for ours): commit now

    thread = threading.Thread(target=start_elsewhere)
    thread.start()
    assert holding.wait(10)
    anthropic_server.reply_tool_use("write_tool_version", greet_answer())
    mine = evolve_tool(rt, "greet", "name must be letters only", "Allow spaces in names")
    thread.join(10)
    assert mine["version"] == "1.2.0" and mine["status"] == "awaiting_review", mine.get("failure")
    assert sorted(p["version"] for p in list_proposals(rt)) == ["1.1.0", "1.2.0"]


def test_evolving_a_promoted_tool_starts_from_the_global_version(workspace, make_runtime, anthropic_server):
    settings(workspace)
    greet_tool(workspace)
    rt = make_runtime()
    p = proposed(rt, anthropic_server)
    approve(rt, p["id"], "global", "tester", p["diff_sha256"])
    anthropic_server.reply_tool_use("write_tool_version", greet_answer(GREET_V2 + "\n# trims, too\n"))
    nxt = evolve_tool(rt, "greet", "", "Also trim")
    assert (nxt["parent_version"], nxt["version"]) == ("1.1.0", "1.2.0")
    assert "--- a/greet_v1_1_0.py (1.1.0)" in nxt["diff"]


def test_a_candidate_changed_on_disk_after_validation_cannot_be_approved(workspace, make_runtime, anthropic_server):
    settings(workspace)
    greet_tool(workspace)
    rt = make_runtime()
    p = proposed(rt, anthropic_server)
    code = rt.home / "evolved" / "greet" / "1.1.0" / "greet_v1_1_0.py"
    code.write_text(code.read_text() + "\nimport os  # sneaked in after validation\n")
    shown = get_proposal(rt, p["id"])
    assert "sneaked in" in shown["diff"] and shown["current_diff_sha256"] != p["diff_sha256"]
    with pytest.raises(ToolUnavailableError, match="stale diff hash"):
        approve(rt, p["id"], "global", "t", p["diff_sha256"])
    with pytest.raises(ToolUnavailableError, match="changed on disk after validation"):
        approve(rt, p["id"], "global", "t", shown["current_diff_sha256"])


def test_path_like_ids_and_scopes_are_refused(workspace, make_runtime, anthropic_server):
    settings(workspace)
    greet_tool(workspace)
    rt = make_runtime()
    for bad in ("../greet", "greet/../../etc", "/etc/passwd", "Greet"):
        with pytest.raises(InvalidIdError):
            evolve_tool(rt, bad, "", "x")
        with pytest.raises(InvalidIdError):
            tool_entry(rt, {"tool_id": bad, "mutation_hint": "x"})
        with pytest.raises(InvalidIdError):
            rollback(rt, bad, "1.0.0")
    with pytest.raises(InvalidIdError):
        rollback(rt, "greet", "../1.0.0")
    p = proposed(rt, anthropic_server)
    with pytest.raises(InvalidIdError):
        approve(rt, p["id"], "../../global", "t", p["diff_sha256"])
    with pytest.raises(UsageError, match="invalid proposal id"):
        get_proposal(rt, "1; DROP TABLE proposals")
    assert not list((rt.home / "evolved").glob("*/*/..*"))
    assert sorted(p.name for p in (rt.home / "evolved").iterdir()) == ["greet"]


def test_no_secret_in_the_database_logs_or_events(workspace, make_runtime, anthropic_server, backend):
    settings(workspace)
    greet_tool(workspace)
    rt = make_runtime()
    record_history(rt)
    p = proposed(rt, anthropic_server)
    approve(rt, p["id"], "global", "tester", p["diff_sha256"])
    rt.call("greet", SPACED)
    anthropic_server.reply_error(401, f"invalid x-api-key {FAKE_KEY}", error_type="authentication_error")
    with pytest.raises(ToolError) as err:
        evolve_tool(rt, "greet", "", "again")
    assert FAKE_KEY not in err.value.message
    assert anthropic_server.requests[0].api_key == FAKE_KEY  # it did reach the model endpoint, and only there
    for request in anthropic_server.requests:
        assert FAKE_KEY not in json.dumps(request.body)
    assert all(FAKE_KEY not in json.dumps(e.payload) for e in rt.events.recent(1000))
    rt.close()
    files = [p for p in rt.home.rglob("*") if p.is_file()]
    assert (backend.postgres or any(p.name == "tooldeck.db" for p in files)) and any(p.parent.name == "logs" for p in files)
    for path in files:
        assert FAKE_KEY.encode() not in path.read_bytes(), path
    state = state_bytes(rt.home)
    assert b"greet" in state and FAKE_KEY.encode() not in state


def test_auto_approve_policy_promotes_only_fully_validated_candidates(workspace, make_runtime, anthropic_server):
    settings(workspace, evolution='auto_approve = "all-stages-passed"')
    greet_tool(workspace)
    rt = make_runtime()
    p = proposed(rt, anthropic_server)  # no recorded calls: two stages skipped, so it waits for a person
    assert p["status"] == "awaiting_review"
    record_history(rt)
    anthropic_server.reply_tool_use("write_tool_version", greet_answer())
    auto = evolve_tool(rt, "greet", "letters only", "Allow spaces")
    assert auto["status"] == "approved" and auto["scope"] == "global"
    assert auto["reviewer"].startswith("auto-approve policy")
    assert rt.call("greet", SPACED) == NEW


def test_cli_evolve_review_approve_and_rollback(workspace, make_runtime, anthropic_server, capsys):
    from tools.cli import main

    settings(workspace)
    greet_tool(workspace)
    ws = str(workspace)
    anthropic_server.reply_tool_use("write_tool_version", greet_answer())
    assert main(["-w", ws, "evolve", "greet", "Allow spaces", "--error", "letters only", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["status"] == "awaiting_review" and summary["evolved_file"] == "greet_v1_1_0.py"
    assert main(["-w", ws, "review", "show", str(summary["proposal_id"])]) == 0
    shown = capsys.readouterr().out
    assert "PASS tests" in shown and "diff sha256: " + summary["diff_sha256"] in shown and "+++ b/greet_v1_1_0.py" in shown
    assert main(["-w", ws, "review", "approve", "1", "--diff", "f" * 64, "--scope", "global"]) == 2  # stale_review
    assert "stale diff hash" in capsys.readouterr().err
    assert main(["-w", ws, "review", "approve", "1", "--diff", summary["diff_sha256"], "--reviewer", "ops", "--scope", "global"]) == 0
    assert "now serves scope global" in capsys.readouterr().out
    assert main(["-w", ws, "--json", "review", "list"]) == 0
    assert json.loads(capsys.readouterr().out)[0]["status"] == "approved"
    assert main(["-w", ws, "rollback", "greet", "1.0.0"]) == 0
    assert "serves 1.0.0 again (was 1.1.0)" in capsys.readouterr().out
    with pytest.raises(SystemExit) as bad_usage:
        main(["-w", ws, "review", "reject", "1"])  # --reason is required
    assert bad_usage.value.code == 2
    assert main(["-w", ws, "review", "cancel", "1"]) == 2  # an approved proposal: stale_review, the request must change
    assert main(["-w", ws, "review", "show", "99"]) == 2
    assert main(["-w", ws, "evolve", "../greet", "x"]) == 2
    capsys.readouterr()


def test_cli_evolve_without_a_model_exits_1_with_the_how_to(workspace, capsys):
    from tools.cli import main

    greet_tool(workspace)
    assert main(["-w", str(workspace), "evolve", "greet", "Allow spaces"]) == 1
    err = capsys.readouterr().err
    assert "ANTHROPIC_API_KEY" in err and err.count("\n") == 1


def test_the_thin_executable_runs_the_same_builtin(workspace):
    import subprocess
    import sys

    settings(workspace)
    greet_tool(workspace)
    script = Path(__file__).resolve().parents[1] / "tools" / "builtins" / "evolve_tool.py"
    done = subprocess.run([sys.executable, str(script)], input=json.dumps({"tool_id": "greet", "mutation_hint": "x"}),
                          capture_output=True, text=True, env={"PATH": "/usr/bin:/bin", "TOOLDECK_WORKSPACE": str(workspace)},
                          timeout=60)
    assert done.returncode == 1
    assert "ANTHROPIC_API_KEY" in json.loads(done.stdout)["error"]


def test_tools_lists_an_unapproved_candidate_by_its_proposal_status_not_ready(workspace, make_runtime, anthropic_server):
    """A candidate awaiting review, then rejected, was listed `ready` like an approved version (issue 22)."""
    from tools.cli.core_cmds import tool_rows

    settings(workspace)
    greet_tool(workspace)
    rt = make_runtime()
    p = proposed(rt, anthropic_server)
    rt.catalog.reload_path(Path(p["path"]))

    def row() -> dict[str, Any]:
        return next(r for r in tool_rows(rt) if r["id"] == "greet" and r["version"] == "1.1.0")

    assert row()["status"] == "awaiting_review" and "not served until approved" in row()["error"]
    reject(rt, p["id"], "no", "bob")
    assert row()["status"] == "rejected"


def test_revalidate_replays_the_failures_recorded_since(workspace, make_runtime, anthropic_server):
    """A proposal validated before any failure was recorded says failing_scenario was skipped; once the tool has
    failed, `revalidate` runs the same candidate again (sandboxed) against those failures, no model call."""
    from tools.evolution import revalidate

    settings(workspace)
    greet_tool(workspace)
    rt = make_runtime()
    p = proposed(rt, anthropic_server)
    scenario = next(s for s in p["stages"] if s["name"] == "failing_scenario")
    assert "no recorded failing input" in scenario["detail"]
    asked = len(anthropic_server.requests)
    record_history(rt)  # greet 1.0.0 fails on "ada lovelace" now
    again = revalidate(rt, p["id"])
    assert len(anthropic_server.requests) == asked  # the code was not asked for again
    scenario = next(s for s in again["stages"] if s["name"] == "failing_scenario")
    assert again["status"] == "awaiting_review" and "1/1" in scenario["detail"] and not scenario.get("skipped"), scenario
    assert again["diff_sha256"] == p["diff_sha256"]  # the same code, the same reviewed diff
    assert any(e.kind == "evolution.revalidated" for e in rt.events.recent(50))
    reject(rt, p["id"], "not this one", "tester")
    with pytest.raises(StaleReviewError, match="is rejected: only a proposal awaiting review or failed validation"):
        revalidate(rt, p["id"])


def test_every_hint_tooldeck_prints_is_a_command_that_works(workspace, make_runtime, anthropic_server, capsys):
    """The commands tooldeck suggests (after an evolution, in the review listing, in a buffer's warning, in the
    spec summary's footer) are run as printed and succeed."""
    import re
    import shlex

    from tools.cli import main

    settings(workspace)
    greet_tool(workspace)
    ws = str(workspace)

    def hints(text: str) -> list[str]:
        return [h.strip().rstrip(".;") for h in re.findall(r"`?(tooldeck [^`;\n]+)`?", text)]

    def run(hint: str) -> int:
        argv = shlex.split(hint)[1:]
        argv = [a.split("|")[0] for a in argv]  # `--scope global|SESSION` names a choice: take the first
        return main(["-w", ws, *argv])

    anthropic_server.reply_tool_use("write_tool_version", greet_answer())
    assert main(["-w", ws, "evolve", "greet", "Allow spaces", "--error", "letters only", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    printed = hints(summary["next"])
    assert [h.split()[2] for h in printed] == ["show", "approve"], printed
    assert main(["-w", ws, "call", "greet", "{}", "--version", summary["version"]]) == 1  # not approved yet: refused
    refused = hints(capsys.readouterr().err)
    assert refused == [f"tooldeck review show {summary['proposal_id']}"], refused
    printed += refused
    for hint in printed:
        assert run(hint) == 0, (hint, capsys.readouterr().err)
    capsys.readouterr()

    assert main(["-w", ws, "buffer", "write", "b", '{"n": 1}', "--strategy", "manual"]) == 0
    capsys.readouterr()
    assert main(["-w", ws, "--json", "buffer", "status", "b"]) == 0
    warning = json.loads(capsys.readouterr().out)["warning"]
    assert hints(warning) == ["tooldeck buffer flush b"], warning
    assert run(hints(warning)[0]) == 0

    spec = workspace / "specs" / "s.md"
    spec.parent.mkdir()
    spec.write_text("# Title\n\n## Part one\n\nThe server MUST answer.\n\n## Part two\n\nText.\n")
    assert main(["-w", ws, "spec", str(spec)]) == 0
    footer = [h.replace("ID", "part-one") for h in hints(capsys.readouterr().err)]  # the footer is on stderr
    assert footer and all(run(h) == 0 for h in footer), footer


def test_evolution_progress_is_one_line_a_step_when_stderr_is_not_a_terminal(capsys, monkeypatch) -> None:
    """Piped or logged, a long step was hard-wrapped at 80 columns (`...0/5 recorded failing inputs \\nnow succeed`)."""
    from tools.cli.evolution_cmds import _progress_printer

    monkeypatch.delenv("COLUMNS", raising=False)
    _progress_printer(False)({"proposal_id": 7, "stage": "validating", "message": "replaying recorded failing input " * 6})
    err = capsys.readouterr().err
    assert err.startswith("proposal 7 validating: replaying") and err.count("\n") == 1, err


def test_a_diff_keeps_a_bare_cr_and_a_crlf_on_their_line_spelled_out_and_marked(tmp_path: Path) -> None:
    """The candidate's code is diffed as its bytes are: a CR is neither a line break (`splitlines`) nor read away
    (universal newlines), so `review show` and the dashboard's diff spell it out as `\\r` on its line, marked `!`."""
    from rich.console import Console

    from tests.helpers import python_tool
    from tools.cli.evolution_cmds import diff_text
    from tools.evolution.review import diff_for
    from tools.visible import marked_lines

    base = "def run(data):\n    return data\n"
    old = python_tool(tmp_path / "old", "crtool", base)
    new = python_tool(tmp_path / "new", "crtool", base)
    (tmp_path / "new" / "crtool.py").write_bytes((base + "A = 1  # x\r\nB = 2  # mid\rcr overwrites\nC = 3\n").encode())
    diff, _ = diff_for({"tool_id": "crtool", "version": "1.1.0", "parent_version": "1.0.0", "path": str(new),
                        "parent_path": str(old)})
    lines = dict(marked_lines(diff))
    assert lines["+A = 1  # x\\r"] is True
    assert lines["+B = 2  # mid\\rcr overwrites"] is True
    assert lines["+C = 3"] is False and "+cr overwrites" not in lines
    console = Console(width=200, record=True, color_system=None)
    console.print(diff_text(diff))
    printed = console.export_text()
    assert "! +A = 1  # x\\r\n" in printed and "! +B = 2  # mid\\rcr overwrites\n" in printed and "  +C = 3\n" in printed
    from tui.widgets.diff_view import MARK, side_by_side_rows  # the dashboard's side-by-side view of the same diff

    assert ("", "A = 1  # x\\r", "blank", "add" + MARK) in side_by_side_rows(diff)


def test_a_candidate_edited_on_disk_after_validation_says_so_until_validated_again(workspace, make_runtime, anthropic_server,
                                                                                   capsys):
    """`review show` printed the old PASS stages beside a diff that changed after validation, `review list` said
    awaiting_review, and the printed approve command could not work. Now both say the stages are for the earlier diff,
    no approve command is offered, the refusal points at `review revalidate`, and revalidating records that the
    change was an operator's, not the model's."""
    from tools.cli import main

    settings(workspace)
    greet_tool(workspace)
    rt = make_runtime()
    p = proposed(rt, anthropic_server)
    pid, ws = str(p["id"]), str(workspace)
    code = rt.home / "evolved" / "greet" / "1.1.0" / "greet_v1_1_0.py"
    code.write_text(code.read_text() + "\n# tidied by hand\n")
    capsys.readouterr()

    assert main(["-w", ws, "review", "show", pid]) == 0
    out = capsys.readouterr().out
    assert ("CHANGED ON DISK: greet_v1_1_0.py changed on disk since validation: the stages shown are for the earlier diff "
            f"(sha256 {p['diff_sha256'][:12]}...") in out, out
    assert f"stages, for the earlier diff (sha256 {p['diff_sha256']}), not the one shown below:" in out
    assert "tooldeck review approve" not in out and f"revalidate: tooldeck review revalidate {pid}" in out
    assert main(["-w", ws, "--json", "review", "show", pid]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert "the stages shown are for the earlier diff" in shown["changed_on_disk"]
    assert main(["-w", ws, "review", "list"]) == 0
    assert "awaiting_review (changed on disk since validation)" in capsys.readouterr().out
    assert main(["-w", ws, "--json", "review", "list"]) == 0
    assert json.loads(capsys.readouterr().out)[0]["changed_on_disk"] == shown["changed_on_disk"]

    assert main(["-w", ws, "review", "approve", pid, "--diff", shown["current_diff_sha256"], "--scope", "global"]) == 1
    err = capsys.readouterr().err
    assert "changed on disk after validation" in err and f"tooldeck review revalidate {pid}" in err, err

    assert main(["-w", ws, "review", "revalidate", pid]) == 0
    captured = capsys.readouterr()
    assert "greet_v1_1_0.py changed on disk since validation, not by the model" in captured.err, captured.err
    assert "EDITED: greet_v1_1_0.py edited on disk by an operator after validation, not by the model" in captured.out
    again = get_proposal(rt, p["id"])
    assert again["status"] == "awaiting_review" and again["changed_on_disk"] is None
    assert again["diff_sha256"] == shown["current_diff_sha256"]
    [edit] = again["edited"]
    assert edit["by"] == "operator" and edit["files"] == ["greet_v1_1_0.py"]
    assert (edit["validated_diff_sha256"], edit["diff_sha256"]) == (p["diff_sha256"], shown["current_diff_sha256"])
    assert again["explanation"].startswith(f"[the model's explanation of its earlier code (diff sha256 {p['diff_sha256'][:12]}...)")
    assert again["explanation"].endswith("allow spaces in names")
    assert any(e.kind == "evolution.edited" for e in rt.events.recent(100))
    assert main(["-w", ws, "review", "approve", pid, "--diff", again["diff_sha256"], "--scope", "global"]) == 0


def test_a_candidate_changed_while_it_was_validated_fails_validation(workspace, make_runtime, anthropic_server):
    """The stages ran on one set of bytes and the diff recorded with them was read after: a file changed meanwhile made
    the stages vouch for a diff they never saw."""
    settings(workspace, evolution="max_rounds = 1")
    greet_tool(workspace)
    rt = make_runtime()
    code = rt.home / "evolved" / "greet" / "1.1.0" / "greet_v1_1_0.py"

    def edit_during_tests(event: dict[str, Any]) -> None:
        if event["stage"] == "tests":
            code.write_text(code.read_text() + "\n# edited while validated\n")

    anthropic_server.reply_tool_use("write_tool_version", greet_answer())
    p = evolve_tool(rt, "greet", "", "Allow spaces in names", progress=edit_during_tests)
    assert p["status"] == "failed_validation"
    assert p["stages"][-1]["name"] == "unchanged_on_disk" and not p["stages"][-1]["passed"]
    assert p["failure"].startswith("unchanged_on_disk: greet_v1_1_0.py changed on disk while it was validated")
    assert "edited while validated" in p["diff"]


def test_approving_again_for_the_scope_it_serves_changes_nothing(workspace, make_runtime, anthropic_server, capsys):
    """A second approval for the same scope said "now serves" and recorded bob over alice; it is a no-op, as a
    rollback to what already serves is."""
    from tools.cli import main

    settings(workspace)
    greet_tool(workspace)
    rt = make_runtime()
    p = proposed(rt, anthropic_server)
    ws, pid = str(workspace), str(p["id"])
    assert main(["-w", ws, "review", "approve", pid, "--diff", p["diff_sha256"], "--scope", "global", "--reviewer", "alice"]) == 0
    assert "now serves scope global" in capsys.readouterr().out
    assert main(["-w", ws, "review", "approve", pid, "--diff", p["diff_sha256"], "--scope", "global", "--reviewer", "bob"]) == 0
    assert capsys.readouterr().out.strip() == f"proposal {pid}: scope global already serves greet 1.1.0; nothing changed"
    assert main(["-w", ws, "--json", "review", "approve", pid, "--diff", p["diff_sha256"], "--scope", "global",
                 "--reviewer", "bob"]) == 0
    assert json.loads(capsys.readouterr().out)["unchanged"] is True
    assert get_proposal(rt, p["id"])["reviewer"] == "alice"
    assert [r[0] for r in rt.store.query("SELECT reviewer FROM promotions WHERE tool_id='greet'")] == ["alice"]
    history = rt.store.query("SELECT action, actor FROM promotion_history WHERE tool_id='greet'")
    assert [tuple(r) for r in history] == [("approved", "alice")]
    assert [e.kind for e in rt.events.recent(200)].count("promotion.approved") == 1


def test_rollback_for_a_scope_with_no_promotion_and_no_live_session_is_bad_usage(workspace, make_runtime, anthropic_server,
                                                                                  capsys):
    """`rollback TOOL VERSION --scope alpah` (a typo) said "already serves 1.0.0; nothing changed"."""
    from tools.cli import main

    settings(workspace)
    greet_tool(workspace)
    rt = make_runtime()
    mine = make_runtime(session="s-mine")
    p = proposed(rt, anthropic_server)
    approve(rt, p["id"], "global", "tester", p["diff_sha256"])
    approve(rt, p["id"], "s-mine", "tester", p["diff_sha256"])
    mine.close()  # its promotion stays: a scope with a promotion may be rolled back once its session is gone
    ws = str(workspace)
    capsys.readouterr()
    assert main(["-w", ws, "rollback", "greet", "1.0.0", "--scope", "alpah"]) == 2
    err = capsys.readouterr().err
    assert ("rollback greet: scope 'alpah' is not global, a scope with a promotion of it, or a live session; scopes with a "
            "promotion: global, s-mine; live sessions: ") in err, err
    assert main(["-w", ws, "--json", "rollback", "greet", "1.1.0", "--scope", "alpah"]) == 2
    assert json.loads(capsys.readouterr().out)["error_class"] == "bad_usage"
    served = {r[0]: r[1] for r in rt.store.query("SELECT scope, version FROM promotions")}
    assert served == {"global": "1.1.0", "s-mine": "1.1.0"}
    assert main(["-w", ws, "rollback", "greet", "1.0.0", "--scope", "s-mine"]) == 0
    assert "scope s-mine serves 1.0.0 again (was 1.1.0)" in capsys.readouterr().out


def test_a_shortened_diff_hash_is_bad_usage_not_a_stale_one(workspace, make_runtime, anthropic_server, capsys):
    from tools.cli import main

    settings(workspace)
    greet_tool(workspace)
    rt = make_runtime()
    p = proposed(rt, anthropic_server)
    capsys.readouterr()
    argv = ["-w", str(workspace), "--json", "review", "approve", str(p["id"]), "--diff", p["diff_sha256"][:12], "--scope", "global"]
    assert main(argv) == 2
    error = json.loads(capsys.readouterr().out)
    assert error["error_class"] == "bad_usage"
    assert error["error"] == (f"approve proposal {p['id']}: --diff must be the full 64-hex sha256 "
                              f"(tooldeck review show {p['id']} prints it)")
    assert get_proposal(rt, p["id"])["status"] == "awaiting_review"
