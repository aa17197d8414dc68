"""A newest-first feed with a cursor and a filter that repaints without a screen layout.

RichLog grows its virtual height with every line, and every virtual-size change makes
Textual lay out (and repaint) the whole screen: ~120 ms a time on a busy dashboard. This
feed keeps its lines newest first and grows its virtual height in steps of CHUNK rows, so
adding lines repaints only this widget; the blank rows it keeps in reserve sit below the
oldest line, out of the way. Each line carries the item it shows; Enter posts it. While the
feed has focus the cursor stays on its item as newer lines arrive above it.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from rich.style import Style
from rich.text import Text
from textual.binding import Binding
from textual.geometry import Size
from textual.message import Message
from textual.reactive import Reactive
from textual.scroll_view import ScrollView
from textual.strip import Strip

from tui.messages import NewAbove

CHUNK = 200


class Feed(ScrollView, can_focus=True):
    COMPONENT_CLASSES = {"feed--cursor"}
    DEFAULT_CSS = """
    Feed > .feed--cursor { background: $block-cursor-blurred-background; }
    Feed:focus > .feed--cursor { background: $block-cursor-background; color: $block-cursor-foreground; }
    """
    BINDINGS = [
        Binding("enter", "select", "Open", id="feed.open"),
        Binding("up,k", "move(-1)", "Up", show=False, id="feed.up"),
        Binding("down,j", "move(1)", "Down", show=False, id="feed.down"),
        Binding("pageup", "page(-1)", "Page up", show=False, id="feed.page_up"),
        Binding("pagedown", "page(1)", "Page down", show=False, id="feed.page_down"),
        Binding("home,g", "first", "Newest", show=False, id="feed.first"),
        Binding("end,G", "last", "Oldest", show=False, id="feed.last"),
    ]

    #: growing the virtual height (in CHUNK steps) must not lay out the screen: only the scrollbar changes
    virtual_size: Reactive[Size] = Reactive(Size(0, 0), layout=False)

    def watch_virtual_size(self, size: Size) -> None:
        self._refresh_scrollbars()
        self._scroll_update(size)

    @dataclass
    class Selected(Message):
        feed: Feed
        item: Any

    @dataclass
    class AtEnd(Message):
        """The cursor reached the oldest line: the owner may page back (`add_older`)."""

        feed: Feed

    def __init__(self, *, max_lines: int = 1000, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.entries: deque[tuple[Text, Any]] = deque(maxlen=max_lines)  # newest first
        self.view: list[tuple[Text, Any]] = []  # the entries that pass the filter, newest first
        self.filter_text = ""
        self.cursor = 0
        self.new_above = 0  # lines that came in above the cursor since it left the newest
        #: (id of a line's text, width, cursor) -> (that text, its rendering). The text is held so that its id
        #: cannot be reused while the entry lives: a line taken out and freed gave its address to a new
        #: line, which then showed the old one's rendering
        self._strips: dict[tuple[int, int, bool], tuple[Text, Strip]] = {}

    @property
    def lines(self) -> list[Text]:
        return [text for text, _ in self.view]

    def _matches(self, text: Text) -> bool:
        return not self.filter_text or self.filter_text.lower() in text.plain.lower()

    def add(self, lines: Iterable[tuple[Text, Any]]) -> None:
        """Add (line, item) pairs oldest first; they show newest first.

        Tail mode: with the cursor on the newest line and the view at the top, the newest line stays in
        view (and under the cursor); otherwise the cursor and the view keep their line, and the lines
        that arrive above are counted (NewAbove) until `g` / Home goes to the newest."""
        new = list(lines)
        if not new:
            return
        following = self.following
        for entry in new:
            self.entries.appendleft(entry)
        shown = [entry for entry in reversed(new) if self._matches(entry[0])]
        self.view[:0] = shown
        del self.view[len(self.entries):]
        if following or not shown:
            self._reframe()
            return
        self.cursor = min(self.cursor + len(shown), len(self.view) - 1)
        self._set_new_above(self.new_above + len(shown))
        self._reframe(scroll_by=len(shown))

    def _set_new_above(self, count: int) -> None:
        if count != self.new_above:
            self.new_above = count
            self.post_message(NewAbove(self, count))

    @property
    def following(self) -> bool:
        """Tail mode: the cursor on the newest line and the view at the top."""
        return self.cursor == 0 and self.scroll_offset.y == 0

    def pop_newest(self, n: int) -> list[tuple[Text, Any]]:
        """Take the `n` newest lines out (newest first), to be added again folded; only in tail mode."""
        if n <= 0 or not self.following:
            return []
        popped = [self.entries.popleft() for _ in range(min(n, len(self.entries)))]
        gone = {id(item) for _, item in popped}
        self.view = [entry for entry in self.view if id(entry[1]) not in gone]
        return popped

    def add_older(self, lines: Iterable[tuple[Text, Any]]) -> None:
        """Add (line, item) pairs, newest first, below the oldest line (a page back through the log): the feed
        grows to hold them, the cursor and the view stay where they are."""
        older = list(lines)
        if not older:
            return
        self.entries = deque(self.entries, maxlen=(self.entries.maxlen or 0) + len(older))
        self.entries.extend(older)
        self.view.extend(entry for entry in older if self._matches(entry[0]))
        self._reframe()

    def replace_all(self, entries: list[tuple[Text, Any]]) -> None:
        """The same items (newest first) with new lines (restyled): the cursor and the view stay on their items."""
        cursor_item = self.selected()
        self.entries = deque(entries, maxlen=self.entries.maxlen)
        self.view = [entry for entry in self.entries if self._matches(entry[0])]
        self.cursor = next((i for i, (_, it) in enumerate(self.view) if it is cursor_item), 0)
        self._strips.clear()
        self.refresh()

    def oldest(self) -> Any:
        """The item of the oldest line held (filtered or not), or None."""
        return self.entries[-1][1] if self.entries else None

    def set_filter(self, text: str) -> None:
        self.filter_text = text
        item = self.selected()
        self.view = [entry for entry in self.entries if self._matches(entry[0])]
        self.cursor = next((i for i, (_, it) in enumerate(self.view) if it is item), 0)
        self._set_new_above(0)
        self._strips.clear()
        self._reframe()
        self.scroll_to(y=0, animate=False)

    def selected(self) -> Any:
        return self.view[self.cursor][1] if 0 <= self.cursor < len(self.view) else None

    def _reframe(self, scroll_by: int = 0) -> None:
        live = {id(text) for text, _ in self.view}
        self._strips = {k: v for k, v in self._strips.items() if k[0] in live}
        height = max(CHUNK, -(-len(self.view) // CHUNK) * CHUNK)
        if self.virtual_size.height != height or self.virtual_size.width != self.size.width:
            self.virtual_size = Size(self.size.width, height)
        if scroll_by:
            self.scroll_to(y=self.scroll_offset.y + scroll_by, animate=False)
        self.refresh()

    def on_resize(self) -> None:
        self._strips.clear()
        self.virtual_size = Size(self.size.width, self.virtual_size.height)

    def on_focus(self) -> None:
        self.refresh()

    def on_blur(self) -> None:
        self.refresh()

    # -- keys ----------------------------------------------------------------------

    def _set_cursor(self, index: int) -> None:
        if not self.view:
            return
        self.cursor = max(0, min(len(self.view) - 1, index))
        if self.cursor == 0:
            self._set_new_above(0)
        if self.cursor == len(self.view) - 1:
            self.post_message(self.AtEnd(self))
        top, height = self.scroll_offset.y, self.size.height
        if self.cursor < top:
            self.scroll_to(y=self.cursor, animate=False)
        elif self.cursor >= top + height:
            self.scroll_to(y=self.cursor - height + 1, animate=False)
        self.refresh()

    def action_move(self, step: int) -> None:
        self._set_cursor(self.cursor + step)

    def action_page(self, direction: int) -> None:
        self._set_cursor(self.cursor + direction * max(1, self.size.height - 1))

    def action_first(self) -> None:
        self._set_cursor(0)

    def action_last(self) -> None:
        self._set_cursor(len(self.view) - 1)

    def action_select(self) -> None:
        item = self.selected()
        if item is not None:
            self.post_message(self.Selected(self, item))

    # -- rendering -------------------------------------------------------------------

    def render_line(self, y: int) -> Strip:
        index = self.scroll_offset.y + y
        width = self.scrollable_content_region.width or self.size.width  # less the scrollbar
        if index >= len(self.view):
            return Strip.blank(width, self.rich_style)
        line = self.view[index][0]
        on_cursor = index == self.cursor
        key = (id(line), width, on_cursor and self.has_focus)
        cached = self._strips.get(key) if not on_cursor else None
        strip = cached[1] if cached is not None and cached[0] is line else None
        if strip is None:
            text = line.copy()
            if self.filter_text:
                text.highlight_words([self.filter_text], "reverse", case_sensitive=False)
            text.truncate(width, overflow="ellipsis")  # one line; a cut shows as …
            segments = list(text.render(self.app.console))
            strip = Strip(segments).crop(0, width).extend_cell_length(width)
            style: Style = self.rich_style
            if on_cursor:
                style = style + self.get_component_rich_style("feed--cursor")
            strip = strip.apply_style(style)
            if not on_cursor:
                self._strips[key] = (line, strip)
        return strip
