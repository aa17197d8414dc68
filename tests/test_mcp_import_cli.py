"""The command line and the dashboard over imported MCP servers: `tooldeck mcp list`, `tooldeck tools --wait` (which
connects servers no cache knows yet), `tooldeck call`, `evolve` refusing an MCP tool, `generate --from-tool` usage,
and the MCP servers' table in the dashboard's sessions view."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.mcp_import_helpers import SERVER, starts, stdio_section, write_settings

REPO = Path(__file__).resolve().parents[1]


def tooldeck(*args: str, ws: Path, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "tools", "--workspace", str(ws), *args], capture_output=True, text=True,
                          timeout=timeout, cwd=REPO)


@pytest.mark.slow
def test_mcp_list_tools_wait_call_and_evolve_from_the_command_line(workspace: Path, tmp_path: Path) -> None:
    state = tmp_path / "state"
    write_settings(workspace, stdio_section("srv", state),
                   '[mcp.servers.down]\ncommand = "/nonexistent/server"\ntimeout_seconds = 5\n')
    listed = tooldeck("tools", "--wait", "--json", ws=workspace)
    assert listed.returncode == 0, listed.stderr
    rows = {r["id"]: r for r in json.loads(listed.stdout)["tools"]}
    assert rows["srv_echo"]["source"] == "mcp:srv" and rows["srv_echo"]["type"] == "mcp" and rows["srv_echo"]["status"] == "ready"
    assert starts(state) == 1  # --wait connected the server no cache knew

    servers = tooldeck("mcp", "list", "--json", ws=workspace)
    assert servers.returncode == 0, servers.stderr
    by_name = {s["server"]: s for s in json.loads(servers.stdout)}
    assert by_name["srv"]["status"] == "ready" and by_name["srv"]["tools"] == 9 and by_name["srv"]["transport"] == "stdio"
    assert by_name["down"]["status"] == "error" and "cannot start '/nonexistent/server'" in by_name["down"]["error"]
    text = tooldeck("mcp", "list", "--no-connect", ws=workspace)
    lines = text.stdout.splitlines()
    assert lines[0].split("\t") == ["server", "transport", "status", "tools", "command / url", "held by", "last error"]
    assert lines[1].split("\t")[:4] == ["srv", "stdio", "not connected", "9"]  # from the cache, without connecting

    called = tooldeck("call", "srv_echo", '{"text": "cli"}', ws=workspace)
    assert called.returncode == 0 and json.loads(called.stdout) == {"echo": "cli", "length": 3}, called.stderr
    failed = tooldeck("call", "srv_fail", ws=workspace)
    assert failed.returncode == 1 and "srv_fail: boom: the backend is down" in failed.stderr

    evolve = tooldeck("evolve", "srv_echo", "make it better", ws=workspace)
    assert evolve.returncode == 1
    assert "an MCP tool's code lives in its server ('srv')" in evolve.stderr
    assert "tooldeck generate --from-tool srv_echo" in evolve.stderr
    usage = tooldeck("generate", "--from-tool", "srv_echo", "spec.md", ws=workspace)
    assert usage.returncode == 2 and "not both" in usage.stderr
    local = tooldeck("generate", "--from-tool", "buffer", ws=workspace)
    assert local.returncode == 2 and "not one imported from an MCP server" in local.stderr


async def test_the_sessions_view_lists_the_mcp_servers(workspace: Path, tmp_path: Path) -> None:
    from tests.tui_helpers import runtime_ready, table_keys, wait_for
    from tui.app import TooldeckApp
    from tui.screens.sessions import SessionsScreen

    write_settings(workspace, stdio_section("srv", tmp_path / "state"),
                   '[mcp.servers.down]\ncommand = "/nonexistent/server"\ntimeout_seconds = 5\n')
    app = TooldeckApp(workspace, poll_seconds=0.1)
    try:
        async with app.run_test(size=(160, 50)) as pilot:
            await runtime_ready(pilot, app)
            hub = app.runtime.extension("mcp")
            await wait_for(pilot, lambda: hub.links["srv"].status == "ready" and hub.links["down"].status == "error",
                           timeout=60, what="both servers settled")
            await pilot.press("w")
            await wait_for(pilot, lambda: isinstance(app.screen, SessionsScreen), what="the sessions view")
            table = app.screen.query_one("#mcp-servers-table")
            await wait_for(pilot, lambda: table_keys(table) == ["srv", "down"], what="the servers' rows")
            assert str(table.value("srv", "status")) == "ready" and table.value("srv", "tools") == "9"
            # the store may lag the hub by a write; the view reads it every second
            await wait_for(pilot, lambda: str(table.value("down", "status")) == "error", what="the failed server's row")
            assert "cannot start" in table.value("down", "error")
            table.focus()
            table.move_cursor(row=1)
            await pilot.press("enter")
            from tui.screens.details import DetailScreen

            await wait_for(pilot, lambda: isinstance(app.screen, DetailScreen), what="the server's details")
            assert app.screen.details.title == "MCP server down"
            assert dict(app.screen.details.fields)["status"] == "error"
    finally:
        app.shutdown()


async def test_tooldeck_mcp_serve_serves_imported_tools_too(workspace: Path, tmp_path: Path) -> None:
    """A gateway: an MCP client of `tooldeck mcp serve` calls a tool tooldeck imported from another MCP server."""
    from tests.buffer_helpers import wait_for
    from tests.mcp_helpers import db_rows, sdk_stdio

    write_settings(workspace, stdio_section("srv", tmp_path / "state"))
    async with sdk_stdio(workspace, name="gateway-client") as (session, _inbox):
        result = await session.call_tool("srv_echo", {"text": "through tooldeck"})
        assert not result.is_error and result.structured_content == {"echo": "through tooldeck", "length": 16}
        failed = await session.call_tool("srv_fail", {})
        assert failed.is_error and failed.content[0].text == "srv_fail: boom: the backend is down"
        listed = {t.name for t in (await session.list_tools()).tools}
        assert {"srv_echo", "srv_fail"} <= listed
    wait_for(lambda: db_rows(workspace, "SELECT * FROM events WHERE kind='mcp.disconnected'"), timeout=60)
    calls = db_rows(workspace, "SELECT tool_id, outcome, session FROM calls WHERE tool_id LIKE 'srv_%' ORDER BY id")
    assert [(c["tool_id"], c["outcome"]) for c in calls] == [("srv_echo", "ok"), ("srv_fail", "tool_error")]
    assert all(c["session"].startswith("gateway-client-") for c in calls)


def test_tools_check_fails_and_names_an_mcp_server_in_error(workspace: Path, tmp_path: Path) -> None:
    """An imported server that cannot start: its tools vanish from the list, so `tools --check` exits 1
    and says which server (it exited 0 before)."""
    from tests.mcp_import_helpers import REPO

    faulty = REPO / "tests" / "mcp_faulty_server.py"
    write_settings(workspace, stdio_section("down", tmp_path / "down-state", "--exit-at-start", script=faulty, timeout=10))
    out = subprocess.run([sys.executable, "-m", "tools", "--workspace", str(workspace), "tools", "--check"],
                         capture_output=True, text=True, timeout=120, cwd=REPO)
    assert out.returncode == 1, (out.stdout[-2000:], out.stderr[-2000:])
    assert "MCP server down (" in out.stderr and out.stderr.count("\n") == 1, out.stderr
    listed = subprocess.run([sys.executable, "-m", "tools", "--workspace", str(workspace), "tools", "--wait"],
                            capture_output=True, text=True, timeout=120, cwd=REPO)
    assert listed.returncode == 0, (listed.stdout[-2000:], listed.stderr[-2000:])  # a listing, not a check: it says why
    assert "tooldeck: MCP server down (" in listed.stderr and "its tools cannot be called (tooldeck mcp list)" in listed.stderr



def test_the_cached_tools_of_a_server_in_error_are_listed_in_error_with_it(workspace: Path, tmp_path: Path) -> None:
    """A server that connected once (its tool list cached) and now dies at start: `tools` lists its tools from
    the cache, in error with the server's error (text and --json), never `ready` beside a note saying otherwise."""
    flag = tmp_path / "down"
    wrapper = tmp_path / "flaky_start.py"
    wrapper.write_text("import os, runpy, sys\n"
                       f"if os.path.exists({str(flag)!r}):\n    sys.exit('dying at start')\n"
                       f"sys.argv[0] = {str(SERVER)!r}\nrunpy.run_path({str(SERVER)!r}, run_name='__main__')\n")
    write_settings(workspace, stdio_section("srv", tmp_path / "state", script=wrapper, timeout=10))
    first = tooldeck("tools", "--wait", ws=workspace)
    assert first.returncode == 0 and "srv_echo\tready" in first.stdout, (first.stdout[-2000:], first.stderr[-2000:])
    flag.touch()
    listed = tooldeck("tools", "--wait", ws=workspace)
    assert listed.returncode == 0 and "srv_echo\terror" in listed.stdout and "srv_echo\tready" not in listed.stdout
    assert "tooldeck: MCP server srv (" in listed.stderr and "its tools cannot be called" in listed.stderr, listed.stderr
    echo = next(r for r in json.loads(tooldeck("--json", "tools", ws=workspace).stdout)["tools"] if r["id"] == "srv_echo")
    assert echo["status"] == "error" and echo["error"].startswith("MCP server srv in error: "), echo
    check = tooldeck("tools", "--check", ws=workspace)  # the server is named once, its tools are not counted apart
    assert check.returncode == 1 and check.stderr.startswith("tooldeck: MCP server srv (") and check.stderr.count("\n") == 1


