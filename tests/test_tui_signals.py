"""The dashboard process under signals and without a terminal (real processes in a real pseudo-terminal).

SIGTERM, or closing the terminal (SIGHUP), must behave like `q`: the demo traffic generator, every tool
worker and the throwaway demo folder are gone, and the terminal is restored. Without a terminal the
dashboard refuses at once with one line and exit 2.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path

import pytest

from tests.helpers import alive
from tests.tui_pty import PtyProcess, children, cmdline, tooldeck_argv


def _started_everything(proc: PtyProcess, timeout: float = 90.0) -> list[int]:
    """The dashboard's descendants once the traffic generator and tool workers are running."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        proc.read(0.1)
        kids = children(proc.pid)
        lines = [cmdline(k) for k in kids]
        if any("demo_traffic" in c for c in lines) and sum("worker_main" in c for c in lines) >= 2:
            return kids
    raise AssertionError(f"traffic and workers not started: {[cmdline(k) for k in children(proc.pid)]}")


@pytest.mark.parametrize("how", ["q", "sigterm", "terminal closed"])
def test_sigterm_and_hangup_stop_everything_the_dashboard_started(tmp_path: Path, how: str) -> None:
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    proc = PtyProcess(tooldeck_argv("demo"), env={"TMPDIR": str(tmp)}, cols=120, rows=40)
    kids: list[int] = []
    try:
        proc.wait_for_text(["Tools", "Buffers", "Failures", "Evolution"], timeout=90)
        kids = _started_everything(proc)
        workspace = next(tmp.glob("tooldeck-demo-*"))
        painted = len(proc.output)
        if how == "q":
            proc.write(b"q")
        elif how == "sigterm":
            os.kill(proc.pid, signal.SIGTERM)
        else:
            proc.hang_up()
        proc.wait(timeout=60)
        deadline = time.monotonic() + 20
        while any(alive(k) for k in kids) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not [cmdline(k) for k in kids if alive(k)], "processes the dashboard started are still running"
        assert not workspace.exists(), "the throwaway demo workspace was left behind"
        if how != "terminal closed":
            after = bytes(proc.output[painted:])
            restored = after.find(b"\x1b[?1049l")
            assert restored >= 0, "the terminal's main screen was not restored"
            # the screen comes back at once; the shutdown finishes behind one line
            assert after.find(b"tooldeck: stopping") > restored, after[-600:]
        if how == "sigterm":
            assert "stopped by SIGTERM" in proc.text()
    finally:
        proc.kill()
        for k in kids:
            if alive(k):
                os.kill(k, signal.SIGKILL)


def test_kill_9_of_the_dashboard_takes_the_traffic_generator_and_workers_with_it(tmp_path: Path) -> None:
    """No chance to clean up: every child dies by the parent-death signal or the reaper."""
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    proc = PtyProcess(tooldeck_argv("demo"), env={"TMPDIR": str(tmp)}, cols=120, rows=40)
    kids: list[int] = []
    try:
        proc.wait_for_text(["Tools", "Buffers", "Failures", "Evolution"], timeout=90)
        kids = _started_everything(proc)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
        deadline = time.monotonic() + 20
        while any(alive(k) for k in kids) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not [cmdline(k) for k in kids if alive(k)], "children outlived a kill -9 of the dashboard"
    finally:
        proc.kill()
        for k in kids:
            if alive(k):
                os.kill(k, signal.SIGKILL)


@pytest.mark.parametrize("args", ["", "demo"])
@pytest.mark.parametrize("redirect", ["</dev/null", "| cat"])
def test_without_a_terminal_one_line_and_exit_2(tmp_path: Path, args: str, redirect: str) -> None:
    """`tooldeck </dev/null` and `tooldeck | cat` from a real terminal: the other end is still a tty."""
    line = f"{sys.executable} -m tui --workspace {tmp_path} {args} {redirect}; echo EXIT=${{PIPESTATUS[0]}}"
    proc = PtyProcess(["/bin/bash", "-c", line], env={"TMPDIR": str(tmp_path)}, cols=120, rows=40)
    try:
        assert proc.wait(timeout=60) == 0
    finally:
        proc.kill()
    text = proc.text()
    assert "EXIT=2" in text, text
    errors = [x for x in text.splitlines() if x.startswith("tooldeck")]
    assert len(errors) == 1 and "needs a terminal" in errors[0], text
    assert b"\x1b[?1049h" not in proc.output, "the full-screen UI was opened"
    assert not list(tmp_path.glob("tooldeck-demo-*")) and not (tmp_path / ".tooldeck").exists()
