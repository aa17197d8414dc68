"""A diff viewer: unified or side by side, syntax-highlighted with rich's Syntax.

textual-diff-view is AGPL and slow to first paint. Here the diff text (from
difflib) is split into lines once; only the lines on screen are highlighted
and rendered, so a 2,000-line diff paints in well under the 300 ms budget.

The diff is the model's text: each line is shown through tools/visible.py (an
escape sequence or a bidi control is spelled out, never sent to the terminal),
and when any line held such a character every line gets a one-column gutter in
which those lines are marked `!`. The approval hash binds the real bytes.
"""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual.geometry import Size
from textual.reactive import reactive
from textual.scroll_view import ScrollView
from textual.strip import Strip

from tools.visible import marked_lines

MARK = "!"
MARK_STYLE = "bold black on yellow"


def side_by_side_rows(diff: str) -> list[tuple[str, str, str, str]]:
    """Pair a unified diff's lines as (left, right, left_kind, right_kind); kinds: ctx, del, add, hunk, meta, blank.
    Each side is shown visibly; a kind ends in `!` (`add!`) when that line held a hidden character."""
    rows: list[tuple[str, str, str, str]] = []
    removed: list[tuple[str, str]] = []
    added: list[tuple[str, str]] = []

    def flush() -> None:
        for i in range(max(len(removed), len(added))):
            left, lk = removed[i] if i < len(removed) else ("", "blank")
            right, rk = added[i] if i < len(added) else ("", "blank")
            rows.append((left, right, lk, rk))
        removed.clear()
        added.clear()

    for line, marked in marked_lines(diff) if diff else []:
        mark = MARK if marked else ""
        if line.startswith(("---", "+++")):
            flush()
            rows.append((line, "", "meta" + mark, "blank"))
        elif line.startswith("@@"):
            flush()
            rows.append((line, line, "hunk" + mark, "hunk" + mark))
        elif line.startswith("-"):
            removed.append((line[1:], "del" + mark))
        elif line.startswith("+"):
            added.append((line[1:], "add" + mark))
        else:
            flush()
            text = line[1:] if line.startswith(" ") else line
            rows.append((text, text, "ctx" + mark, "ctx" + mark))
    flush()
    return rows


def diff_styles(theme: Any = None) -> dict[str, str]:
    """Line styles from the active theme: removed lines tinted with $error, added with $success."""
    if theme is None:
        return {"del": "on #3b1219", "add": "on #12361d", "hunk": "bold cyan", "meta": "bold", "ctx": "", "blank": "dim"}
    from textual.color import Color

    background = Color.parse(theme.background or ("#000000" if theme.dark else "#ffffff"))
    tint = {k: Color.parse(v).blend(background, 0.72).hex for k, v in (("del", theme.error), ("add", theme.success)) if v}
    return {"del": f"on {tint.get('del', '#3b1219')}", "add": f"on {tint.get('add', '#12361d')}",
            "hunk": f"bold {theme.accent or theme.primary}", "meta": "bold", "ctx": "", "blank": "dim"}


def _lexer(diff: str) -> str:
    """The language of the changed files, from the diff's +++ / --- headers (python, yaml, ...)."""
    for line in diff.splitlines()[:40]:
        if line.startswith(("+++ ", "--- ")):
            name = line[4:].split(" (", 1)[0].split("\t", 1)[0]
            if name.endswith(".py"):
                return "python"
            if name.endswith((".yaml", ".yml")):
                return "yaml"
    return "text"


