"""A newest-first feed that repaints without a screen layout.

RichLog grows its virtual height with every line, and every virtual-size change makes
Textual lay out (and repaint) the whole screen: ~120 ms a time on a busy dashboard. This
feed keeps its lines newest first and grows its virtual height in steps of CHUNK rows, so
adding lines repaints only this widget; the blank rows it keeps in reserve sit below the
oldest line, out of the way.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from typing import Any

from rich.text import Text
from textual.geometry import Size
from textual.scroll_view import ScrollView
from textual.strip import Strip

CHUNK = 200


class Feed(ScrollView, can_focus=True):
    def __init__(self, *, max_lines: int = 1000, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.lines: deque[Text] = deque(maxlen=max_lines)
        self._strips: dict[tuple[int, int], Strip] = {}

    def add(self, lines: Iterable[Text]) -> None:
        """Add lines oldest first; they show newest first. The view stays put when scrolled down."""
        new = list(lines)
        if not new:
            return
        for line in new:
            self.lines.appendleft(line)
        live = {id(line) for line in self.lines}
        self._strips = {k: v for k, v in self._strips.items() if k[0] in live}
        height = -(-len(self.lines) // CHUNK) * CHUNK
        if self.virtual_size.height != height or self.virtual_size.width != self.size.width:
            self.virtual_size = Size(self.size.width, height)
        if self.scroll_offset.y > 0:
            self.scroll_to(y=self.scroll_offset.y + len(new), animate=False)
        self.refresh()

    def on_resize(self) -> None:
        self._strips.clear()
        self.virtual_size = Size(self.size.width, self.virtual_size.height)

    def render_line(self, y: int) -> Strip:
        index = self.scroll_offset.y + y
        width = self.size.width
        if index >= len(self.lines):
            return Strip.blank(width, self.rich_style)
        line = self.lines[index]
        key = (id(line), width)
        strip = self._strips.get(key)
        if strip is None:
            segments = list(line.render(self.app.console))
            strip = Strip(segments).crop(0, width).extend_cell_length(width).apply_style(self.rich_style)
            self._strips[key] = strip
        return strip
