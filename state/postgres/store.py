"""The PostgreSQL backend: every node's runtimes share one database through psycopg 3.

Connections: one small `psycopg_pool` per process, opened lazily, min one connection; a
transaction borrows one for its duration (a statement outside a transaction borrows one for
that statement), and inside a transaction every statement of that thread runs on the
transaction's connection. A pool is never carried across `fork`: a child that touches the
store opens its own, leaving the parent's sockets alone.

Isolation: READ COMMITTED, as PostgreSQL defaults. SQLite's `BEGIN IMMEDIATE` serialises every
writer; here a transaction that reads rows it then updates locks them (`dialect.lock`, ' FOR
UPDATE'), and counters are bumped by `UPDATE ... RETURNING`, which locks the row it changes.

Errors: a server that cannot be reached (stopped, restarting, network) is a
`StoreUnavailableError` naming the database (without its password); what was being written was
not acknowledged. The pool replaces broken connections, so the runtime works again as soon as
the server is back.

The clock: `now()` is the database's clock, read as an offset to this machine's clock (measured
at open and every `CLOCK_REFRESH_SECONDS`, half a round trip of error), so leases, heartbeats,
retry times and circuit cooldowns agree across nodes whose clocks do not.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
import weakref
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import psycopg
import psycopg_pool
from psycopg.adapt import Loader

from state.postgres.events import EventTail
from state.postgres.sql import params_for, row_factory, translate
from state.store import (
    SCHEMA_VERSION,
    Dialect,
    SchemaTooNewError,
    Store,
    StoreBusyError,
    StoreError,
    StoreUnavailableError,
    split_sql,
)
from state.url import register_url_secrets, safe_url

# without logging set up (a library user, `state migrate`), the pool's reconnect warnings must not
# reach stderr through Python's last-resort handler; a configured root logger still receives them
logging.getLogger("psycopg.pool").addHandler(logging.NullHandler())

SCHEMA_DIR = Path(__file__).resolve().parent.parent / "schema" / "postgres"
#: version -> SQL files applied to reach it. PostgreSQL support starts at version 4, whose
#: base.sql is the whole schema of that version; later versions add a file each.
MIGRATIONS: dict[int, tuple[str, ...]] = {4: ("base.sql",), 5: ("v5.sql",), 6: ("v6.sql",), 7: ("v7.sql",)}
#: pg_advisory_lock key under which nodes starting together migrate once ("tooldeck" in ASCII)
MIGRATION_LOCK = 0x746F6F6C6465636B
POSTGRES = Dialect("postgresql", lock=" FOR UPDATE", lock_skip=" FOR UPDATE SKIP LOCKED", writable_cte=True, arrays=True)
DEFAULT_POOL_SIZE = 8
#: how long a borrower waits for a connection (or for a stopped server) before a clear error
CONNECT_TIMEOUT_SECONDS = 5.0
LOCK_TIMEOUT = "30s"  # like SQLite's busy timeout: a lock held longer is a clear StoreBusyError
CLOCK_REFRESH_SECONDS = 30.0
#: a pooled connection idle longer than this is checked (one empty query) before it is handed out:
#: after a server restart every idle one is dead, and a write must not fail for that
CHECK_IDLE_SECONDS = 1.0


def _check_if_idle(raw: psycopg.Connection) -> None:
    if time.monotonic() - getattr(raw, "_tooldeck_returned", 0.0) > CHECK_IDLE_SECONDS:
        psycopg_pool.ConnectionPool.check_connection(raw)


class _Numeric(Loader):
    """numeric as int when whole, else float (SUM over bigint is numeric; callers expect numbers, not Decimal)."""

    def load(self, data: Any) -> Any:
        text = bytes(data).decode()
        try:
            return int(text)
        except ValueError:
            return float(text)


class Result:
    """A statement's rows, read off the connection before it went back to the pool."""

    __slots__ = ("_rows", "_pos", "rowcount", "description")

    def __init__(self, rows: list[Any], rowcount: int, description: Any) -> None:
        self._rows = rows
        self._pos = 0
        self.rowcount = rowcount
        self.description = description

    def fetchone(self) -> Any:
        if self._pos >= len(self._rows):
            return None
        self._pos += 1
        return self._rows[self._pos - 1]

    def fetchall(self) -> list[Any]:
        rows = self._rows[self._pos:]
        self._pos = len(self._rows)
        return rows

    def __iter__(self) -> Iterator[Any]:
        return iter(self.fetchall())


