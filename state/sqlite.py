"""The SQLite backend: one file per workspace, WAL mode, shared by every process on one machine.

Each thread gets its own connection (sqlite3 connections are not shareable across threads);
transactions are short and explicit, and `BEGIN IMMEDIATE` takes the one write lock up front,
so a transaction's reads are never stale: SQLite needs no row locks (`dialect.lock` is empty).
"""

from __future__ import annotations

import contextlib
import os
import random
import sqlite3
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from state.store import SCHEMA_VERSION, Dialect, SchemaTooNewError, Store, StoreBusyError, StoreError, split_sql

SCHEMA_DIR = Path(__file__).parent / "schema" / "sqlite"
#: version -> SQL files applied to reach it (forward only). Version 1 is the
#: base schema; each capability owns one file.
MIGRATIONS: dict[int, tuple[str, ...]] = {
    1: ("core.sql", "buffers.sql", "failures.sql", "evolution.sql"),
    2: ("v2.sql",),
    3: ("dashboard.sql",),
    4: ("v4.sql",),
    5: ("v5.sql",),
    6: ("v6.sql",),
    7: ("v7.sql",),
}
BUSY_TIMEOUT_MS = 30_000  # how long a writer waits for the lock before giving up with a clear error
#: SQLite's own busy handler sleeps with a growing backoff (up to 100 ms a nap), so a waiter
#: keeps missing a lock that a busy writer in another process frees for microseconds at a
#: time. Connections get this short handler; `begin` and `_retry` poll in Python instead.
SQLITE_BUSY_MS = 5
SQLITE = Dialect("sqlite", lock="", lock_skip="")
#: how often `wait_events` looks for a new event (SQLite has no notifications across processes)
EVENT_POLL_SECONDS = 0.02


def _is_locked(exc: sqlite3.OperationalError) -> bool:
    text = str(exc).lower()
    return "locked" in text or "busy" in text


