"""The `mcp_servers` table: each imported MCP server's status as the serving runtime holding its connection sees it.

A serving runtime writes a row per server (keyed by its own (session, node)) whenever a server's status or
tool count changes, and deletes its rows when it closes. Other processes (`tooldeck mcp list`, a dashboard)
read the rows of live runtimes only: a runtime killed with -9 leaves rows that stop counting as soon as
`state.runtimes` no longer finds it live, and are removed a day later.
"""

from __future__ import annotations

from typing import Any

from state.runtimes import live_nodes

FIELDS = ("transport", "target", "status", "tools", "error", "pid", "server_info", "protocol")
STALE_SECONDS = 86400.0


def record(store: Any, session: str, node: str, server: str, status: dict[str, Any]) -> None:
    """Upsert this runtime's view of one server (`status` holds FIELDS)."""
    now = store.now()
    values = [status.get(f) for f in FIELDS]
    with store.tx() as con:
        con.execute(
            f"INSERT INTO mcp_servers(server, session, node, {', '.join(FIELDS)}, updated)"
            f" VALUES (?, ?, ?, {', '.join('?' for _ in FIELDS)}, ?)"
            f" ON CONFLICT(server, session, node) DO UPDATE SET"
            f" {', '.join(f'{f}=excluded.{f}' for f in FIELDS)}, updated=excluded.updated",
            (server, session, node, *values, now))
        con.execute("DELETE FROM mcp_servers WHERE updated < ?", (now - STALE_SECONDS,))


def forget(store: Any, session: str, node: str) -> None:
    """A runtime closing: its rows go."""
    with store.tx() as con:
        con.execute("DELETE FROM mcp_servers WHERE session=? AND node=?", (session, node))


def held(store: Any) -> list[dict[str, Any]]:
    """Every row of a live runtime, newest first."""
    live = live_nodes(store)
    rows = store.query("SELECT * FROM mcp_servers ORDER BY updated DESC")
    return [dict(r) for r in rows if (r["session"], r["node"]) in live]
