"""Evolutions whose owner is gone: reaped when a runtime starts.

A proposal in `generating` or `validating` belongs to the runtime (session, node) that
started it (node: host, pid and start token, unique across machines). Whether that owner is
gone for good is `state.runtimes.why_gone`; when it is, the evolution was interrupted (`tooldeck evolve` killed, the
machine rebooted) and the proposal is marked `failed` with "interrupted: ...". A killed
owner's sandbox died with it (launchers: --die-with-parent, the parent-death signal).
"""

from __future__ import annotations

import time
from typing import Any

from state.runtimes import why_gone
from tools.evolution.review import RUNNING


def reap(runtime: Any) -> list[int]:
    """Mark every running proposal whose owner is gone as failed; the ids reaped."""
    store = runtime.store
    rows = store.query(f"SELECT id, tool_id, version, status, session, pid, node FROM proposals WHERE status IN "
                       f"({','.join('?' * len(RUNNING))})", RUNNING)
    reaped = []
    for row in rows:
        gone = why_gone(store, row["session"], row["node"], row["pid"])
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
