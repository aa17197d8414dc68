"""Activity: the event stream from every process using this workspace, one line per event."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from rich.text import Text
from textual import work
from textual.app import ComposeResult

from tui.details import Details, as_json, error_blocks, when
from tui.snapshot import Snapshot
from tui.style import shown
from tui.widgets.feed import Feed
from tui.widgets.live_table import one_line
from tui.widgets.panel import Panel

if TYPE_CHECKING:
    from state.events import Event

_SKIP_KEYS = {"source", "path", "workspace"}


def compact(value: Any) -> str:
    """A payload value as it reads best on one line: strings as they are, the rest as compact JSON."""
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str)


def describe(event: Event) -> str:
    bits = []
    for key, value in event.payload.items():
        if key in _SKIP_KEYS or value in (None, "", [], {}):
            continue
        text = compact(value)
        bits.append(f"{key}={text[:80] + '…' if len(text) > 80 else text}")
    return " ".join(bits)


def mentions(event: Event, text: str) -> bool:
    """Whether `text` (any case) is in the event's kind, tool, version or payload: what a filtered line shows."""
    needle = text.lower()
    return any(needle in str(part).lower() for part in (event.kind, event.tool_id or "", event.version or "", describe(event)))


#: how many of the newest lines a new batch of events may fold into (tail mode only)
FOLD_LINES = 20

#: high-rate kinds whose consecutive events for the same buffer become one line
COALESCE = {"buffer.flush"}


@dataclass(frozen=True)
class Line:
    """One line of the feed: the last event of a run of `repeats` coalesced events carrying `items` items."""

    event: Event
    repeats: int = 1
    items: int = 0


def coalesce(events: list[Event], carried: list[tuple[Event, int, int]] | None = None) -> list[tuple[Event, int, int]]:
    """(last event, how many, items) per buffer for the high-rate kinds of one batch of events, even when
    several buffers' flushes interleave: a calm log under load (the line sits where the last one was).
    `carried` are the lines already shown at the top (oldest first) that the batch may fold into."""
    out: list[tuple[Event, int, int]] = list(carried or [])
    for event in events:
        count = int(event.payload.get("count", 0) or 0)
        if event.kind in COALESCE:
            key = (event.kind, event.payload.get("buffer_id"))
            for i in range(len(out) - 1, -1, -1):
                last, repeats, items = out[i]
                if (last.kind, last.payload.get("buffer_id")) == key:
                    del out[i]
                    out.append((event, repeats + 1, items + count))
                    break
            else:
                out.append((event, 1, count))
            continue
        out.append((event, 1, count))
    return out


def event_details(line: Line) -> Details:
    e = line.event
    fields: list[tuple[str, Any]] = [("kind", e.kind), ("when", when(e.ts)), ("event id", e.id), ("process", e.pid),
                                     ("session", e.session or "")]
    if e.tool_id:
        fields.append(("tool", f"{e.tool_id} {e.version or ''}".strip()))
    if line.repeats > 1:
        fields.append(("coalesced", f"the last of {line.repeats} events in a row ({line.items} items)"))
    blocks = []
    error = e.payload.get("error")
    if isinstance(error, str):
        blocks.extend(error_blocks(error))
    blocks.append(("payload", as_json(e.payload), "json"))
    data = {"id": e.id, "ts": e.ts, "pid": e.pid, "session": e.session, "kind": e.kind, "tool_id": e.tool_id,
            "version": e.version, "payload": e.payload}
    return Details(f"event #{e.id} {e.kind}", fields, blocks, data=data)


PAGE = 500  # events read per page back through the stored log
PAGES_PER_LOOK = 20  # with a filter, at most this many pages are read looking for a match


