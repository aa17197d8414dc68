"""The live view in a real terminal (a pty, as tmux gives it): new failures reach the screen with no key
pressed (tail mode), and a deleted database is said in a banner (issue 24)."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.tui_pty import PtyProcess, tooldeck_argv

pytestmark = pytest.mark.slow

BOOM = "def run(data):\n    raise ValueError(data['msg'])\n"
CALLS = """
import sys
from tools.errors import ToolError
from tools.runtime import Runtime
rt = Runtime(sys.argv[1])
rt.wait_ready(60)
for msg in sys.argv[2:]:
    try:
        rt.call("boom", {"msg": msg})
    except ToolError:
        pass
rt.close()
"""


def workspace(tmp_path: Path) -> Path:
    ws = tmp_path / "ws"
    (ws / "tools").mkdir(parents=True)
    (ws / "tools" / "boom.py").write_text(BOOM)
    (ws / "tools" / "boom.yaml").write_text("name: boom\ntype: python\nversion: 1.0.0\nentry: boom.py:run\n"
                                            "description: fails with the message it is given\n")
    (ws / "tooldeck.toml").write_text("[circuit]\nmin_calls = 1000\nconsecutive_failures = 1000\n")  # every call runs
    return ws


def fail_with(ws: Path, *messages: str) -> None:
    out = subprocess.run([sys.executable, "-c", CALLS, str(ws), *messages], capture_output=True, text=True, timeout=120,
                         cwd=Path(__file__).resolve().parents[1])
    assert out.returncode == 0, out.stderr


def test_new_failures_reach_the_screen_with_no_key_pressed(tmp_path: Path) -> None:
    ws = workspace(tmp_path)
    fail_with(ws, *(f"early-{i}" for i in range(5)))
    proc = PtyProcess(tooldeck_argv("-w", str(ws)), cols=160, rows=50)
    try:
        proc.wait_for_text(["early-4"], timeout=60)
        proc.write(b"3")  # the Failures panel, maximised: Activity (which follows too) is out of view
        time.sleep(0.5)
        proc.write(b"z")
        proc.wait_for_text(["time ok hops"], timeout=10)
        fail_with(ws, *(f"middle-{i}" for i in range(40)))
        fail_with(ws, "newest-failure-xyzzy")
        done = time.perf_counter()
        proc.wait_for_text(["newest-failure-xyzzy"], timeout=15)
        seconds = time.perf_counter() - done
        print(f"the newest failure was on screen {seconds:.2f} s after its call")
        assert seconds < 5  # on the poll (0.5 s) and the next repaint; generous for a loaded CI machine
    finally:
        proc.kill()


def test_a_deleted_database_is_said_on_screen(tmp_path: Path) -> None:
    ws = workspace(tmp_path)
    proc = PtyProcess(tooldeck_argv("-w", str(ws)), cols=80, rows=24)
    try:
        proc.wait_for_text(["Ready"], timeout=60)
        db = ws / ".tooldeck" / "tooldeck.db"
        for path in (db, db.with_name("tooldeck.db-wal"), db.with_name("tooldeck.db-shm")):
            path.unlink(missing_ok=True)
        gone = time.perf_counter()
        proc.wait_for_text(["was deleted while this process had it open"], timeout=15)
        print(f"the banner was on screen {time.perf_counter() - gone:.2f} s after the file was deleted")
    finally:
        proc.kill()
