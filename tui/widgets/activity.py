"""Activity: the event stream from every process using this workspace."""

from __future__ import annotations

import time
from typing import Any

from rich.text import Text
from textual.app import ComposeResult

from state.events import Event
from tui.snapshot import Snapshot
from tui.widgets.feed import Feed
from tui.widgets.panel import Panel

_SKIP_KEYS = {"source", "path", "workspace"}


def describe(event: Event) -> str:
    bits = []
    for key, value in event.payload.items():
        if key in _SKIP_KEYS or value in (None, "", [], {}):
            continue
        text = value if isinstance(value, str) else str(value)
        bits.append(f"{key}={text[:80]}")
    return " ".join(bits)


#: high-rate kinds whose consecutive events for the same buffer become one line
COALESCE = {"buffer.flush"}


def coalesce(events: list[Event]) -> list[tuple[Event, int, int]]:
    """(last event, how many, items) per run of same-kind events of one buffer: a calm log under load."""
    out: list[tuple[Event, int, int]] = []
    for event in events:
        count = int(event.payload.get("count", 0) or 0)
        if out and event.kind in COALESCE:
            last, repeats, items = out[-1]
            if last.kind == event.kind and last.payload.get("buffer_id") == event.payload.get("buffer_id"):
                out[-1] = (event, repeats + 1, items + count)
                continue
        out.append((event, 1, count))
    return out


class ActivityPanel(Panel):
    title = "Activity"

    def on_mount(self) -> None:
        super().on_mount()
        self.border_subtitle = "newest first"

    def compose(self) -> ComposeResult:
        yield Feed(id="activity-log", max_lines=2000)

    def fingerprint(self, snapshot: Snapshot) -> Any:
        return snapshot.events[-1].id if snapshot.events else "no new events"

    def apply(self, snapshot: Snapshot, colors: dict[str, str]) -> bool:
        if not snapshot.events:
            return False
        lines = []
        for event, repeats, items in coalesce(snapshot.events):
            line = self.format(event, colors)
            if repeats > 1:
                line.append(f"  ×{repeats} ({items} items)", style=colors["accent"])
            lines.append(line)
        self.query_one(Feed).add(lines)
        return True

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
            line.append(f"  {detail}", style=style or "dim")
        line.append(f"  [{event.pid}]", style="dim")
        return line
