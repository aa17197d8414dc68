"""MCP servers' tools in the catalog: `[mcp.servers.NAME]` over stdio (a real SDK server process), ids, paging,
calls, is_error results, list_changed, timeouts that send notifications/cancelled, the tool-list cache, collisions."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest

from tests.buffer_helpers import wait_for
from tests.helpers import python_tool
from tests.mcp_import_helpers import link, starts, stdio_section, wait_status, write_settings
from tools.errors import ToolError, ToolInputError, ToolTimeoutError, UnknownToolError
from tools.mcp.servers import import_id, load_server_configs
from tools.settings import load_settings


def test_ids_follow_the_id_rule_with_a_short_hash_past_64_characters() -> None:
    assert import_id("files", "read_file") == "files_read_file"
    assert import_id("my_srv", "Weird Name.v2") == "my_srv_weird_name_v2"
    assert import_id("x", "Read-File") == "x_read_file"
    long_a, long_b = import_id("search", "a" * 70 + "1"), import_id("search", "a" * 70 + "2")
    assert len(long_a) == 64 == len(long_b) and long_a != long_b  # cut, and told apart by the hash of the whole
    assert long_a.startswith("search_aaaa") and import_id("search", "a" * 70 + "1") == long_a


def test_a_malformed_server_section_is_one_line_naming_the_key(workspace: Path) -> None:
    (workspace / "tooldeck.toml").write_text(
        '[mcp.servers.both]\ncommand = "x"\nurl = "http://127.0.0.1:1/mcp"\n'
        '[mcp.servers.typo]\ncommand = "x"\nenviron = {}\n'
        '[mcp.servers.slow]\ncommand = "x"\ntimeout_seconds = -1\n'
        '[mcp.servers.ok]\nurl = "http://127.0.0.1:9/mcp"\n')
    configs = {c.name: c for c in load_server_configs(load_settings(workspace))}
    assert "give either command (a stdio server) or url" in configs["both"].problem
    assert "[mcp.servers.typo]: unknown setting 'environ'" in configs["typo"].problem
    assert "[mcp.servers.slow] timeout_seconds must be a number" in configs["slow"].problem
    assert configs["ok"].problem is None and configs["ok"].transport == "http"
    assert load_settings(workspace).warnings == ()  # [mcp.servers] is not an unknown setting


def test_list_and_call_a_stdio_server(workspace: Path, make_runtime, tmp_path: Path) -> None:
    state = tmp_path / "state"
    write_settings(workspace, stdio_section("srv", state, "--page-size", "2"))
    rt = make_runtime()
    assert rt.call("srv_echo", {"text": "hello"}) == {"echo": "hello", "length": 5}  # unknown id: its server connects
    ids = [i for i in rt.catalog.ids() if i.startswith("srv_")]
    assert ids == sorted(["srv_echo", "srv_fail", "srv_slow", "srv_add_tool", "srv_store_batch", "srv_fahrenheit_to_celsius",
                          "srv_env_report", "srv_leak", "srv_weird_name_v2"])  # 9 tools over 5 pages of 2
    assert len((state / "list.log").read_text().splitlines()) == 5
    entry = rt.catalog.find("srv_echo")
    m = entry.manifest
    assert (m.type, m.version, m.mcp.server, m.mcp.tool, entry.source) == ("mcp", "1.0.0", "srv", "echo", "mcp:srv")
    assert m.description == "Echo a text back with its length" and m.read_only is True and m.idempotent is True
    assert m.input_schema["required"] == ["text"] and m.output_schema["required"] == ["echo", "length"]
    assert m.call_timeout() == 20 and m.tags == ["mcp", "srv"]
    assert rt.call("srv_weird_name_v2", {"a": 1}) == {"tool": "Weird Name.v2", "arguments": {"a": 1}}

    with pytest.raises(ToolError) as failed:
        rt.call("srv_fail", {})
    assert failed.value.error_class == "tool_error" and failed.value.message == "srv_fail: boom: the backend is down"
    with pytest.raises(ToolInputError, match="srv_echo: bad input"):
        rt.call("srv_echo", {"text": 5})  # checked against the server's schema before anything is sent
    rt.calls.flush()
    rows = rt.store.query("SELECT tool_id, version, outcome, error FROM calls WHERE tool_id LIKE 'srv_%' ORDER BY id")
    assert [(r["tool_id"], r["outcome"]) for r in rows] == [("srv_echo", "ok"), ("srv_weird_name_v2", "ok"),
                                                           ("srv_fail", "tool_error"), ("srv_echo", "bad_input")]
    tracker = rt.extension("failures")
    tracker.sync(force=True)
    health = tracker.health("srv_fail", "1.0.0")
    assert health is not None and health["score"] < 1.0  # scored like any tool's failure
    assert starts(state) == 1


def test_list_changed_from_the_server_updates_the_catalog_live(workspace: Path, make_runtime, tmp_path: Path) -> None:
    state = tmp_path / "state"
    write_settings(workspace, stdio_section("srv", state))
    rt = make_runtime(serve=True)
    wait_status(rt, "srv", "ready")
    seen: list[str] = []
    rt.subscribe(lambda changes: seen.extend(c.tool_id for c in changes))
    assert rt.catalog.find("srv_added_later") is None
    assert rt.call("srv_add_tool", {"name": "added_later"}) == {"added": "added_later"}
    entry = wait_for(lambda: rt.catalog.find("srv_added_later"), timeout=30)
    assert entry.status == "ready" and entry.manifest.description == "added at run time: added_later"
    assert "srv_added_later" in seen and "srv_echo" not in seen  # only what changed is published again
    assert rt.call("srv_added_later", {}) == {"tool": "added_later", "arguments": {}}
    events = rt.store.query("SELECT kind FROM events WHERE tool_id='srv_added_later'")
    assert [e["kind"] for e in events] == ["tool.ready"]


def test_a_call_past_timeout_seconds_fails_as_timeout_and_sends_cancelled(workspace: Path, make_runtime, tmp_path: Path) -> None:
    state = tmp_path / "state"
    write_settings(workspace, stdio_section("srv", state, timeout=2))
    rt = make_runtime()
    assert rt.call("srv_echo", {"text": "up"})["echo"] == "up"
    with pytest.raises(ToolTimeoutError, match="no result within 2 s; the call was cancelled on the server"):
        rt.call("srv_slow", {"seconds": 60})
    assert wait_for(lambda: (state / "cancelled.log").exists() and (state / "cancelled.log").read_text(), 30) == "slow 60\n"
    assert rt.call("srv_echo", {"text": "still"})["echo"] == "still"  # the connection is fine
    rt.calls.flush()
    outcomes = [r[0] for r in rt.store.query("SELECT outcome FROM calls WHERE tool_id='srv_slow'")]
    assert outcomes == ["timeout"]


def test_a_cancelled_caller_cancels_the_call_on_the_server(workspace: Path, make_runtime, tmp_path: Path) -> None:
    """An MCP client of tooldeck cancelling a call to an imported tool: the scope's cancel reaches the imported server."""
    from tools.errors import ToolCancelledError
    from tools.invoke import CallScope

    state = tmp_path / "state"
    write_settings(workspace, stdio_section("srv", state))
    rt = make_runtime()
    rt.call("srv_echo", {"text": "up"})
    scope, box = CallScope(), {}

    def call() -> None:
        with scope.active():
            try:
                rt.call("srv_slow", {"seconds": 60})
            except ToolError as exc:
                box["error"] = exc

    worker = threading.Thread(target=call)
    worker.start()
    wait_for(lambda: (state / "slow.started").exists(), 30)
    # 1 in the usual case; 0 when the request reached the server before the calling thread registered the call with
    # the scope (CallScope._add then cancels it as it registers): either way the server is told, checked below
    assert scope.cancel() in (0, 1)
    worker.join(30)
    assert isinstance(box["error"], ToolCancelledError)
    assert wait_for(lambda: (state / "cancelled.log").exists() and (state / "cancelled.log").read_text(), 30) == "slow 60\n"


