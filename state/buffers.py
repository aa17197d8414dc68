"""SQL for durable buffers: every statement the buffer engine runs, one short transaction each.

Why this shape:
- a write is one short transaction that bumps the buffer row (counters and the
  next sequence number, returned with RETURNING, which also locks the row on
  PostgreSQL) and inserts the item, so there is never a per-write `COUNT(*)` or event;
- a transaction that reads the buffer row and then writes by what it read locks
  that row (`dialect.lock`: SQLite's BEGIN IMMEDIATE already serialises writers);
- the batches (claim, retry, refusal, dead-letter) are in `state.buffer_batches`,
  the base class of `BufferTables`.
"""

from __future__ import annotations

import json
import secrets
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from state.buffer_batches import BatchLedger
from state.buffer_records import CONFIG_FIELDS, DEFAULT_CONFIG, BufferConfig, Claim, Cleared, WriteResult, config_from_row
from state.db import Store, dumps
from state.redact import redact
from state.store import StoreError

__all__ = ["CONFIG_FIELDS", "DEFAULT_CONFIG", "BufferConfig", "BufferTables", "Claim", "Cleared", "WriteResult"]

#: the hot path: counters and the next sequence number, refused (no row) when max_pending is reached
_APPEND_SQL = (
    "UPDATE buffers SET seq=seq+1, pending=pending+1, writes_total=writes_total+1,"
    " oldest_ts=COALESCE(oldest_ts, ?1) WHERE bkey=?2 AND (max_pending IS NULL OR pending < max_pending)"
    " RETURNING seq, pending, inflight, max_size, flush_strategy, config_version"
)
#: SQLite: k items of one buffer at once (a group commit), refused (no row changed) when they do not all fit
_BUMP_SQL = (
    "UPDATE buffers SET seq=seq+?1, pending=pending+?1, writes_total=writes_total+?1,"
    " oldest_ts=COALESCE(oldest_ts, ?2) WHERE bkey=?3 AND (max_pending IS NULL OR pending + ?1 <= max_pending)"
)
#: SQLite: the bump without RETURNING, then this read (RETURNING costs SQLite a temporary table: ~25% of a write)
_BUMPED_SQL = "SELECT seq, pending, inflight, max_size, flush_strategy, config_version FROM buffers WHERE bkey=?"
#: the most appends one group commit takes (the rest wait for the next): bounds one transaction's length
MAX_GROUP = 256
#: rows per multi-row INSERT of write_many (4 values each; SQLite allows 32,766 parameters)
_ROWS_PER_INSERT = 500
#: the same and the item's insert as one statement (dialect.writable_cte): outside a transaction it
#: commits by itself, one round trip per acknowledged write; no row when the buffer is full
_APPEND_ONE_SQL = (
    f"WITH b AS ({_APPEND_SQL}), i AS (INSERT INTO buffer_items(bkey, seq, ts, data) SELECT ?2, b.seq, ?1, ?3 FROM b)"
    " SELECT seq, pending, inflight, max_size, flush_strategy, config_version FROM b"
)


@dataclass(slots=True)
class _Append:
    """One thread's item waiting for the transaction that commits it."""

    bkey: int
    text: str
    now: float
    result: WriteResult | None = None
    error: Exception | None = None
    done: bool = False


