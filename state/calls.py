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
                counts: dict[tuple[str, str], list[Any]] = {}
                for row in rows:
                    c = counts.setdefault((row[1], row[2]), [0, 0, 0.0])
                    c[0] += 1
                    c[1] += row[5] != "ok"
                    c[2] = max(c[2], row[0])
                with self.store.tx() as con:
                    con.executemany(
                        "INSERT INTO calls(ts, tool_id, version, session, duration_ms, outcome, input, output,"
                        " input_truncated, output_truncated, error) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                        rows,
                    )
                    con.executemany(
                        "INSERT INTO call_counters(tool_id, version, calls, failures, last_ts) VALUES (?,?,?,?,?)"
                        " ON CONFLICT(tool_id, version) DO UPDATE SET calls = calls + excluded.calls,"
                        " failures = failures + excluded.failures, last_ts = excluded.last_ts",
                        [(k[0], k[1], c[0], c[1], c[2]) for k, c in counts.items()],
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


def tool_stats(store: Store, window_s: float = 600.0, sample: int = 200) -> dict[tuple[str, str], CallStats]:
    """Calls and failures per (tool, version) from the running counters; p50 latency over
    each tool's last `sample` calls of the last `window_s` seconds (one indexed query).
    """
    totals = {(r[0], r[1]): (r[2], r[3]) for r in store.query("SELECT tool_id, version, calls, failures FROM call_counters")}
    durations: dict[tuple[str, str], list[float]] = {}
    for r in store.query(
        "SELECT tool_id, version, duration_ms FROM (SELECT tool_id, version, duration_ms,"
        " ROW_NUMBER() OVER (PARTITION BY tool_id, version ORDER BY id DESC) AS rn FROM calls WHERE ts > ?) WHERE rn <= ?",
        (time.time() - window_s, sample),
    ):
        durations.setdefault((r[0], r[1]), []).append(r[2])
    return {
        key: CallStats(int(n), int(bad or 0), statistics.median(durations[key]) if durations.get(key) else None)
        for key, (n, bad) in totals.items()
    }


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