class DiffView(ScrollView, can_focus=True):
    """A scrollable diff that renders only the lines on screen (the Line API), so a 2,000-line
    diff paints as fast as a 20-line one. `mode` is 'unified' or 'side-by-side'."""

    mode: reactive[str] = reactive("unified")

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.diff = ""
        self._rows: list[tuple[str, str, str, str]] = []  # (left, right, left kind, right kind)
        self._unified: list[str] = []  # the diff's lines, made visible
        self._marked: list[bool] = []  # which of them held a control, bidi or invisible character
        self.marks_shown = False  # any line marked: every line gets a one-column gutter
        self._cache: dict[tuple[str, int, int, int], Strip] = {}
        self._lexer = "text"
        self._highlighter: Any = None  # rich.syntax.Syntax, imported on first use (pygments is slow to import)
        self.placeholder = "no diff"

    def on_mount(self) -> None:
        self.app.theme_changed_signal.subscribe(self, lambda _theme: self._restyle())

    def _restyle(self) -> None:
        """A new theme: highlight again with its colours (light or dark) and re-tint the changed lines."""
        self._highlighter = None
        self._cache.clear()
        self.refresh()

    def show(self, diff: str, *, placeholder: str = "no diff") -> None:
        """Show `diff` from its first line (another proposal's diff never opens where the last was scrolled)."""
        if diff == self.diff and placeholder == self.placeholder:
            return
        self.diff = diff
        self.placeholder = placeholder
        lines = marked_lines(diff if diff else placeholder)
        self._unified = [line for line, _ in lines]
        self._marked = [marked for _, marked in lines]
        self.marks_shown = any(self._marked)
        self._rows = side_by_side_rows(diff)
        self._lexer = _lexer(diff)
        self._highlighter = None
        self.scroll_to(0, 0, animate=False)
        self._relayout()

    def toggle(self) -> str:
        self.mode = "side-by-side" if self.mode == "unified" else "unified"
        return self.mode

    def watch_mode(self) -> None:
        self._relayout()

    def on_resize(self) -> None:
        self._cache.clear()
        self._relayout()

    def _relayout(self) -> None:
        self._cache.clear()
        if self.mode == "unified":
            width = max((len(line) for line in self._unified), default=0) + (1 if self.marks_shown else 0)
            self.virtual_size = Size(width + 1, max(1, len(self._unified)))
        else:  # both halves scroll sideways together by the longest line's excess over a half
            longest = max((max(len(left), len(right)) for left, right, _, _ in self._rows), default=0)
            width = self._view_width()
            self.virtual_size = Size(width + max(0, longest - self._half(width)), max(1, len(self._rows)))
        self.scroll_to(y=min(self.scroll_offset.y, max(0, self.virtual_size.height - 1)), animate=False)
        self.refresh()

    def _highlight(self, code: str) -> Text:
        if self._highlighter is None:
            from rich.syntax import Syntax

            dark = self.app.current_theme.dark if self.is_attached else True
            self._highlighter = Syntax("", self._lexer, theme="ansi_dark" if dark else "ansi_light", background_color="default")
        text = self._highlighter.highlight(code.expandtabs(4))
        text.rstrip()
        return text

    def _line_text(self, index: int, width: int) -> Text:
        theme = self.app.current_theme if self.is_attached else None
        styles = diff_styles(theme)
        if not self.diff:
            lines = self._unified or [""]
            return Text(lines[index], style="dim" if self.placeholder == "no diff" else "bold") if index < len(lines) else Text("")
        if self.mode == "unified":
            line = self._unified[index]
            kind = _unified_kind(line)
            if kind in ("meta", "hunk"):
                text = Text(line, style=styles[kind])
            else:
                text = Text(line[:1] or " ")
                text.append_text(self._highlight(line[1:]))
            text.stylize(styles[kind])
            return self._with_gutter(text, self._marked[index])
        left, right, lk, rk = self._rows[index]
        half = self._half(width)
        offset = self.scroll_offset.x
        out = Text(" ", no_wrap=True)  # the left side's gutter column, as the right has one after the `│`
        for code, kind, last in ((left, lk, False), (right, rk, True)):
            marked = kind.endswith(MARK)
            kind = kind.rstrip(MARK)
            if kind == "blank":
                cell = Text("")
            elif kind in ("meta", "hunk"):
                cell = Text(code)
            else:
                cell = self._highlight(code)
            cell = self._window(cell, offset, half)
            cell.stylize(styles[kind])
            out.append_text(self._with_gutter(cell, marked))
            if not last:
                out.append(" │ ", style="dim")
        return out

    def _half(self, width: int) -> int:
        """A side's columns: the width less the left's gutter and ` │ `, halved (less the `!` gutter if any)."""
        return max(10, (width - 4) // 2) - (1 if self.marks_shown else 0)

    def _view_width(self) -> int:
        """The columns lines are drawn in: the widget's width less a vertical scrollbar (which covered the right
        side's last columns, its `…` among them)."""
        return self.scrollable_content_region.width if self.is_mounted else self.size.width

    @staticmethod
    def _window(cell: Text, offset: int, half: int) -> Text:
        """`half` columns of a side from `offset` (the view scrolled sideways): a line cut on the right ends in `…`,
        one scrolled past on the left starts with `‹`; never a silent cut."""
        if offset and cell.cell_len:
            cell = cell.divide([offset])[-1] if offset < len(cell) else Text("")
            if cell.cell_len:
                cell = Text("‹", style="bold").append_text(cell.divide([1])[-1])
        if cell.cell_len > half:
            cell = cell.divide([half - 1])[0]
            cell.append("…", style="bold")
        cell.truncate(half, pad=True)
        return cell

    def _with_gutter(self, text: Text, marked: bool) -> Text:
        """`!` before a line that held a hidden character; a blank column before the others (only when any is marked)."""
        if not self.marks_shown:
            return text
        out = Text(MARK, style=MARK_STYLE) if marked else Text(" ")
        out.append_text(text)
        return out

    def render_line(self, y: int) -> Strip:
        scroll_x, scroll_y = self.scroll_offset
        index = scroll_y + y
        width = self._view_width()
        total = len(self._unified) if self.mode == "unified" else len(self._rows)
        if index >= max(total, 1):
            return Strip.blank(width, self.rich_style)
        key = (self.mode, index, scroll_x, width)
        strip = self._cache.get(key)
        if strip is None:
            text = self._line_text(index, width)
            segments = list(text.render(self.app.console))
            line = Strip(segments).crop(scroll_x, scroll_x + width) if self.mode == "unified" else Strip(segments)
            strip = line.extend_cell_length(width).crop(0, width).apply_style(self.rich_style)
            if len(self._cache) > 4000:
                self._cache.clear()
            self._cache[key] = strip
        return strip


def _unified_kind(line: str) -> str:
    if line.startswith(("---", "+++")):
        return "meta"
    if line.startswith("@@"):
        return "hunk"
    if line.startswith("-"):
        return "del"
    if line.startswith("+"):
        return "add"
    return "ctx"
