"""Imported ids do not repeat the server's name (`git_status` of server `git`, not `git_git_status`): the rule, its
collision checks (the long form stays, and a warning and an event say why), and the old long ids: calls by them
resolve to the new id, and the calls, failures and scores recorded under them move to it. Both backends."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from tests.helpers import python_tool
from tests.mcp_import_helpers import stdio_section, wait_status, write_settings
from tools.errors import ToolError
from tools.mcp.imported import ids_for
from tools.mcp.servers import import_id, load_server_configs, long_import_id
from tools.recovery.ledger import mark_tool_failure
from tools.settings import load_settings


def test_the_servers_name_is_not_repeated() -> None:
    assert import_id("git", "git_status") == "git_status" and long_import_id("git", "git_status") == "git_git_status"
    assert import_id("git", "Git-Log") == "git_log"  # normalised first, then compared
    assert import_id("git", "git") == "git_git" and import_id("git", "gitk") == "git_gitk"  # only a whole `git_` prefix
    assert import_id("git", "status") == "git_status" == long_import_id("git", "status")
    long_name = "git_" + "a" * 70
    assert len(import_id("git", long_name)) == 64 and import_id("git", long_name) != long_import_id("git", long_name)


def test_a_short_id_that_collides_keeps_the_long_form_and_says_why(workspace: Path) -> None:
    write_settings(workspace, '[mcp.servers.git]\ncommand = "x"\n')
    config = load_server_configs(load_settings(workspace))[0]
    holders = {"git_log": "the workspace tool at tools/git_log"}
    ids, kept = ids_for(config, ["status", "git_status", "git_diff", "git_log", "git_show"], holders.get,
                        pinned={"git_git_show"})
    assert ids == {"status": "git_status", "git_status": "git_git_status", "git_diff": "git_diff",
                   "git_log": "git_git_log", "git_show": "git_git_show"}
    assert kept == {"git_status": "'git_status' is also an id of another tool of this server",
                    "git_log": "'git_log' is taken by the workspace tool at tools/git_log",
                    "git_show": "approved or proposed versions are keyed on 'git_git_show'"}


def test_old_long_ids_still_call_and_their_records_move(workspace: Path, make_runtime, tmp_path: Path) -> None:
    """Records made under `srv_srv_status` (here by a local tool of that id, as an older tooldeck's import made them)
    belong to `srv_status` once the server's tool is imported under the short id; a call by the old id works."""
    folder = python_tool(workspace / "tools", "srv_srv_status", "def run(d):\n    raise ValueError('backend down')\n")
    first = make_runtime()
    for _ in range(2):
        with pytest.raises(ToolError):
            first.call("srv_srv_status", {})
    mark_tool_failure(first, "srv_srv_status", "status of a repository", "it was down", "high")
    first.calls.flush()
    first.close()
    folder.unlink()
    folder.with_suffix(".py").unlink()

    write_settings(workspace, stdio_section("srv", tmp_path / "state", "--alias", "srv_status", "--alias", "srv_echo"))
    rt = make_runtime(serve=True)
    assert rt.call("srv_srv_status", {}) == {"tool": "srv_status", "arguments": {}}  # the old id, answered by the new
    wait_status(rt, "srv", "ready")
    assert rt.catalog.find("srv_status").manifest.mcp.tool == "srv_status"
    assert "srv_srv_status" not in rt.catalog.ids()  # an alias, not a second tool
    assert rt.catalog.find("srv_srv_echo").tool_id == "srv_srv_echo"  # `srv_echo` is the `echo` tool's: long form kept
    assert rt.catalog.find("srv_echo").manifest.mcp.tool == "echo"
    rt.calls.flush()
    calls = [(r[0], r[1]) for r in rt.store.query("SELECT tool_id, outcome FROM calls ORDER BY id")]
    assert [c[0] for c in calls] == ["srv_status"] * 3 and [c[1] for c in calls][2] == "ok", calls  # two from before
    failures = {r[0] for r in rt.store.query("SELECT tool_id FROM failures")}
    assert failures == {"srv_status"}
    tracker = rt.extension("failures")
    tracker.sync(force=True)
    health = tracker.health("srv_status", "1.0.0")
    assert health is not None and health["score"] < 1.0  # the demotion kept
    assert rt.store.query("SELECT tool_id FROM tool_health WHERE tool_id='srv_srv_status'") == []
    events = {r[0]: json.loads(r[1]) for r in rt.store.query("SELECT kind, payload FROM events WHERE kind LIKE 'mcp.tool_%'")}
    assert events["mcp.tool_renamed"]["old_id"] == "srv_srv_status" and events["mcp.tool_renamed"]["moved"]["failures"] == 3
    assert "'srv_echo' is also an id of another tool of this server" in events["mcp.tool_id_kept"]["reason"]


def test_an_id_approvals_are_keyed_on_keeps_its_long_form(workspace: Path, make_runtime, tmp_path: Path) -> None:
    write_settings(workspace, stdio_section("srv", tmp_path / "state", "--alias", "srv_status"))
    rt = make_runtime()
    with rt.store.tx() as con:  # a promotion an older tooldeck made under the long id
        con.execute("INSERT INTO promotions(tool_id, scope, version, promoted_at) VALUES (?,?,?,?)",
                    ("srv_srv_status", "session-x", "1.1.0", time.time()))
    assert rt.call("srv_srv_status", {}) == {"tool": "srv_status", "arguments": {}}
    assert rt.catalog.find("srv_srv_status").tool_id == "srv_srv_status" and rt.catalog.find("srv_status") is None


def test_a_short_id_a_local_tool_holds_keeps_the_long_form(workspace: Path, make_runtime, tmp_path: Path) -> None:
    python_tool(workspace / "tools", "srv_status", "def run(d):\n    return {'local': True}\n")
    write_settings(workspace, stdio_section("srv", tmp_path / "state", "--alias", "srv_status"))
    rt = make_runtime(serve=True)
    wait_status(rt, "srv", "ready")
    assert rt.call("srv_status", {}) == {"local": True}
    assert rt.call("srv_srv_status", {}) == {"tool": "srv_status", "arguments": {}}
    assert not [p for p in rt.catalog.problems() if "srv_status" in p.message]  # no collision left to show
