"""Call records, written in batches so a warm tool can run thousands of calls a second.

Evolution replays recorded successful calls as regression cases, so inputs and
outputs are kept (up to a size cap, flagged when cut).
"""

from __future__ import annotations

import statistics
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Any

from state.db import Store, dumps
from state.redact import redact

SIZE_CAP = 16 * 1024


@dataclass(frozen=True, slots=True)
class CallRecord:
    tool_id: str
    version: str
    session: str | None
    duration_ms: float
    outcome: str
    input: Any
    output: Any
    error: str | None = None
    ts: float = 0.0


def _capped(value: Any) -> tuple[str | None, int]:
    if value is None:
        return None, 0
    text = value if isinstance(value, str) else dumps(value)
    text = redact(text)
    if len(text) > SIZE_CAP:
        return text[:SIZE_CAP], 1
    return text, 0


class CallRecorder:
    """Queue call records in memory and commit them in batches from one thread."""

    def __init__(self, store: Store, *, interval: float = 0.1, batch: int = 2000) -> None:
        self.store = store
        self.interval = interval
        self.batch = batch
        self._queue: deque[CallRecord] = deque()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._flush_lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="tooldeck-calls", daemon=True)
            self._thread.start()

    def record(self, rec: CallRecord) -> None:
        self._queue.append(rec)
        if len(self._queue) >= self.batch:
            self._wake.set()

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self.interval)
            self._wake.clear()
            self.flush()

    def flush(self) -> int:
        """Commit everything queued so far; returns how many rows were written."""
        with self._flush_lock:
            rows = []
            while self._queue:
                rec = self._queue.popleft()
                inp, inp_cut = _capped(rec.input)
                out, out_cut = _capped(rec.output)
                rows.append(
                    (
                        rec.ts or time.time(), rec.tool_id, rec.version, rec.session, rec.duration_ms,
                        rec.outcome, inp, out, inp_cut, out_cut, redact(rec.error) if rec.error else None,
                    )
                )
            if rows:
                with self.store.tx() as con:
                    con.executemany(
                        "INSERT INTO calls(ts, tool_id, version, session, duration_ms, outcome, input, output,"
                        " input_truncated, output_truncated, error) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                        rows,
                    )
            return len(rows)

    def close(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        self.flush()


@dataclass(frozen=True, slots=True)
class CallStats:
    calls: int
    failures: int
    p50_ms: float | None


def tool_stats(store: Store, window: int = 200) -> dict[tuple[str, str], CallStats]:
    """Calls, failures and p50 latency per (tool, version) over the last `window` calls each."""
    totals = {
        (r["tool_id"], r["version"]): (r["n"], r["bad"])
        for r in store.query(
            "SELECT tool_id, version, COUNT(*) AS n, SUM(outcome != 'ok') AS bad FROM calls GROUP BY tool_id, version"
        )
    }
    out: dict[tuple[str, str], CallStats] = {}
    for key, (n, bad) in totals.items():
        durations = [
            r[0]
            for r in store.query(
                "SELECT duration_ms FROM calls WHERE tool_id=? AND version=? ORDER BY id DESC LIMIT ?",
                (key[0], key[1], window),
            )
        ]
        out[key] = CallStats(int(n), int(bad or 0), statistics.median(durations) if durations else None)
    return out


def recent_calls(store: Store, tool_id: str, *, version: str | None = None, limit: int = 20,
                 outcome: str | None = None) -> list[dict[str, Any]]:
    sql = "SELECT * FROM calls WHERE tool_id=?"
    params: list[Any] = [tool_id]
    if version is not None:
        sql += " AND version=?"
        params.append(version)
    if outcome is not None:
        sql += " AND outcome=?"
        params.append(outcome)
    sql += " ORDER BY id DESC LIMIT ?"
    params.append(limit)
    return [dict(r) for r in store.query(sql, params)]


def prune_calls(store: Store, older_than_s: float) -> int:
    with store.tx() as con:
        return con.execute("DELETE FROM calls WHERE ts < ?", (time.time() - older_than_s,)).rowcount