def test_a_server_status_reaches_the_store_in_the_order_it_changed(workspace: Path) -> None:
    """After a burst of status changes, the store holds the status the server has now. The writes ran on the loop's
    shared executor, two of one server side by side: a `connecting` read before an `error` could commit after it,
    and `mcp list` and the sessions view would then say `connecting` for a server in error until its next change.
    One writer now applies them in order. (That race needs a thread switch between a write's read and its BEGIN;
    this burst did not hit it in 7 runs of the old code.)"""
    import asyncio

    from tools.runtime import Runtime

    write_settings(workspace, '[mcp.servers.down]\ncommand = "/nonexistent/server"\ntimeout_seconds = 5\n')
    runtime = Runtime(workspace, serve=True)
    try:
        hub = runtime.extension("mcp")
        link = hub.links["down"]

        async def changes() -> None:  # a burst of changes, each queued from a running loop as the hub's are
            for i in range(301):
                link.status = ("error", "connecting")[i % 2]
                hub._status_changed(link)
                await asyncio.sleep(0.0005 * (i % 3))  # writes run while the status changes, as a reconnect loop's do

        asyncio.run(changes())
        hub._off_loop(lambda: None)  # queued behind every write above
        hub._writes.submit(lambda: None).result(timeout=60)
        rows = runtime.store.query("SELECT status FROM mcp_servers WHERE server='down' AND session=?", (runtime.own_session,))
        assert [r["status"] for r in rows] == [link.status]
    finally:
        runtime.close()


