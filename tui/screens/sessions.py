"""`w`: the live runtimes using this workspace (dashboards, serve, CLI, MCP clients, workflows), on every
node sharing its state: grouped by host (this host first), with the backend the state lives on; and the MCP
servers whose tools this dashboard's catalog imports."""

from __future__ import annotations

import socket
import time
from typing import Any

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Footer, Label

from state.runtimes import LIVE_AFTER_SECONDS
from tui.details import Details, as_json, when
from tui.messages import ColumnsHidden
from tui.style import shown
from tui.widgets.live_table import Col, LiveTable

COLUMNS = [Col("session", "session", names_row=True), Col("kind", "kind"), Col("label", "label", flex=True, min_width=12),
           Col("host", "host"), Col("pid", "pid"),
           Col("heartbeat", "heartbeat"), Col("calls 1m", "calls"), Col("failed 1m", "failed"), Col("since", "started", drop=1),
           Col("approved for it", "pins", flex=True, drop=2)]
SERVER_COLUMNS = [Col("MCP server", "server", names_row=True),
                  Col("transport", "transport"), Col("status", "status"), Col("tools", "tools"),
                  Col("pid", "pid", drop=1), Col("held by", "held_by", drop=2), Col("last error", "error", flex=True)]
STATUS_STYLE = {"ready": "green", "error": "red", "connecting": "yellow", "not connected": "dim"}


def server_key(s: dict[str, Any], node: str | None) -> str:
    """`server` for this dashboard's own connection, `server@node` for another live runtime's."""
    return s["server"] if s.get("node") in (None, node) else f"{s['server']}@{s['node']}"


def server_rows(statuses: list[dict[str, Any]], node: str | None = None) -> list[tuple[str, tuple]]:
    """The imported MCP servers (`runtime.extensions["mcp"].every_holder()`): this dashboard's connections in
    tooldeck.toml order, then what every other live runtime holding one recorded in the store."""
    return [(server_key(s, node), (s["server"], s["transport"], Text(s["status"], style=STATUS_STYLE.get(s["status"], "")),
                           "" if s["tools"] is None else str(s["tools"]), "" if s["pid"] is None else str(s["pid"]),
                           s.get("held_by") or "", s["error"] or "")) for s in statuses]


def kind_of(row: dict[str, Any]) -> str:
    """The runtime's kind; rows from before the kind was recorded: serve if serving, else a library client."""
    return str(row.get("kind") or ("serve" if row.get("serve") else "library"))


def row_key(r: dict[str, Any], host: str) -> str:
    """`session/pid` on this host, `session/host/pid` on another (pids repeat across machines)."""
    return f"{r['session']}/{r['pid']}" if r.get("host") == host else f"{r['session']}/{r.get('host')}/{r['pid']}"


def by_host(sessions: list[dict[str, Any]], host: str) -> list[dict[str, Any]]:
    """This host's runtimes first, then each other host's, each oldest first."""
    return sorted(sessions, key=lambda r: (r.get("host") != host, str(r.get("host")), float(r.get("started") or 0)))


def session_pins(tools: list[Any]) -> dict[str, str]:
    """session -> `echo 1.1.0, csv_parser 1.2.0`: the versions approved for that session alone (Tools rows' pins)."""
    pins: dict[str, list[str]] = {}
    for row in tools:
        for session, version in getattr(row, "pinned", ()):
            pins.setdefault(session, []).append(f"{row.tool_id} {version}")
        if row.promoted and row.promoted != "global":
            pins.setdefault(row.promoted, []).append(f"{row.tool_id} {row.version}")
    return {session: ", ".join(sorted(set(items))) for session, items in pins.items()}


def session_rows(sessions: list[dict[str, Any]], now: float, own: tuple[str, str] | None,
                 host: str | None = None, pins: dict[str, str] | None = None) -> list[tuple[str, tuple]]:
    host = host or socket.gethostname()
    pins = pins or {}
    rows = []
    for r in by_host(sessions, host):
        key = row_key(r, host)
        mine = own == (r["session"], r.get("node"))
        label = shown(r.get("label") or "")
        if mine:
            label.append(" (this dashboard)", style="dim")
        failed = int(r.get("failures_1m") or 0)
        rows.append((key, (r["session"], kind_of(r), label, r["host"], str(r["pid"]), f"{max(0.0, now - float(r['heartbeat'])):.0f} s ago",
                           str(r.get("calls_1m") or 0), Text(str(failed), style="red" if failed else ""),
                           time.strftime("%H:%M:%S", time.localtime(float(r["started"]))), pins.get(r["session"], ""))))
    return rows