class ActivityPanel(Panel):
    title = "Activity"
    number = 5

    def on_mount(self) -> None:
        super().on_mount()
        self.border_subtitle = "newest first"
        self._paging = False
        self._reached_end = False  # a page back found nothing older: every stored event is held

    def compose(self) -> ComposeResult:
        yield Feed(id="activity-log", max_lines=2000)

    @property
    def feed(self) -> Feed:
        return self.query_one(Feed)

    def fingerprint(self, snapshot: Snapshot) -> Any:
        return snapshot.events[-1].id if snapshot.events else "no new events"

    def _lines(self, events: list[Event], colors: dict[str, str],
               carried: list[tuple[Event, int, int]] | None = None) -> list[tuple[Text, Line]]:
        """Events (oldest first) as feed lines, oldest first, repeated flushes of a buffer folded into one."""
        lines = []
        for event, repeats, items in coalesce(events, carried):
            lines.append((self.format(event, colors, repeats, items), Line(event, repeats, items)))
        return lines

    def apply(self, snapshot: Snapshot, colors: dict[str, str]) -> None:
        if not snapshot.events:
            return
        feed = self.feed
        carried: list[tuple[Event, int, int]] = []
        if feed.following and not feed.filter_text and any(e.kind in COALESCE for e in snapshot.events):
            # the newest lines are in view: flushes fold into their lines there, as within one batch, across the
            # other events between them (a failure a second under load); a batch without a flush has nothing to fold
            carried = [(line.event, line.repeats, line.items) for _text, line in reversed(feed.pop_newest(FOLD_LINES))]
        feed.add(self._lines(snapshot.events, colors, carried))
        self._subtitle()

    def restyle(self, colors: dict[str, str]) -> None:
        """Format every held line again in `colors` (a theme change), keeping the filter and the cursor."""
        feed = self.feed
        restyled = []
        for _text, line in feed.entries:
            restyled.append((self.format(line.event, colors, line.repeats, line.items), line))
        feed.replace_all(restyled)

    def _subtitle(self) -> None:
        feed = self.feed
        shown = f"{len(feed.view)} of {len(feed.entries)} events" if feed.filter_text else f"{len(feed.entries)} events"
        more = "back to the oldest stored" if getattr(self, "_reached_end", False) else "G/End pages back"
        self.border_subtitle = f"{shown} · newest first · {more}"

    def set_filter(self, text: str) -> None:
        self.filter_text = text
        self.feed.set_filter(text)
        self._subtitle()
        if text and len(self.feed.view) < max(20, self.feed.size.height):  # few matches held: look further back
            self.page_back()

    # -- paging back through the stored log -----------------------------------------

    def on_feed_at_end(self, message: Feed.AtEnd) -> None:
        message.stop()
        self.page_back()

    def page_back(self) -> None:
        """Read the next PAGE older events (the filter applied in the store) below the oldest line held."""
        runtime = self.runtime
        if runtime is None or self._paging or self._reached_end:
            return
        oldest = self.feed.oldest()
        before = oldest.event.id if oldest is not None else runtime.events.last_id() + 1
        self._paging = True
        self._read_older(runtime, before, self.feed.filter_text)

    @work(thread=True, exclusive=True, group="activity-page", exit_on_error=False)
    def _read_older(self, runtime: Any, before: int, text: str) -> None:
        """A page back, contiguous (the feed never holds a gap): with a filter, pages are read until one holds
        some matches (up to PAGES_PER_LOOK of them), so a rare match far back is found without a key per page."""
        events: list[Event] = []
        try:
            for _ in range(PAGES_PER_LOOK if text else 1):
                page = runtime.events.before(before, limit=PAGE)
                events = page + events
                if not page or not text or any(mentions(e, text) for e in page):
                    break
                before = page[0].id
        finally:
            self.app.call_from_thread(setattr, self, "_paging", False)
        self.app.call_from_thread(self._add_older, events, text)

    def _add_older(self, events: list[Event], text: str) -> None:
        if text != self.feed.filter_text:
            return  # the filter changed while the page was read
        if not events:
            self._reached_end = True
        else:
            from tui.style import theme_colors

            self.feed.add_older(list(reversed(self._lines(events, theme_colors(self.app)))))
        self._subtitle()

    def on_feed_selected(self, message: Feed.Selected) -> None:
        message.stop()
        self.app.open_details(event_details(message.item))

    def details_for_cursor(self) -> Details | None:
        item = self.feed.selected()
        return event_details(item) if item is not None else None

    @staticmethod
    def format(event: Event, colors: dict[str, str], repeats: int = 1, items: int = 0) -> Text:
        """One feed line; a fold of `repeats` flushes says so right after its kind, before the detail a narrow
        panel cuts (at the end of the line the count was cut off with it)."""
        kind = event.kind
        style = colors["error"] if ("error" in kind or "fail" in kind or "dead" in kind) else (
            colors["accent"] if kind.startswith(("promotion", "evolution")) else "")
        line = Text(time.strftime("%H:%M:%S ", time.localtime(event.ts)), style="dim")
        line.append(f"{kind:<22}", style=style)
        if repeats > 1:
            line.append(f" ×{repeats} ({items} items)", style=colors["accent"])
        if event.tool_id:
            line.append(f" {event.tool_id}")
            if event.version:
                line.append(f" {event.version}", style="dim")
        detail = describe(event)
        if detail:  # where the tool id would be when there is none (a buffer's flush), else after two blanks
            gap = "  " if event.tool_id else " "
            line.append_text(one_line(shown(f"{gap}{detail}", style or "dim")))
        line.append(f"  [{event.pid}]", style="dim")
        return line
