"""The failure-tracking tables: the ledger (`failures`), per-version health (`tool_health`: score,
negative tags, circuit), `score_history`, operator controls (`tool_controls`) and the change
counter (`failure_seq`) other processes poll.

Callers (tools/recovery) speak in domain verbs; the SQL is here. Functions taking `con` run inside
the caller's transaction, so a ledger row, its score, its circuit move and its events commit
together. Every change bumps `failure_seq` and stamps the rows it touches with the new value as
`rev`, so a process reloads only what moved.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from state.db import Store

#: the version of a control that covers every version of a tool
ALL_VERSIONS = "*"


@dataclass(frozen=True, slots=True)
class FailureRow:
    """One ledger row to write."""

    tool_id: str
    version: str
    scenario: str
    error: str
    severity: str
    error_class: str
    origin: str
    delta: float
    score_after: float
    tags_added: list[str]
    session: str | None
    pid: int


# -- the change counter -----------------------------------------------------------------------------

def bump_seq(con: Any) -> int:
    """Advance the change counter; rows the transaction changes carry the new value as `rev`."""
    con.execute("UPDATE failure_seq SET seq = seq + 1 WHERE id = 1")
    return int(con.execute("SELECT seq FROM failure_seq WHERE id = 1").fetchone()[0])


def current_seq(store: Store) -> int:
    return int(store.query_one("SELECT seq FROM failure_seq WHERE id=1")[0])


def seq_and_last_failure(store: Store) -> tuple[int, int]:
    """(change counter, id of the newest ledger row), in one query: has anything moved anywhere?"""
    row = store.query_one("SELECT (SELECT seq FROM failure_seq WHERE id=1), (SELECT COALESCE(MAX(id), 0) FROM failures)")
    return int(row[0]), int(row[1])


# -- health rows ------------------------------------------------------------------------------------

def ensure_health(con: Any, tool_id: str, version: str, base: float, now: float) -> None:
    """Create the version's health row (score = base) unless it exists."""
    con.execute(
        "INSERT INTO tool_health(tool_id, version, base, score, updated) VALUES (?,?,?,?,?) ON CONFLICT DO NOTHING",
        (tool_id, version, base, base, now),
    )


def health_row(con: Any, tool_id: str, version: str) -> Any:
    return con.execute("SELECT * FROM tool_health WHERE tool_id=? AND version=?", (tool_id, version)).fetchone()


def changed_since(store: Store, seq: int) -> list[Any]:
    """Health rows changed after change number `seq`."""
    return store.query("SELECT * FROM tool_health WHERE rev > ?", (seq,))


def set_score(con: Any, tool_id: str, version: str, score: float, rev: int, now: float, *, base: float | None = None) -> None:
    if base is None:
        con.execute("UPDATE tool_health SET score=?, rev=?, updated=? WHERE tool_id=? AND version=?",
                    (score, rev, now, tool_id, version))
    else:
        con.execute("UPDATE tool_health SET score=?, base=?, rev=?, updated=? WHERE tool_id=? AND version=?",
                    (score, base, rev, now, tool_id, version))


def set_tags(con: Any, tool_id: str, version: str, tags: list[str], rev: int, now: float) -> None:
    con.execute("UPDATE tool_health SET tags=?, rev=?, updated=? WHERE tool_id=? AND version=?",
                (json.dumps(tags), rev, now, tool_id, version))


def add_successes(con: Any, tool_id: str, version: str, count: int) -> None:
    """Count successes that moved nothing else (no `rev`: other processes need not reload for them)."""
    con.execute("UPDATE tool_health SET successes=successes+? WHERE tool_id=? AND version=?", (count, tool_id, version))


def note_score(con: Any, tool_id: str, version: str, score: float, delta: float, reason: str, now: float) -> None:
    """One point of the score trend (`reason`: failure, recovery or reset)."""
    con.execute("INSERT INTO score_history(ts, tool_id, version, score, delta, reason) VALUES (?,?,?,?,?,?)",
                (now, tool_id, version, score, delta, reason))


# -- the ledger -------------------------------------------------------------------------------------

def demoting_failures_since(con: Any, tool_id: str, version: str, since: float) -> int:
    """How many failures of this version demoted it after `since` (failures accelerate demotion)."""
    return int(con.execute("SELECT COUNT(*) FROM failures WHERE tool_id=? AND version=? AND ts>? AND delta>0",
                           (tool_id, version, since)).fetchone()[0])


def add_failure(con: Any, row: FailureRow, rev: int, now: float, tags: list[str]) -> int:
    """Write one ledger row and move the version's health with it; returns the row's id."""
    inserted = con.execute(
        "INSERT INTO failures(ts, tool_id, version, scenario, error, severity, error_class, origin, delta, score_after,"
        " tags_added, session, pid) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?) RETURNING id",
        (now, row.tool_id, row.version, row.scenario, row.error, row.severity, row.error_class, row.origin, row.delta,
         row.score_after, json.dumps(row.tags_added), row.session, row.pid),
    ).fetchone()
    con.execute(
        "UPDATE tool_health SET score=?, failures=failures+1, last_failure=?, tags=?, rev=?, updated=?"
        " WHERE tool_id=? AND version=?",
        (row.score_after, now, json.dumps(tags), rev, now, row.tool_id, row.version),
    )
    if row.delta > 0:
        note_score(con, row.tool_id, row.version, row.score_after, -row.delta, "failure", now)
    return int(inserted[0])


