"""Interrupted evolutions are reaped on the next start: a real `tooldeck evolve` killed with -9."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from state.db import StoreError
from tests.evolution_helpers import greet_answer, greet_tool, settings
from tests.helpers import state_rows
from tests.messages_server import FAKE_KEY, MessagesServer, messages_server_fixture  # noqa: F401
from tools.evolution.review import get_proposal

ROOT = Path(__file__).resolve().parents[1]

MARKER = f"tooldeck-orphan-{os.getpid()}"
SLOW_CANDIDATE = f'''
import subprocess, sys
def run(data):
    subprocess.run([sys.executable, "-c", "import time; time.sleep(120)", "{MARKER}"])
    return {{"greeting": "hello " + data["name"]}}
'''


def start_evolve(workspace: Path, server: MessagesServer) -> subprocess.Popen[bytes]:
    """`tooldeck evolve greet ...` in its own process, against the loopback Messages server."""
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "ANTHROPIC_API_KEY": FAKE_KEY, "ANTHROPIC_BASE_URL": server.url,
           "PYTHONPATH": str(ROOT), "HOME": str(workspace),
           **{k: v for k, v in os.environ.items() if k == "TOOLDECK_DATABASE_URL"}}  # the backend under test
    return subprocess.Popen([sys.executable, "-c", "from tools.cli import main; raise SystemExit(main())", "-w", str(workspace),
                             "evolve", "greet", "Allow spaces in names"], env=env, cwd=workspace,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def started(rt: Any) -> Any:
    """The runtime once its extensions (evolution's reaping among them) ran at start."""
    rt.extension("evolution_guard")
    return rt


def wait_for_status(workspace: Path, status: str, proc: subprocess.Popen[bytes], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
        if (workspace / ".tooldeck").exists():
            try:
                rows = state_rows(workspace, "SELECT status FROM proposals WHERE id=1")
                if rows and rows[0]["status"] == status:
                    return
            except StoreError:
                pass
        time.sleep(0.05)
    raise AssertionError(f"proposal 1 never reached {status}")


def marked() -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if MARKER.encode() in (entry / "cmdline").read_bytes():
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


def test_a_killed_evolve_is_reaped_on_the_next_start_and_a_live_one_is_not(workspace, make_runtime, messages_server):
    settings(workspace)
    greet_tool(workspace)
    messages_server.reply_tool_use("write_tool_version", greet_answer(), delay=60)  # the model is still thinking
    proc = start_evolve(workspace, messages_server)
    try:
        wait_for_status(workspace, "generating", proc)
        alive = started(make_runtime())  # its owner runs: a start must leave it alone
        assert get_proposal(alive, 1)["status"] == "generating"
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()
    after = started(make_runtime())
    proposal = get_proposal(after, 1)
    assert proposal["status"] == "failed"
    assert proposal["failure"].startswith("interrupted while generating: its runtime (pid ") and "no longer running" in proposal["failure"]
    events = [e for e in after.events.recent(200) if e.kind == "evolution.interrupted"]
    assert len(events) == 1 and events[0].payload["proposal_id"] == 1


def test_a_killed_evolve_while_validating_is_reaped_and_leaves_no_sandbox(workspace, make_runtime, messages_server):
    settings(workspace, evolution="sandbox_timeout_seconds = 100")
    greet_tool(workspace)
    messages_server.reply_tool_use("write_tool_version", greet_answer(SLOW_CANDIDATE))
    proc = start_evolve(workspace, messages_server)
    try:
        wait_for_status(workspace, "validating", proc)
        deadline = time.monotonic() + 60
        while not marked():
            assert time.monotonic() < deadline, "the candidate never ran"
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
        deadline = time.monotonic() + 30
        while marked():
            assert time.monotonic() < deadline, "the candidate outlived the evolve that started it"
            time.sleep(0.05)
    finally:
        if proc.poll() is None:
            proc.kill()
        for pid in marked():
            os.kill(pid, signal.SIGKILL)
    rt = started(make_runtime())
    proposal = get_proposal(rt, 1)
    assert proposal["status"] == "failed" and proposal["failure"].startswith("interrupted while validating")


def _remote(rt: Any, heartbeat_age: float) -> None:
    """What another node writes to the shared database: its runtime row and the proposal it is evolving."""
    now = time.time()
    with rt.store.tx() as con:
        host = f"not-{socket.gethostname()}"
        con.execute("INSERT INTO runtimes(session, node, pid, host, started, heartbeat, serve, label) VALUES (?,?,?,?,?,?,?,?)"
                    " ON CONFLICT (session, node) DO UPDATE SET heartbeat=excluded.heartbeat",
                    ("s-remote", f"{host}:4242:abc", 4242, host, now - 600, now - heartbeat_age, 0, None))
        con.execute("INSERT INTO proposals(tool_id, version, status, session, pid, node, created, updated) VALUES (?,?,?,?,?,?,?,?)",
                    ("greet", f"1.{int(heartbeat_age)}.0", "generating", "s-remote", 4242, f"{host}:4242:abc", now, now))


def test_another_hosts_evolution_is_judged_by_its_runtimes_heartbeat(workspace, make_runtime):
    settings(workspace)
    greet_tool(workspace)
    rt = make_runtime()
    _remote(rt, heartbeat_age=1)  # pid 4242 means nothing here: only its heartbeat counts
    rt.close()
    again = started(make_runtime())
    assert [p["status"] for p in again.store.query("SELECT status FROM proposals")] == ["generating"]
    with again.store.tx() as con:
        con.execute("UPDATE runtimes SET heartbeat=? WHERE session='s-remote'", (time.time() - 3600,))
    again.close()
    third = started(make_runtime())
    (proposal,) = [dict(r) for r in third.store.query("SELECT status, failure FROM proposals")]
    assert proposal["status"] == "failed" and "last beat 3600 s ago" in proposal["failure"]
