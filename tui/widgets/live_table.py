"""A DataTable that applies a fresh list of rows by stable key, touching only changed cells.

Keeps the cursor on the same row key and the scroll position across refreshes,
and supports a text filter and sorting by a column.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from rich.text import Text
from textual.widgets import DataTable
from textual.widgets.data_table import CellDoesNotExist, RowDoesNotExist


class LiveTable(DataTable):
    """Rows are (key, cells); `apply(rows)` diffs them against what is shown."""

    def __init__(self, columns: Sequence[tuple[str, str]], *, slots: bool = False, **kwargs: Any) -> None:
        """`slots=True` is for a newest-first feed of at most N rows: rows are keyed by position
        and their cells shift down, so once the feed is full the table never changes size (a
        size change makes Textual lay out the whole screen)."""
        super().__init__(cursor_type="cell", zebra_stripes=False, **kwargs)
        self.slots = slots
        self.items: list[str] = []  # with slots: the item key shown in each slot
        self._columns_spec = list(columns)
        self._shown: dict[str, tuple[Any, ...]] = {}
        self._all: list[tuple[str, tuple[Any, ...]]] = []
        self.filter_text = ""
        self.sort_column: str | None = None
        self.sort_reverse = False
        self.sort_keys: dict[str, Callable[[Any], Any]] = {}

    def on_mount(self) -> None:
        for label, key in self._columns_spec:
            self.add_column(label, key=key)

    @property
    def column_keys(self) -> list[str]:
        return [key for _, key in self._columns_spec]

    def selected_key(self) -> str | None:
        if self.row_count == 0:
            return None
        try:
            row_key, _ = self.coordinate_to_cell_key(self.cursor_coordinate)
        except CellDoesNotExist:
            return None
        return row_key.value

    def _matches(self, cells: tuple[Any, ...]) -> bool:
        if not self.filter_text:
            return True
        needle = self.filter_text.lower()
        return any(needle in (c.plain if isinstance(c, Text) else str(c)).lower() for c in cells)

    def apply(self, rows: list[tuple[str, tuple[Any, ...]]]) -> bool:
        """Show `rows`; returns True when anything on screen changed."""
        if self.slots:
            self.items = [key for key, cells in rows if self._matches(cells)]
            self._all = rows
            rows = [(str(i), cells) for i, (_, cells) in enumerate((k, c) for k, c in rows if self._matches(c))]
            return self._apply(rows, filtered=True)
        self._all = rows
        return self._apply(rows)

    def selected_item(self) -> str | None:
        """The item under the cursor (its own key, also in slot mode)."""
        key = self.selected_key()
        if key is None or not self.slots:
            return key
        index = int(key)
        return self.items[index] if index < len(self.items) else None

    def _apply(self, rows: list[tuple[str, tuple[Any, ...]]], filtered: bool = False) -> bool:
        wanted = rows if filtered else [(k, cells) for k, cells in rows if self._matches(cells)]
        wanted_keys = {k for k, _ in wanted}
        changed = False
        selected = self.selected_key()
        for key in [k for k in self._shown if k not in wanted_keys]:
            try:
                self.remove_row(key)
            except RowDoesNotExist:
                pass
            del self._shown[key]
            changed = True
        columns = self.column_keys
        for key, cells in wanted:
            old = self._shown.get(key)
            if old is None:
                self.add_row(*cells, key=key)
                changed = True
            elif old != cells:
                for col, (before, after) in zip(columns, zip(old, cells, strict=False), strict=False):
                    if before != after:
                        self.update_cell(key, col, after, update_width=False)
                changed = True
            self._shown[key] = cells
        if changed and self.sort_column and not self.slots:
            self._sort()  # a ranked table stays ranked as its values change
        if changed and selected is not None and selected in self._shown:
            self._keep_cursor(selected)
        return changed

    def _keep_cursor(self, key: str) -> None:
        try:
            index = self.get_row_index(key)
        except RowDoesNotExist:
            return
        if index != self.cursor_row:
            self.move_cursor(row=index, animate=False, scroll=False)

    def set_filter(self, text: str) -> None:
        self.filter_text = text
        self.apply(self._all)

    def sort_by_cursor_column(self) -> str | None:
        """`s`: sort by the column under the cursor; again on the same column reverses."""
        if not self.columns or self.row_count == 0 or self.slots:
            return None  # a feed stays newest first
        column = self.column_keys[min(self.cursor_column, len(self.column_keys) - 1)]
        if column == self.sort_column:
            self.sort_reverse = not self.sort_reverse
        else:
            self.sort_column, self.sort_reverse = column, False
        self._sort()
        return column

    def _sort(self) -> None:
        if self.sort_column is None or self.row_count == 0:
            return
        selected = self.selected_key()
        custom = self.sort_keys.get(self.sort_column)

        def keyfn(value: Any) -> Any:
            if custom is not None:
                return custom(value)
            plain = value.plain if isinstance(value, Text) else value
            try:
                return (0, float(str(plain).split()[0].rstrip("%msx")), "")
            except (ValueError, IndexError):
                return (1, 0.0, str(plain).lower())

        self.sort(self.sort_column, key=keyfn, reverse=self.sort_reverse)
        if selected is not None:
            self._keep_cursor(selected)