def recent_failures(store: Store, tool_id: str | None, version: str | None, limit: int) -> list[dict[str, Any]]:
    """Newest first, `tags_added` decoded."""
    rows = store.query("SELECT * FROM failures WHERE (tool_id=?1 OR ?1 IS NULL) AND (version=?2 OR ?2 IS NULL)"
                       " ORDER BY id DESC LIMIT ?3", (tool_id, version, int(limit)))
    return [{**dict(r), "tags_added": json.loads(r["tags_added"] or "[]")} for r in rows]


def score_history(store: Store, tool_id: str, version: str | None, limit: int) -> list[dict[str, Any]]:
    """Oldest first, for a trend line."""
    rows = store.query("SELECT * FROM score_history WHERE tool_id=?1 AND (version=?2 OR ?2 IS NULL)"
                       " ORDER BY id DESC LIMIT ?3", (tool_id, version, int(limit)))
    return [dict(r) for r in reversed(rows)]


def prune(con: Any, older_than: float) -> dict[str, int]:
    """Drop ledger rows and score points older than `older_than` (current health rows stay)."""
    return {
        "failures": int(con.execute("DELETE FROM failures WHERE ts < ?", (older_than,)).rowcount),
        "score_history": int(con.execute("DELETE FROM score_history WHERE ts < ?", (older_than,)).rowcount),
    }


# -- circuits ---------------------------------------------------------------------------------------

def open_circuit(con: Any, tool_id: str, version: str, reason: str, now: float, rev: int, *, forced: bool = False) -> None:
    con.execute(
        "UPDATE tool_health SET circuit='open', opened_at=?, forced=?, circuit_reason=?, probes=0, probe_ok=0,"
        " probe_deadline=NULL, rev=?, updated=? WHERE tool_id=? AND version=?",
        (now, int(forced), reason, rev, now, tool_id, version),
    )


def close_circuit(con: Any, tool_id: str, version: str, reason: str, now: float, rev: int) -> None:
    con.execute(
        "UPDATE tool_health SET circuit='closed', opened_at=NULL, forced=0, circuit_reason=?, probes=0, probe_ok=0,"
        " probe_deadline=NULL, rev=?, updated=? WHERE tool_id=? AND version=?",
        (reason, rev, now, tool_id, version),
    )


def claim_probe(con: Any, tool_id: str, version: str, *, cooldown: float, probes: int, probe_timeout: float,
                now: float, rev: int) -> bool:
    """Take one of the `probes` half-open probe slots, across every process; False when none is free.
    A slot whose probe did not report within `probe_timeout` is free again."""
    cur = con.execute(
        "UPDATE tool_health SET"
        " probes = CASE WHEN circuit='open' OR probe_deadline < ? THEN 1 ELSE probes + 1 END,"
        " probe_ok = CASE WHEN circuit='open' OR probe_deadline < ? THEN 0 ELSE probe_ok END,"
        " circuit='half_open', probe_deadline=?, rev=?, updated=?"
        " WHERE tool_id=? AND version=? AND forced=0 AND circuit IN ('open','half_open') AND opened_at + ? <= ?"
        " AND (circuit='open' OR probes < ? OR probe_deadline < ?)",
        (now, now, now + probe_timeout, rev, now, tool_id, version, cooldown, now, probes, now),
    )
    return cur.rowcount == 1


def probe_succeeded(con: Any, tool_id: str, version: str, *, probes: int, now: float, rev: int) -> bool:
    """Count a successful probe; True when it was the last one needed and the circuit closed."""
    cur = con.execute(
        "UPDATE tool_health SET probe_ok = probe_ok + 1,"
        " circuit = CASE WHEN probe_ok + 1 >= ? THEN 'closed' ELSE circuit END,"
        " opened_at = CASE WHEN probe_ok + 1 >= ? THEN NULL ELSE opened_at END,"
        " circuit_reason = CASE WHEN probe_ok + 1 >= ? THEN 'probe calls succeeded' ELSE circuit_reason END,"
        " rev=?, updated=? WHERE tool_id=? AND version=? AND circuit='half_open'",
        (probes, probes, probes, rev, now, tool_id, version),
    )
    if cur.rowcount != 1:
        return False
    row = con.execute("SELECT circuit FROM tool_health WHERE tool_id=? AND version=?", (tool_id, version)).fetchone()
    return row is not None and row[0] == "closed"


# -- operator controls ------------------------------------------------------------------------------

def disabled_controls(store: Store) -> list[Any]:
    return store.query("SELECT tool_id, version, reason, actor, updated FROM tool_controls WHERE disabled=1")


def disable(con: Any, tool_id: str, version: str, reason: str | None, actor: str, now: float) -> None:
    con.execute("INSERT INTO tool_controls(tool_id, version, disabled, reason, actor, updated) VALUES (?,?,?,?,?,?)"
                " ON CONFLICT (tool_id, version) DO UPDATE SET disabled=excluded.disabled, reason=excluded.reason,"
                " actor=excluded.actor, updated=excluded.updated",
                (tool_id, version, 1, reason, actor, now))


def enable(con: Any, tool_id: str, version: str, reason: str | None, actor: str, now: float) -> None:
    """Lift a disable: every version's (`version` "*"), or this version's and a whole-tool one (or the
    version would stay refused)."""
    if version == ALL_VERSIONS:
        con.execute("UPDATE tool_controls SET disabled=0, reason=?, actor=?, updated=? WHERE tool_id=?", (reason, actor, now, tool_id))
    else:
        con.execute("UPDATE tool_controls SET disabled=0, reason=?, actor=?, updated=? WHERE tool_id=? AND version IN (?, ?)",
                    (reason, actor, now, tool_id, version, ALL_VERSIONS))
