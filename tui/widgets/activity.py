"""Activity: the event stream from every process using this workspace, one line per event."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from rich.text import Text
from textual.app import ComposeResult

from tui.details import Details, as_json, error_blocks, when
from tui.snapshot import Snapshot
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


#: high-rate kinds whose consecutive events for the same buffer become one line
COALESCE = {"buffer.flush"}


@dataclass(frozen=True)
class Line:
    """One line of the feed: the last event of a run of `repeats` coalesced events carrying `items` items."""

    event: Event
    repeats: int = 1
    items: int = 0


def coalesce(events: list[Event]) -> list[tuple[Event, int, int]]:
    """(last event, how many, items) per buffer for the high-rate kinds of one batch of events, even when
    several buffers' flushes interleave: a calm log under load (the line sits where the last one was)."""
    out: list[tuple[Event, int, int]] = []
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


class ActivityPanel(Panel):
    title = "Activity"
    number = 5

    def on_mount(self) -> None:
        super().on_mount()
        self.border_subtitle = "newest first"

    def compose(self) -> ComposeResult:
        yield Feed(id="activity-log", max_lines=2000)

    @property
    def feed(self) -> Feed:
        return self.query_one(Feed)

    def fingerprint(self, snapshot: Snapshot) -> Any:
        return snapshot.events[-1].id if snapshot.events else "no new events"

    def apply(self, snapshot: Snapshot, colors: dict[str, str]) -> bool:
        if not snapshot.events:
            return False
        lines = []
        for event, repeats, items in coalesce(snapshot.events):
            text = self.format(event, colors)
            if repeats > 1:
                text.append(f"  ×{repeats} ({items} items)", style=colors["accent"])
            lines.append((text, Line(event, repeats, items)))
        self.feed.add(lines)
        self._subtitle()
        return True

    def _subtitle(self) -> None:
        feed = self.feed
        shown = f"{len(feed.view)} of {len(feed.entries)} events" if feed.filter_text else f"{len(feed.entries)} events"
        self.border_subtitle = f"{shown} · newest first"

    def set_filter(self, text: str) -> None:
        self.filter_text = text
        self.feed.set_filter(text)
        self._subtitle()

    def on_feed_selected(self, message: Feed.Selected) -> None:
        message.stop()
        self.app.open_details(event_details(message.item))

    def details_for_cursor(self) -> Details | None:
        item = self.feed.selected()
        return event_details(item) if item is not None else None

    @staticmethod
    def format(event: Event, colors: dict[str, str]) -> Text:
        kind = event.kind
        style = colors["error"] if ("error" in kind or "fail" in kind or "dead" in kind) else (
            colors["accent"] if kind.startswith(("promotion", "evolution")) else "")
        line = Text(time.strftime("%H:%M:%S ", time.localtime(event.ts)), style="dim")
        line.append(f"{kind:<22}", style=style)
        if event.tool_id:
            line.append(f" {event.tool_id}")
            if event.version:
                line.append(f" {event.version}", style="dim")
        detail = describe(event)
        if detail:
            line.append_text(one_line(Text(f"  {detail}", style=style or "dim")))
        line.append(f"  [{event.pid}]", style="dim")
        return line