class SqliteStore(Store):
    """A workspace's SQLite database, with per-thread connections."""

    backend = "sqlite"
    dialect = SQLITE

    def __init__(self, path: Path, *, busy_timeout_ms: int = BUSY_TIMEOUT_MS) -> None:
        self.path = Path(path)
        self.where = str(self.path)
        self.busy_timeout_ms = busy_timeout_ms
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        self._all: list[tuple[threading.Thread, sqlite3.Connection]] = []
        self._all_lock = threading.Lock()
        self._closed = False
        self._identity: tuple[int, int] | None = None  # (device, inode) of the file as first opened
        self.migrate()
        st = os.stat(self.path)
        self._identity = (st.st_dev, st.st_ino)

    # -- connections ---------------------------------------------------------------

    def _open(self) -> sqlite3.Connection:
        # once the file exists a connection never creates it again: a database deleted under a running
        # process is an error there (file_problem says which), not a new, empty file that hides the loss
        target = self.path if self._identity is None else f"{self.path.resolve().as_uri()}?mode=rw"
        try:
            con = sqlite3.connect(target, timeout=SQLITE_BUSY_MS / 1000, isolation_level=None, check_same_thread=False,
                                  uri=self._identity is not None)
        except sqlite3.OperationalError as exc:
            raise StoreError(self.file_problem() or f"{self.path}: {exc}") from exc
        try:
            con.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_MS}")
            mode = self._retry(lambda: con.execute("PRAGMA journal_mode=WAL").fetchone()[0])
            if str(mode).lower() != "wal":
                raise StoreError(f"{self.path}: could not switch to WAL mode (got {mode})")
            con.execute("PRAGMA synchronous=NORMAL")
        except sqlite3.OperationalError as exc:
            con.close()
            raise self.wrap(exc) from exc
        except sqlite3.DatabaseError as exc:
            con.close()
            raise StoreError(f"{self.path}: not a tooldeck database ({exc})") from exc
        con.row_factory = sqlite3.Row
        return con

    def conn(self) -> sqlite3.Connection:
        """This thread's connection, opened on first use."""
        con = getattr(self._local, "con", None)
        if con is None:
            if self._closed:
                raise StoreError(f"{self.path}: store is closed")
            con = self._open()
            self._local.con = con
            with self._all_lock:
                self._all.append((threading.current_thread(), con))
        return con

    def close(self) -> None:
        """Close the connections of this thread and of threads that have ended.

        A connection still owned by a live thread (a worker finishing its last statement while
        the runtime shuts down) is left to that thread: closing a sqlite3 connection under a
        statement running in another thread can crash the interpreter. It is closed when its
        thread ends and its thread-local is freed; no new connection opens once closed.
        """
        self._closed = True
        me = threading.current_thread()
        with self._all_lock:
            mine = [(t, c) for t, c in self._all if t is me or not t.is_alive()]
            self._all = []
        for _, con in mine:
            with contextlib.suppress(sqlite3.Error):
                con.close()
        self._local = threading.local()

    def _retry(self, fn: Any) -> Any:
        """Run `fn` (one statement), polling every ~1 ms while the database is locked, up to the timeout."""
        deadline = time.monotonic() + self.busy_timeout_ms / 1000
        while True:
            try:
                return fn()
            except sqlite3.OperationalError as exc:
                if not _is_locked(exc) or time.monotonic() >= deadline:
                    raise
            time.sleep(random.uniform(0.0002, 0.002))

    def begin(self, con: sqlite3.Connection, *, immediate: bool = True) -> None:
        """BEGIN (IMMEDIATE: take the write lock now), waiting fairly for a lock another process holds."""
        try:
            self._retry(lambda: con.execute("BEGIN IMMEDIATE" if immediate else "BEGIN"))
        except sqlite3.OperationalError as exc:
            raise self.wrap(exc) from exc

    def commit(self, con: sqlite3.Connection) -> None:
        try:
            con.execute("COMMIT")
        except sqlite3.OperationalError as exc:
            self.rollback(con)
            raise self.wrap(exc) from exc

    def rollback(self, con: sqlite3.Connection) -> None:
        with contextlib.suppress(sqlite3.Error):
            con.execute("ROLLBACK")

    def wrap(self, exc: Exception) -> StoreError:
        if isinstance(exc, StoreError):
            return exc
        if isinstance(exc, sqlite3.OperationalError) and _is_locked(exc):
            return StoreBusyError(
                f"{self.path}: database is locked by another process "
                f"(waited {self.busy_timeout_ms / 1000:.1f} s); is something holding a long transaction?"
            )
        return StoreError(f"{self.path}: {exc}")

    def execute(self, sql: str, params: Any = ()) -> sqlite3.Cursor:
        con = self.conn()
        try:
            return self._retry(lambda: con.execute(sql, params))
        except sqlite3.OperationalError as exc:
            if _is_locked(exc):
                raise self.wrap(exc) from exc
            raise

    # -- what differs ----------------------------------------------------------------

    def now(self) -> float:
        """One machine, one clock."""
        return time.time()

    def tail_events(self, after_id: int, kinds: Sequence[str] | None, limit: int) -> list[Any]:
        """By id: every writer holds the one write lock from BEGIN IMMEDIATE to COMMIT, so ids are
        handed out in commit order and `id > after_id` skips nothing."""
        sql = "SELECT * FROM events WHERE id > ?"
        params: list[Any] = [after_id]
        if kinds:
            sql += f" AND kind IN ({','.join('?' * len(kinds))})"
            params.extend(kinds)
        sql += " ORDER BY id LIMIT ?"
        params.append(limit)
        return self.query(sql, params)

    def last_event_id(self) -> int:
        row = self.query_one("SELECT MAX(id) FROM events")
        return int(row[0] or 0) if row else 0

    def wait_events(self, timeout: float, after_id: int | None = None) -> bool:
        """Poll the newest id (SQLite tells no other process about a commit)."""
        deadline = time.monotonic() + timeout
        start = self.last_event_id() if after_id is None else after_id
        if self.last_event_id() != start:
            return True
        while time.monotonic() < deadline:
            time.sleep(min(EVENT_POLL_SECONDS, max(0.0, deadline - time.monotonic())))
            if self.last_event_id() != start:
                return True
        return False

    # -- schema --------------------------------------------------------------------

    def schema_version(self) -> int:
        con = self.conn()
        return int(self._retry(lambda: con.execute("PRAGMA user_version").fetchone()[0]))

    def migrate(self) -> None:
        """Bring the schema forward; refuse a schema newer than this code."""
        con = self.conn()
        current = self.schema_version()
        if current > SCHEMA_VERSION:
            raise SchemaTooNewError(
                f"{self.path}: schema version {current} is newer than this tooldeck "
                f"understands ({SCHEMA_VERSION}); upgrade tooldeck or use another TOOLDECK_HOME"
            )
        if current == SCHEMA_VERSION:
            return
        self.begin(con)
        try:
            current = self.schema_version()  # another process may have migrated meanwhile
            for version in range(current + 1, SCHEMA_VERSION + 1):
                for name in MIGRATIONS[version]:
                    for statement in split_sql((SCHEMA_DIR / name).read_text()):
                        con.execute(statement)
                con.execute(f"PRAGMA user_version={version}")
            con.execute("COMMIT")
        except BaseException:
            self.rollback(con)
            raise

    def write_blocked(self) -> bool:
        """Try for the write lock (BEGIN IMMEDIATE, a few ms of busy wait) and give it back at once."""
        con = self.conn()
        if con.in_transaction:
            return False
        try:
            con.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            if _is_locked(exc):
                return True
            raise self.wrap(exc) from exc
        con.execute("ROLLBACK")
        return False

    def file_problem(self) -> str | None:
        """Whether the database file is still the one this store opened: deleted, or replaced (another inode)."""
        if self._identity is None:
            return None
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return f"the database {self.path} was deleted while this process had it open"
        except OSError as exc:
            return f"the database {self.path} cannot be checked: {exc.strerror}"
        if (st.st_dev, st.st_ino) != self._identity:
            return f"the database {self.path} was replaced by another file while this process had it open"
        return None

    def used_bytes(self) -> int:
        """Pages in use (the file less its free list) times the page size."""
        con = self.conn()
        pages, free, size = (int(con.execute(f"PRAGMA {p}").fetchone()[0]) for p in ("page_count", "freelist_count", "page_size"))
        return (pages - free) * size

    def table_bytes(self, tables: Sequence[str]) -> dict[str, int]:
        """From the `dbstat` table (a table's b-tree and its indexes'); where SQLite was built without it,
        the live size shared out by row counts."""
        con = self.conn()
        wanted = ",".join("?" * len(tables))
        try:
            rows = con.execute("SELECT m.tbl_name, SUM(d.pgsize) FROM dbstat('main', 1) d JOIN sqlite_master m"
                               f" ON m.name = d.name WHERE m.tbl_name IN ({wanted}) GROUP BY m.tbl_name",
                               tuple(tables)).fetchall()
            sizes = {str(name): int(size) for name, size in rows}
        except sqlite3.OperationalError:  # no dbstat: share the live size out by row counts
            counts = {t: int(con.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0]) for t in tables}
            total = sum(counts.values()) or 1
            used = self.used_bytes()
            sizes = {t: used * n // total for t, n in counts.items()}
        return {t: sizes.get(t, 0) for t in tables}

    def checkpoint(self) -> None:
        """A passive WAL checkpoint, so the WAL file does not grow without bound."""
        with contextlib.suppress(sqlite3.OperationalError):
            self.conn().execute("PRAGMA wal_checkpoint(PASSIVE)")
