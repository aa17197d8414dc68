"""Tools: load status as it changes, the version served, score, circuit, calls, p50."""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding

from tui.details import Details, error_blocks
from tui.snapshot import Snapshot, ToolRow, tool_counts
from tui.style import ms, score_text, shown, status_text
from tui.widgets.live_table import Col, LiveTable
from tui.widgets.panel import Panel

#: ids and the score stay longest, then the circuit (an open one is also in the header); counts next; free text
#: and the rest go first when space is short
COLUMNS = [Col("tool", "tool", names_row=True), Col("status", "status"), Col("version", "version"), Col("fail", "fail", drop=3),
           Col("calls", "calls", drop=3), Col("circuit", "circuit", drop=2), Col("score", "score", drop=1),
           Col("p50", "p50", drop=5), Col("detail", "detail", flex=True, drop=4, min_width=12), Col("type", "type", drop=6)]


#: rows older than this (s) say their age in the border (a 10,000-tool list is re-read every ~11 s or more, not every poll)
AGE_SHOWN = 2


class ToolsPanel(Panel):
    title = "Tools"
    number = 1
    #: the tool screen's controls, on the selected row too (what the footer shows is what works here)
    BINDINGS = [
        Binding("d", "toggle_disabled", "Disable/enable", id="tools.disable"),
        Binding("o", "force_open", "Force open", id="tools.circuit_open"),
    ]

    def compose(self) -> ComposeResult:
        yield LiveTable(COLUMNS, id="tools-table")

    @property
    def table(self) -> LiveTable:
        return self.query_one(LiveTable)

    def fingerprint(self, snapshot: Snapshot) -> Any:
        return tuple(snapshot.tools)

    def apply(self, snapshot: Snapshot, colors: dict[str, str]) -> None:
        self._rows = {row.tool_id: row for row in snapshot.tools}
        if colors != getattr(self, "_cells_colors", None):  # a new theme: every row is built again
            self._cells_cache: dict[str, tuple[ToolRow, tuple]] = {}
            self._cells_colors = colors
        self.table.apply([(row.tool_id, self._cached_cells(row, colors)) for row in snapshot.tools])
        self._counts = tool_counts(snapshot.tools)
        self.update_counts()

    def arrived(self, snapshot: Snapshot) -> None:
        """With many tools the rows are re-read less often than every poll (Collector.paced): say how old they are."""
        age = int(snapshot.taken_at - snapshot.tools_at) if snapshot.tools_at else 0
        age = age if age >= AGE_SHOWN else 0
        if age != getattr(self, "_age", 0):
            self._age = age
            self.update_counts()

    def update_counts(self) -> None:
        counts = getattr(self, "_counts", None)
        if counts is None:
            return
        loading = f" · {counts['loading']} loading" if counts["loading"] else ""
        age = getattr(self, "_age", 0)
        read = f" · read {age} s ago" if age else ""
        self.border_subtitle = f"{counts['ready']} ready · {counts['error']} error{loading} · {self.table.count_label('tool')}{read}"

    def _cached_cells(self, row: ToolRow, colors: dict[str, str]) -> tuple:
        """The cells of an unchanged row are the same tuple as last time: with 10,000 tools and one changed, the
        table compares 10,000 tuples by identity instead of building and comparing 100,000 Texts (seconds)."""
        cache = self._cells_cache
        cached = cache.get(row.tool_id)
        if cached is not None and cached[0] == row:
            return cached[1]
        cells = self._cells(row, colors)
        cache[row.tool_id] = (row, cells)
        if len(cache) > 2 * len(self._rows):  # tools that went away
            for key in [k for k in cache if k not in self._rows]:
                del cache[key]
        return cells

    @staticmethod
    def _cells(row: ToolRow, colors: dict[str, str]) -> tuple:
        version = Text(row.version)
        if row.promoted:
            version.append(f" ↑{row.promoted}", style=colors["accent"])
        for session, pinned in row.pinned:  # what a session approval serves that session, in view of everyone
            version.append(f" · {pinned} ↑{session}", style=colors["accent"])
        status = "disabled" if row.disabled and row.status == "ready" else row.status
        detail = row.error or row.source
        circuit = status_text(row.circuit.replace("_", "-"), colors) if row.circuit else Text("")
        return (row.tool_id, status_text(status, colors), version, Text(str(row.failures), style=colors["error"] if row.failures else ""),
                str(row.calls), circuit, score_text(row.score, colors), ms(row.p50_ms),
                shown(detail, colors["error"] if row.error else "dim"), row.type)

    def details(self, table: LiveTable, key: str) -> Details | None:
        row = getattr(self, "_rows", {}).get(key)
        if row is None:
            return None
        if row.type:  # it has a manifest: the tool screen (manifest, calls, failures, controls, charts)
            self.app.open_tool(key)
            return None
        fields = [("tool", row.tool_id), ("status", row.status), ("version", row.version or "—"), ("source", row.source)]
        return Details(f"{row.tool_id}: {row.status}", fields, error_blocks(row.error) or [("error", "no error recorded", "text")])

    def _selected_row(self) -> ToolRow | None:
        key = self.selected_tool()
        row = getattr(self, "_rows", {}).get(key) if key else None
        if row is None or not row.type:
            self.app.set_status("select a tool first (a row with a manifest)", error=True)
            return None
        return row

    def action_toggle_disabled(self) -> None:
        """Enabling is immediate; disabling asks first, saying how many callers and buffers it stops."""
        row = self._selected_row()
        if row is not None:
            from tui.commands import Command

            self.app.run_command(Command("tool.enable" if row.disabled else "tool.disable", row.tool_id))

    def action_force_open(self) -> None:
        row = self._selected_row()
        if row is None:
            return
        from tools.recovery import force_circuit

        tool_id, version = row.tool_id, row.version

        def force() -> None:
            self.app.run_blocking(f"{tool_id} {version}: circuit forced open", lambda rt: {
                **force_circuit(rt, tool_id, "open", version, actor="dashboard"), "status": "circuit forced open"})

        self.app.confirm_then(f"Hold the circuit of {tool_id} {version} open? Every call is refused until you close it "
                              "(c in its tool screen).", force)

    def selected_tool(self) -> str | None:
        key = self.table.selected_key()
        return key if key and "/" not in key else None
