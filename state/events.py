"""The append-only event log every process (on every node) writes and the dashboard tails.

This module is the only writer of the `events` table (a test keeps it so). Every event is stamped
with the store's clock (`Store.now()`: the database server's on PostgreSQL), taken once per
transaction, so events from several nodes order on one clock. A caller whose event belongs with
rows it writes uses `emit_in(con, ...)` inside its own transaction, so both land or neither does.

Tailing is the backend's: by id on SQLite, in commit order on PostgreSQL (a serial id there is
not in commit order; see state/postgres/events.py). Either way a reader's cursor is the id of
the last event it saw.

High-rate activity (buffer writes, individual calls) never gets one event per
item: it goes to counters or its own table. Events are for things a person
would want to see scroll by.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from state.db import Store, dumps
from state.redact import redact


@dataclass(frozen=True, slots=True)
class Event:
    id: int
    ts: float
    pid: int
    session: str | None
    kind: str
    tool_id: str | None
    version: str | None
    payload: dict[str, Any]


@dataclass(frozen=True, slots=True)
class PendingEvent:
    kind: str
    tool_id: str | None = None
    version: str | None = None
    payload: dict[str, Any] | None = None
    ts: float | None = None


_INSERT = "INSERT INTO events(ts, pid, session, kind, tool_id, version, payload) VALUES (?,?,?,?,?,?,?)"


class EventLog:
    def __init__(self, store: Store, session: str | Callable[[], str | None] | None = None) -> None:
        self.store = store
        #: a name, or a function giving the session of the work in progress (a runtime serving many clients)
        self._session = session
        self.pid = os.getpid()

    @property
    def session(self) -> str | None:
        return self._session() if callable(self._session) else self._session

    def _row(self, ev: PendingEvent, now: float) -> tuple[Any, ...]:
        payload = redact(dumps(ev.payload or {}))
        return (ev.ts or now, self.pid, self.session, ev.kind, ev.tool_id, ev.version, payload)

    def emit(self, kind: str, tool_id: str | None = None, version: str | None = None, **payload: Any) -> int:
        """Append one event in its own short transaction; returns its id."""
        now = self.store.now()
        with self.store.tx() as con:
            row = con.execute(_INSERT + " RETURNING id", self._row(PendingEvent(kind, tool_id, version, payload), now)).fetchone()
            return int(row[0])

    def emit_many(self, events: Iterable[PendingEvent]) -> None:
        """Append a batch in one transaction (loader status, flush bursts)."""
        events = list(events)
        if not events:
            return
        now = self.store.now()
        with self.store.tx() as con:
            self.emit_many_in(con, events, now=now)

    def emit_in(self, con: Any, kind: str, tool_id: str | None = None, version: str | None = None, *,
                now: float | None = None, **payload: Any) -> None:
        """Append one event inside the caller's transaction `con`, so it commits with the rows it
        describes. `now`: the store clock the caller took for this transaction (taken here if None)."""
        self.emit_many_in(con, [PendingEvent(kind, tool_id, version, payload)], now=now)

    def emit_many_in(self, con: Any, events: Iterable[PendingEvent], *, now: float | None = None) -> None:
        """Append several events inside the caller's transaction, all stamped with one clock reading."""
        stamp = self.store.now() if now is None else now
        rows = [self._row(ev, stamp) for ev in events]
        if rows:
            con.executemany(_INSERT, rows)

    def tail(self, after_id: int = 0, *, limit: int = 500, kinds: Iterable[str] | None = None) -> list[Event]:
        """Events after the event `after_id` (the last one the reader saw; 0: from the start), in the
        order they became visible, skipping none that committed late; safe from any process."""
        return [_to_event(r) for r in self.store.tail_events(after_id, list(kinds) if kinds else None, limit)]

    def last_id(self) -> int:
        """The cursor of a reader that has seen everything so far."""
        return self.store.last_event_id()

    def wait(self, timeout: float, after_id: int | None = None) -> bool:
        """Block until another event may have been written (on any node) or `timeout` passes; with
        the reader's cursor as `after_id`, at once when one already was."""
        return self.store.wait_events(timeout, after_id)

    def recent(self, limit: int = 200, kinds: Iterable[str] | None = None) -> list[Event]:
        sql = "SELECT * FROM events"
        params: list[Any] = []
        if kinds:
            kinds = list(kinds)
            sql += f" WHERE kind IN ({','.join('?' * len(kinds))})"
            params.extend(kinds)
        sql += " ORDER BY id DESC LIMIT ?"
        params.append(limit)
        return [_to_event(r) for r in reversed(self.store.query(sql, params))]

    def before(self, before_id: int, *, limit: int = 500) -> list[Event]:
        """Up to `limit` events older than the event `before_id`, oldest first: paging back through the log as
        far as retention keeps it."""
        rows = self.store.query("SELECT * FROM events WHERE id < ? ORDER BY id DESC LIMIT ?", (before_id, limit))
        return [_to_event(r) for r in reversed(rows)]

    def prune(self, older_than_s: float, keep_min: int = 1000) -> int:
        """Drop events older than the retention window, always keeping the newest `keep_min`."""
        cutoff = self.store.now() - older_than_s
        with self.store.tx() as con:
            floor = con.execute("SELECT COALESCE(MAX(id), 0) - ? FROM events", (keep_min,)).fetchone()[0]
            cur = con.execute("DELETE FROM events WHERE ts < ? AND id <= ?", (cutoff, floor))
            return cur.rowcount


def _to_event(row: Any) -> Event:
    try:
        payload = json.loads(row["payload"] or "{}")
    except json.JSONDecodeError:
        payload = {"raw": row["payload"]}
    return Event(row["id"], row["ts"], row["pid"], row["session"], row["kind"], row["tool_id"], row["version"], payload)
