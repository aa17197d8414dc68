"""SQL for a buffer's batches: claim, re-claim, complete, fail, hold and park, one short transaction each.

Why this shape:
- items are clustered by (bkey, seq) and a batch is the contiguous seq range
  after `claimed_seq`, so claiming, retrying and deleting a batch touch only
  that range and the same batch id comes back on every retry;
- completion, retry and dead-letter update the buffer's counters and append their
  event in the same transaction, so the live figures never disagree with the items;
- a delivery the pass-through tool refused without running (its circuit is open, an
  operator disabled it) is no attempt: `hold` puts the batch in 'waiting' with its attempt
  given back, until the tool admits calls again.

`BatchLedger` is the base of `state.buffers.BufferTables`, which adds configuration, writes and reading.
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
from collections.abc import Callable, Iterator
from typing import Any

from state.buffer_records import Claim
from state.db import Store
from state.events import EventLog
from state.redact import redact


class BatchLedger:
    """The batch lifecycle over one store, for one runtime (its session and pid sign the events).

    Times (leases, retry times) are the store's clock (`store.now()`: the database's on PostgreSQL),
    so flushers on several machines agree on when a lease has expired.
    """

    def __init__(self, store: Store, session: str | None, node: str | None = None) -> None:
        self.store = store
        self.session = session
        self.pid = os.getpid()
        self.events = EventLog(store, session)
        self.host = socket.gethostname()
        #: this runtime across machines: host, pid and start token (a lease owner names it)
        self.node = node or f"{self.host}:{self.pid}"
        #: Writers and the flusher of one process queue here rather than in SQLite's busy handler,
        #: which sleeps 1 ms and more on every collision (a p99 write latency of ~1 ms otherwise).
        self._lock = threading.Lock()

    @contextlib.contextmanager
    def _tx(self) -> Iterator[Any]:
        with self._lock, self.store.tx() as con:
            yield con

    # -- events and rates (appended inside the caller's transaction) ----------------

    def _event(self, con: Any, kind: str, now: float, payload: dict[str, Any]) -> None:
        self.events.emit_in(con, kind, now=now, **payload)

    @staticmethod
    def _add_rate(con: Any, buffer_id: str, sec: int, *, writes: int = 0, flushed: int = 0,
                  dropped: int = 0) -> None:
        con.execute(
            "INSERT INTO buffer_rates(buffer_id, sec, writes, flushed, dropped) VALUES (?,?,?,?,?)"
            " ON CONFLICT(buffer_id, sec) DO UPDATE SET writes=buffer_rates.writes+excluded.writes,"
            " flushed=buffer_rates.flushed+excluded.flushed, dropped=buffer_rates.dropped+excluded.dropped",
            (buffer_id, sec, writes, flushed, dropped),
        )

    # -- claiming and delivery bookkeeping ------------------------------------------

    def claim_new(self, buffer_id: str, owner: str, lease_seconds: float, limit: int | None = None) -> Claim | None:
        """Claim the oldest unclaimed items (up to max_size, or `limit`) as a new batch."""
        now = self.store.now()
        with self._tx() as con:
            row = con.execute(
                "SELECT bkey, epoch, seq, claimed_seq, max_size FROM buffers WHERE buffer_id=?" + self.store.dialect.lock,
                (buffer_id,)
            ).fetchone()
            if row is None or row["seq"] <= row["claimed_seq"]:
                return None
            bkey = row["bkey"]
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
                force: bool = False) -> Claim | None:
        """Take over a batch that is due for retry or waiting (any such batch when `force`), or whose lease expired.

        A batch whose flusher died `max_attempts` times is parked as dead-letter instead. A batch another
        flusher is taking over at this moment is left to it (on PostgreSQL: FOR UPDATE SKIP LOCKED).
        """
        now = self.store.now()
        with self._tx() as con:
            b = con.execute("SELECT * FROM buffer_batches WHERE batch_id=?" + self.store.dialect.lock_skip,
                            (batch_id,)).fetchone()
            if b is None:
                return None
            expired = b["state"] == "claimed" and (b["lease_until"] or 0) <= now
            retry_due = b["state"] in ("retry", "waiting") and (force or (b["next_attempt_at"] or 0) <= now)
            if not (expired or retry_due):
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
        now = self.store.now()
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
        now = self.store.now()
        error = redact(error)[:2000]
        with self._tx() as con:
            b = con.execute("SELECT * FROM buffer_batches WHERE batch_id=?" + self.store.dialect.lock,
                            (claim.batch_id,)).fetchone()
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
        now = self.store.now()
        reason = redact(reason)[:2000]
        with self._tx() as con:
            b = con.execute("SELECT * FROM buffer_batches WHERE batch_id=?" + self.store.dialect.lock,
                            (claim.batch_id,)).fetchone()
            if b is None or b["owner"] != claim.owner or b["state"] != "claimed":
                return False
            con.execute(
                "UPDATE buffer_batches SET state='waiting', attempts=CASE WHEN attempts > 0 THEN attempts - 1 ELSE 0 END,"
                " owner=NULL, lease_until=NULL, next_attempt_at=?, last_error=? WHERE batch_id=?",
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

    def _park(self, con: Any, b: Any, error: str, now: float) -> None:
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

    def renew(self, held: list[tuple[str, str]], lease_seconds: float) -> None:
        """Extend the leases of batches still being delivered, so a slow pass-through is not re-claimed."""
        until = self.store.now() + lease_seconds
        with self._tx() as con:
            con.executemany(
                "UPDATE buffer_batches SET lease_until=? WHERE batch_id=? AND owner=? AND state='claimed'",
                [(until, batch_id, owner) for batch_id, owner in held],
            )

    def revive(self, buffer_id: str, batch_id: str, owner: str, lease_seconds: float) -> Claim | None:
        """A dead-letter batch back in flight, claimed by `owner` with a fresh attempt count, in one transaction
        (so no flusher takes it between the revival and the replaying delivery); None if it is not dead-letter."""
        now = self.store.now()
        with self._tx() as con:
            b = con.execute("SELECT * FROM buffer_batches WHERE batch_id=? AND buffer_id=? AND state='dead'"
                            + self.store.dialect.lock, (batch_id, buffer_id)).fetchone()
            if b is None:
                return None
            con.execute(
                "UPDATE buffer_batches SET state='claimed', attempts=1, owner=?, lease_until=?, claimed_at=?,"
                " next_attempt_at=NULL, dead_at=NULL WHERE batch_id=?",
                (owner, now + lease_seconds, now, batch_id),
            )
            con.execute(
                "UPDATE buffers SET pending=pending+?, inflight=inflight+?, dead_items=dead_items-? WHERE bkey=?",
                (b["count"], b["count"], b["count"], b["bkey"]),
            )
            self._event(con, "buffer.replay", now, {"buffer_id": b["buffer_id"], "batches": [batch_id], "count": b["count"]})
            items = con.execute(
                "SELECT data FROM buffer_items WHERE bkey=? AND seq BETWEEN ? AND ? ORDER BY seq",
                (b["bkey"], b["first_seq"], b["last_seq"]),
            ).fetchall()
        return Claim(batch_id, b["buffer_id"], b["bkey"], b["first_seq"], b["last_seq"], b["count"], 1, owner,
                     [r[0] for r in items])

    # -- reading --------------------------------------------------------------------

    def batch_of(self, buffer_id: str, seq: int) -> tuple[int, str | None] | None:
        """(the buffer's claimed_seq, the state of the batch holding item `seq`, or None when no batch holds it:
        delivered, its batch deleted with its items); None when the buffer is gone."""
        row = self.store.query_one("SELECT claimed_seq FROM buffers WHERE buffer_id=?", (buffer_id,))
        if row is None:
            return None
        batch = self.store.query_one("SELECT state FROM buffer_batches WHERE buffer_id=? AND first_seq<=? AND last_seq>=?",
                                     (buffer_id, seq, seq))
        return int(row[0]), (str(batch[0]) if batch is not None else None)

    def open_batches(self, buffer_id: str | None = None) -> list[Any]:
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
