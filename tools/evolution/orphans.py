"""Evolutions whose owner is gone: reaped when a runtime starts.

A proposal in `generating` or `validating` belongs to the runtime (session, node) that
started it (node: host, pid and start token, unique across machines). Whether that owner is
gone for good is `state.runtimes.why_gone`; when it is, the evolution was interrupted (`tooldeck evolve` killed, the
machine rebooted) and the proposal is marked `failed` with "interrupted: ...". A killed
owner's sandbox died with it (launchers: --die-with-parent, the parent-death signal).
"""

from __future__ import annotations

from typing import Any

from state import proposals
from state.runtimes import why_gone
from tools.evolution.review import RUNNING


def reap(runtime: Any) -> list[int]:
    """Mark every running proposal whose owner is gone as failed; the ids reaped."""
    store = runtime.store
    rows = proposals.running(store, RUNNING)
    reaped = []
    for row in rows:
        gone = why_gone(store, row["session"], row["node"], row["pid"])
        if gone is None:
            continue
        reason = f"interrupted while {row['status']}: {gone}"
        with store.tx() as con:
            done = proposals.mark_interrupted(con, row["id"], RUNNING, reason, store.now())
        if done:
            reaped.append(int(row["id"]))
            runtime.events.emit("evolution.interrupted", row["tool_id"], row["version"], proposal_id=row["id"], error=reason)
    return reaped
