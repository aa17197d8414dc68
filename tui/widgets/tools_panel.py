"""Tools: load status as it changes, the version served, score, circuit, calls, p50."""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual.app import ComposeResult

from tui.snapshot import Snapshot, ToolRow
from tui.style import ms, score_text, status_text
from tui.widgets.live_table import LiveTable
from tui.widgets.panel import Panel

COLUMNS = [("tool", "tool"), ("status", "status"), ("version", "version"), ("type", "type"), ("score", "score"),
           ("circuit", "circuit"), ("calls", "calls"), ("fail", "fail"), ("p50", "p50"), ("detail", "detail")]


class ToolsPanel(Panel):
    title = "Tools"

    def compose(self) -> ComposeResult:
        yield LiveTable(COLUMNS, id="tools-table")

    @property
    def table(self) -> LiveTable:
        return self.query_one(LiveTable)

    def fingerprint(self, snapshot: Snapshot) -> Any:
        return tuple(snapshot.tools)

    def apply(self, snapshot: Snapshot, colors: dict[str, str]) -> bool:
        changed = self.table.apply([(row.tool_id, self._cells(row, colors)) for row in snapshot.tools])
        counts = {"ready": 0, "error": 0}
        for row in snapshot.tools:
            counts[row.status] = counts.get(row.status, 0) + 1
        self.border_subtitle = f"{counts['ready']} ready · {counts['error']} error · {len(snapshot.tools)} total"
        return changed

    @staticmethod
    def _cells(row: ToolRow, colors: dict[str, str]) -> tuple:
        version = Text(row.version)
        if row.promoted:
            version.append(f" ↑{row.promoted}", style=colors["accent"])
        status = "disabled" if row.disabled and row.status == "ready" else row.status
        detail = row.error or row.source
        circuit = status_text(row.circuit.replace("_", "-"), colors) if row.circuit else Text("")
        return (row.tool_id, status_text(status, colors), version, row.type, score_text(row.score, colors), circuit,
                str(row.calls), Text(str(row.failures), style=colors["error"] if row.failures else ""), ms(row.p50_ms),
                Text(detail[:200], style=colors["error"] if row.error else "dim"))

    def set_filter(self, text: str) -> None:
        self.table.set_filter(text)

    def sort(self) -> str | None:
        return self.table.sort_by_cursor_column()

    def selected_tool(self) -> str | None:
        key = self.table.selected_key()
        return key if key and "/" not in key else None
