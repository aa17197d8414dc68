"""Shared pieces of the buffer tests (no tests here): a controllable sink tool, fast settings, readers of what it stored."""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.helpers import python_tool

#: A pass-through tool that logs every attempt's batch id, fails while <workspace>/fail exists, sleeps
#: <workspace>/slow seconds when that file exists, stores each batch id once in <workspace>/sink.db, then
#: sleeps <workspace>/linger seconds (so a test sees the batch stored before its delivery has completed).
SINK_CODE = '''
import json, os, sqlite3, time
from pathlib import Path

def store(data):
    ws = Path(os.environ["TOOLDECK_WORKSPACE"])
    meta = data["buffer_metadata"]
    with open(ws / "attempts.log", "a") as f:
        f.write(meta["batch_id"] + "\\n")
    if (ws / "fail").exists():
        raise RuntimeError("sink is down")
    slow = ws / "slow"
    if slow.exists():
        time.sleep(float(slow.read_text() or 1))
    con = sqlite3.connect(ws / "sink.db", timeout=30, isolation_level=None)
    try:
        con.execute("PRAGMA journal_mode=WAL")
        con.execute("CREATE TABLE IF NOT EXISTS batches (batch_id TEXT PRIMARY KEY, buffer_id TEXT, count INTEGER,"
                    " items TEXT, extra TEXT, stored_at REAL)")
        extra = {k: v for k, v in data.items() if k not in ("buffered_items", "buffer_metadata")}
        con.execute("INSERT OR IGNORE INTO batches VALUES (?,?,?,?,?,?)",
                    (meta["batch_id"], meta["buffer_id"], meta["count"], json.dumps(data["buffered_items"]),
                     json.dumps(extra), time.time()))
    finally:
        con.close()
    linger = ws / "linger"
    if linger.exists():
        time.sleep(float(linger.read_text() or 1))
    return {"stored": len(data["buffered_items"])}
'''

FAST_SETTINGS = """
[buffers]
max_attempts = {max_attempts}
backoff_base_seconds = {backoff_base}
backoff_max_seconds = {backoff_max}
lease_seconds = {lease}
poll_seconds = 0.05
{buffers}
[circuit]
{circuit}
"""
#: the circuit never opens (the tests that want it to say how)
NO_CIRCUIT = "consecutive_failures = 100000\nmin_calls = 100000\n"


def prepare_workspace(ws: Path, *, max_attempts: int = 3, backoff_base: float = 0.05, backoff_max: float = 0.2,
                      lease: float = 1.0, circuit: str = NO_CIRCUIT, buffers: str = "") -> Path:
    """A workspace with the `sink` tool and settings that make retries and leases quick."""
    python_tool(ws / "tools", "sink", SINK_CODE, func="store", timeout=20)
    (ws / "tooldeck.toml").write_text(FAST_SETTINGS.format(max_attempts=max_attempts, backoff_base=backoff_base,
                                                           backoff_max=backoff_max, lease=lease, circuit=circuit,
                                                           buffers=buffers))
    return ws


def sink_batches(ws: Path, buffer_id: str | None = None) -> list[dict[str, Any]]:
    path = ws / "sink.db"
    if not path.exists():
        return []
    con = sqlite3.connect(path, timeout=30)
    try:
        con.row_factory = sqlite3.Row
        try:
            sql = "SELECT * FROM batches" + (" WHERE buffer_id=?" if buffer_id else "") + " ORDER BY stored_at"
            rows = con.execute(sql, (buffer_id,) if buffer_id else ()).fetchall()
        except sqlite3.OperationalError:
            return []
        return [{**dict(r), "items": json.loads(r["items"])} for r in rows]
    finally:
        con.close()


def sink_items(ws: Path, buffer_id: str | None = None) -> list[Any]:
    return [item for b in sink_batches(ws, buffer_id) for item in b["items"]]


def attempts(ws: Path) -> list[str]:
    path = ws / "attempts.log"
    return path.read_text().split() if path.exists() else []


def wait_for(cond: Callable[[], Any], timeout: float = 10.0, interval: float = 0.02) -> Any:
    """Poll `cond` until it is truthy; fail the test with what it last returned."""
    deadline = time.monotonic() + timeout
    while True:
        value = cond()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s (last value {value!r})")
        time.sleep(interval)
