"""Buffers: fill levels, rates with a sparkline, the next flush, and what went wrong."""

from __future__ import annotations

import time
from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding

from tui.snapshot import Snapshot
from tui.style import bar, sparkline
from tui.widgets.live_table import LiveTable
from tui.widgets.panel import Panel

COLUMNS = [("buffer", "buffer"), ("fill", "fill"), ("pending", "pending"), ("of max", "of_max"), ("in/s", "in"),
           ("out/s", "out"), ("trend", "trend"), ("strategy", "strategy"), ("next", "next"), ("last flush", "last"),
           ("retries", "retries"), ("dead", "dead"), ("drops", "drops"), ("note", "note")]


def _when(ts: float | None, now: float) -> str:
    if ts is None:
        return ""
    delta = ts - now
    if delta <= 0:
        return "due"
    return f"{delta:.1f} s" if delta < 60 else f"{delta / 60:.0f} min"


class BuffersPanel(Panel):
    title = "Buffers"
    BINDINGS = [
        Binding("f", "flush", "Flush", id="buffers.flush"),
        Binding("x", "clear", "Clear", id="buffers.clear"),
        Binding("d", "dead_letter", "Dead letter", id="buffers.dead_letter"),
    ]

    def compose(self) -> ComposeResult:
        yield LiveTable(COLUMNS, id="buffers-table")

    @property
    def table(self) -> LiveTable:
        return self.query_one(LiveTable)

    def fingerprint(self, snapshot: Snapshot) -> Any:
        now = int(time.time())  # "next flush" counts down in whole seconds
        return now, repr(snapshot.buffers)

    def apply(self, snapshot: Snapshot, colors: dict[str, str]) -> bool:
        now = time.time()
        rows = [(b["buffer_id"], self._cells(b, colors, now)) for b in snapshot.buffers]
        changed = self.table.apply(rows)
        unflushed = sum(1 for b in snapshot.buffers if b.get("warning"))
        self.border_subtitle = f"{len(snapshot.buffers)} buffers" + (f" · {unflushed} not flushing" if unflushed else "")
        return changed

    @staticmethod
    def _cells(b: dict[str, Any], colors: dict[str, str], now: float) -> tuple:
        fill = bar(b["fill_ratio"], 8, colors)
        fill.append(f" {b['fill_ratio'] * 100:3.0f}%")
        of_max = "" if b.get("pending_ratio") is None else f"{b['pending_ratio'] * 100:.0f}% of {b['max_pending']}"
        last = ""
        if b.get("last_flush_at"):
            result = b.get("last_flush_result") or ""
            last = Text(f"{result} {b.get('last_flush_count') or 0} @{time.strftime('%H:%M:%S', time.localtime(b['last_flush_at']))}",
                        style=colors["ok"] if result == "ok" else colors["error"])
        note = Text(b.get("warning") or (b.get("last_flush_error") or ""), style=colors["warn"] if b.get("warning") else colors["error"])
        strategy = b["flush_strategy"] + (f" {b['max_size']}/{b['flush_interval_seconds']:g}s" if b["flush_strategy"] == "batched" else "")
        trend = Text(sparkline([float(v) for v in b.get("writes_history", ())], 12), style=colors["accent"])
        dead = Text(str(b.get("dead_letter_batches", 0)), style=colors["error"] if b.get("dead_letter_batches") else "")
        return (b["buffer_id"], fill, f"{b['pending']}/{b['max_size']}", of_max, f"{b['writes_per_s']:.0f}", f"{b['flushed_per_s']:.0f}",
                trend, strategy, _when(b.get("next_flush_at"), now), last, str(b.get("retries_total", 0)), dead,
                str(b.get("dropped_total", 0)), note)

    def selected_buffer(self) -> str | None:
        return self.table.selected_key()

    def set_filter(self, text: str) -> None:
        self.table.set_filter(text)

    def sort(self) -> str | None:
        return self.table.sort_by_cursor_column()

    def action_flush(self) -> None:
        buffer_id = self.selected_buffer()
        if buffer_id is None:
            self.app.set_status("no buffer selected")
            return
        from tui.commands import Command

        self.app.run_command(Command("buffer.flush", buffer_id))

    def action_clear(self) -> None:
        buffer_id = self.selected_buffer()
        if buffer_id is None:
            self.app.set_status("no buffer selected")
            return
        from tui.commands import Command

        self.app.run_command(Command("buffer.clear", buffer_id))

    def action_dead_letter(self) -> None:
        buffer_id = self.selected_buffer()
        if buffer_id is None:
            self.app.set_status("no buffer selected")
            return
        from tui.screens.dead_letter import DeadLetterScreen

        self.app.push_screen(DeadLetterScreen(buffer_id))
