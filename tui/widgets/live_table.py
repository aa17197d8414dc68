"""A DataTable that applies a fresh list of rows by stable key, touching only changed cells.

Keeps the cursor on the same row key and the scroll position across refreshes, filters
(with the matches highlighted) and sorts. Column widths follow the content as it changes:
numbers and statuses are never cut; a column that does not fit is left out whole (its value
is in the row's details, and the table posts ColumnsHidden so its panel says which); free text
(`Col(flex=True)`) takes the remaining width and ends in an ellipsis. The one column that names
the row (`Col(names_row=True)`: a tool id, a buffer id) is the single exception: wider than what
is left for it, it ends in an ellipsis too, since it is the row's key and Enter shows it whole.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from rich.cells import cell_len
from rich.console import Console, ConsoleOptions, RenderResult
from rich.measure import Measurement
from rich.padding import Padding
from rich.text import Text
from textual.binding import Binding
from textual.geometry import Size
from textual.reactive import Reactive
from textual.widgets import DataTable
from textual.widgets.data_table import CellDoesNotExist, RowDoesNotExist, RowKey

from tools.visible import visible
from tui.messages import ColumnsHidden, NewAbove
from tui.style import shown_text

GAP = 1  # blank cells after every column (the table's own cell padding is 0)
NAME_MIN = 12  # the cells a row's name keeps before other columns are left out for it
NEWLINE = "⏎"


@dataclass(frozen=True, slots=True)
class Col:
    """A column: `flex` for free text (ellipsis), `drop` > 0 to leave it out first when space is short,
    `names_row` for the id that names the row (it may end in an ellipsis rather than push other columns out)."""

    label: str
    key: str
    flex: bool = False
    drop: int = 0
    min_width: int = 8
    names_row: bool = False


def one_line(value: Any) -> Text:
    """A cell as one line of Text: never parsed as markup, control characters made visible (tools/visible.py),
    newlines shown as ⏎; a cell cut short (free text always can be) ends in an ellipsis."""
    if isinstance(value, Text):
        text = shown_text(value)
        if "\n" in text.plain:
            text = Text(NEWLINE, style="dim").join(text.split("\n", allow_blank=True))
        if text is value:
            text = text.copy()
    else:
        text = Text(visible(str(value)).replace("\n", NEWLINE))
    text.no_wrap = True
    text.overflow = "ellipsis"
    return text


def shown_width(value: Any) -> int:
    """The cells a value takes as `one_line` shows it: a control or invisible character spelled out (`\\x1b`,
    `<U+200B>`) takes more than the raw text measured, and a column sized for that ran into the next one."""
    plain = _plain(value)
    if plain.isascii() and plain.isprintable():
        return len(plain)
    return cell_len(one_line(value).plain)


class Cell:
    """A cell as the table draws it: its text, then GAP blank columns. A cut text ends in its ellipsis before the
    gap, not flush against the next column. (Light: 10,000 rows hold 80,000 of these; the padding is built when
    a cell is drawn, and only drawn cells are.)"""

    __slots__ = ("text",)

    def __init__(self, text: Text) -> None:
        self.text = text

    def __str__(self) -> str:
        return self.text.plain

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        text = self.text
        if text.cell_len > options.max_width - GAP > 0:  # cut here, where the width is known: never through a `<U+202E>`
            from tools.cli.output import cut

            text = cut(text, options.max_width - GAP)
        yield Padding(text, (0, GAP, 0, 0))

    def __rich_measure__(self, console: Console, options: ConsoleOptions) -> Measurement:
        measured = self.text.__rich_measure__(console, options)  # DataTable measures every cell it is given
        return Measurement(measured.minimum + GAP, measured.maximum + GAP)


def same(a: tuple[Any, ...], b: tuple[Any, ...]) -> bool:
    """Cells equal as shown: rich's Text compares text and spans but not its base style, so a cell that only
    changed colour (a theme switch, a status turning red) would otherwise keep its old colour on screen. The same
    tuple is the same cells (a panel that keeps the cells of unchanged rows makes a 10,000-row apply cheap)."""
    return a is b or len(a) == len(b) and all(
        x == y and (not isinstance(x, Text) or (x.style == y.style and x.spans == y.spans)) for x, y in zip(a, b, strict=True))


def _plain(value: Any) -> str:
    return value.plain if isinstance(value, Text) else str(value)


class LiveTable(DataTable):
    """Rows are (key, cells); `apply(rows)` diffs them against what is shown, in the order given."""

    BINDINGS = [
        Binding("enter", "select_cursor", "Open", id="table.open"),
        Binding("home,g", "first_row", "First row", show=False, id="table.first"),
        Binding("end,G", "last_row", "Last row", show=False, id="table.last"),
        Binding("j", "cursor_down", "Down", show=False, id="table.down"),
        Binding("k", "cursor_up", "Up", show=False, id="table.up"),
    ]

    #: Textual lays out the whole screen on every virtual-size change (~65 ms on a busy dashboard), and a live
    #: table's virtual size changes with every row that comes or goes. A table whose height is set by its
    #: container needs no layout for that, only its scrollbars; an auto-height one does (see the watcher).
    virtual_size: Reactive[Size] = Reactive(Size(0, 0), layout=False)

    def __init__(self, columns: Sequence[Col | tuple[str, str]], **kwargs: Any) -> None:
        super().__init__(cursor_type="cell", zebra_stripes=False, cell_padding=0, **kwargs)
        self.specs = [c if isinstance(c, Col) else Col(*c) for c in columns]
        self._all: list[tuple[str, tuple[Any, ...]]] = []  # every row given, in order (full values)
        self._widths: dict[str, tuple[int, ...]] = {}  # row key -> measured cell widths
        self._shown: dict[str, tuple[Any, ...]] = {}  # row key -> full cells on screen
        self._order: list[str] = []  # keys on screen, in order
        self.shown_columns: list[int] = []  # indices into specs of the columns on screen
        self.hidden_labels: tuple[str, ...] = ()  # the columns left out for width, in table order
        self.filter_text = ""
        self.sort_column: str | None = None
        self.sort_reverse = False
        self.sort_keys: dict[str, Callable[[Any], Any]] = {}
        self.new_above = 0  # rows that came in above the cursor since it left the first row

    def on_mount(self) -> None:
        self._relayout(force=True)

    def watch_virtual_size(self, size: Size) -> None:
        height = self.styles.height
        if height is None or height.is_auto:
            self.refresh(layout=True)
            return
        self._refresh_scrollbars()  # lays out this table only when a scrollbar appears or goes
        self._scroll_update(size)

    # -- what is shown ---------------------------------------------------------------

    @property
    def column_keys(self) -> list[str]:
        return [c.key for c in self.specs]

    @property
    def visible_keys(self) -> list[str]:
        return [self.specs[i].key for i in self.shown_columns]

    @property
    def total(self) -> int:
        return len(self._all)

    @property
    def shown(self) -> int:
        return len(self._order)

    def count_label(self, noun: str) -> str:
        """`12 tools`, `1 tool`, or `3 of 12 tools` while a filter hides some (`noun` is the singular)."""
        from tools.cli.output import plural

        return f"{self.shown:,} of {plural(self.total, noun)}" if self.filter_text else plural(self.total, noun)

    def selected_key(self) -> str | None:
        if self.row_count == 0:
            return None
        try:
            row_key, _ = self.coordinate_to_cell_key(self.cursor_coordinate)
        except CellDoesNotExist:
            return None
        return row_key.value

    selected_item = selected_key

    def value(self, key: str, column: str) -> Any:
        """The full value of a cell, shown or not (a column left out for width still has it)."""
        return dict(self._all)[key][self.column_keys.index(column)]

    def row_values(self, key: str) -> dict[str, str]:
        """Every column of a row as plain text (what the details screen lists)."""
        cells = dict(self._all).get(key)
        if cells is None:
            return {}
        return {c.label: _plain(v) for c, v in zip(self.specs, cells, strict=False)}

    def _matches(self, cells: tuple[Any, ...]) -> bool:
        if not self.filter_text:
            return True
        needle = self.filter_text.lower()
        return any(needle in _plain(c).lower() for c in cells)

    # -- applying rows ---------------------------------------------------------------

    def apply(self, rows: list[tuple[str, tuple[Any, ...]]]) -> bool:
        """Show `rows` (full values, in order); returns True when anything on screen changed.

        Tail mode: a cursor on the first row stays on the first row (the newest, or the worst of a
        ranking) as rows come and go; a cursor elsewhere keeps its row, and the rows that arrive above
        it are counted in `new_above` (posted as NewAbove for the panel's border)."""
        following = self.row_count == 0 or self.cursor_row == 0
        before = set(self._shown)
        previous = dict(self._all)
        self._all = rows
        for key, cells in rows:
            old = previous.get(key)
            if (old is not cells and old != cells) or key not in self._widths:
                self._widths[key] = tuple(map(shown_width, cells))
        if len(self._widths) > len(rows):
            keep = {k for k, _ in rows}
            self._widths = {k: w for k, w in self._widths.items() if k in keep}
        changed = self._apply()
        if changed:
            self._follow(following, before)
        return changed

    def _follow(self, following: bool, before: set[str]) -> None:
        if not self._order:
            return
        if following:
            if self.cursor_row != 0:
                self.move_cursor(row=0, animate=False, scroll=False)
            self.scroll_to(y=0, animate=False)
            return
        selected = self.selected_key()
        index = self._order.index(selected) if selected in self._shown else 0
        arrived = sum(1 for key in self._order[:index] if key not in before)
        if arrived:
            self._set_new_above(self.new_above + arrived)

    def _set_new_above(self, count: int) -> None:
        if count != self.new_above:
            self.new_above = count
            self.post_message(NewAbove(self, count))

    def watch_cursor_coordinate(self, old: Any, new: Any) -> None:
        super().watch_cursor_coordinate(old, new)
        if new.row == 0 and self.new_above:
            self._set_new_above(0)

    def _wanted(self) -> list[tuple[str, tuple[Any, ...]]]:
        wanted = [(k, c) for k, c in self._all if self._matches(c)]
        if self.sort_column is not None and self.sort_column in self.column_keys:
            index = self.column_keys.index(self.sort_column)
            custom = self.sort_keys.get(self.sort_column)
            wanted.sort(key=lambda kc: custom(kc[1][index]) if custom else _sort_key(kc[1][index]), reverse=self.sort_reverse)
        return wanted

    def _apply(self) -> bool:
        wanted = self._wanted()
        if self._relayout(wanted):
            return True  # rebuilt with every wanted row
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
        keys = self.visible_keys
        for key, cells in wanted:
            old = self._shown.get(key)
            if old is None:
                self.add_row(*map(Cell, self._display(cells)), key=key)
                changed = True
            elif not same(old, cells):
                for col, before, after in zip(keys, self._display(old), self._display(cells), strict=False):
                    if not same((before,), (after,)):
                        self.update_cell(key, col, Cell(after), update_width=False)
                changed = True
            self._shown[key] = cells
        order = [k for k, _ in wanted]
        if order != self._order:
            self._reorder(order)
            changed = True
        if changed and selected is not None and selected in self._shown:
            self._keep_cursor(selected)
        return changed

    def _display(self, cells: tuple[Any, ...]) -> list[Text]:
        out = []
        for i in self.shown_columns:
            text = one_line(cells[i])
            if self.filter_text:
                text = text.copy()
                text.highlight_words([self.filter_text], "reverse", case_sensitive=False)
            out.append(text)
        return out

    def _reorder(self, order: list[str]) -> None:
        """Put the rows in `order` (DataTable.sort does the same with its own key function)."""
        from textual._two_way_dict import TwoWayDict

        self._row_locations = TwoWayDict({RowKey(k): i for i, k in enumerate(order)})
        self._order = order
        self._update_count += 1
        self.refresh()

    def _keep_cursor(self, key: str) -> None:
        try:
            index = self.get_row_index(key)
        except RowDoesNotExist:
            return
        if index != self.cursor_row:
            self.move_cursor(row=index, animate=False, scroll=False)

    # -- column layout -----------------------------------------------------------------

    def on_resize(self) -> None:
        self._relayout()
        self._show_cursor_row()

    def on_show(self) -> None:
        self._show_cursor_row()

    def _show_cursor_row(self) -> None:
        """Scrolled while hidden (a panel not on screen at 80x24 still takes its rows), the table had scrolled for a
        window of no height: the worst tool on the first row, under the cursor, was above the view when the panel
        came back. On showing (and on a resize), the first row is in view again in tail mode, else the cursor's row."""
        if not self.row_count or not self.size.height:
            return
        if self.cursor_row == 0:
            self.scroll_to(y=0, animate=False)
        else:
            self._scroll_cursor_into_view()

    def _room(self) -> int:
        width = self.size.width
        return (width - 1) if width > 0 else 10_000  # one column kept for the vertical scrollbar

    def label(self, index: int) -> str:
        """A column's header: its label, marked ▲ (or ▼ reversed) while the rows are sorted by it."""
        spec = self.specs[index]
        if spec.key != self.sort_column:
            return spec.label
        return f"{spec.label} {'▼' if self.sort_reverse else '▲'}"

    def _layout(self, wanted: list[tuple[str, tuple[Any, ...]]]) -> tuple[list[int], list[int]]:
        """(visible column indices, their widths), never wider than the room.

        Every column is placed at its smallest honest width: a number, status or version at its content's width
        (never cut), free text at its label's (it ends in …), the row's name at NAME_MIN (it ends in …). The
        columns with drop 0 come first; while even they do not fit, the rightmost of them (never the row's name)
        is left out whole. Then, the row's name kept at up to half the room (a usual id whole: an id cut to show
        an optional column is the worse trade), the others by priority, each if it fits. What is left widens the
        name to that half, then the free text by priority, then the name to its full width."""
        specs = self.specs
        need = [cell_len(self.label(i)) for i in range(len(specs))]
        widths = self._widths
        for i, longest in enumerate(map(max, zip(*(widths[k] for k, _ in wanted if k in widths), strict=False))):
            need[i] = max(need[i], longest)
        room = self._room()

        def least(i: int) -> int:
            spec = specs[i]
            if spec.flex:
                return max(1, min(need[i], max(cell_len(self.label(i)), min(spec.min_width, need[i]))))
            if spec.names_row:
                return max(1, min(need[i], max(NAME_MIN, cell_len(self.label(i)))))
            return need[i]

        chosen = [i for i in range(len(specs)) if specs[i].drop == 0]
        while sum(least(i) + GAP for i in chosen) > room and any(not specs[i].names_row for i in chosen):
            chosen.remove(max(i for i in chosen if not specs[i].names_row))
        used = sum(least(i) + GAP for i in chosen)
        share = max(NAME_MIN, room // 2)  # the row's name keeps up to this much before optional columns come in
        held = min(max(0, room - used), sum(max(0, min(need[i], share) - least(i)) for i in chosen if specs[i].names_row))
        used += held
        for i in sorted((i for i in range(len(specs)) if specs[i].drop > 0), key=lambda i: (specs[i].drop, i)):
            if used + least(i) + GAP <= room:
                chosen.append(i)
                used += least(i) + GAP
        used -= held
        visible = sorted(chosen)
        self._set_hidden(tuple(specs[i].label for i in range(len(specs)) if i not in chosen))
        sized = {i: least(i) for i in visible}
        spare = room - used
        if spare < 0:  # only the row's name is left and even it does not fit: it takes what there is
            for i in visible:
                sized[i] = max(1, sized[i] + spare)
            spare = 0
        names = [i for i in visible if specs[i].names_row]
        flex = sorted((i for i in visible if specs[i].flex), key=lambda i: (specs[i].drop, i))
        for cap, order in ((share, names), (None, flex), (None, names)):
            for i in order:
                more = min(spare, max(0, (need[i] if cap is None else min(need[i], cap)) - sized[i]))
                sized[i] += more
                spare -= more
        if visible and spare > 0 and room < 10_000:
            sized[visible[-1]] += spare  # the table keeps the panel's width, so a column resizing causes no layout
        return visible, [sized[i] + GAP for i in visible]

    def _set_hidden(self, labels: tuple[str, ...]) -> None:
        if labels != self.hidden_labels:
            self.hidden_labels = labels
            self.post_message(ColumnsHidden(self, labels))

    def _relayout(self, wanted: list[tuple[str, tuple[Any, ...]]] | None = None, force: bool = False) -> bool:
        """Fit the columns to the content and the width; rebuilds the table when the set of columns changes."""
        if not self.is_mounted:
            return False
        wanted = self._wanted() if wanted is None else wanted
        visible, widths = self._layout(wanted)
        if force or visible != self.shown_columns:
            self._rebuild(visible, widths, wanted)
            return True
        changed = False
        for column, width in zip(self.ordered_columns, widths, strict=False):
            if column.width != width:
                column.width = column.content_width = width
                changed = True
        if changed:
            self._require_update_dimensions = True
            self._clear_caches()
            self._update_count += 1
            self.refresh()
        return False

    def _rebuild(self, visible: list[int], widths: list[int], wanted: list[tuple[str, tuple[Any, ...]]]) -> None:
        selected = self.selected_key()
        keys = self.visible_keys
        cursor_column = keys[self.cursor_column] if self.cursor_column < len(keys) else None
        scroll_y = self.scroll_y
        self.clear(columns=True)
        self.shown_columns = visible
        for i, width in zip(visible, widths, strict=True):
            self.add_column(Text(self.label(i), no_wrap=True, overflow="ellipsis"), key=self.specs[i].key, width=width)
        self._shown = {}
        for key, cells in wanted:
            self.add_row(*map(Cell, self._display(cells)), key=key)
            self._shown[key] = cells
        self._order = [k for k, _ in wanted]
        if selected is not None and selected in self._shown:
            column = self.visible_keys.index(cursor_column) if cursor_column in self.visible_keys else 0
            self.move_cursor(row=self.get_row_index(selected), column=column, animate=False, scroll=False)
        self.scroll_to(y=scroll_y, animate=False)

    # -- filter, sort, keys ------------------------------------------------------------

    def set_filter(self, text: str) -> None:
        self.filter_text = text
        self._relayout(force=True)

    def sort_by(self, column: str, reverse: bool = False) -> None:
        """Keep the rows sorted by `column` (marked in the header) as values change."""
        self.sort_column, self.sort_reverse = column, reverse
        self._relayout(force=True)

    def sort_by_cursor_column(self) -> str | None:
        """`s`: sort by the column under the cursor; again on the same column reverses."""
        if not self.shown_columns or self.row_count == 0:
            return None
        column = self.visible_keys[min(self.cursor_column, len(self.shown_columns) - 1)]
        self.sort_by(column, not self.sort_reverse if column == self.sort_column else False)
        return column

    def action_first_row(self) -> None:
        if self.row_count:
            self.move_cursor(row=0)

    def action_last_row(self) -> None:
        if self.row_count:
            self.move_cursor(row=self.row_count - 1)


def _sort_key(value: Any) -> Any:
    plain = _plain(value)
    try:
        return (0, float(plain.split()[0].rstrip("%msx")), "")
    except (ValueError, IndexError):
        return (1, 0.0, plain.lower())
