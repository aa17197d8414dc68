"""Activity: the event stream from every process using this workspace."""

from __future__ import annotations

import time
from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.widgets import RichLog

from state.events import Event
from tui.snapshot import Snapshot
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


class ActivityPanel(Panel):
    title = "Activity"

    def compose(self) -> ComposeResult:
        yield RichLog(id="activity-log", max_lines=2000, wrap=False, markup=False, highlight=False, auto_scroll=True)

    def fingerprint(self, snapshot: Snapshot) -> Any:
        return snapshot.events[-1].id if snapshot.events else "no new events"

    def apply(self, snapshot: Snapshot, colors: dict[str, str]) -> bool:
        if not snapshot.events:
            return False
        log = self.query_one(RichLog)
        for event in snapshot.events:
            log.write(self.format(event, colors))
        self.border_subtitle = f"last event #{snapshot.events[-1].id}"
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
