"""The sessions view lists the live runtimes of the workspace (kind, label, host, pid, heartbeat, calls and
failures in the last minute), and the approve dialog offers them, the one that failed with the tool first."""

from __future__ import annotations

import socket
import subprocess
import sys
import textwrap
from pathlib import Path

from tests.helpers import python_tool
from tests.tui_helpers import runtime_ready, table_keys, wait_for
from tui.app import TooldeckApp
from tui.screens.sessions import SessionsScreen

WORKER = textwrap.dedent("""
    import sys, time
    from tools.runtime import Runtime
    rt = Runtime(sys.argv[1], session=sys.argv[2], label=sys.argv[3], kind=sys.argv[4])
    rt.get_tool("echo", timeout=60)
    for i in range({calls}):
        try:
            rt.call("echo", {{"fail": i < int(sys.argv[5])}})
        except Exception:
            pass
    rt.calls.flush()
    print("ready", flush=True)
    sys.stdin.read()  # until the test closes our stdin
    rt.close()
""")


def start(ws: Path, session: str, label: str, kind: str, failures: int, calls: int = 4) -> subprocess.Popen[str]:
    proc = subprocess.Popen([sys.executable, "-c", WORKER.format(calls=calls), str(ws), session, label, kind, str(failures)],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
    return proc


async def test_sessions_view_and_the_scope_choice(workspace: Path) -> None:
    from tui.widgets.evolution_panel import scope_options

    python_tool(workspace / "tools", "echo", "def run(d):\n    if d.get('fail'):\n        raise ValueError('asked to fail')\n"
                                              "    return d\n")
    workers = [start(workspace, "s-batch", "nightly batch", "cli", failures=0),
               start(workspace, "s-flaky", "etl workflow", "library", failures=3)]
    app = TooldeckApp(workspace, poll_seconds=0.1)
    try:
        async with app.run_test(size=(160, 50)) as pilot:
            await runtime_ready(pilot, app)
            await wait_for(pilot, lambda: app.latest is not None and len(app.latest.sessions) >= 3, timeout=30, what="three sessions")
            await pilot.press("w")
            await wait_for(pilot, lambda: isinstance(app.screen, SessionsScreen), what="the sessions view")
            table = app.screen.query_one("#sessions-table")
            key = f"s-flaky/{workers[1].pid}"
            await wait_for(pilot, lambda: key in table_keys(table), what="the worker's row")
            row = {c: str(table.value(key, c)) for c in ("kind", "label", "host", "pid", "calls", "failed", "heartbeat")}
            assert row == {**row, "kind": "library", "label": "etl workflow", "host": socket.gethostname(),
                           "pid": str(workers[1].pid), "calls": "4", "failed": "3"}, row
            assert row["heartbeat"].endswith("s ago")
            own = f"{app.runtime.session}/{app.runtime.pid}"
            assert str(table.value(own, "kind")) == "dashboard" and "this dashboard" in str(table.value(own, "label"))
            assert str(table.value(f"s-batch/{workers[0].pid}", "kind")) == "cli"
            await pilot.press("escape")

            options = scope_options(app.runtime, "echo", app.latest.sessions)
            values = [value for value, _ in options]
            assert values == ["s-flaky", "s-batch", "global"], options  # the failing one first, no dashboard, global last
            assert "failed" in options[0][1] and app.runtime.session not in values

            # a version approved for one session is in view everywhere: the Tools list, its session's row, the dialog
            from state.promotions import promote

            with app.runtime.store.tx() as con:
                promote(con, "echo", "s-flaky", "1.1.0", original_version="1.0.0", proposal_id=None, reason="test",
                        reviewer="t", now=app.runtime.store.now())
            tools = app.query_one("#tools-table")
            await wait_for(pilot, lambda: "1.1.0 ↑s-flaky" in str(tools.value("echo", "version")), timeout=20,
                           what="the session's pin in the Tools list")
            options = dict(scope_options(app.runtime, "echo", app.latest.sessions))
            assert "this session already serves 1.1.0" in options["s-flaky"] and "already" not in options["s-batch"]
            await pilot.press("w")
            await wait_for(pilot, lambda: isinstance(app.screen, SessionsScreen), what="the sessions view")
            table = app.screen.query_one("#sessions-table")
            await wait_for(pilot, lambda: str(table.value(key, "pins")) == "echo 1.1.0", what="the pin in the session's row")
            await pilot.press("escape")
    finally:
        app.shutdown()
        for proc in workers:
            proc.communicate(input="", timeout=30)


async def test_every_node_by_host_and_the_backend(workspace: Path, backend) -> None:
    """Runtimes of another machine sharing the state are listed under their host (their pid may repeat a
    local one), and the dashboard says which backend the state is on."""
    import os

    app = TooldeckApp(workspace, poll_seconds=0.1)
    try:
        async with app.run_test(size=(200, 50)) as pilot:
            await runtime_ready(pilot, app)
            store = app.runtime.store
            now = store.now() + 60  # a heartbeat that stays fresh however slow this machine is
            with store.tx() as con:
                for session, host in (("s-remote", "node-b"), ("s-other", "node-c")):
                    con.execute("INSERT INTO runtimes(session, node, pid, host, started, heartbeat, serve, label, kind)"
                                " VALUES (?,?,?,?,?,?,?,?,?)", (session, f"{host}:{os.getpid()}:f00d", os.getpid(), host, now,
                                                               now, 1, f"serve on {host}", "serve"))
            await wait_for(pilot, lambda: app.latest is not None and len(app.latest.sessions) >= 3, timeout=30,
                           what="three nodes")
            await pilot.press("w")
            await wait_for(pilot, lambda: isinstance(app.screen, SessionsScreen), what="the sessions view")
            table = app.screen.query_one("#sessions-table")
            remote = f"s-remote/node-b/{os.getpid()}"
            await wait_for(pilot, lambda: remote in table_keys(table), what="node b's row")
            keys = table_keys(table)
            assert keys[0] == f"{app.runtime.own_session}/{os.getpid()}"  # this host first, then by host
            assert keys.index(remote) < keys.index(f"s-other/node-c/{os.getpid()}")
            assert str(table.value(remote, "host")) == "node-b" and str(table.value(remote, "label")) == "serve on node-b"
            title = str(app.screen.query_one("#sessions-title").content)
            assert "on 3 hosts" in title and f"state: {backend.name}" in title, title
            if backend.postgres:
                assert "postgresql, 3 hosts" in app.sub_title
                assert " on /" in title and " as postgres" in title and "password" not in title and "***" not in title
            else:
                assert "postgresql" not in app.sub_title and "tooldeck.db" in title
    finally:
        app.shutdown()