def test_cached_tool_lists_give_ids_before_connecting(workspace: Path, make_runtime, tmp_path: Path) -> None:
    state = tmp_path / "state"
    write_settings(workspace, stdio_section("srv", state, env={"API_TOKEN": "${IMPORT_TEST_TOKEN}"}))
    import os

    os.environ["IMPORT_TEST_TOKEN"] = "cache-secret-" + "5d2a9e"
    try:
        first = make_runtime()
        first.call("srv_echo", {"text": "x"})
        first.close()
        cache = json.loads((workspace / ".tooldeck" / "mcp" / "srv.tools.json").read_text())
        assert cache["server"] == "srv" and len(cache["tools"]) == 9 and "cache-secret" not in json.dumps(cache)
        assert starts(state) == 1

        second = make_runtime()
        second.catalog.discovered.wait(30)
        assert second.catalog.find("srv_echo") is not None and second.catalog.find("srv_echo").status == "ready"
        assert link(second, "srv").status == "idle" and starts(state) == 1  # known, not connected
        assert second.call("srv_echo", {"text": "y"})["echo"] == "y"  # the first call connects
        assert starts(state) == 2
    finally:
        del os.environ["IMPORT_TEST_TOKEN"]

    # a changed command makes the cache stale: its tools are not claimed before the server says so
    write_settings(workspace, stdio_section("srv", state, "--page-size", "4"))
    third = make_runtime()
    third.catalog.discovered.wait(30)
    assert third.catalog.find("srv_echo") is None


