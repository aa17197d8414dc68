"""SQL for durable buffers: every statement the buffer engine runs, one short transaction each.

Why this shape:
- a write is one `BEGIN IMMEDIATE` that bumps the buffer row (counters and the
  next sequence number, returned with RETURNING) and inserts the item, so there
  is never a per-write `COUNT(*)` or event;
- items are clustered by (bkey, seq) and a batch is the contiguous seq range
  after `claimed_seq`, so claiming, retrying and deleting a batch touch only
  that range and the same batch id comes back on every retry;
- completion, retry and dead-letter update the counters and append their event
  in the same transaction, so the live figures never disagree with the items;
- a delivery the pass-through tool refused without running (its circuit is open, an
  operator disabled it) is no attempt: the batch goes to 'waiting' with its attempt given
  back, until the tool admits calls again;
- the background flusher claims `exclusive`ly: no batch of a buffer is claimed while
  another one of it is in flight (any process), so batches go out one at a time, in order.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import socket
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from state.buffer_records import CONFIG_FIELDS, DEFAULT_CONFIG, BufferConfig, Claim, WriteResult, config_from_row
from state.db import Store, dumps
from state.redact import redact

__all__ = ["CONFIG_FIELDS", "DEFAULT_CONFIG", "BufferConfig", "BufferTables", "Claim", "WriteResult"]

#: the hot path: counters and the next sequence number, refused (no row) when max_pending is reached
_APPEND_SQL = (
    "UPDATE buffers SET seq=seq+1, pending=pending+1, writes_total=writes_total+1,"
    " oldest_ts=COALESCE(oldest_ts, ?) WHERE bkey=? AND (max_pending IS NULL OR pending < max_pending)"
    " RETURNING seq, pending, inflight, max_size, flush_strategy, config_version"
)


class BufferTables:
    """The buffer tables of one store, used by one runtime (its session and pid sign the events)."""

    def __init__(self, store: Store, session: str | None) -> None:
        self.store = store
        self.session = session
        self.pid = os.getpid()
        self.host = socket.gethostname()
        #: Writers and the flusher of one process queue here rather than in SQLite's busy handler,
        #: which sleeps 1 ms and more on every collision (a p99 write latency of ~1 ms otherwise).
        self._lock = threading.Lock()

    @contextlib.contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        with self._lock, self.store.tx() as con:
            yield con

    # -- events (appended inside the caller's transaction) --------------------------

    def _event(self, con: sqlite3.Connection, kind: str, now: float, payload: dict[str, Any]) -> None:
        con.execute(
            "INSERT INTO events(ts, pid, session, kind, tool_id, version, payload) VALUES (?,?,?,?,NULL,NULL,?)",
            (now, self.pid, self.session, kind, redact(dumps(payload))),
        )

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
                "INSERT OR IGNORE INTO buffers(buffer_id, epoch, created, updated) VALUES (?,?,?,?)",
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
        """One acknowledged item: BEGIN IMMEDIATE, one UPDATE ... RETURNING, one INSERT, COMMIT.

        This is the hot path (20k+ writes/s), so it drives the connection itself rather than through
        `Store.tx()`: same semantics, a few microseconds less while the write lock is held.
        """
        con = self.store.conn()
        with self._lock:
            return self._append(con, bkey, text, now)

    def _append(self, con: sqlite3.Connection, bkey: int, text: str, now: float) -> WriteResult:
        self.store.begin(con)
        try:
            row = con.execute(_APPEND_SQL, (now, bkey)).fetchone()
            if row is not None:
                con.execute("INSERT INTO buffer_items(bkey, seq, ts, data) VALUES (?,?,?,?)", (bkey, row[0], now, text))
                result = WriteResult(1, 0, row[1], row[1] - row[2], row[3], row[4], row[5], row[0])
            else:
                result = self._append_full(con, bkey, [text], now)
            con.execute("COMMIT")
        except sqlite3.OperationalError as exc:
            with contextlib.suppress(sqlite3.Error):
                con.execute("ROLLBACK")
            raise self.store.wrap(exc) from exc
        except BaseException:
            with contextlib.suppress(sqlite3.Error):
                con.execute("ROLLBACK")
            raise
        return result

    def append_many(self, bkey: int, texts: list[str], now: float) -> WriteResult:
        """Up to len(texts) items in one transaction; `when_full` decides what happens past max_pending."""
        with self._tx() as con:
            return self._append_full(con, bkey, texts, now)

    def _append_full(self, con: sqlite3.Connection, bkey: int, texts: list[str], now: float) -> WriteResult:
        row = con.execute(
            "SELECT seq, claimed_seq, pending, inflight, max_pending, when_full, max_size, flush_strategy, config_version"
            " FROM buffers WHERE bkey=?",
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
        if written:
            con.executemany(
                "INSERT INTO buffer_items(bkey, seq, ts, data) VALUES (?,?,?,?)",
                [(bkey, seq + i + 1, now, t) for i, t in enumerate(texts)],
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

    # -- claiming and delivery bookkeeping ------------------------------------------

    @staticmethod
    def _in_flight(con: sqlite3.Connection, bkey: int, now: float, other_than: str = "") -> bool:
        """Whether another batch of the buffer is being delivered right now (a live lease, any process)."""
        return con.execute(
            "SELECT 1 FROM buffer_batches WHERE bkey=? AND state='claimed' AND lease_until>? AND batch_id!=? LIMIT 1",
            (bkey, now, other_than),
        ).fetchone() is not None

    def claim_new(self, buffer_id: str, owner: str, lease_seconds: float, limit: int | None = None, *,
                  exclusive: bool = False) -> Claim | None:
        """Claim the oldest unclaimed items (up to max_size, or `limit`) as a new batch.

        `exclusive`: not while another batch of the buffer is in flight (None then).
        """
        now = time.time()
        with self._tx() as con:
            row = con.execute(
                "SELECT bkey, epoch, seq, claimed_seq, max_size FROM buffers WHERE buffer_id=?", (buffer_id,)
            ).fetchone()
            if row is None or row["seq"] <= row["claimed_seq"]:
                return None
            bkey = row["bkey"]
            if exclusive and self._in_flight(con, bkey, now):
                return None
            items = con.execute(
                "SELECT seq, data FROM buffer_items WHERE bkey=? AND seq>? ORDER BY seq LIMIT ?",
                (bkey, row["claimed_seq"], limit or row["max_size"]),
            ).fetchall()
            if not items:  # every unclaimed item was dropped: nothing to claim
                con.execute("UPDATE buffers SET claimed_seq=seq, oldest_ts=NULL WHERE bkey=?", (bkey,))
                return None
            first, last, count = items[0][0], items[-1][0], len(items)
            nxt = con.execute(
                "SELECT ts FROM buffer_items WHERE bkey=? AND seq>? ORDER BY seq LIMIT 1", (bkey, last)
            ).fetchone()
            batch_id = f"{buffer_id}-{row['epoch']}-{first}"
            con.execute(
                "INSERT INTO buffer_batches(batch_id, bkey, buffer_id, first_seq, last_seq, count, state, attempts, owner,"
                " lease_until, created, claimed_at) VALUES (?,?,?,?,?,?,'claimed',1,?,?,?,?)",
                (batch_id, bkey, buffer_id, first, last, count, owner, now + lease_seconds, now, now),
            )
            con.execute(
                "UPDATE buffers SET claimed_seq=?, inflight=inflight+?, oldest_ts=? WHERE bkey=?",
                (last, count, nxt[0] if nxt else None, bkey),
            )
        return Claim(batch_id, buffer_id, bkey, first, last, count, 1, owner, [r[1] for r in items])

    def reclaim(self, batch_id: str, owner: str, lease_seconds: float, max_attempts: int, *,
                force: bool = False, exclusive: bool = False) -> Claim | None:
        """Take over a batch that is due for retry or waiting (any such batch when `force`), or whose lease expired.

        A batch whose flusher died `max_attempts` times is parked as dead-letter instead. `exclusive`: not while
        another batch of the buffer is in flight.
        """
        now = time.time()
        with self._tx() as con:
            b = con.execute("SELECT * FROM buffer_batches WHERE batch_id=?", (batch_id,)).fetchone()
            if b is None:
                return None
            expired = b["state"] == "claimed" and (b["lease_until"] or 0) <= now
            retry_due = b["state"] in ("retry", "waiting") and (force or (b["next_attempt_at"] or 0) <= now)
            if not (expired or retry_due):
                return None
            if exclusive and self._in_flight(con, b["bkey"], now, batch_id):
                return None
            if expired and b["attempts"] >= max_attempts:
                self._park(con, b, f"flusher stopped mid-flush {b['attempts']} times (lease expired)", now)
                return None
            con.execute(
                "UPDATE buffer_batches SET state='claimed', attempts=attempts+1, owner=?, lease_until=?, claimed_at=?"
                " WHERE batch_id=?",
                (owner, now + lease_seconds, now, batch_id),
            )
            items = con.execute(
                "SELECT data FROM buffer_items WHERE bkey=? AND seq BETWEEN ? AND ? ORDER BY seq",
                (b["bkey"], b["first_seq"], b["last_seq"]),
            ).fetchall()
        return Claim(batch_id, b["buffer_id"], b["bkey"], b["first_seq"], b["last_seq"], b["count"],
                     b["attempts"] + 1, owner, [r[0] for r in items])

    def complete(self, claim: Claim, pass_through: str | None, duration_ms: float) -> bool:
        """Delete a delivered batch and its items; False if it was already completed or cleared."""
        now = time.time()
        with self._tx() as con:
            gone = con.execute("DELETE FROM buffer_batches WHERE batch_id=? RETURNING count", (claim.batch_id,)).fetchone()
            if gone is None:
                return False
            deleted = con.execute(
                "DELETE FROM buffer_items WHERE bkey=? AND seq BETWEEN ? AND ?", (claim.bkey, claim.first_seq, claim.last_seq)
            ).rowcount
            con.execute(
                "UPDATE buffers SET pending=pending-?, inflight=inflight-?, flushed_total=flushed_total+?,"
                " batches_total=batches_total+1, last_flush_at=?, last_flush_count=?, last_flush_result='ok',"
                " last_flush_error=NULL WHERE bkey=?",
                (deleted, gone[0], deleted, now, deleted, claim.bkey),
            )
            self._add_rate(con, claim.buffer_id, int(now), flushed=deleted)
            self._event(con, "buffer.flush", now, {
                "buffer_id": claim.buffer_id, "batch_id": claim.batch_id, "count": deleted, "attempt": claim.attempts,
                "pass_through_tool": pass_through, "duration_ms": round(duration_ms, 2),
            })
        return True

    def fail(self, claim: Claim, error: str, max_attempts: int, backoff: Callable[[int], float]) -> str:
        """Record a failed delivery: 'retry' (with backoff), 'dead' (parked) or 'lost' (no longer ours)."""
        now = time.time()
        error = redact(error)[:2000]
        with self._tx() as con:
            b = con.execute("SELECT * FROM buffer_batches WHERE batch_id=?", (claim.batch_id,)).fetchone()
            if b is None or b["owner"] != claim.owner or b["state"] != "claimed":
                return "lost"
            if b["attempts"] >= max_attempts:
                self._park(con, b, error, now)
                return "dead"
            delay = backoff(b["attempts"])
            con.execute(
                "UPDATE buffer_batches SET state='retry', owner=NULL, lease_until=NULL, next_attempt_at=?, last_error=?"
                " WHERE batch_id=?",
                (now + delay, error, claim.batch_id),
            )
            con.execute(
                "UPDATE buffers SET retries_total=retries_total+1, last_flush_at=?, last_flush_count=?,"
                " last_flush_result='failed', last_flush_error=? WHERE bkey=?",
                (now, b["count"], error, b["bkey"]),
            )
            self._event(con, "buffer.retry", now, {
                "buffer_id": b["buffer_id"], "batch_id": b["batch_id"], "count": b["count"], "attempt": b["attempts"],
                "retry_in_seconds": round(delay, 3), "error": error,
            })
        return "retry"

    def hold(self, claim: Claim, reason: str, until: float) -> bool:
        """The pass-through tool refused the batch without running (circuit open, disabled): no attempt.

        The batch waits in state 'waiting' until `until`, its attempt given back; False if it is no longer ours.
        """
        now = time.time()
        reason = redact(reason)[:2000]
        with self._tx() as con:
            b = con.execute("SELECT * FROM buffer_batches WHERE batch_id=?", (claim.batch_id,)).fetchone()
            if b is None or b["owner"] != claim.owner or b["state"] != "claimed":
                return False
            con.execute(
                "UPDATE buffer_batches SET state='waiting', attempts=MAX(0, attempts-1), owner=NULL, lease_until=NULL,"
                " next_attempt_at=?, last_error=? WHERE batch_id=?",
                (until, reason, claim.batch_id),
            )
            con.execute(
                "UPDATE buffers SET last_flush_at=?, last_flush_count=?, last_flush_result='waiting', last_flush_error=?"
                " WHERE bkey=?",
                (now, b["count"], reason, b["bkey"]),
            )
            self._event(con, "buffer.waiting", now, {
                "buffer_id": b["buffer_id"], "batch_id": b["batch_id"], "count": b["count"],
                "attempts": max(0, b["attempts"] - 1), "until": round(until, 3), "reason": reason,
            })
        return True

    def _park(self, con: sqlite3.Connection, b: sqlite3.Row, error: str, now: float) -> None:
        con.execute(
            "UPDATE buffer_batches SET state='dead', owner=NULL, lease_until=NULL, next_attempt_at=NULL, dead_at=?,"
            " last_error=? WHERE batch_id=?",
            (now, error, b["batch_id"]),
        )
        con.execute(
            "UPDATE buffers SET pending=pending-?, inflight=inflight-?, dead_items=dead_items+?, dead_total=dead_total+1,"
            " last_flush_at=?, last_flush_count=?, last_flush_result='dead_letter', last_flush_error=? WHERE bkey=?",
            (b["count"], b["count"], b["count"], now, b["count"], error, b["bkey"]),
        )
        self._event(con, "buffer.dead_letter", now, {
            "buffer_id": b["buffer_id"], "batch_id": b["batch_id"], "count": b["count"], "attempts": b["attempts"],
            "error": error,
        })

    def drain(self, buffer_id: str, limit: int) -> tuple[list[Any], int]:
        """Hand unclaimed items back to the caller and delete them (a buffer with no pass-through tool)."""
        now = time.time()
        with self._tx() as con:
            row = con.execute("SELECT bkey, claimed_seq FROM buffers WHERE buffer_id=?", (buffer_id,)).fetchone()
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

    def clear(self, buffer_id: str) -> int | None:
        """Discard every item (pending, in flight, dead-letter); None if there is no such buffer."""
        now = time.time()
        with self._tx() as con:
            row = con.execute("SELECT bkey, pending, dead_items FROM buffers WHERE buffer_id=?", (buffer_id,)).fetchone()
            if row is None:
                return None
            removed = con.execute("DELETE FROM buffer_items WHERE bkey=?", (row["bkey"],)).rowcount
            con.execute("DELETE FROM buffer_batches WHERE bkey=?", (row["bkey"],))
            con.execute(
                "UPDATE buffers SET claimed_seq=seq, pending=0, inflight=0, dead_items=0, oldest_ts=NULL WHERE bkey=?",
                (row["bkey"],),
            )
            self._event(con, "buffer.clear", now, {"buffer_id": buffer_id, "removed": removed})
        return removed

    def renew(self, held: list[tuple[str, str]], lease_seconds: float) -> None:
        """Extend the leases of batches still being delivered, so a slow pass-through is not re-claimed."""
        until = time.time() + lease_seconds
        with self._tx() as con:
            con.executemany(
                "UPDATE buffer_batches SET lease_until=? WHERE batch_id=? AND owner=? AND state='claimed'",
                [(until, batch_id, owner) for batch_id, owner in held],
            )

    def revive(self, buffer_id: str, batch_id: str | None) -> list[str]:
        """Dead-letter batches back to 'retry', due now and with a fresh attempt count."""
        now = time.time()
        with self._tx() as con:
            sql = "SELECT * FROM buffer_batches WHERE buffer_id=? AND state='dead'"
            params: list[Any] = [buffer_id]
            if batch_id is not None:
                sql += " AND batch_id=?"
                params.append(batch_id)
            rows = con.execute(sql + " ORDER BY first_seq", params).fetchall()
            for b in rows:
                con.execute(
                    "UPDATE buffer_batches SET state='retry', attempts=0, next_attempt_at=?, dead_at=NULL WHERE batch_id=?",
                    (now, b["batch_id"]),
                )
                con.execute(
                    "UPDATE buffers SET pending=pending+?, inflight=inflight+?, dead_items=dead_items-? WHERE bkey=?",
                    (b["count"], b["count"], b["count"], b["bkey"]),
                )
            if rows:
                self._event(con, "buffer.replay", now, {"buffer_id": buffer_id, "batches": [b["batch_id"] for b in rows],
                                                        "count": sum(b["count"] for b in rows)})
        return [b["batch_id"] for b in rows]

    # -- reading --------------------------------------------------------------------

    def rows(self, buffer_id: str | None = None) -> list[sqlite3.Row]:
        if buffer_id is None:
            return self.store.query("SELECT * FROM buffers ORDER BY buffer_id")
        return self.store.query("SELECT * FROM buffers WHERE buffer_id=?", (buffer_id,))

    def open_batches(self, buffer_id: str | None = None) -> list[sqlite3.Row]:
        """Batches in flight, waiting for a retry or for their pass-through tool (not dead-letter), oldest first."""
        sql = ("SELECT batch_id, buffer_id, state, count, attempts, lease_until, next_attempt_at, last_error"
               " FROM buffer_batches WHERE state IN ('claimed', 'retry', 'waiting')")
        if buffer_id is None:
            return self.store.query(sql + " ORDER BY first_seq")
        return self.store.query(sql + " AND buffer_id=? ORDER BY first_seq", (buffer_id,))

    def dead_batches(self, buffer_id: str) -> list[dict[str, Any]]:
        rows = self.store.query(
            "SELECT batch_id, count, attempts, created, dead_at, last_error, first_seq, last_seq FROM buffer_batches"
            " WHERE buffer_id=? AND state='dead' ORDER BY first_seq",
            (buffer_id,),
        )
        return [dict(r) for r in rows]

    def rates(self, since_sec: int) -> list[sqlite3.Row]:
        return self.store.query("SELECT buffer_id, sec, writes, flushed, dropped FROM buffer_rates WHERE sec>=?", (since_sec,))

    # -- rates and flusher registry -------------------------------------------------

    @staticmethod
    def _add_rate(con: sqlite3.Connection, buffer_id: str, sec: int, *, writes: int = 0, flushed: int = 0,
                  dropped: int = 0) -> None:
        con.execute(
            "INSERT INTO buffer_rates(buffer_id, sec, writes, flushed, dropped) VALUES (?,?,?,?,?)"
            " ON CONFLICT(buffer_id, sec) DO UPDATE SET writes=writes+excluded.writes, flushed=flushed+excluded.flushed,"
            " dropped=dropped+excluded.dropped",
            (buffer_id, sec, writes, flushed, dropped),
        )

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
            self._event(con, "buffer.drop", time.time(), {"buffer_id": buffer_id, "dropped": dropped, "when_full": when_full})

    def register_flusher(self, buffer_id: str) -> None:
        with self._tx() as con:
            con.execute(
                "INSERT OR REPLACE INTO buffer_flushers(buffer_id, session, pid, host, since) VALUES (?,?,?,?,?)",
                (buffer_id, self.session, self.pid, self.host, time.time()),
            )

    def unregister_flushers(self) -> None:
        with self._tx() as con:
            con.execute("DELETE FROM buffer_flushers WHERE session=? AND pid=?", (self.session, self.pid))

    def flushers(self) -> list[sqlite3.Row]:
        return self.store.query("SELECT buffer_id, session, pid, host FROM buffer_flushers")