class BufferTables(BatchLedger):
    """The buffer tables of one store, used by one runtime (its session and pid sign the events)."""

    def __init__(self, store: Store, session: str | None, node: str | None = None) -> None:
        super().__init__(store, session, node)
        #: appends waiting for the next group commit (SQLite), under `_queued`
        self._queue: list[_Append] = []
        self._grouping = threading.Condition(threading.Lock())
        self._leading = False  # a thread is committing a group: the others queue behind it

    # -- configuration --------------------------------------------------------------

    def load(self, buffer_id: str) -> BufferConfig | None:
        row = self.store.query_one("SELECT * FROM buffers WHERE buffer_id=?", (buffer_id,))
        return config_from_row(row) if row is not None else None

    def ensure(self, buffer_id: str) -> BufferConfig:
        """The buffer's config, creating the buffer with the defaults on first use."""
        config = self.load(buffer_id)
        if config is not None:
            return config
        return self.configure(buffer_id, {})

    def configure(self, buffer_id: str, changes: dict[str, Any]) -> BufferConfig:
        """Persist explicit settings (always, even when equal to a default) and bump the config version."""
        now = time.time()
        values = {k: (redact(dumps(v)) if k == "pass_through_input" else v) for k, v in changes.items() if k in CONFIG_FIELDS}
        with self._tx() as con:
            con.execute(
                "INSERT INTO buffers(buffer_id, epoch, created, updated) VALUES (?,?,?,?) ON CONFLICT DO NOTHING",
                (buffer_id, secrets.token_hex(4), now, now),
            )
            if values:
                assignments = ", ".join(f"{k}=?" for k in values)
                con.execute(
                    f"UPDATE buffers SET {assignments}, config_version=config_version+1, updated=? WHERE buffer_id=?",
                    (*values.values(), now, buffer_id),
                )
            row = con.execute("SELECT * FROM buffers WHERE buffer_id=?", (buffer_id,)).fetchone()
        return config_from_row(row)

    # -- writes ---------------------------------------------------------------------

    def append(self, bkey: int, text: str, now: float) -> WriteResult:
        """One acknowledged item: the buffer row's counters and the item in one transaction, acknowledged
        only once committed (a store that cannot commit raises, so nothing is acknowledged and then lost).

        PostgreSQL commits concurrent writers side by side: one statement, committed by itself. SQLite has one
        writer at a time, so the appends this process's threads make while a transaction commits wait for it
        and are then committed together by one of them (group commit): one commit for many items, each
        acknowledged only after that commit, in the order they queued.
        """
        if self.store.dialect.writable_cte:
            row = self.store.execute(_APPEND_ONE_SQL, (now, bkey, text)).fetchone()
            if row is not None:
                return WriteResult(1, 0, row[1], row[1] - row[2], row[3], row[4], row[5], row[0])
            with self._tx() as con:  # full: when_full decides, under the buffer's row lock
                return self._append_full(con, bkey, [text], now)
        mine = _Append(bkey, text, now)
        grouping = self._grouping
        with grouping:
            self._queue.append(mine)
            while not mine.done:
                if self._leading:  # a transaction is open: this item goes into the next one
                    grouping.wait()
                    continue
                self._leading = True
                group, self._queue = self._queue[:MAX_GROUP], self._queue[MAX_GROUP:]
                grouping.release()
                try:
                    with self._lock:  # the one transaction of this process at a time (the flusher's too)
                        self._commit_group(group)
                finally:
                    grouping.acquire()
                    for a in group:
                        if not a.done:  # interrupted: none of these is acknowledged
                            a.error, a.done = StoreError("the write was interrupted before it committed"), True
                    self._leading = False
                    grouping.notify_all()
        if mine.error is not None:
            raise mine.error
        assert mine.result is not None
        return mine.result

    def _commit_group(self, group: list[_Append]) -> None:
        """Commit `group` in one transaction. If one item's statement fails, the others are not failed with it:
        each is committed alone. A failed commit fails every item in it; none is acknowledged."""
        store = self.store
        con = store.conn()
        store.begin(con)  # `store.tx()` spelt out: its context managers cost ~10% of a write on this path
        try:
            by_buffer: dict[int, list[_Append]] = {}
            for a in group:
                by_buffer.setdefault(a.bkey, []).append(a)
            for bkey, items in by_buffer.items():
                self._append_items(con, bkey, items)
        except Exception as exc:
            store.rollback(con)
            if len(group) == 1:
                group[0].result, group[0].error, group[0].done = None, exc, True
                return
            for one in group:
                self._commit_group([one])
            return
        except BaseException:
            store.rollback(con)
            raise
        try:
            store.commit(con)
        except Exception as exc:
            for a in group:
                a.result, a.error = None, exc
        for a in group:
            a.done = True

    def _append_items(self, con: Any, bkey: int, items: list[_Append]) -> None:
        """Items of one buffer: one bump of its row and one insert when they all fit; one at a time otherwise
        (when_full then decides for each)."""
        k = len(items)
        if not con.execute(_BUMP_SQL, (k, items[0].now, bkey)).rowcount:
            if k > 1:
                for a in items:
                    self._append_items(con, bkey, [a])
                return
            items[0].result = self._append_full(con, bkey, [items[0].text], items[0].now)
            return
        row = con.execute(_BUMPED_SQL, (bkey,)).fetchone()
        first = row[0] - k + 1
        if k == 1:
            con.execute("INSERT INTO buffer_items(bkey, seq, ts, data) VALUES (?,?,?,?)", (bkey, first, items[0].now, items[0].text))
        else:
            for start in range(0, k, _ROWS_PER_INSERT):
                chunk = items[start:start + _ROWS_PER_INSERT]
                con.execute("INSERT INTO buffer_items(bkey, seq, ts, data) VALUES " + ",".join(["(?,?,?,?)"] * len(chunk)),
                            [v for i, a in enumerate(chunk, start) for v in (bkey, first + i, a.now, a.text)])
        for j, a in enumerate(items):
            pending = row[1] - (k - 1 - j)  # what this item's own write left buffered
            a.result = WriteResult(1, 0, pending, pending - row[2], row[3], row[4], row[5], first + j)

    def append_many(self, bkey: int, texts: list[str], now: float) -> WriteResult:
        """Up to len(texts) items in one transaction; `when_full` decides what happens past max_pending."""
        with self._tx() as con:
            return self._append_full(con, bkey, texts, now)

    def _append_full(self, con: Any, bkey: int, texts: list[str], now: float) -> WriteResult:
        row = con.execute(
            "SELECT seq, claimed_seq, pending, inflight, max_pending, when_full, max_size, flush_strategy, config_version"
            " FROM buffers WHERE bkey=?" + self.store.dialect.lock,
            (bkey,),
        ).fetchone()
        if row is None:
            raise LookupError(f"buffer key {bkey} vanished")
        seq, claimed_seq, pending, inflight, max_pending, when_full = row[0], row[1], row[2], row[3], row[4], row[5]
        n = len(texts)
        free = n if max_pending is None else max(0, max_pending - pending)
        removed = 0  # oldest unclaimed items deleted to make room
        dropped = 0
        if n > free:
            excess = n - free
            if when_full == "block":
                texts = texts[:free]
            elif when_full == "drop_oldest":
                unclaimed = pending - inflight
                removed = min(excess, unclaimed)
                if removed:
                    cut = con.execute(
                        "SELECT seq FROM buffer_items WHERE bkey=? AND seq>? ORDER BY seq LIMIT 1 OFFSET ?",
                        (bkey, claimed_seq, removed - 1),
                    ).fetchone()
                    removed = 0 if cut is None else con.execute(
                        "DELETE FROM buffer_items WHERE bkey=? AND seq>? AND seq<=?", (bkey, claimed_seq, cut[0])
                    ).rowcount
                keep = free + removed
                texts = texts[n - keep:] if keep else []  # past what fits, the newest of this call survive
                dropped = excess
            else:  # drop_newest
                texts = texts[:free]
                dropped = excess
        written = len(texts)
        if not (written or dropped or removed):  # block mode and full: change nothing, let the caller wait
            return WriteResult(0, 0, pending, pending - inflight, row[6], row[7], row[8], None, True)
        if written and self.store.dialect.arrays:  # one short statement whatever the count (psycopg caches its plan)
            con.execute("INSERT INTO buffer_items(bkey, seq, ts, data) SELECT ?1, ?2 + u.n, ?3, u.d"
                        " FROM unnest(?4::text[]) WITH ORDINALITY AS u(d, n)", (bkey, seq, now, texts))
            written_rows = 0
        else:
            written_rows = written
        for start in range(0, written_rows, _ROWS_PER_INSERT):  # one statement per chunk: one round trip, not one per item
            chunk = texts[start:start + _ROWS_PER_INSERT]
            con.execute(
                "INSERT INTO buffer_items(bkey, seq, ts, data) VALUES " + ",".join(["(?,?,?,?)"] * len(chunk)),
                [v for i, t in enumerate(chunk, start) for v in (bkey, seq + i + 1, now, t)],
            )
        oldest_sql = "COALESCE(oldest_ts, ?)"
        oldest_arg: Any = now
        if removed:
            first = con.execute(
                "SELECT ts FROM buffer_items WHERE bkey=? AND seq>? ORDER BY seq LIMIT 1", (bkey, claimed_seq)
            ).fetchone()
            oldest_sql, oldest_arg = "?", (first[0] if first else None)
        out = con.execute(
            f"UPDATE buffers SET seq=seq+?, pending=pending+?, writes_total=writes_total+?, dropped_total=dropped_total+?,"
            f" oldest_ts=CASE WHEN pending+? > inflight THEN {oldest_sql} ELSE oldest_ts END WHERE bkey=?"
            " RETURNING seq, pending, inflight, max_size, flush_strategy, config_version",
            (written, written - removed, written, dropped, written - removed, oldest_arg, bkey),
        ).fetchone()
        full = when_full == "block" and written < n
        return WriteResult(written, dropped, out[1], out[1] - out[2], out[3], out[4], out[5],
                           out[0] if written else None, full)

    # -- draining and clearing ------------------------------------------------------

    def drain(self, buffer_id: str, limit: int) -> tuple[list[Any], int]:
        """Hand unclaimed items back to the caller and delete them (a buffer with no pass-through tool)."""
        now = time.time()
        with self._tx() as con:
            row = con.execute("SELECT bkey, claimed_seq FROM buffers WHERE buffer_id=?" + self.store.dialect.lock,
                              (buffer_id,)).fetchone()
            if row is None:
                return [], 0
            bkey = row["bkey"]
            items = con.execute(
                "SELECT seq, data FROM buffer_items WHERE bkey=? AND seq>? ORDER BY seq LIMIT ?", (bkey, row["claimed_seq"], limit)
            ).fetchall()
            if not items:
                return [], 0
            last = items[-1][0]
            n = con.execute("DELETE FROM buffer_items WHERE bkey=? AND seq>? AND seq<=?", (bkey, row["claimed_seq"], last)).rowcount
            nxt = con.execute("SELECT ts FROM buffer_items WHERE bkey=? AND seq>? ORDER BY seq LIMIT 1", (bkey, last)).fetchone()
            left = con.execute(
                "UPDATE buffers SET claimed_seq=?, pending=pending-?, oldest_ts=?, flushed_total=flushed_total+?,"
                " batches_total=batches_total+1, last_flush_at=?, last_flush_count=?, last_flush_result='ok',"
                " last_flush_error=NULL WHERE bkey=? RETURNING pending - inflight",
                (last, n, nxt[0] if nxt else None, n, now, n, bkey),
            ).fetchone()[0]
            self._add_rate(con, buffer_id, int(now), flushed=n)
            self._event(con, "buffer.flush", now, {"buffer_id": buffer_id, "count": n, "pass_through_tool": None,
                                                   "drained": True})
        return json.loads("[" + ",".join(r[1] for r in items) + "]"), int(left)

    def clear(self, buffer_id: str) -> Cleared | None:
        """Discard the waiting items and the retry, waiting and dead-letter batches; None if there is no such buffer.

        A batch being delivered ('claimed') is left to its delivery, which is recorded as any other (see `Cleared`).
        The batches go first (RETURNING what went), then their items: on PostgreSQL a flusher re-claiming a retry
        batch at this moment either keeps it (and its items) or finds it gone.
        """
        now = time.time()
        with self._tx() as con:
            row = con.execute("SELECT bkey, claimed_seq FROM buffers WHERE buffer_id=?" + self.store.dialect.lock,
                              (buffer_id,)).fetchone()
            if row is None:
                return None
            bkey = row["bkey"]
            removed = con.execute("DELETE FROM buffer_items WHERE bkey=? AND seq>?", (bkey, row["claimed_seq"])).rowcount
            open_items = dead_items = 0
            for b in con.execute("DELETE FROM buffer_batches WHERE bkey=? AND state IN ('retry', 'waiting', 'dead')"
                                 " RETURNING first_seq, last_seq, count, state", (bkey,)).fetchall():
                removed += con.execute("DELETE FROM buffer_items WHERE bkey=? AND seq BETWEEN ? AND ?",
                                       (bkey, b[0], b[1])).rowcount
                if b[3] == "dead":
                    dead_items += b[2]
                else:
                    open_items += b[2]
            in_flight = con.execute(
                "UPDATE buffers SET claimed_seq=seq, pending=inflight-?, inflight=inflight-?, dead_items=dead_items-?,"
                " oldest_ts=NULL WHERE bkey=? RETURNING inflight",
                (open_items, open_items, dead_items, bkey),
            ).fetchone()[0]
            self._event(con, "buffer.clear", now, {"buffer_id": buffer_id, "removed": removed, "in_flight": in_flight})
        return Cleared(removed, int(in_flight))

    # -- reading --------------------------------------------------------------------

    def rows(self, buffer_id: str | None = None) -> list[Any]:
        if buffer_id is None:
            return self.store.query("SELECT * FROM buffers ORDER BY buffer_id")
        return self.store.query("SELECT * FROM buffers WHERE buffer_id=?", (buffer_id,))

    def rates(self, since_sec: int) -> list[Any]:
        return self.store.query("SELECT buffer_id, sec, writes, flushed, dropped FROM buffer_rates WHERE sec>=?", (since_sec,))

    # -- rates and flusher registry -------------------------------------------------

    def add_rates(self, counts: Iterable[tuple[str, int, int, int]], *, prune_before: int | None = None) -> None:
        """Fold per-second (buffer_id, sec, writes, dropped) counts gathered in memory into the table."""
        rows = list(counts)
        if not rows and prune_before is None:
            return
        with self._tx() as con:
            for buffer_id, sec, writes, dropped in rows:
                self._add_rate(con, buffer_id, sec, writes=writes, dropped=dropped)
            if prune_before is not None:
                con.execute("DELETE FROM buffer_rates WHERE sec<?", (prune_before,))

    def drop_event(self, buffer_id: str, dropped: int, when_full: str) -> None:
        with self._tx() as con:
            self._event(con, "buffer.drop", self.store.now(), {"buffer_id": buffer_id, "dropped": dropped, "when_full": when_full})

    def register_flusher(self, buffer_id: str) -> None:
        with self._tx() as con:
            con.execute(
                "INSERT INTO buffer_flushers(buffer_id, session, node, pid, host, since) VALUES (?,?,?,?,?,?)"
                " ON CONFLICT (buffer_id, session, node) DO UPDATE SET since=excluded.since",
                (buffer_id, self.session, self.node, self.pid, self.host, time.time()),
            )

    def unregister_flushers(self) -> None:
        with self._tx() as con:
            con.execute("DELETE FROM buffer_flushers WHERE session=? AND node=?", (self.session, self.node))

    def flushers(self) -> list[Any]:
        return self.store.query("SELECT buffer_id, session, node, pid, host FROM buffer_flushers")
