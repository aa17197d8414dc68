"""The `proposals` table: each evolution's candidate version, its validation and its review.

tools/evolution drives the lifecycle (generating -> validating -> awaiting_review | failed_validation
-> approved | rejected -> rolled_back; cancelled; failed when its runtime died); the SQL is here.
Functions taking `con` run inside the caller's transaction.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from state.db import Store


def _in(values: Sequence[str]) -> str:
    return f"({','.join('?' * len(values))})"


def list_rows(store: Store, *, status: str | None = None, tool_id: str | None = None, limit: int = 200) -> list[Any]:
    """Newest first."""
    where: list[str] = []
    params: list[Any] = []
    if status is not None:
        where.append("status=?")
        params.append(status)
    if tool_id is not None:
        where.append("tool_id=?")
        params.append(tool_id)
    sql = "SELECT * FROM proposals" + (" WHERE " + " AND ".join(where) if where else "") + " ORDER BY id DESC LIMIT ?"
    return store.query(sql, [*params, limit])


def get_row(store: Store, proposal_id: int) -> Any:
    return store.query_one("SELECT * FROM proposals WHERE id=?", (proposal_id,))


def latest(store: Store, tool_id: str, version: str) -> Any:
    """The newest proposal of this version (id, status), or None."""
    return store.query_one("SELECT id, status FROM proposals WHERE tool_id=? AND version=? ORDER BY id DESC LIMIT 1",
                           (tool_id, version))


def versions_of(con_or_store: Any, tool_id: str) -> set[str]:
    """Every version number any proposal of `tool_id` took (taken numbers are never reused)."""
    if isinstance(con_or_store, Store):
        rows = con_or_store.query("SELECT version FROM proposals WHERE tool_id=?", (tool_id,))
    else:
        rows = con_or_store.execute("SELECT version FROM proposals WHERE tool_id=?", (tool_id,)).fetchall()
    return {str(r[0]) for r in rows}


def ever_approved(store: Store) -> set[tuple[str, str]]:
    """(tool_id, version) of every version a person (or policy) approved at least once."""
    return {(r[0], r[1]) for r in store.query("SELECT tool_id, version FROM proposals WHERE approved_at IS NOT NULL")}


def approved_id(store: Store, tool_id: str, version: str) -> int | None:
    """The proposal through which `version` was approved, or None if it never was."""
    row = store.query_one("SELECT id FROM proposals WHERE tool_id=? AND version=? AND approved_at IS NOT NULL", (tool_id, version))
    return int(row[0]) if row else None


def decided(store: Store, limit: int, *, tool_id: str | None = None) -> list[Any]:
    """Proposals a person decided, newest first: approved (serving or not), rejected and rolled back,
    with what evolution remembers of them (error, hint, review reason, diff)."""
    sql = ("SELECT id, tool_id, version, status, error_message, mutation_hint, review_reason, diff, memory FROM proposals"
           " WHERE (approved_at IS NOT NULL OR status IN ('rejected', 'rolled_back'))")
    params: list[Any] = []
    if tool_id is not None:
        sql += " AND tool_id=?"
        params.append(tool_id)
    return store.query(sql + " ORDER BY id DESC LIMIT ?", [*params, limit])


def running(store: Store, statuses: Sequence[str]) -> list[Any]:
    """Proposals in one of `statuses` (the running ones), with their owner (session, pid, node)."""
    return store.query(f"SELECT id, tool_id, version, status, session, pid, node FROM proposals WHERE status IN {_in(statuses)}",
                       tuple(statuses))


def cancel_state(store: Store, proposal_id: int) -> tuple[bool, str] | None:
    """(cancel requested, status), or None when the row is gone."""
    row = store.query_one("SELECT cancel_requested, status FROM proposals WHERE id=?", (proposal_id,))
    return (bool(row[0]), str(row[1])) if row else None


def create(con: Any, **fields: Any) -> int | None:
    """Insert a new proposal; None when its (tool_id, version) is already taken (another node took it)."""
    cols = ", ".join(fields)
    row = con.execute(f"INSERT INTO proposals({cols}) VALUES ({','.join('?' * len(fields))})"
                      " ON CONFLICT (tool_id, version) DO NOTHING RETURNING id", tuple(fields.values())).fetchone()
    return int(row[0]) if row is not None else None


def update(con: Any, proposal_id: int, fields: dict[str, Any], *, only_in: Sequence[str] = ()) -> bool:
    """Set `fields` (column names from the caller's code, never from input); with `only_in`, only while
    the status is one of them. True when the row changed."""
    sql = f"UPDATE proposals SET {', '.join(f'{k}=?' for k in fields)} WHERE id=?"
    if only_in:
        sql += f" AND status IN {_in(only_in)}"
    return con.execute(sql, (*fields.values(), proposal_id, *only_in)).rowcount > 0


def locked_status(store: Store, con: Any, proposal_id: int) -> str:
    """The status as this transaction sees it, the row locked against other reviewers ('gone' if deleted)."""
    row = con.execute(store.for_update("SELECT status FROM proposals WHERE id=?"), (proposal_id,)).fetchone()
    return str(row[0]) if row else "gone"


def mark_approved(con: Any, proposal_id: int, reviewer: str | None, scope: str, now: float) -> None:
    con.execute("UPDATE proposals SET status='approved', reviewer=?, reviewed_at=?, approved_at=COALESCE(approved_at, ?),"
                " scope=?, updated=? WHERE id=?", (reviewer, now, now, scope, now, proposal_id))


def mark_serving_again(con: Any, proposal_id: int, now: float) -> None:
    """A rollback made this approved version serve again."""
    con.execute("UPDATE proposals SET status='approved', updated=? WHERE id=?", (now, proposal_id))


def mark_rolled_back(con: Any, tool_id: str, version: str, now: float) -> None:
    """No scope serves this approved version any more."""
    con.execute("UPDATE proposals SET status='rolled_back', updated=? WHERE tool_id=? AND version=? AND status='approved'",
                (now, tool_id, version))


def mark_rejected(con: Any, proposal_id: int, reviewer: str | None, reason: str, now: float) -> None:
    con.execute("UPDATE proposals SET status='rejected', reviewer=?, review_reason=?, reviewed_at=?, updated=? WHERE id=?",
                (reviewer, reason, now, now, proposal_id))


def request_cancel(con: Any, proposal_id: int, statuses: Sequence[str], now: float) -> bool:
    """Cancel a proposal still in one of `statuses` (running); False when it is not."""
    cur = con.execute(
        "UPDATE proposals SET status='cancelled', cancel_requested=1, failure=COALESCE(failure, 'cancelled by the operator'),"
        f" updated=? WHERE id=? AND status IN {_in(statuses)}", (now, proposal_id, *statuses))
    return cur.rowcount > 0


def mark_interrupted(con: Any, proposal_id: int, statuses: Sequence[str], reason: str, now: float) -> bool:
    """A running proposal whose runtime is gone ends as failed; False when it already ended."""
    cur = con.execute(f"UPDATE proposals SET status='failed', failure=?, updated=? WHERE id=? AND status IN {_in(statuses)}",
                      (reason, now, proposal_id, *statuses))
    return cur.rowcount > 0


def for_stats(store: Store, limit: int = 100_000) -> list[Any]:
    """What evolution statistics count of each proposal, newest first."""
    return store.query("SELECT id, tool_id, status, rounds, stages, provider, model, input_tokens, output_tokens, mutation_hint,"
                       " approved_at, failure FROM proposals ORDER BY id DESC LIMIT ?", (limit,))
