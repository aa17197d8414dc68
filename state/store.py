"""The store interface: what every backend gives the rest of tooldeck.

Two backends implement it: `state.sqlite.SqliteStore` (one file per workspace, the embedded
default) and `state.postgres.PgStore` (`TOOLDECK_DATABASE_URL`, several nodes sharing one
database). Callers write portable SQL with `?` placeholders (`?1`, `?2` for a value used
twice) and get rows that answer both `row[0]` and `row["name"]`. Portable means: upserts as
`INSERT ... ON CONFLICT`, new ids by `RETURNING id`, no SQLite scalar `MAX(a, b)`, no sums of
booleans. What really differs lives in the backend, behind the methods below: the row-lock
suffixes of `dialect`, the clock (`now`), the event tail (`tail_events`, `wait_events`) and
the schema's versioning.
"""

from __future__ import annotations

import contextlib
import json
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

#: the schema version this code writes, the same number on both backends
SCHEMA_VERSION = 7


class StoreError(Exception):
    """Base for state-store problems (kept free of `tools` so `state` stands alone)."""

    error_class = "state"


class SchemaTooNewError(StoreError):
    """The database was written by a newer tooldeck; refusing beats corrupting it."""


class StoreBusyError(StoreError):
    """Another process holds the database lock for longer than `busy_timeout`."""


class StoreUnavailableError(StoreError):
    """The database cannot be reached (stopped, restarting, network); what was being written was not written."""


@dataclass(frozen=True, slots=True)
class Dialect:
    """The few SQL fragments that differ and that callers splice into otherwise portable statements."""

    name: str
    #: appended to a SELECT whose rows the transaction then updates: '' on SQLite, whose
    #: BEGIN IMMEDIATE already holds the one write lock; ' FOR UPDATE' on PostgreSQL
    lock: str
    #: the same, but a row another transaction holds is skipped rather than waited for
    lock_skip: str
    #: INSERT/UPDATE inside WITH (PostgreSQL): a write and its bookkeeping in one statement, which
    #: outside a transaction commits by itself in one round trip
    writable_cte: bool = False
    #: array parameters and unnest (PostgreSQL): many rows in one short statement of few parameters
    arrays: bool = False


class Store(ABC):
    """A workspace's shared state. Thread-safe; each thread works on its own connection."""

    backend: str
    dialect: Dialect
    #: where the state lives, for messages (a file path, or a URL without its password)
    where: str

    # -- connections and transactions ------------------------------------------------

    def for_update(self, select_sql: str) -> str:
        """`select_sql` with the row lock a transaction needs on rows it reads and then updates
        (nothing on SQLite, whose BEGIN IMMEDIATE holds the one write lock; FOR UPDATE on
        PostgreSQL), so callers never splice the dialect themselves."""
        return select_sql + self.dialect.lock


    @abstractmethod
    def conn(self) -> Any:
        """The connection this thread works on (inside `tx()`, the transaction's)."""

    @abstractmethod
    def begin(self, con: Any, *, immediate: bool = True) -> None: ...

    @abstractmethod
    def commit(self, con: Any) -> None: ...

    @abstractmethod
    def rollback(self, con: Any) -> None: ...

    @abstractmethod
    def wrap(self, exc: Exception) -> StoreError:
        """The store's own error for a driver error (a clear one when the lock or the server was never had)."""

    @contextlib.contextmanager
    def tx(self, *, immediate: bool = True) -> Iterator[Any]:
        """A short transaction; `immediate` takes SQLite's write lock up front (PostgreSQL locks rows as it goes)."""
        with self._connection() as con:
            self.begin(con, immediate=immediate)
            try:
                yield con
            except BaseException:
                self.rollback(con)
                raise
            self.commit(con)

    @contextlib.contextmanager
    def snapshot(self) -> Iterator[Any]:
        """A read-only transaction whose statements all see one committed state (a status that reads
        several tables must not mix before and after a write)."""
        with self._connection() as con:
            self.begin_snapshot(con)
            try:
                yield con
            finally:
                self.rollback(con)

    def begin_snapshot(self, con: Any) -> None:
        """SQLite: a deferred transaction reads one WAL snapshot from its first read on."""
        self.begin(con, immediate=False)

    @contextlib.contextmanager
    def _connection(self) -> Iterator[Any]:
        yield self.conn()

    @abstractmethod
    def execute(self, sql: str, params: Any = ()) -> Any:
        """One statement outside any transaction of this thread (or inside it, when one is open)."""

    def query(self, sql: str, params: Any = ()) -> list[Any]:
        return self.execute(sql, params).fetchall()

    def query_one(self, sql: str, params: Any = ()) -> Any:
        return self.execute(sql, params).fetchone()

    # -- what differs ------------------------------------------------------------------

    @abstractmethod
    def now(self) -> float:
        """Seconds since the epoch (UTC) on the clock every node agrees on: leases, heartbeats, retry
        times and circuit cooldowns are compared against it."""

    @abstractmethod
    def tail_events(self, after_id: int, kinds: Sequence[str] | None, limit: int) -> list[Any]:
        """Event rows after the event `after_id`, in the order they became visible, never skipping one
        that commits late; `after_id` is the id of the last event a reader saw (0: from the start)."""

    @abstractmethod
    def last_event_id(self) -> int:
        """The id of the last event a tail would return now."""

    @abstractmethod
    def wait_events(self, timeout: float, after_id: int | None = None) -> bool:
        """Block until an event may have been written (by any node) or `timeout` passes. A reader
        passes its cursor as `after_id`: an event that became visible after it (even before this
        call) returns at once, so none written between a tail and this wait is slept through."""

    @abstractmethod
    def schema_version(self) -> int: ...

    @abstractmethod
    def migrate(self) -> None:
        """Bring the schema forward; refuse a schema newer than this code."""

    def checkpoint(self) -> None:  # noqa: B027 - most backends need none
        """Housekeeping the backend needs now and then (SQLite: a WAL checkpoint)."""

    def write_blocked(self) -> bool:
        """Whether another process holds the state's write lock now (a write would wait): a probe that writes
        nothing. A server-backed store has no such lock: False (its outages raise instead)."""
        return False

    def file_problem(self) -> str | None:
        """Why the state this store reads may no longer be the workspace's (a file-backed database deleted or
        replaced under the process), or None. A server-backed store has no file: None."""
        return None

    @abstractmethod
    def used_bytes(self) -> int:
        """The bytes the state's live rows take (deleted rows' space, reusable, not counted), for the
        size budget (`[retention] max_db_mb`)."""

    @abstractmethod
    def table_bytes(self, tables: Sequence[str]) -> dict[str, int]:
        """The bytes each of `tables` takes now (its rows and indexes), for choosing what to trim."""

    @abstractmethod
    def close(self) -> None: ...

    def describe(self) -> dict[str, Any]:
        """Which backend and where, for the dashboard and `--json` output (never a password)."""
        return {"backend": self.backend, "where": self.where}


def split_sql(script: str) -> list[str]:
    """Split a schema file into statements (no bodies with inner `;` are used outside `$$ ... $$`)."""
    lines = [line for line in script.splitlines() if not line.strip().startswith("--")]
    text = "\n".join(lines)
    out: list[str] = []
    for i, part in enumerate(text.split("$$")):
        if i % 2:  # inside a dollar-quoted body: glue it back to the statement it belongs to
            out[-1] += "$$" + part + "$$"
            continue
        pieces = part.split(";")
        if out and i:
            out[-1] += pieces.pop(0)
        out.extend(pieces)
    return [s.strip() for s in out if s.strip()]


def dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), default=str, ensure_ascii=False)
