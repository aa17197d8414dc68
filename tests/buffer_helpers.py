"""Shared pieces of the buffer tests (no tests here): a controllable sink tool, fast settings, readers of what it stored."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.helpers import python_tool, state_rows

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


# -- a flaky sink under real processes (the process-level test and bench_buffer.py share it) ------------

REPO = Path(__file__).resolve().parents[1]

#: Fails `rate` of its calls (at random) while now < `until` (always when `until` is null), both read from
#: <workspace>/flaky.json on every call; stores each batch once in <workspace>/sink.db.
FLAKY_SINK_CODE = '''
import json, os, random, sqlite3, time
from pathlib import Path

_rng = random.Random()

def store(data):
    ws = Path(os.environ["TOOLDECK_WORKSPACE"])
    plan = json.loads((ws / "flaky.json").read_text())
    if (plan["until"] is None or time.time() < plan["until"]) and _rng.random() < plan["rate"]:
        raise RuntimeError("flaky sink: this call failed")
    meta = data["buffer_metadata"]
    con = sqlite3.connect(ws / "sink.db", timeout=30, isolation_level=None)
    try:
        con.execute("PRAGMA journal_mode=WAL")
        con.execute("CREATE TABLE IF NOT EXISTS batches (batch_id TEXT PRIMARY KEY, buffer_id TEXT, count INTEGER,"
                    " items TEXT, extra TEXT, stored_at REAL)")
        con.execute("INSERT OR IGNORE INTO batches VALUES (?,?,?,?,?,?)",
                    (meta["batch_id"], meta["buffer_id"], meta["count"], json.dumps(data["buffered_items"]), "{}",
                     time.time()))
    finally:
        con.close()
    return {"stored": len(data["buffered_items"])}
'''

#: argv: workspace, buffer_id, tag, items, seconds to spread the writes over, max_size, repo. Writes through
#: call_tool("buffer", json) as the original callers did, one acknowledged item id per line on stdout,
#: then "done <time of the last write>".
FLAKY_WRITER = """
import json, os, sys, time
ws, buffer_id, tag, n, spread, max_size = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), float(sys.argv[5]), int(sys.argv[6])
sys.path.insert(0, sys.argv[7])
os.environ["TOOLDECK_WORKSPACE"] = ws
from tools import call_tool
call_tool("buffer", json.dumps({"operation": "configure", "buffer_id": buffer_id, "max_size": max_size,
                                "pass_through_tool": "flaky_sink"}))
out = sys.stdout
t0 = time.time()
for i in range(n):
    if spread:
        due = t0 + spread * i / n
        if due > time.time():
            time.sleep(due - time.time())
    item = f"{tag}-{i}"
    call_tool("buffer", json.dumps({"operation": "write", "buffer_id": buffer_id, "data": item}))
    out.write(item + "\\n")
out.write(f"done {time.time()}\\n")
out.flush()
"""


class FlakyRun:
    """`tooldeck serve` plus writer processes feeding one buffer whose pass-through sink fails `rate` of its calls
    (for `fail_for` seconds from the start, or throughout); default settings otherwise."""

    def __init__(self, ws: Path, *, writers: int = 3, items: int = 2000, max_size: int = 20, rate: float = 0.3,
                 fail_for: float | None = None, spread: float = 0.0, buffer_id: str = "flaky") -> None:
        self.ws = ws
        self.buffer_id = buffer_id
        self.items = items
        (ws / "tools").mkdir(parents=True, exist_ok=True)
        python_tool(ws / "tools", "flaky_sink", FLAKY_SINK_CODE, func="store")
        self.recover_at = None if fail_for is None else time.time() + fail_for
        (ws / "flaky.json").write_text(json.dumps({"rate": rate, "until": self.recover_at}))
        self.serve = subprocess.Popen([sys.executable, "-m", "tools", "--workspace", str(ws), "serve"], cwd=REPO,
                                      stdout=subprocess.DEVNULL, stderr=(ws / "serve.err").open("w"))
        self.outs = [ws / f"writer{k}.out" for k in range(writers)]
        self.writers = [
            subprocess.Popen([sys.executable, "-c", FLAKY_WRITER, str(ws), buffer_id, f"w{k}", str(items), str(spread),
                              str(max_size), str(REPO)], cwd=ws.parent, stdout=out.open("w"), stderr=subprocess.PIPE)
            for k, out in enumerate(self.outs)
        ]
        self.acked: set[str] | None = None
        self.last_write: float | None = None

    def writers_done(self) -> bool:
        """True once every writer exited; then `acked` and `last_write` are set (a writer that failed raises)."""
        if self.acked is not None:
            return True
        if any(w.poll() is None for w in self.writers):
            return False
        acked: set[str] = set()
        last = 0.0
        for proc, out in zip(self.writers, self.outs, strict=True):
            err = proc.stderr.read().decode() if proc.stderr else ""
            lines = out.read_text().splitlines()
            if proc.returncode != 0 or not lines or not lines[-1].startswith("done "):
                raise AssertionError(f"writer {out.name} failed ({proc.returncode}): {err[-2000:]}")
            acked.update(lines[:-1])
            last = max(last, float(lines[-1].split()[1]))
        self.acked, self.last_write = acked, last
        return True

    def delivered(self) -> set[str]:
        return set(sink_items(self.ws, self.buffer_id))

    def buffer_figures(self) -> tuple[set[str], int, int]:
        """(items still held by the buffer, pending or dead-letter; dead-letter batches; batches delivered)."""
        held = {json.loads(r["data"]) for r in state_rows(
            self.ws, "SELECT i.data FROM buffer_items i JOIN buffers b ON b.bkey = i.bkey WHERE b.buffer_id=?", (self.buffer_id,))}
        dead = state_rows(self.ws, "SELECT COUNT(*) AS n FROM buffer_batches WHERE buffer_id=? AND state='dead'",
                          (self.buffer_id,))[0]["n"]
        done = state_rows(self.ws, "SELECT batches_total FROM buffers WHERE buffer_id=?", (self.buffer_id,))
        return held, int(dead), int(done[0]["batches_total"]) if done else 0

    def pending(self) -> int:
        """Items the buffer still has to deliver (dead-letter excluded)."""
        rows = state_rows(self.ws, "SELECT pending FROM buffers WHERE buffer_id=?", (self.buffer_id,))
        return int(rows[0]["pending"]) if rows else 0

    def lost(self) -> set[str]:
        """Acknowledged items neither delivered nor still held (pending or dead-letter) by the buffer."""
        assert self.acked is not None
        held, _, _ = self.buffer_figures()  # read the buffer first: an item leaves it only after the sink has it
        return self.acked - self.delivered() - held

    def stop(self) -> None:
        for proc in [*self.writers, self.serve]:
            if proc.poll() is None:
                proc.terminate()
        for proc in [*self.writers, self.serve]:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
