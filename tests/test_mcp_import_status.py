"""Imported MCP servers' status across processes (schema 6, `mcp_servers`): a serving runtime records each server's
status, tool count and last error with its node; `tooldeck mcp list` in another process shows them without starting the
servers again; rows of a runtime killed with -9 stop counting; a runtime that closes removes its rows. Both backends."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

from tests.buffer_helpers import wait_for
from tests.mcp_import_helpers import kill9, starts, stdio_section, write_settings

REPO = Path(__file__).resolve().parents[1]
SERVING = textwrap.dedent("""
    import sys, time
    from tools.runtime import Runtime
    rt = Runtime(sys.argv[1], serve=True, kind="serve")
    hub = rt.extension("mcp")
    while hub.links["srv"].status != "ready" or hub.links["down"].status != "error":
        time.sleep(0.05)
    print(rt.own_session, rt.node, flush=True)
    sys.stdin.read()  # until the test closes our stdin
    rt.close()
""")
DOWN = '[mcp.servers.down]\ncommand = "/nonexistent/server"\ntimeout_seconds = 5\n'


def mcp_list(ws: Path, *args: str) -> dict[str, dict]:
    done = subprocess.run([sys.executable, "-m", "tools", "--workspace", str(ws), "mcp", "list", "--json", *args],
                          capture_output=True, text=True, timeout=120, cwd=REPO)
    assert done.returncode == 0, done.stderr
    return {row["server"]: row for row in json.loads(done.stdout)}


def test_mcp_list_in_another_process_shows_what_the_serving_runtime_holds(workspace: Path, tmp_path: Path, backend) -> None:
    state = tmp_path / "state"
    write_settings(workspace, stdio_section("srv", state), DOWN)
    serving = subprocess.Popen([sys.executable, "-c", SERVING, str(workspace)], stdin=subprocess.PIPE,
                               stdout=subprocess.PIPE, text=True, cwd=REPO)
    try:
        assert serving.stdout is not None
        session, node = serving.stdout.readline().split()
        rows = mcp_list(workspace, "--no-connect")
        assert rows["srv"]["status"] == "ready" and rows["srv"]["tools"] == 9 and rows["srv"]["node"] == node
        assert rows["srv"]["held_by"] == f"session {session} on {node}" and rows["srv"]["pid"] is not None
        assert rows["down"]["status"] in ("error", "connecting")  # retrying: its last error stays while it connects
        assert "cannot start '/nonexistent/server'" in rows["down"]["error"]
        assert rows["down"]["node"] == node

        rows = mcp_list(workspace)  # connecting: a server another runtime holds is not started again to be listed
        assert rows["srv"]["status"] == "ready" and rows["srv"]["node"] == node and starts(state) == 1

        kill9(serving.pid)
        serving.wait(30)
        rows = mcp_list(workspace, "--no-connect")  # a dead node's rows do not count
        assert rows["srv"]["status"] == "not connected" and rows["srv"]["node"] is None
        assert rows["down"]["status"] == "not connected" and rows["down"]["held_by"] is None
    finally:
        if serving.poll() is None:
            serving.kill()
            serving.wait(30)


def test_a_closing_serving_runtime_removes_its_rows(workspace: Path, tmp_path: Path, make_runtime, backend) -> None:
    write_settings(workspace, stdio_section("srv", tmp_path / "state"), DOWN)
    serving = subprocess.Popen([sys.executable, "-c", SERVING, str(workspace)], stdin=subprocess.PIPE,
                               stdout=subprocess.PIPE, text=True, cwd=REPO)
    try:
        assert serving.stdout is not None and serving.stdin is not None
        _session, node = serving.stdout.readline().split()
        reader = make_runtime()  # a library runtime in this process: it reads, never writes, the rows
        hub = reader.extension("mcp")
        statuses = {s["server"]: s for s in hub.statuses()}
        assert statuses["srv"]["status"] == "ready" and statuses["srv"]["node"] == node
        def rows() -> list[tuple]:
            return [tuple(r) for r in reader.store.query("SELECT server, node, status, tools FROM mcp_servers ORDER BY server")]

        # `down` alternates between connecting and error as it is retried: its row says error between attempts
        wait_for(lambda: rows() == [("down", node, "error", None), ("srv", node, "ready", 9)], 30)
        assert rows()[1] == ("srv", node, "ready", 9) and rows()[0][:2] == ("down", node)
        serving.stdin.close()
        assert serving.wait(60) == 0
        assert reader.store.query("SELECT server FROM mcp_servers") == []
        assert {s["server"]: s["status"] for s in hub.statuses()}["srv"] == "not connected"
    finally:
        if serving.poll() is None:
            serving.kill()
            serving.wait(30)


async def test_the_sessions_view_shows_every_live_holder(workspace: Path, tmp_path: Path, backend) -> None:
    """The dashboard's own connections, and the serving runtime's in another process, read from the store."""
    from tests.tui_helpers import runtime_ready, table_keys, wait_for
    from tui.app import TooldeckApp
    from tui.screens.sessions import SessionsScreen

    write_settings(workspace, stdio_section("srv", tmp_path / "state"), DOWN)
    serving = subprocess.Popen([sys.executable, "-c", SERVING, str(workspace)], stdin=subprocess.PIPE,
                               stdout=subprocess.PIPE, text=True, cwd=REPO)
    app = TooldeckApp(workspace, poll_seconds=0.1)
    try:
        assert serving.stdout is not None and serving.stdin is not None
        session, node = serving.stdout.readline().split()
        async with app.run_test(size=(200, 50)) as pilot:
            await runtime_ready(pilot, app)
            await pilot.press("w")
            await wait_for(pilot, lambda: isinstance(app.screen, SessionsScreen), what="the sessions view")
            table = app.screen.query_one("#mcp-servers-table")
            await wait_for(pilot, lambda: {f"srv@{node}", f"down@{node}", "srv", "down"} <= set(table_keys(table)),
                           timeout=60, what="both holders' rows")
            assert str(table.value(f"srv@{node}", "status")) == "ready" and table.value(f"srv@{node}", "tools") == "9"
            assert table.value(f"srv@{node}", "held_by") == f"session {session} on {node}"
            # retrying, it is `error` or `connecting`; its last error stays either way
            assert str(table.value(f"down@{node}", "status")) in ("error", "connecting")
            assert "cannot start '/nonexistent/server'" in table.value(f"down@{node}", "error")
            serving.stdin.close()  # it closes: its rows go, and so do they from the view
            assert serving.wait(60) == 0
            await wait_for(pilot, lambda: f"srv@{node}" not in table_keys(table), timeout=30, what="its rows gone")
    finally:
        app.shutdown()
        if serving.poll() is None:
            serving.kill()
            serving.wait(30)
