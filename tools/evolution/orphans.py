"""Evolutions whose owner is gone: reaped when a runtime starts.

A proposal in `generating` or `validating` belongs to the runtime (session, node) that
started it (node: host, pid and start token, unique across machines), whose row in
`runtimes` says on which host it runs and when it last beat.
The owner is alive when that row exists, its heartbeat is recent, and (on this host) its
pid still exists; otherwise the evolution was interrupted (`tooldeck evolve` killed, the
machine rebooted) and the proposal is marked `failed` with "interrupted: ...". A killed
owner's sandbox died with it (launchers: --die-with-parent, the parent-death signal).
"""

from __future__ import annotations

import socket
import time
from typing import Any

from state.runtimes import pid_alive
from tools.evolution.review import RUNNING

#: a live runtime beats every 2 s; this much silence (or a missing row) means it is gone
STALE_AFTER_SECONDS = 120.0


def why_gone(owner: Any, pid: int | None, host: str, now: float) -> str | None:
    """Why the owner of a running proposal is gone, or None while it lives."""
    if owner is None or pid is None:
        return "its runtime is gone (no heartbeat row)"
    silent = now - float(owner["heartbeat"])
    if silent > STALE_AFTER_SECONDS:
        return f"its runtime (pid {pid} on {owner['host']}) last beat {silent:.0f} s ago"
    if owner["host"] == host and not pid_alive(pid):
        return f"its runtime (pid {pid} on this host) is no longer running"
    return None


def reap(runtime: Any) -> list[int]:
    """Mark every running proposal whose owner is gone as failed; the ids reaped."""
    store = runtime.store
    rows = store.query(f"SELECT id, tool_id, version, status, session, pid, node FROM proposals WHERE status IN "
                       f"({','.join('?' * len(RUNNING))})", RUNNING)
    host, now, reaped = socket.gethostname(), store.now(), []
    for row in rows:
        if row["node"]:
            owner = store.query_one("SELECT host, heartbeat FROM runtimes WHERE session=? AND node=?", (row["session"], row["node"]))
        else:  # a proposal from before version 4 of the schema
            owner = store.query_one("SELECT host, heartbeat FROM runtimes WHERE session=? AND pid=?", (row["session"], row["pid"]))
        gone = why_gone(owner, row["pid"], host, now)
        if gone is None:
            continue
        reason = f"interrupted while {row['status']}: {gone}"
        with store.tx() as con:
            done = con.execute(f"UPDATE proposals SET status='failed', failure=?, updated=? WHERE id=? AND status IN "
                               f"({','.join('?' * len(RUNNING))})", (reason, time.time(), row["id"], *RUNNING)).rowcount
        if done:
            reaped.append(int(row["id"]))
            runtime.events.emit("evolution.interrupted", row["tool_id"], row["version"], proposal_id=row["id"], error=reason)
    return reaped
