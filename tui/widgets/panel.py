"""A dashboard panel: a bordered, focusable, maximisable container that renders a snapshot."""

from __future__ import annotations

from typing import Any

from textual.containers import Vertical
from textual.widgets import DataTable

from tui.details import Details
from tui.messages import ColumnsHidden, NewAbove
from tui.snapshot import Snapshot
from tui.widgets.live_table import LiveTable


class Panel(Vertical, can_focus=False):
    """Subclasses render their part of a Snapshot (`apply`); `fingerprint` says whether there is anything new to
    render, so the app skips a panel whose data did not change (the one mechanism: apply returns nothing).

    Enter on a row of any of a panel's tables opens `details(table, key)` (every row opens).
    """

    ALLOW_MAXIMIZE = True
    title = ""
    number = 0  # its key: 1-5 jump to the panel
    filter_text = ""

    def on_mount(self) -> None:
        self._show_title()

    def _show_title(self) -> None:
        """`3 Failures`, `↑ 12 new (g)` while rows arrived above a cursor that left the first row, and the
        columns its tables leave out for width (`not shown: calls, p50`), so no column goes missing unsaid."""
        title = f"{self.number} {self.title}" if self.number else self.title
        new = sum(getattr(w, "new_above", 0) for w in self.query("*"))
        if new:
            title += f" · ↑ {new} new (g)"
        hidden = [label for table in self.query(LiveTable) for label in table.hidden_labels]
        if hidden:
            title += f" · not shown: {', '.join(dict.fromkeys(hidden))}"
        self.border_title = title

    def on_new_above(self, message: NewAbove) -> None:
        message.stop()
        self._show_title()

    def on_columns_hidden(self, message: ColumnsHidden) -> None:
        message.stop()
        self._show_title()

    def apply(self, snapshot: Snapshot, colors: dict[str, str]) -> None:
        raise NotImplementedError

    def arrived(self, snapshot: Snapshot) -> None:
        """Every snapshot, repainted or not (cheap: no table work); what a panel says about its data's age goes here."""

    def fingerprint(self, snapshot: Snapshot) -> Any:
        """What this panel shows, hashable; an unchanged fingerprint skips the repaint (None: always apply)."""
        return None

    def set_filter(self, text: str) -> None:
        """Filter every table of the panel (the matches highlighted) and update the counts."""
        self.filter_text = text
        for table in self.query(LiveTable):
            table.set_filter(text)
        self.update_counts()

    def update_counts(self) -> None:
        """Refresh the border subtitle's counts (`3 of 12` while a filter hides rows)."""

    def sort(self) -> str | None:
        focused = self.app.focused
        if isinstance(focused, LiveTable) and focused in self.query(LiveTable):
            return focused.sort_by_cursor_column()
        return None

    def details(self, table: LiveTable, key: str) -> Details | None:
        """What Enter on row `key` of `table` opens; None when the row is gone."""
        return None

    def focus_main(self) -> None:
        """Focus the panel's main table (the number keys jump here), at once: `Widget.focus` waits for the
        message queue, so the next key of one burst (`3 z` typed together) acted on the panel before."""
        for widget in self.query("*"):
            if widget.can_focus:
                self.screen.set_focus(widget)
                return

    def on_data_table_cell_selected(self, event: DataTable.CellSelected) -> None:
        table = event.data_table
        if not isinstance(table, LiveTable):
            return
        event.stop()
        key = event.cell_key.row_key.value
        details = self.details(table, key) if key is not None else None
        if details is not None:
            self.app.open_details(details)

    @property
    def runtime(self) -> Any:
        return getattr(self.app, "runtime", None)
