"""Time series for the dashboard: buffer fill samples, call outcomes over time, per-session activity.

Buffer samples are written by whoever watches (the dashboard's poller) at most once per
sample period per buffer; several writers land on the same row (the period start is the key).
"""

from __future__ import annotations

import time

from state.db import Store

SAMPLE_SECONDS = 10.0


def record_buffer_samples(store: Store, pending: dict[str, tuple[int, int]], now: float | None = None) -> None:
    """One sample per buffer for the current period: {buffer_id: (pending, dead_items)}."""
    if not pending:
        return
    ts = (now or time.time()) // SAMPLE_SECONDS * SAMPLE_SECONDS
    with store.tx() as con:
        con.executemany("INSERT INTO buffer_samples(buffer_id, ts, pending, dead_items) VALUES (?,?,?,?)"
                        " ON CONFLICT (buffer_id, ts) DO UPDATE SET pending=excluded.pending, dead_items=excluded.dead_items",
                        [(bid, ts, p, d) for bid, (p, d) in pending.items()])


def buffer_samples(store: Store, buffer_id: str, since: float) -> list[tuple[float, int, int]]:
    """(ts, pending, dead_items), oldest first."""
    rows = store.query("SELECT ts, pending, dead_items FROM buffer_samples WHERE buffer_id=? AND ts>=? ORDER BY ts",
                       (buffer_id, since))
    return [(float(r[0]), int(r[1]), int(r[2])) for r in rows]


def prune_buffer_samples(store: Store, older_than_s: float) -> int:
    with store.tx() as con:
        return int(con.execute("DELETE FROM buffer_samples WHERE ts < ?", (time.time() - older_than_s,)).rowcount)


def call_outcomes(store: Store, tool_id: str, version: str | None, since: float, bucket_s: float) -> list[tuple[float, int, int]]:
    """(bucket start, calls, failed calls) per `bucket_s` seconds since `since`, oldest first (empty buckets left out)."""
    rows = store.query(
        "SELECT FLOOR(ts / ?1) AS b, COUNT(*), SUM(CASE WHEN outcome != 'ok' THEN 1 ELSE 0 END) FROM calls"
        " WHERE tool_id=?2 AND (version=?3 OR ?3 IS NULL) AND ts>=?4 GROUP BY b ORDER BY b",
        (bucket_s, tool_id, version, since))
    return [(float(r[0]) * bucket_s, int(r[1]), int(r[2] or 0)) for r in rows]


def session_activity(store: Store, since: float) -> dict[str, tuple[int, int]]:
    """session -> (calls, failed calls) since `since`."""
    rows = store.query("SELECT session, COUNT(*), SUM(CASE WHEN outcome != 'ok' THEN 1 ELSE 0 END) FROM calls WHERE ts>=?"
                       " GROUP BY session", (since,))
    return {str(r[0]): (int(r[1]), int(r[2] or 0)) for r in rows if r[0] is not None}


def sessions_failing(store: Store, tool_id: str, limit: int = 20) -> list[str]:
    """Sessions whose calls of `tool_id` failed, the most recent failure first."""
    rows = store.query("SELECT session, MAX(ts) AS last FROM calls WHERE tool_id=? AND outcome != 'ok' AND session IS NOT NULL"
                       " GROUP BY session ORDER BY last DESC LIMIT ?", (tool_id, limit))
    return [str(r[0]) for r in rows]


def circuit_changes(store: Store, tool_id: str, version: str | None, since: float) -> list[tuple[float, str, str]]:
    """(ts, kind, payload JSON) of the circuit events of a tool since `since`, oldest first."""
    rows = store.query("SELECT ts, kind, payload FROM events WHERE tool_id=?1 AND (version=?2 OR ?2 IS NULL) AND ts>=?3"
                       " AND kind IN ('circuit.opened', 'circuit.closed', 'control.circuit') ORDER BY id", (tool_id, version, since))
    return [(float(r[0]), str(r[1]), str(r[2])) for r in rows]


def batch_items(store: Store, batch_id: str, limit: int = 200) -> list[str]:
    """The items (JSON text) of one batch, first `limit` of them: a dead-letter batch's preview."""
    rows = store.query("SELECT i.data FROM buffer_batches b JOIN buffer_items i"
                       " ON i.bkey=b.bkey AND i.seq BETWEEN b.first_seq AND b.last_seq"
                       " WHERE b.batch_id=? ORDER BY i.seq LIMIT ?", (batch_id, limit))
    return [str(r[0]) for r in rows]
