"""The demo's traffic under a database locked by another process for longer than the store's busy timeout
(issue 24): buffer writes fail while it is held, and resume within seconds of its release."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tools.cli.demo_workspace import prepare_demo_workspace

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
HOLD = ("import sqlite3, sys, time; c = sqlite3.connect(sys.argv[1], isolation_level=None);"
        " c.execute('BEGIN EXCLUSIVE'); print('held', flush=True); time.sleep(float(sys.argv[2]))")


def writes(db: Path) -> int:
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
    try:
        return int(con.execute("SELECT COALESCE(SUM(writes_total), 0) FROM buffers").fetchone()[0])
    finally:
        con.close()


def wait_until(condition, timeout: float, interval: float = 0.05) -> float:
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if condition():
            return time.monotonic() - started
        time.sleep(interval)
    raise AssertionError(f"not within {timeout} s")


def test_buffer_writes_resume_within_seconds_after_a_40_s_lock(tmp_path: Path) -> None:
    ws, _ = prepare_demo_workspace(str(tmp_path / "demo"))
    db = ws / ".tooldeck" / "tooldeck.db"
    log = tmp_path / "traffic.log"
    with open(log, "wb") as err:
        traffic = subprocess.Popen([sys.executable, "-m", "tools.cli.demo_traffic", "--workspace", str(ws), "--rate", "200",
                                    "--seconds", "240"], cwd=REPO, stdout=subprocess.DEVNULL, stderr=err)
    holder = None
    try:
        wait_until(lambda: db.exists() and writes(db) > 200, 90, 0.2)
        holder = subprocess.Popen([sys.executable, "-c", HOLD, str(db), "40"], stdout=subprocess.PIPE, text=True)
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        assert holder.wait(90) == 0  # held for 40 s: past the store's 30 s busy timeout, the writes failed
        released = writes(db)
        seconds = wait_until(lambda: writes(db) > released + 50, 30)
        print(f"buffer writes resumed {seconds:.2f} s after the lock was released")
        assert seconds < 5, seconds  # the target is 2 s; a loaded CI machine gets a margin
        assert traffic.poll() is None
        logged = (ws / ".tooldeck" / "logs" / "tooldeck.log").read_text(errors="replace")
        assert "traffic generator buffer_writes failed, starting it again" in logged  # said, and it went on
    finally:
        if holder is not None and holder.poll() is None:
            holder.kill()
        traffic.terminate()
        traffic.wait(30)