def test_a_remote_server_dying_mid_call_is_one_line_on_stderr(workspace: Path, tmp_path: Path) -> None:
    """The SDK's own account ("Session termination failed: ...") is routed to tooldeck.mcp at DEBUG, not printed
    under tooldeck's line by Python's last-resort handler."""
    from tests.mcp_import_helpers import FAULTY, http_section, http_server

    with http_server(tmp_path / "remote", script=FAULTY) as url:
        write_settings(workspace, http_section("remote", url))
        out = tooldeck("call", "remote_crash", ws=workspace)
    assert out.returncode == 1
    assert out.stderr == "tooldeck: remote_crash: MCP server 'remote' closed the connection during the call\n"


def test_the_sdk_clients_log_records_reach_tooldeck_mcp_at_debug() -> None:
    import logging

    import tools.mcp.client  # noqa: F401 - routes the SDK client's loggers

    class Keep(logging.Handler):
        def __init__(self) -> None:
            super().__init__(logging.DEBUG)
            self.records: list[logging.LogRecord] = []

        def emit(self, record: logging.LogRecord) -> None:
            self.records.append(record)

    ours, keep, root = logging.getLogger("tooldeck.mcp"), Keep(), Keep()
    level = ours.level
    ours.addHandler(keep)
    logging.root.addHandler(root)  # where an SDK record would go if it still propagated
    ours.setLevel(logging.DEBUG)
    try:
        logging.getLogger("mcp.client.streamable_http").warning("Session termination failed: gone")
        ours.warning("ours")
    finally:
        ours.removeHandler(keep)
        logging.root.removeHandler(root)
        ours.setLevel(level)
    seen = [(r.name, r.levelname, r.getMessage()) for r in keep.records]
    assert seen == [("tooldeck.mcp", "DEBUG", "MCP SDK: mcp.client.streamable_http: Session termination failed: gone"),
                    ("tooldeck.mcp", "WARNING", "ours")]  # tooldeck's own messages are untouched
    assert not any(r.name.startswith("mcp.") for r in root.records)
