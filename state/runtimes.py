"""The `runtimes` table: who is live, and the only module that writes it.

A runtime is live while its heartbeat (on the store's clock) is younger than LIVE_AFTER_SECONDS,
and, on this host, while its process still exists (a row left by a process killed with -9 stays
fresh for up to LIVE_AFTER_SECONDS; its pid tells the truth at once). Rows are keyed by
(session, node): node = host:pid:start-token.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from typing import Any

LIVE_AFTER_SECONDS = 10.0
#: a runtime whose heartbeat is older than this is forgotten by `prune`
FORGET_AFTER_SECONDS = 86400.0


@dataclass(frozen=True, slots=True)
class Presence:
    """What a runtime says of itself in its row."""

    session: str
    node: str
    pid: int
    host: str
    serve: bool
    label: str | None
    kind: str | None


def pid_alive(pid: int) -> bool:
    """Whether a process with this pid exists on this host (one we may not signal counts)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def live_runtimes(store: Any) -> list[dict[str, Any]]:
    """Every live runtime, on any node, oldest first: a fresh heartbeat and, on this host, a process."""
    cutoff = store.now() - LIVE_AFTER_SECONDS
    host = socket.gethostname()
    rows = store.query("SELECT * FROM runtimes WHERE heartbeat >= ? ORDER BY started", (cutoff,))
    return [dict(r) for r in rows if r["host"] != host or pid_alive(int(r["pid"]))]


def heartbeat(store: Any, me: Presence, *, started: float | None = None, relabel: bool = False) -> None:
    """Say `me` is alive now (the row is created on the first beat, started now unless `started` says when);
    `relabel` also updates the row's label (an MCP client that named itself after connecting)."""
    now = store.now()
    update = "heartbeat=excluded.heartbeat" + (", label=excluded.label" if relabel else "")
    with store.tx() as con:
        con.execute(
            "INSERT INTO runtimes(session, node, pid, host, started, heartbeat, serve, label, kind) VALUES (?,?,?,?,?,?,?,?,?)"
            f" ON CONFLICT(session, node) DO UPDATE SET {update}",
            (me.session, me.node, me.pid, me.host, now if started is None else started, now, int(me.serve), me.label, me.kind),
        )


def beat(store: Any, node: str, sessions: list[str]) -> None:
    """Heartbeat rows that exist already (the sessions a serving runtime holds for its MCP clients), in one transaction."""
    now = store.now()
    with store.tx() as con:
        con.executemany("UPDATE runtimes SET heartbeat=? WHERE session=? AND node=?", [(now, s, node) for s in sessions])


def leave(store: Any, session: str, node: str) -> None:
    """A runtime that closes removes its row, so it stops counting as live at once."""
    with store.tx() as con:
        con.execute("DELETE FROM runtimes WHERE session=? AND node=?", (session, node))


def prune(con: Any, now: float) -> int:
    """Forget runtimes gone for FORGET_AFTER_SECONDS, inside the caller's transaction; rows removed."""
    return int(con.execute("DELETE FROM runtimes WHERE heartbeat < ?", (now - FORGET_AFTER_SECONDS,)).rowcount)


#: an owner silent this long (or with no row) is gone for good: far longer than LIVE_AFTER_SECONDS,
#: since reaping its work (a running evolution) cannot be undone
GONE_AFTER_SECONDS = 120.0


def why_gone(store: Any, session: str, node: str | None, pid: int | None) -> str | None:
    """Why the runtime (session, node) is gone for good, or None while it may live.

    `node` is None for rows written before schema 4, looked up by pid instead."""
    if node:
        owner = store.query_one("SELECT host, heartbeat FROM runtimes WHERE session=? AND node=?", (session, node))
    else:
        owner = store.query_one("SELECT host, heartbeat FROM runtimes WHERE session=? AND pid=?", (session, pid))
    if owner is None or pid is None:
        return "its runtime is gone (no heartbeat row)"
    silent = store.now() - float(owner["heartbeat"])
    if silent > GONE_AFTER_SECONDS:
        return f"its runtime (pid {pid} on {owner['host']}) last beat {silent:.0f} s ago"
    if owner["host"] == socket.gethostname() and not pid_alive(pid):
        return f"its runtime (pid {pid} on this host) is no longer running"
    return None


def live_hosts(store: Any) -> set[str]:
    """The hosts with at least one live runtime."""
    return {r["host"] for r in live_runtimes(store)}


def live_nodes(store: Any) -> set[tuple[str, str]]:
    """(session, node) of every live runtime."""
    return {(r["session"], r["node"]) for r in live_runtimes(store)}
