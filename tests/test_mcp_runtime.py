"""What serving MCP needs of the runtime: calls made for another session, and calls cancelled from another thread."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from tests.buffer_helpers import wait_for
from tests.helpers import alive, exec_tool, python_tool
from tests.mcp_helpers import SLEEPY, db_rows
from tools.errors import ToolCancelledError, ToolError
from tools.invoke import CallScope

BROKEN = "import sys\nsys.stderr.write('no disk\\n')\nsys.exit(2)\n"
SLEEPY_PY = '''
import os, time
def run(data):
    path = os.path.join(os.environ["TOOLDECK_WORKSPACE"], data["pid_file"])
    with open(path + ".tmp", "w") as f:
        f.write(str(os.getpid()))
    os.replace(path + ".tmp", path)
    time.sleep(float(data.get("seconds", 60)))
    return {"slept": data.get("seconds", 60)}
'''


def test_a_call_for_a_session_is_recorded_and_evented_as_that_session(workspace: Path, make_runtime) -> None:
    exec_tool(workspace / "tools", "broken", BROKEN)
    python_tool(workspace / "tools", "ok", "def run(data):\n    return {'ok': True}\n")
    rt = make_runtime(session="s-own")
    assert rt.call("ok", {}, session="my-ide-a1b2c3") == {"ok": True}
    assert rt.session == "s-own"  # the session was the call's, not the runtime's
    with pytest.raises(ToolError, match="no disk"):
        rt.call("broken", {}, session="my-ide-a1b2c3")
    rt.call("ok", {})
    rt.calls.flush()
    calls = db_rows(rt.workspace, "SELECT tool_id, session, outcome FROM calls ORDER BY id")
    assert calls == [{"tool_id": "ok", "session": "my-ide-a1b2c3", "outcome": "ok"},
                     {"tool_id": "broken", "session": "my-ide-a1b2c3", "outcome": "exit_code"},
                     {"tool_id": "ok", "session": "s-own", "outcome": "ok"}]
    failures = db_rows(rt.workspace, "SELECT session FROM failures WHERE tool_id='broken'")
    assert failures == [{"session": "my-ide-a1b2c3"}]
    events = db_rows(rt.workspace, "SELECT session FROM events WHERE kind='tool.failure' AND tool_id='broken'")
    assert events == [{"session": "my-ide-a1b2c3"}]
    started = db_rows(rt.workspace, "SELECT session FROM events WHERE kind='runtime.started'")
    assert started == [{"session": "s-own"}]


def test_a_call_session_must_be_a_plain_name(workspace: Path, make_runtime) -> None:
    python_tool(workspace / "tools", "ok", "def run(data):\n    return 1\n")
    rt = make_runtime()
    with pytest.raises(ToolError, match="invalid session"):
        rt.call("ok", {}, session="../etc")


def _cancel_while_running(rt, tool_id: str, pid_file: Path) -> tuple[BaseException | None, int, CallScope]:
    scope = CallScope()
    outcome: dict[str, BaseException | None] = {"error": None}

    def run() -> None:
        try:
            with scope.active():
                rt.call(tool_id, {"pid_file": pid_file.name, "seconds": 60}, timeout=120)
        except BaseException as exc:  # noqa: BLE001 - handed to the test thread
            outcome["error"] = exc

    thread = threading.Thread(target=run)
    thread.start()
    pid = int(wait_for(lambda: pid_file.exists() and pid_file.read_text(), timeout=60))
    assert alive(pid)
    assert scope.cancel() == 1
    thread.join(30)
    assert not thread.is_alive(), "the cancelled call did not end"
    return outcome["error"], pid, scope


@pytest.mark.parametrize("kind", ["executable", "python"])
def test_cancelling_a_call_kills_its_process_and_is_not_held_against_the_tool(workspace: Path, make_runtime, kind: str) -> None:
    if kind == "executable":
        exec_tool(workspace / "tools", "sleepy", SLEEPY, timeout=120)
    else:
        python_tool(workspace / "tools", "sleepy", SLEEPY_PY, timeout=120)
    rt = make_runtime()
    error, pid, _scope = _cancel_while_running(rt, "sleepy", workspace / "sleepy.pid")
    assert isinstance(error, ToolCancelledError), error
    assert error.error_class == "cancelled" and "cancelled by the caller" in error.message
    wait_for(lambda: not alive(pid), timeout=10)
    rt.calls.flush()
    assert db_rows(rt.workspace, "SELECT outcome FROM calls WHERE tool_id='sleepy'") == [{"outcome": "cancelled"}]
    assert db_rows(rt.workspace, "SELECT * FROM failures WHERE tool_id='sleepy'") == []
    # the tool still works afterwards (a python worker restarts)
    (workspace / "sleepy.pid").unlink()
    assert rt.call("sleepy", {"pid_file": "again.pid", "seconds": 0}) == {"slept": 0}


def test_a_cancelled_scope_refuses_to_start_more_processes(workspace: Path, make_runtime) -> None:
    exec_tool(workspace / "tools", "sleepy", SLEEPY, timeout=120)
    rt = make_runtime()
    scope = CallScope()
    scope.cancel()
    with scope.active(), pytest.raises(ToolCancelledError):
        rt.call("sleepy", {"pid_file": "never.pid", "seconds": 0})
    assert not (workspace / "never.pid").exists()