def test_collisions_local_and_builtin_win_then_the_first_server(workspace: Path, make_runtime, tmp_path: Path) -> None:
    python_tool(workspace / "tools", "a_echo", "def run(d):\n    return {'local': True}\n")
    write_settings(workspace,
                   stdio_section("a", tmp_path / "a", "--alias", "b_echo"),       # a_echo (local wins), a_b_echo
                   stdio_section("a_b", tmp_path / "ab"),                          # a_b_echo: a was first
                   stdio_section("mark", tmp_path / "m", "--alias", "tool_failure"))  # mark_tool_failure: builtin wins
    rt = make_runtime(serve=True)
    for name in ("a", "a_b", "mark"):
        wait_status(rt, name, "ready")
    assert rt.call("a_echo", {}) == {"local": True}
    assert rt.catalog.find("a_b_echo").source == "mcp:a"
    assert rt.call("a_b_echo", {}) == {"tool": "b_echo", "arguments": {}}
    assert rt.catalog.find("mark_tool_failure").source == "builtin"
    assert rt.catalog.find("a_b_fail").source == "mcp:a_b"  # its other tools are imported
    problems = {p.path.name: p.message for p in rt.catalog.problems()}
    assert "is taken by the workspace tool at" in problems["a_echo"]
    assert "is taken by the tool of MCP server 'a', earlier in tooldeck.toml; not imported" in problems["a_b_echo"]
    assert "is taken by the builtin tool at" in problems["mark_tool_failure"]
    from tools.cli.core_cmds import tool_rows

    rows = {(r["id"], r["source"]): r for r in tool_rows(rt)}
    assert rows[("a_b_echo", "problem")]["status"] == "error" and rows[("a_b_echo", "mcp:a")]["status"] == "ready"
    events = rt.store.query("SELECT payload FROM events WHERE kind='tool.problem'")
    assert sum("a_b_echo" in e["payload"] for e in events) == 1


def test_an_unknown_id_names_the_server_in_error(workspace: Path, make_runtime) -> None:
    write_settings(workspace, '[mcp.servers.gone]\ncommand = "/nonexistent/mcp-server"\ntimeout_seconds = 5\n')
    rt = make_runtime()
    with pytest.raises(ToolError) as err:
        rt.call("gone_anything", {})
    assert err.value.error_class == "unavailable"
    assert "MCP server 'gone', whose tools it would be, is in error" in err.value.message
    assert "/nonexistent/mcp-server" in err.value.message
    with pytest.raises(UnknownToolError):
        rt.call("nothing_like_it", {})


def test_reconnection_backs_off_doubling_and_capped() -> None:
    from tools.mcp.client import BACKOFF_MAX, backoff

    assert [backoff(n) for n in (1, 2, 3, 4)] == [0.5, 1.0, 2.0, 4.0]
    assert backoff(7) == BACKOFF_MAX == backoff(1000) == 30.0


def test_failures_of_an_imported_tool_open_its_circuit(workspace: Path, make_runtime, tmp_path: Path) -> None:
    write_settings(workspace, stdio_section("srv", tmp_path / "state"),
                   extra="[circuit]\nconsecutive_failures = 3\nmin_calls = 3\ncooldown_seconds = 600\n")
    rt = make_runtime()
    for _ in range(3):
        with pytest.raises(ToolError, match="boom"):
            rt.call("srv_fail", {})
    with pytest.raises(ToolError) as refused:
        rt.call("srv_fail", {})
    assert refused.value.error_class == "unavailable" and "circuit open" in refused.value.message
    assert rt.call("srv_echo", {"text": "other tools still served"})["length"] == 24
