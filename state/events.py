"""The append-only event log every process (on every node) writes and the dashboard tails.

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
import time
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


class EventLog:
    def __init__(self, store: Store, session: str | Callable[[], str | None] | None = None) -> None:
        self.store = store
        #: a name, or a function giving the session of the work in progress (a runtime serving many clients)
        self._session = session
        self.pid = os.getpid()

    @property
    def session(self) -> str | None:
        return self._session() if callable(self._session) else self._session

    def _row(self, ev: PendingEvent) -> tuple[Any, ...]:
        payload = redact(dumps(ev.payload or {}))
        return (ev.ts or time.time(), self.pid, self.session, ev.kind, ev.tool_id, ev.version, payload)

    def emit(self, kind: str, tool_id: str | None = None, version: str | None = None, **payload: Any) -> int:
        """Append one event in its own short transaction; returns its id."""
        with self.store.tx() as con:
            row = con.execute(
                "INSERT INTO events(ts, pid, session, kind, tool_id, version, payload) VALUES (?,?,?,?,?,?,?) RETURNING id",
                self._row(PendingEvent(kind, tool_id, version, payload)),
            ).fetchone()
            return int(row[0])

    def emit_many(self, events: Iterable[PendingEvent]) -> None:
        """Append a batch in one transaction (loader status, flush bursts)."""
        rows = [self._row(ev) for ev in events]
        if not rows:
            return
        with self.store.tx() as con:
            con.executemany(
                "INSERT INTO events(ts, pid, session, kind, tool_id, version, payload) VALUES (?,?,?,?,?,?,?)",
                rows,
            )

    def tail(self, after_id: int = 0, *, limit: int = 500, kinds: Iterable[str] | None = None) -> list[Event]:
        """Events after the event `after_id` (the last one the reader saw; 0: from the start), in the
        order they became visible, skipping none that committed late; safe from any process."""
        return [_to_event(r) for r in self.store.tail_events(after_id, list(kinds) if kinds else None, limit)]

    def last_id(self) -> int:
        """The cursor of a reader that has seen everything so far."""
        return self.store.last_event_id()

    def wait(self, timeout: float) -> bool:
        """Block until another event may have been written (on any node) or `timeout` passes."""
        return self.store.wait_events(timeout)

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

    def prune(self, older_than_s: float, keep_min: int = 1000) -> int:
        """Drop events older than the retention window, always keeping the newest `keep_min`."""
        cutoff = time.time() - older_than_s
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
