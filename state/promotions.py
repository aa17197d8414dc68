"""The `promotions` table (which version serves each tool in each scope: a session id or "global")
and `promotion_history` (every approval and rollback, with the version it replaced).

Which version serves a call is decided by the runtime's resolver (`Runtime.resolution`) from these
rows; approvals and rollbacks (tools/evolution/review.py) write them. Functions taking `con` run
inside the caller's transaction.
"""

from __future__ import annotations

from typing import Any

from state.db import Store

#: a scope's promotion replaced (one row per tool and scope)
_UPSERT = (" ON CONFLICT (tool_id, scope) DO UPDATE SET version=excluded.version, original_version=excluded.original_version,"
           " proposal_id=excluded.proposal_id, reason=excluded.reason, reviewer=excluded.reviewer,"
           " promoted_at=excluded.promoted_at")


def all_promotions(store: Store) -> dict[tuple[str, str], str]:
    """(tool_id, scope) -> version, for every promotion."""
    return {(r[0], r[1]): r[2] for r in store.query("SELECT tool_id, scope, version FROM promotions")}


def promoted(con: Any, tool_id: str, scope: str) -> str | None:
    """The version promoted for `scope`, or None (the base serves it)."""
    row = con.execute("SELECT version FROM promotions WHERE tool_id=? AND scope=?", (tool_id, scope)).fetchone()
    return row[0] if row else None


def promote(con: Any, tool_id: str, scope: str, version: str, *, original_version: str | None, proposal_id: int | None,
            reason: str | None, reviewer: str | None, now: float) -> None:
    con.execute(
        "INSERT INTO promotions(tool_id, scope, version, original_version, proposal_id, reason, reviewer,"
        " promoted_at) VALUES (?,?,?,?,?,?,?,?)" + _UPSERT,
        (tool_id, scope, version, original_version, proposal_id, reason, reviewer, now),
    )


def unpromote(con: Any, tool_id: str, scope: str) -> None:
    """The base serves `scope` again."""
    con.execute("DELETE FROM promotions WHERE tool_id=? AND scope=?", (tool_id, scope))


def scopes_served(con: Any, tool_id: str, version: str) -> int:
    """How many scopes `version` is promoted in."""
    return int(con.execute("SELECT COUNT(*) FROM promotions WHERE tool_id=? AND version=?", (tool_id, version)).fetchone()[0])


def note(con: Any, tool_id: str, scope: str, action: str, version: str | None, previous: str | None,
         proposal_id: int | None, actor: str | None, reason: str | None, now: float) -> None:
    """One line of the promotion history (`action`: approved, rolled_back)."""
    con.execute(
        "INSERT INTO promotion_history(ts, tool_id, scope, action, version, previous_version, proposal_id, actor, reason)"
        " VALUES (?,?,?,?,?,?,?,?,?)",
        (now, tool_id, scope, action, version, previous, proposal_id, actor, reason),
    )


def served_before(store: Store, tool_id: str, scope: str, version: str) -> str | None:
    """The version `scope` served before `version` was promoted there (None: the next scope, then the base)."""
    row = store.query_one("SELECT previous_version FROM promotion_history WHERE tool_id=? AND scope=? AND version=?"
                          " ORDER BY id DESC LIMIT 1", (tool_id, scope, version))
    return row[0] if row else None
