"""Tools: load status as it changes, the version served, score, circuit, calls, p50."""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual.app import ComposeResult

from tui.details import Details, error_blocks
from tui.snapshot import Snapshot, ToolRow, tool_counts
from tui.style import ms, score_text, status_text
from tui.widgets.live_table import Col, LiveTable
from tui.widgets.panel import Panel

COLUMNS = [Col("tool", "tool"), Col("status", "status"), Col("version", "version"), Col("fail", "fail", drop=1),
           Col("calls", "calls", drop=1), Col("circuit", "circuit", drop=1), Col("score", "score", drop=2),
           Col("p50", "p50", drop=4), Col("detail", "detail", flex=True, drop=3, min_width=12), Col("type", "type", drop=5)]


class ToolsPanel(Panel):
    title = "Tools"
    number = 1

    def compose(self) -> ComposeResult:
        yield LiveTable(COLUMNS, id="tools-table")

    @property
    def table(self) -> LiveTable:
        return self.query_one(LiveTable)

    def fingerprint(self, snapshot: Snapshot) -> Any:
        return tuple(snapshot.tools)

    def apply(self, snapshot: Snapshot, colors: dict[str, str]) -> bool:
        self._rows = {row.tool_id: row for row in snapshot.tools}
        changed = self.table.apply([(row.tool_id, self._cells(row, colors)) for row in snapshot.tools])
        self._counts = tool_counts(snapshot.tools)
        self.update_counts()
        return changed

    def update_counts(self) -> None:
        counts = getattr(self, "_counts", None)
        if counts is None:
            return
        loading = f" · {counts['loading']} loading" if counts["loading"] else ""
        self.border_subtitle = f"{counts['ready']} ready · {counts['error']} error{loading} · {self.table.count_label('tool')}"

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
                Text(detail, style=colors["error"] if row.error else "dim"), row.type)

    def details(self, table: LiveTable, key: str) -> Details | None:
        row = getattr(self, "_rows", {}).get(key)
        if row is None:
            return None
        if row.type:  # it has a manifest: the tool screen (manifest, calls, failures, controls, charts)
            self.app.open_tool(key)
            return None
        fields = [("tool", row.tool_id), ("status", row.status), ("version", row.version or "—"), ("source", row.source)]
        return Details(f"{row.tool_id}: {row.status}", fields, error_blocks(row.error) or [("error", "no error recorded", "text")])

    def selected_tool(self) -> str | None:
        key = self.table.selected_key()
        return key if key and "/" not in key else None