class PgConnection:
    """What `tx()` yields: `execute` and `executemany` with portable SQL, errors as StoreErrors."""

    __slots__ = ("raw", "store")

    def __init__(self, raw: psycopg.Connection, store: PgStore) -> None:
        self.raw = raw
        self.store = store

    def execute(self, sql: str, params: Any = ()) -> Result:
        query, numbered = translate(sql)
        try:
            cur = self.raw.execute(query, params_for(numbered, params))
            rows = cur.fetchall() if cur.description is not None else []
        except psycopg.Error as exc:
            raise self.store.wrap(exc) from exc
        return Result(rows, cur.rowcount, cur.description)

    def executemany(self, sql: str, seq: Any) -> Result:
        query, numbered = translate(sql)
        try:
            with self.raw.cursor() as cur:
                cur.executemany(query, [params_for(numbered, p) for p in seq])
                return Result([], cur.rowcount, None)
        except psycopg.Error as exc:
            raise self.store.wrap(exc) from exc


_stores: weakref.WeakSet[PgStore] = weakref.WeakSet()


def _after_fork() -> None:
    for store in list(_stores):
        store._forked()


os.register_at_fork(after_in_child=_after_fork)


class PgStore(Store):
    """The shared state of every node, in one PostgreSQL database."""

    backend = "postgresql"
    dialect = POSTGRES

    def __init__(self, url: str, *, pool_size: int | None = None, local_clock: Callable[[], float] = time.time) -> None:
        register_url_secrets(url)
        self.url = url
        self.where = _describe_url(url)
        self.pool_size = max(1, pool_size or DEFAULT_POOL_SIZE)
        self._local_clock = local_clock
        self._local = threading.local()
        self._pool: psycopg_pool.ConnectionPool | None = None
        self._pool_pid = 0
        self._pool_lock = threading.Lock()
        self._closed = False
        self._offset = 0.0
        self._offset_at = -1e9
        self.events = EventTail(self)
        _stores.add(self)
        self.migrate()
        self._measure_clock()

    # -- connections ---------------------------------------------------------------

    def _configure(self, raw: psycopg.Connection) -> None:
        raw.row_factory = row_factory
        raw.adapters.register_loader("numeric", _Numeric)
        raw.execute(f"SET lock_timeout = '{LOCK_TIMEOUT}'")
        raw.execute("SET idle_in_transaction_session_timeout = '60s'")
        raw.execute("SET TIME ZONE 'UTC'")

    def connect(self, **extra: Any) -> psycopg.Connection:
        """A connection of its own, outside the pool (the event listener, migrations, `state migrate`)."""
        try:
            raw = psycopg.connect(self.url, autocommit=True, connect_timeout=int(CONNECT_TIMEOUT_SECONDS), **extra)
        except psycopg.Error as exc:
            raise self.wrap(exc) from exc
        self._configure(raw)
        return raw

    def _get_pool(self) -> psycopg_pool.ConnectionPool:
        if self._closed:
            raise StoreError(f"{self.where}: store is closed")
        pool = self._pool
        if pool is not None and self._pool_pid == os.getpid():
            return pool
        with self._pool_lock:
            if self._pool is None or self._pool_pid != os.getpid():
                self._pool = psycopg_pool.ConnectionPool(
                    self.url, min_size=1, max_size=self.pool_size, open=True, configure=self._configure,
                    check=_check_if_idle, timeout=CONNECT_TIMEOUT_SECONDS,
                    kwargs={"autocommit": True, "connect_timeout": int(CONNECT_TIMEOUT_SECONDS)},
                    name="tooldeck")
                self._pool_pid = os.getpid()
            return self._pool

    def _forked(self) -> None:
        """In a forked child: forget the parent's pool (its sockets are the parent's) without closing it."""
        self._pool = None
        self._pool_pid = 0
        self._local = threading.local()
        self.events.forked()

    def _getconn(self) -> psycopg.Connection:
        try:
            return self._get_pool().getconn()
        except psycopg_pool.PoolTimeout as exc:
            raise StoreUnavailableError(
                f"{self.where}: database unreachable ({self._why_unreachable()}; no connection within "
                f"{CONNECT_TIMEOUT_SECONDS:.0f} s); nothing was written") from exc
        except psycopg.Error as exc:
            raise self.wrap(exc) from exc

    def _why_unreachable(self) -> str:
        """The server's own reason (refused, authentication, no such database), from one direct attempt."""
        try:
            psycopg.connect(self.url, connect_timeout=2).close()
        except psycopg.Error as exc:
            text = str(exc).strip().splitlines()
            return text[-1].strip() if text else type(exc).__name__
        return "the pool is exhausted"

    def _putconn(self, raw: psycopg.Connection) -> None:
        pool = self._pool
        if pool is None or self._pool_pid != os.getpid():
            return
        raw._tooldeck_returned = time.monotonic()  # type: ignore[attr-defined]
        with contextlib.suppress(Exception):
            pool.putconn(raw)

    def conn(self) -> PgConnection:
        con = getattr(self._local, "con", None)
        if con is None:
            raise StoreError(f"{self.where}: no transaction open in this thread (use store.tx())")
        return con

    @contextlib.contextmanager
    def _connection(self) -> Iterator[PgConnection]:
        if getattr(self._local, "con", None) is not None:
            raise StoreError(f"{self.where}: a transaction is already open in this thread")
        raw = self._getconn()
        con = PgConnection(raw, self)
        self._local.con = con
        try:
            yield con
        finally:
            self._local.con = None
            self._putconn(raw)

    def begin(self, con: PgConnection, *, immediate: bool = True) -> None:
        try:
            con.raw.execute("BEGIN")
        except psycopg.Error as exc:
            raise self.wrap(exc) from exc

    def begin_snapshot(self, con: PgConnection) -> None:
        """READ COMMITTED takes a snapshot per statement; one snapshot for the whole transaction needs this."""
        try:
            con.raw.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        except psycopg.Error as exc:
            raise self.wrap(exc) from exc

    def commit(self, con: PgConnection) -> None:
        try:
            con.raw.execute("COMMIT")
        except psycopg.Error as exc:
            self.rollback(con)
            raise self.wrap(exc, committing=True) from exc

    def rollback(self, con: PgConnection) -> None:
        with contextlib.suppress(psycopg.Error):
            con.raw.execute("ROLLBACK")

    def wrap(self, exc: Exception, *, committing: bool = False) -> StoreError:
        if isinstance(exc, StoreError):
            return exc
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        if isinstance(exc, psycopg.errors.DeadlockDetected):  # not a long wait: two transactions each held what the other wanted
            return StoreBusyError(f"{self.where}: {first} (this transaction and another each held a row the other needed; "
                                  "it was rolled back and may be retried)")
        if isinstance(exc, psycopg.errors.LockNotAvailable):
            return StoreBusyError(f"{self.where}: {first} (waited {LOCK_TIMEOUT}); is something holding a long transaction?")
        if isinstance(exc, (psycopg.OperationalError, psycopg.InterfaceError)) and not isinstance(
                exc, psycopg.errors.QueryCanceled):
            what = "the commit's outcome is unknown" if committing else "nothing was written"
            return StoreUnavailableError(f"{self.where}: database unreachable ({first}); {what}")
        return StoreError(f"{self.where}: {first}")

    def execute(self, sql: str, params: Any = ()) -> Result:
        con = getattr(self._local, "con", None)
        if con is not None:
            return con.execute(sql, params)
        raw = self._getconn()
        try:
            return PgConnection(raw, self).execute(sql, params)
        finally:
            self._putconn(raw)

    def close(self) -> None:
        self._closed = True
        self.events.close()
        pool, self._pool = self._pool, None
        if pool is not None and self._pool_pid == os.getpid():
            with contextlib.suppress(Exception):
                pool.close(timeout=2.0)

    # -- the clock -----------------------------------------------------------------

    def _measure_clock(self) -> None:
        t0 = self._local_clock()
        row = self.query_one("SELECT EXTRACT(EPOCH FROM clock_timestamp())::float8")
        t1 = self._local_clock()
        self._offset = float(row[0]) - (t0 + t1) / 2
        self._offset_at = time.monotonic()

    def now(self) -> float:
        if time.monotonic() - self._offset_at > CLOCK_REFRESH_SECONDS:
            self._offset_at = time.monotonic()  # one refresh at a time; a failed one keeps the last offset
            with contextlib.suppress(StoreError):
                self._measure_clock()
        return self._local_clock() + self._offset

    # -- the event tail (state.postgres.events) ------------------------------------

    def tail_events(self, after_id: int, kinds: Sequence[str] | None, limit: int) -> list[Any]:
        return self.events.tail(after_id, kinds, limit)

    def used_bytes(self) -> int:
        """Each table's size, but for the history tables (the ones trimmed to the budget) the bytes of the
        rows there now: PostgreSQL keeps a deleted row's space in the file for reuse, and its statistics
        lag, so a file size would not fall after trimming. One scan of each history table."""
        from state.retention import HISTORY

        history = [table for table, _column in HISTORY]
        rows = self.query("SELECT c.relname, pg_total_relation_size(c.oid)::float8 FROM pg_class c"
                          " JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.relkind = 'r' AND n.nspname = current_schema()")
        return int(sum(size for name, size in rows if name not in history)) + sum(self.table_bytes(history).values())

    def table_bytes(self, tables: Sequence[str]) -> dict[str, int]:
        """The bytes of each table's rows now (`pg_column_size` of each row): a scan of each."""
        return {t: int(float(self.query_one(f"SELECT COALESCE(SUM(pg_column_size(t.*)), 0) FROM {t} t")[0]))
                for t in tables}

    def last_event_id(self) -> int:
        return self.events.last_id()

    def wait_events(self, timeout: float, after_id: int | None = None) -> bool:
        if after_id is not None and self.last_event_id() != after_id:
            return True
        return self.events.wait(timeout)

    # -- schema --------------------------------------------------------------------

    def schema_version(self) -> int:
        try:
            row = self.query_one("SELECT version FROM tooldeck_schema WHERE id=1")
        except StoreError as exc:
            if isinstance(exc.__cause__, psycopg.errors.UndefinedTable):
                return 0
            raise
        return int(row[0]) if row else 0

    def migrate(self) -> None:
        """Bring the schema forward under pg_advisory_lock (nodes starting together migrate once);
        refuse a schema newer than this code."""
        current = self.schema_version()
        self._refuse_newer(current)
        if current == SCHEMA_VERSION:
            return
        raw = self.connect()
        try:
            raw.execute("SELECT pg_advisory_lock(%s)", (MIGRATION_LOCK,))
            with raw.transaction():
                raw.execute("CREATE TABLE IF NOT EXISTS tooldeck_schema (id INTEGER PRIMARY KEY CHECK (id = 1),"
                            " version INTEGER NOT NULL)")
                row = raw.execute("SELECT version FROM tooldeck_schema WHERE id=1").fetchone()
                current = int(row[0]) if row else 0  # another node may have migrated meanwhile
                self._refuse_newer(current)
                for version in range(current + 1, SCHEMA_VERSION + 1):
                    for name in MIGRATIONS.get(version, ()):
                        for statement in split_sql((SCHEMA_DIR / name).read_text()):
                            raw.execute(statement)
                raw.execute("INSERT INTO tooldeck_schema(id, version) VALUES (1, %s)"
                            " ON CONFLICT (id) DO UPDATE SET version = excluded.version", (SCHEMA_VERSION,))
        except psycopg.Error as exc:
            raise self.wrap(exc) from exc
        finally:
            with contextlib.suppress(psycopg.Error):
                raw.close()  # ends the session, and with it the advisory lock

    def _refuse_newer(self, current: int) -> None:
        if current > SCHEMA_VERSION:
            raise SchemaTooNewError(
                f"{self.where}: schema version {current} is newer than this tooldeck understands ({SCHEMA_VERSION}); "
                "upgrade tooldeck on this node or point TOOLDECK_DATABASE_URL at another database")

    def describe(self) -> dict[str, Any]:
        parts = urlsplit(self.url)
        return {"backend": self.backend, "where": self.where, "database": (parts.path or "/").lstrip("/") or None}


def _describe_url(url: str) -> str:
    """Where the store is, for people: `database tooldeck on db.internal:5432 as app` (a socket
    directory for the host). Never the URL itself, which is a secret and redacted wherever it
    appears (so a description equal to it would show as `***`), and never a password."""
    parts = urlsplit(safe_url(url))
    host = parts.hostname or ""
    if not host:
        for item in (parts.query or "").split("&"):
            if item.startswith("host="):
                host = unquote(item[5:])
    database = unquote((parts.path or "/").lstrip("/")) or (parts.username or "postgres")
    port = f":{parts.port}" if parts.port else ""
    user = f" as {unquote(parts.username)}" if parts.username else ""
    return f"database {database} on {host or 'localhost'}{port}{user}"
