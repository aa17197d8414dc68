"""The event tail on PostgreSQL: in commit order, skipping nothing.

Why not `id > last`: a BIGSERIAL id is handed out when a row is inserted, not when its
transaction commits. Transaction A inserts id 10, transaction B inserts id 11 and commits; a
reader sees 11, moves its cursor to 11, and when A commits, 10 is behind the cursor forever.

The scheme: every event row carries the id of the transaction that wrote it (`xid`, a column
defaulting to `pg_current_xact_id()`). A reader reads only rows whose xid is below the horizon
`pg_snapshot_xmin(pg_current_snapshot())`, the oldest transaction still running: every
transaction below it has ended, so no row below it can appear later, and every transaction
that has not yet written gets an xid above it. Rows are read in (xid, id) order, which is
final below the horizon, with the reader's cursor being the last (xid, id) it saw. A row above
the horizon that has already committed is "held" until the transactions below it end; the
reader then looks again within milliseconds rather than waiting for a wake-up.

Callers keep a plain event id as their cursor (`events[-1].id`); the xid of that event is
remembered here (or read back by primary key), so the interface is the one SQLite has.

LISTEN/NOTIFY is only the wake-up: a statement trigger on `events` notifies
`tooldeck_events` when a transaction that wrote events commits. A notification carries no
data, and a missed one costs latency (the waiter also wakes on its timeout), never an event.

Cost: a transaction held open (by tooldeck or anything else on the same server) holds the
horizon, so events committed meanwhile reach readers only when it ends: late, never lost.
tooldeck's own transactions are short.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

log = logging.getLogger("tooldeck.state")
CHANNEL = "tooldeck_events"
#: how soon a reader looks again while committed events wait behind the horizon
HELD_RECHECK_SECONDS = 0.01


class EventTail:
    """The commit-ordered tail and the wake-up listener of one PgStore."""

    def __init__(self, store: Any) -> None:
        self.store = store
        self._xids: OrderedDict[int, str] = OrderedDict()  # event id -> its xid, for the cursors handed out
        self._xids_lock = threading.Lock()
        self._held = False
        self._cond = threading.Condition()
        self._generation = 0
        self._listener: threading.Thread | None = None
        self._listen_con: Any = None
        self._stop = threading.Event()

    # -- cursors -------------------------------------------------------------------

    def _remember(self, event_id: int, xid: str) -> None:
        with self._xids_lock:
            self._xids[event_id] = xid
            self._xids.move_to_end(event_id)
            while len(self._xids) > 256:
                self._xids.popitem(last=False)

    def _cursor(self, after_id: int) -> tuple[str, int]:
        """(xid, id) of the event `after_id`, or of the nearest one before it when that one is gone."""
        if after_id <= 0:
            return "0", 0
        with self._xids_lock:
            xid = self._xids.get(after_id)
        if xid is not None:
            return xid, after_id
        row = self.store.query_one("SELECT xid::text FROM events WHERE id <= ? ORDER BY id DESC LIMIT 1", (after_id,))
        return (str(row[0]) if row else "0"), after_id

    # -- reading -------------------------------------------------------------------

    def tail(self, after_id: int, kinds: Sequence[str] | None, limit: int) -> list[Any]:
        xid, last = self._cursor(after_id)
        sql = ("SELECT e.*, e.xid::text AS xid_text, e.xid < pg_snapshot_xmin(pg_current_snapshot()) AS settled"
               " FROM events e WHERE (e.xid, e.id) > (?::xid8, ?)")
        params: list[Any] = [xid, last]
        if kinds:
            sql += f" AND e.kind IN ({','.join('?' * len(kinds))})"
            params.extend(kinds)
        sql += " ORDER BY e.xid, e.id LIMIT ?"
        params.append(limit)
        rows = self.store.query(sql, params)
        out = []
        held = False
        for row in rows:
            if not row["settled"]:
                held = True  # committed, but a transaction below it is still running
                break
            out.append(row)
        self._held = held
        if out:
            self._remember(int(out[-1]["id"]), str(out[-1]["xid_text"]))
        return out

    def last_id(self) -> int:
        row = self.store.query_one(
            "SELECT id, xid::text FROM events WHERE xid < pg_snapshot_xmin(pg_current_snapshot())"
            " ORDER BY xid DESC, id DESC LIMIT 1")
        if row is None:
            return 0
        self._remember(int(row[0]), str(row[1]))
        return int(row[0])

    # -- waking up -----------------------------------------------------------------

    def wait(self, timeout: float) -> bool:
        """Until a NOTIFY arrives or `timeout` passes; soon when the last read found events held."""
        if self._held:
            time.sleep(min(timeout, HELD_RECHECK_SECONDS))
            return True
        self._ensure_listener()
        with self._cond:
            start = self._generation
            self._cond.wait_for(lambda: self._generation != start or self._stop.is_set(), timeout)
            return self._generation != start

    def _ensure_listener(self) -> None:
        if self._listener is not None and self._listener.is_alive():
            return
        with self._cond:
            if self._listener is not None and self._listener.is_alive():
                return
            self._stop.clear()
            self._listener = threading.Thread(target=self._listen, name="tooldeck-events-listen", daemon=True)
            self._listener.start()

    def _listen(self) -> None:
        backoff = 0.1
        while not self._stop.is_set():
            try:
                con = self.store.connect()
            except Exception as exc:  # the server is down: wake the waiters (they poll) and retry
                log.debug("event listener: %s", exc)
                self._wake()
                self._stop.wait(backoff)
                backoff = min(5.0, backoff * 2)
                continue
            backoff = 0.1
            self._listen_con = con
            try:
                con.execute(f"LISTEN {CHANNEL}")
                self._wake()  # anything committed while we were not listening
                while not self._stop.is_set():
                    for _ in con.notifies(timeout=1.0, stop_after=1):
                        self._wake()
            except Exception as exc:  # connection lost: reconnect
                log.debug("event listener: %s", exc)
            finally:
                self._listen_con = None
                with contextlib.suppress(Exception):
                    con.close()

    def _wake(self) -> None:
        with self._cond:
            self._generation += 1
            self._cond.notify_all()

    def close(self) -> None:
        self._stop.set()
        self._wake()
        listener = self._listener
        if listener is not None and listener is not threading.current_thread():
            listener.join(timeout=2.0)

    def forked(self) -> None:
        self._listener = None
        self._listen_con = None
        self._cond = threading.Condition()
