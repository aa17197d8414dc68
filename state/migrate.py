"""Moving a workspace's state from its SQLite file to PostgreSQL (`tooldeck state migrate`).

What moves: events, calls and their counters, buffers with their pending items, batches (in
flight ones are re-claimed by a flusher once their lease has passed), rates and samples,
failures, scores, tags and circuits, score history, operator controls, promotions and their
history, proposals, model token use, and approved code (pins and file contents; contents of
versions approved before the database kept them are read from `evolved/` and checked against
their pins). What does not: the registry of live runtimes and flushers (and their MCP servers' status), tool load status and
the manifest cache (each node rebuilds its own).

Refused: a target holding any tooldeck rows, and a source some live runtime still uses. The
copy is one transaction (COPY per table), so a failed migration leaves the target empty; serial
ids are carried over and the sequences moved past them.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from state.runtimes import live_runtimes
from state.store import StoreError

#: (table, primary-key order) in the order they are copied
TABLES: tuple[tuple[str, str], ...] = (
    ("events", "id"), ("calls", "id"), ("call_counters", "tool_id, version"),
    ("buffers", "bkey"), ("buffer_items", "bkey, seq"), ("buffer_batches", "batch_id"), ("buffer_rates", "buffer_id, sec"),
    ("buffer_samples", "buffer_id, ts"),
    ("failures", "id"), ("tool_health", "tool_id, version"), ("score_history", "id"), ("failure_seq", "id"),
    ("tool_controls", "tool_id, version"),
    ("promotions", "tool_id, scope"), ("promotion_history", "id"), ("proposals", "id"), ("llm_usage", "id"),
    ("approved_files", "tool_id, version, name"), ("approved_blobs", "sha256"),
    ("proposal_files", "proposal_id, name"),
)
#: tables whose ids come from a sequence on PostgreSQL: moved past the copied ids
SERIALS = {"events": "id", "calls": "id", "failures": "id", "score_history": "id", "proposals": "id",
           "promotion_history": "id", "llm_usage": "id", "buffers": "bkey"}
CHUNK = 5000


class MigrateError(StoreError):
    """The migration was refused (a non-empty target, live runtimes) or failed; names what and where."""


@dataclass
class MigrateReport:
    source: str
    target: str
    counts: dict[str, int] = field(default_factory=dict)
    blobs_from_files: int = 0
    candidates_from_files: int = 0
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {"ok": True, "source": self.source, "target": self.target, "counts": self.counts,
                "blobs_from_files": self.blobs_from_files, "candidates_from_files": self.candidates_from_files,
                "seconds": round(self.seconds, 3)}


def live_users(source: Any) -> list[dict[str, Any]]:
    """Runtimes with a fresh heartbeat in the SQLite file (on this host: whose process still runs)."""
    return live_runtimes(source)


def migrate_sqlite_to_postgres(home: Path, url: str, *, progress: Callable[[str, int], None] | None = None) -> MigrateReport:
    """Copy `<home>/tooldeck.db` into the PostgreSQL database at `url` (see the module docstring)."""
    from state.postgres import PgStore
    from state.sqlite import SqliteStore

    path = Path(home) / "tooldeck.db"
    if not path.exists():
        raise MigrateError(f"{path}: no SQLite state to migrate (run it in the workspace whose .tooldeck/ holds it)")
    started = time.monotonic()
    source = SqliteStore(path)
    try:
        users = live_users(source)
        if users:
            who = ", ".join(f"{u['kind'] or 'runtime'} pid {u['pid']} on {u['host']}" for u in users[:5])
            raise MigrateError(f"{path}: {len(users)} live runtimes still use it ({who}); stop them first "
                               "(the dashboard, tooldeck serve, workflows)")
        target = PgStore(url, pool_size=1)
        try:
            report = MigrateReport(str(path), target.where)
            _refuse_non_empty(target)
            raw = target.connect()
            try:
                with raw.transaction():
                    for table, order in TABLES:
                        report.counts[table] = _copy(source, raw, table, order, progress)
                    report.blobs_from_files = _blobs_from_files(source, raw, Path(home) / "evolved")
                    report.counts["approved_blobs"] += report.blobs_from_files
                    report.candidates_from_files = _candidates_from_files(source, raw, Path(home) / "evolved")
                    for table, column in SERIALS.items():
                        raw.execute(f"SELECT setval(pg_get_serial_sequence('{table}', '{column}'),"
                                    f" GREATEST((SELECT COALESCE(MAX({column}), 0) FROM {table}), 1))")
            except Exception as exc:
                if isinstance(exc, StoreError):
                    raise
                raise MigrateError(f"{target.where}: migration failed, nothing was written: {exc}") from exc
            finally:
                raw.close()
        finally:
            target.close()
    finally:
        source.close()
    report.seconds = time.monotonic() - started
    return report


def _refuse_non_empty(target: Any) -> None:
    present = {r[0] for r in target.query("SELECT tablename FROM pg_tables WHERE schemaname = current_schema()")}
    busy = []
    for table, _ in TABLES:
        if table == "failure_seq" or table not in present:
            continue
        if target.query_one(f"SELECT 1 FROM {table} LIMIT 1") is not None:
            busy.append(table)
    seq = target.query_one("SELECT seq FROM failure_seq WHERE id=1")
    if seq is not None and int(seq[0]) > 0:
        busy.append("failure_seq")
    if busy:
        raise MigrateError(f"{target.where}: the target database is not empty (rows in {', '.join(busy[:6])}); "
                           "migrate into an empty database")


def _columns(source: Any, table: str) -> list[str]:
    return [r["name"] for r in source.query(f"PRAGMA table_info({table})")]


def _copy(source: Any, raw: Any, table: str, order: str, progress: Callable[[str, int], None] | None) -> int:
    target_cols = {r[0] for r in raw.execute("SELECT column_name FROM information_schema.columns WHERE table_name = %s"
                                             " AND table_schema = current_schema()", (table,)).fetchall()}
    cols = [c for c in _columns(source, table) if c in target_cols]
    if not cols:
        return 0
    if table == "failure_seq":  # the one-row counter exists in both: take the source's value
        row = source.query_one("SELECT seq FROM failure_seq WHERE id=1")
        raw.execute("UPDATE failure_seq SET seq=%s WHERE id=1", (int(row[0]) if row else 0,))
        return 1
    names = ", ".join(cols)
    copied = 0
    con = source.conn()
    cursor = con.execute(f"SELECT {names} FROM {table} ORDER BY {order}")
    with raw.cursor() as cur, cur.copy(f"COPY {table} ({names}) FROM STDIN") as copy:
        while True:
            rows = cursor.fetchmany(CHUNK)
            if not rows:
                break
            for row in rows:
                copy.write_row(tuple(row))
            copied += len(rows)
            if progress is not None:
                progress(table, copied)
    return copied


def _blobs_from_files(source: Any, raw: Any, evolved: Path) -> int:
    """Contents of approved files the SQLite file pinned but did not keep (approved before schema 4)."""
    missing = source.query("SELECT f.tool_id, f.version, f.name, f.sha256 FROM approved_files f"
                           " LEFT JOIN approved_blobs b ON b.sha256 = f.sha256 WHERE b.sha256 IS NULL")
    added = 0
    for r in missing:
        path = evolved / r["tool_id"] / r["version"] / r["name"]
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise MigrateError(f"{path}: approved file cannot be read ({exc.strerror}); other nodes could not serve "
                               f"{r['tool_id']} {r['version']}") from exc
        if hashlib.sha256(data).hexdigest() != r["sha256"]:
            raise MigrateError(f"{path}: changed since approval (sha256 differs from its pin); restore it or roll back "
                               f"{r['tool_id']} {r['version']} before migrating")
        cur = raw.execute("INSERT INTO approved_blobs(sha256, size, data) VALUES (%s, %s, %s) ON CONFLICT DO NOTHING",
                          (r["sha256"], len(data), data))
        added += cur.rowcount
    return added


def _candidates_from_files(source: Any, raw: Any, evolved: Path) -> int:
    """Proposals awaiting review whose candidate files the SQLite file did not keep (proposed before
    schema 5): read from evolved/, so any node can review them. Returns how many proposals."""
    rows = source.query("SELECT p.id, p.path FROM proposals p WHERE p.status IN ('awaiting_review', 'failed_validation')"
                        " AND p.path IS NOT NULL AND NOT EXISTS (SELECT 1 FROM proposal_files f WHERE f.proposal_id = p.id)")
    done = 0
    for r in rows:
        folder = Path(r["path"]).parent
        if not folder.is_dir() or not folder.resolve().is_relative_to(evolved.resolve()):
            continue  # gone, or not this workspace's: the proposal stays reviewable where its files are
        for dirpath, dirnames, filenames in os.walk(folder):
            dirnames[:] = sorted(d for d in dirnames if d != "__pycache__")
            for name in sorted(filenames):
                path = Path(dirpath) / name
                data = path.read_bytes()
                sha = hashlib.sha256(data).hexdigest()
                raw.execute("INSERT INTO approved_blobs(sha256, size, data) VALUES (%s, %s, %s) ON CONFLICT DO NOTHING",
                            (sha, len(data), data))
                raw.execute("INSERT INTO proposal_files(proposal_id, name, sha256, size) VALUES (%s, %s, %s, %s)",
                            (r["id"], path.relative_to(folder).as_posix(), sha, len(data)))
        done += 1
    return done