class SessionsScreen(ModalScreen[None]):
    BINDINGS = [Binding("escape,q,w", "dismiss(None)", "Close", id="sessions.close")]

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog wide"):
            yield Label("Live sessions", classes="dialog-question", id="sessions-title")
            yield LiveTable(COLUMNS, id="sessions-table")
            yield Label(f"a session is a runtime with a heartbeat in the last {LIVE_AFTER_SECONDS:.0f} s; calls and failures "
                        "are of its session id",
                        classes="dialog-note")
            yield LiveTable(SERVER_COLUMNS, id="mcp-servers-table")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one(LiveTable).focus()
        self.refresh_rows()
        self.set_interval(1.0, self.refresh_rows)

    def refresh_rows(self) -> None:
        snap = self.app.latest
        sessions = snap.sessions if snap is not None else []
        runtime = self.app.runtime
        own = (runtime.own_session, runtime.node) if runtime is not None else None
        host = socket.gethostname()
        self._sessions = {row_key(r, host): r for r in sessions}
        pins = session_pins(snap.tools) if snap is not None else {}
        self.query_one(LiveTable).apply(session_rows(sessions, time.time(), own, host, pins))
        kinds: dict[str, int] = {}
        hosts: dict[str, int] = {}
        for r in sessions:
            kinds[kind_of(r)] = kinds.get(kind_of(r), 0) + 1
            hosts[str(r.get("host"))] = hosts.get(str(r.get("host")), 0) + 1
        summary = ", ".join(f"{n} {k}" for k, n in sorted(kinds.items()))
        title = f"Live sessions: {len(sessions)}" + (f" ({summary})" if summary else "")
        if len(hosts) > 1:
            title += f" on {len(hosts)} hosts (" + ", ".join(f"{h}: {n}" for h, n in sorted(hosts.items())) + ")"
        backend = snap.backend if snap is not None else {}
        if backend:
            title += f" · state: {backend.get('backend')} {backend.get('where')}"
        self._title = title
        self._show_title()
        hub = runtime.extensions.get("mcp") if runtime is not None else None
        if hub is not None:
            self.load_servers(hub)
        else:
            self.query_one("#mcp-servers-table", LiveTable).display = False

    def _show_title(self) -> None:
        """The title, and the columns the sessions table leaves out for width (none goes missing unsaid)."""
        title = getattr(self, "_title", "Live sessions")
        hidden = self.query_one("#sessions-table", LiveTable).hidden_labels
        if hidden:
            title += f" · not shown: {', '.join(hidden)}"
        self.query_one("#sessions-title", Label).update(title)

    def on_columns_hidden(self, message: ColumnsHidden) -> None:
        message.stop()
        self._show_title()

    @work(thread=True, exclusive=True, group="mcp-servers", exit_on_error=False)
    def load_servers(self, hub: Any) -> None:
        """The servers' statuses read the store (other runtimes' connections): off the UI thread."""
        statuses = hub.every_holder()
        self.app.call_from_thread(self._show_servers, statuses, hub.runtime.node)

    def _show_servers(self, statuses: list[dict[str, Any]], node: str) -> None:
        self._servers = {server_key(s, node): s for s in statuses}
        servers = self.query_one("#mcp-servers-table", LiveTable)
        servers.display = bool(statuses)
        servers.apply(server_rows(statuses, node))

    def on_data_table_cell_selected(self, event: Any) -> None:
        event.stop()
        server = getattr(self, "_servers", {}).get(str(event.cell_key.row_key.value))
        if event.data_table.id == "mcp-servers-table" and server is not None:
            fields = [(k.replace("_", " "), "—" if v is None else v) for k, v in server.items()]
            self.app.open_details(Details(f"MCP server {server['server']}", fields, [("status", as_json(server), "json")],
                                          data=server))
            return
        row = getattr(self, "_sessions", {}).get(str(event.cell_key.row_key.value))
        if row is not None:
            fields = [("session", row["session"]), ("kind", kind_of(row)), ("label", row.get("label") or "—"), ("host", row["host"]),
                      ("pid", row["pid"]), ("node", row.get("node") or "—"), ("started", when(row["started"])),
                      ("heartbeat", when(row["heartbeat"])),
                      ("serving (flushes every buffer, watches the catalog)", "yes" if row.get("serve") else "no"),
                      ("calls / failed in the last minute", f"{row.get('calls_1m', 0)} / {row.get('failures_1m', 0)}")]
            self.app.open_details(Details(f"session {row['session']} (pid {row['pid']})", fields, [("runtime", as_json(row), "json")],
                                          data=row))
