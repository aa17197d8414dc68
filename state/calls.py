"""Call records, written in batches so a warm tool can run thousands of calls a second.

Evolution replays recorded successful calls as regression cases, so inputs and
outputs are kept (up to a size cap, flagged when cut). A store that refuses
writes for a while costs the oldest records past a bound, counted, never the
recording thread.
"""

from __future__ import annotations

import hashlib
import logging
import os
import sqlite3
import statistics
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Any

from state.db import Store, StoreError, dumps
from state.events import EventLog
from state.redact import redact

log = logging.getLogger("tooldeck.calls")
SIZE_CAP = 16 * 1024
#: what is kept of a longer one: its start (with the sha256 of the whole)
PREFIX_CAP = 1024


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
    """A call's input or output as stored: whole up to SIZE_CAP characters; past it a prefix and the
    sha256 of the whole (so equal inputs stay recognisable), flagged as truncated."""
    if value is None:
        return None, 0
    text = value if isinstance(value, str) else dumps(value)
    text = redact(text)
    if len(text) > SIZE_CAP:
        digest = hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()
        mark = f" ...[{len(text) - PREFIX_CAP} more characters; sha256 of the whole {digest}]"
        return text[:PREFIX_CAP] + mark, 1
    return text, 0


class CallRecorder:
    """Queue call records in memory and commit them in batches from one thread.

    The thread outlives a store that refuses writes (locked by another process past its busy
    timeout, a full disk): the records stay queued in order and the write is retried with a
    backoff capped at `RETRY_MAX_SECONDS`. The queue holds at most `max_queued` records; past
    that the oldest are dropped and counted, and the count is committed as one `calls.dropped`
    event with the next write that succeeds.
    """

    RETRY_MAX_SECONDS = 5.0

    def __init__(self, store: Store, *, interval: float = 0.1, batch: int = 2000, max_queued: int = 10_000,
                 session: str | None = None) -> None:
        self.store = store
        self.interval = interval
        self.batch = batch
        self.max_queued = max(1, max_queued)
        self.session = session
        self.pid = os.getpid()
        self.events = EventLog(store, session)
        self.dropped_total = 0
        self.failures = 0  # writes that failed in a row
        self.last_error: str | None = None
        self._queue: deque[CallRecord] = deque()
        #: (tool_id, version) -> [calls, last_ts] of successful calls counted without a record of their own
        self._counts: dict[tuple[str, str], list[Any]] = {}
        self._queue_lock = threading.Lock()  # moving records in and out; never held across a write
        self._unreported = 0  # dropped records not yet in a `calls.dropped` event
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._flush_lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="tooldeck-calls", daemon=True)
            self._thread.start()

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    @property
    def queued(self) -> int:
        return len(self._queue)

    def record(self, rec: CallRecord) -> None:
        self._queue.append(rec)
        n = len(self._queue)
        if n > self.max_queued:
            self._trim()
        elif n >= self.batch:
            self._wake.set()

    def count(self, tool_id: str, version: str, ts: float) -> None:
        """A successful call that needs no row of its own (a buffer write): only the running
        counters move, written with the next batch."""
        with self._queue_lock:
            c = self._counts.get((tool_id, version))
            if c is None:
                self._counts[(tool_id, version)] = [1, ts]
            else:
                c[0] += 1
                c[1] = ts

    def _trim(self) -> None:
        """Drop the oldest records past `max_queued`, counting them."""
        with self._queue_lock:
            dropped = 0
            while len(self._queue) > self.max_queued:
                self._queue.popleft()
                dropped += 1
            self._unreported += dropped
            self.dropped_total += dropped

    def _run(self) -> None:
        delay = self.interval
        while not self._stop.is_set():
            self._wake.wait(delay)
            self._wake.clear()
            try:
                self.flush()
            except StoreError as exc:  # kept queued; retried with a capped backoff
                delay = min(self.RETRY_MAX_SECONDS, max(self.interval, delay * 2))
                if self.failures == 1:
                    log.error("call records not written (%d queued), retrying: %s", len(self._queue), exc)
            except Exception as exc:  # a bug must not stop recording either; the traceback goes to the log
                log.exception("call recorder: %s", exc)
                delay = self.RETRY_MAX_SECONDS
            else:
                delay = self.interval

    def flush(self) -> int:
        """Commit everything queued so far, `batch` records per transaction; returns how many rows were written.

        On a failed write its records go back to the front of the queue and StoreError is raised.
        """
        total = 0
        while True:
            written = self._flush_batch()
            total += written
            if written < self.batch:
                return total

    def _flush_batch(self) -> int:
        with self._flush_lock:
            with self._queue_lock:
                taken = [self._queue.popleft() for _ in range(min(self.batch, len(self._queue)))]
                dropped = self._unreported
                counted, self._counts = self._counts, {}
            if not taken and not dropped and not counted:
                return 0
            try:
                self._write(taken, dropped, counted)
            except (StoreError, sqlite3.Error) as exc:
                with self._queue_lock:
                    self._queue.extendleft(reversed(taken))
                    for key, (n, ts) in counted.items():  # counted again with the next write
                        c = self._counts.setdefault(key, [0, ts])
                        c[0] += n
                        c[1] = max(c[1], ts)
                self._trim()
                self.failures += 1
                self.last_error = str(exc)
                if isinstance(exc, StoreError):
                    raise
                raise StoreError(f"{self.store.where}: writing call records: {exc}") from exc
            except Exception:  # a record that cannot be written at all (a bug): counted as dropped, not retried forever
                with self._queue_lock:
                    self._unreported += len(taken)
                    self.dropped_total += len(taken)
                raise
            with self._queue_lock:
                self._unreported -= dropped
            if self.failures:
                log.warning("call records written again after %d failed writes (%d dropped meanwhile)",
                            self.failures, self.dropped_total)
            self.failures = 0
            self.last_error = None
            return len(taken)

    def _write(self, taken: list[CallRecord], dropped: int, counted: dict[tuple[str, str], list[Any]]) -> None:
        rows = []
        for rec in taken:
            inp, inp_cut = _capped(rec.input)
            out, out_cut = _capped(rec.output)
            rows.append((rec.ts or time.time(), rec.tool_id, rec.version, rec.session, rec.duration_ms,
                         rec.outcome, inp, out, inp_cut, out_cut, redact(rec.error) if rec.error else None))
        counts: dict[tuple[str, str], list[Any]] = {key: [n, 0, ts] for key, (n, ts) in counted.items()}
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
                " ON CONFLICT(tool_id, version) DO UPDATE SET calls = call_counters.calls + excluded.calls,"
                " failures = call_counters.failures + excluded.failures, last_ts = excluded.last_ts",
                [(k[0], k[1], c[0], c[1], c[2]) for k, c in sorted(counts.items())],  # key order: processes never deadlock
            )
            if dropped:
                self.events.emit_in(con, "calls.dropped", dropped=dropped, dropped_total=self.dropped_total,
                                    max_queued_records=self.max_queued, error=self.last_error)

    def close(self) -> None:
        """Stop the thread and write what is queued; records a broken store cannot take are logged, not raised."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        try:
            self.flush()
        except StoreError as exc:
            log.error("closing: %d call records not written (%d dropped before): %s", len(self._queue),
                      self.dropped_total, exc)


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
        " ROW_NUMBER() OVER (PARTITION BY tool_id, version ORDER BY id DESC) AS rn FROM calls WHERE ts > ?) AS recent WHERE rn <= ?",
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


def failed_calls(store: Store, tool_id: str, version: str, limit: int) -> list[Any]:
    """The newest failed calls of a version (input, error, outcome, input_truncated): evolution's failing inputs."""
    return store.query("SELECT input, error, outcome, input_truncated FROM calls WHERE tool_id=? AND version=? AND outcome!='ok'"
                       " ORDER BY id DESC LIMIT ?", (tool_id, version, limit))


def successful_calls(store: Store, tool_id: str, version: str, limit: int) -> list[Any]:
    """The newest successful calls of a version whose whole input was kept (input, output, output_truncated):
    the regression cases a candidate must still answer."""
    return store.query("SELECT input, output, output_truncated FROM calls WHERE tool_id=? AND version=? AND outcome='ok'"
                       " AND input IS NOT NULL AND input_truncated=0 ORDER BY id DESC LIMIT ?", (tool_id, version, limit))
