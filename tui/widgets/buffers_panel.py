"""Buffers: how full each one is against its real capacity, its rates, the next flush, what went wrong.

Fill means pending against `max_pending` when the buffer has one (its real capacity). Without
it (the default) the bar is the progress to the next size-triggered flush, capped at 100%, and
the backlog beside it counts the full batches waiting behind that one (`+5 batches`).
"""

from __future__ import annotations

import time
from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding

from tools.cli.output import plural
from tui.details import Chart, Details, as_json, error_blocks, when
from tui.snapshot import Snapshot
from tui.style import bar, shown, sparkline
from tui.widgets.live_table import Col, LiveTable
from tui.widgets.panel import Panel

#: two bars, one meaning each: `next batch` is the items waiting against a batch's size (+N full batches behind
#: it), `capacity` the pending items against `max_pending` (— with no cap). Dead letters and retries outlast rates.
COLUMNS = [
    Col("buffer", "buffer", names_row=True), Col("next batch", "fill"), Col("pending", "pending"), Col("dead", "dead", drop=1),
    Col("capacity", "capacity", drop=1), Col("retries", "retries", drop=2),
    Col("next", "next", drop=2), Col("last flush", "last", drop=2), Col("note", "note", flex=True, drop=2, min_width=10),
    Col("batch", "batch", drop=3), Col("writes/s", "writes", drop=3), Col("flushed/s", "flushes", drop=3),
    Col("strategy", "strategy", drop=4), Col("drops", "drops", drop=4),
]
BAR = 6


def _when(ts: float | None, now: float) -> str:
    if ts is None:
        return ""
    delta = ts - now
    if delta <= 0:
        return "due"
    return f"{delta:.1f} s" if delta < 60 else f"{delta / 60:.0f} min"


def percent(ratio: float) -> str:
    """4 characters; under 10% with a decimal, so 37 of 10,000 reads 0.4%, not 0%."""
    value = ratio * 100
    return f"{value:3.1f}%" if value < 9.95 else f"{value:3.0f}%"


def capacity(b: dict[str, Any], colors: dict[str, str]) -> Text:
    """Pending items against `max_pending` (what `when_full` acts on), or — when the buffer has no cap."""
    if not b.get("max_pending"):
        return Text("—", style="dim")
    ratio = int(b["pending"]) / int(b["max_pending"])
    text = bar(ratio, BAR, colors)
    text.append(f" {percent(ratio):>4}")
    return text


def fill(b: dict[str, Any], colors: dict[str, str]) -> Text:
    """Progress to the next size-triggered flush (the items waiting, not those in flight), plus the backlog."""
    pending, size = int(b["pending"]), max(1, int(b["max_size"]))
    waiting = int(b.get("waiting", pending))
    ratio = min(1.0, waiting / size)
    text = bar(ratio, BAR, {**colors, "warn": colors["ok"], "error": colors["ok"]})
    backlog = max(0, pending - size) // size
    if backlog:  # the next flush is due (a full bar); behind it, this many more full batches
        text.append(f" +{backlog} batch{'es' if backlog != 1 else ''}", style=colors["warn"])
    else:
        text.append(f" {percent(ratio):>4}")
    return text


def ago(ts: float, now: float) -> str:
    """How long ago, up to an hour; then the time of day."""
    seconds = max(0.0, now - ts)
    if seconds < 3600:
        return f"{seconds:.0f}s ago" if seconds < 60 else f"{seconds // 60:.0f}m ago"
    return time.strftime("at %H:%M", time.localtime(ts))


def rate(history: list[float], per_s: float, style: str) -> Text:
    text = Text(sparkline(history[-8:], 8).rjust(8), style=style)
    text.append(f" {per_s:.0f}")
    return text


def without_sink(error: str, sink: str | None) -> str:
    """A sink's error without its name repeated in front (`flaky_sink: flaky_sink: RuntimeError: x` -> `RuntimeError: x`)."""
    while sink and error.startswith(f"{sink}: "):
        error = error[len(sink) + 2:]
    return error


class BuffersPanel(Panel):
    title = "Buffers"
    number = 2
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

    def apply(self, snapshot: Snapshot, colors: dict[str, str]) -> None:
        now = time.time()
        self._status = {b["buffer_id"]: b for b in snapshot.buffers}
        held = getattr(self, "_errors", {})
        for b in snapshot.buffers:  # a sink's error stays in view until a flush succeeds, not for one cycle
            if b.get("last_flush_error"):
                held[b["buffer_id"]] = without_sink(str(b["last_flush_error"]), b.get("pass_through_tool"))
            elif b.get("last_flush_result") == "ok":
                held.pop(b["buffer_id"], None)
        self._errors = held
        rows = [(b["buffer_id"], self._cells(b, colors, now, held.get(b["buffer_id"]))) for b in snapshot.buffers]
        self.table.apply(rows)
        self.update_counts()

    def update_counts(self) -> None:
        status = getattr(self, "_status", {})
        unflushed = sum(1 for b in status.values() if b.get("warning"))
        self.border_subtitle = self.table.count_label("buffer") + (f" · {unflushed} not flushing" if unflushed else "")

    @staticmethod
    def _cells(b: dict[str, Any], colors: dict[str, str], now: float, error: str | None = None) -> tuple:
        last = ""
        if b.get("last_flush_at"):
            result = b.get("last_flush_result") or ""
            mark = "✓" if result == "ok" else "✗"
            last = Text(f"{mark} {b.get('last_flush_count') or 0} {ago(b['last_flush_at'], now)}",
                        style=colors["ok"] if result == "ok" else colors["error"])
        note = shown(b.get("warning") or error or "", colors["warn"] if b.get("warning") else colors["error"])
        strategy = b["flush_strategy"] + (f" {b['flush_interval_seconds']:g}s" if b["flush_strategy"] == "batched" else "")
        dead = Text(str(b.get("dead_letter_batches", 0)), style=colors["error"] if b.get("dead_letter_batches") else "")
        retries = Text(str(b.get("retries_total", 0)), style=colors["warn"] if b.get("retries_total") else "")
        return (b["buffer_id"], fill(b, colors), str(b["pending"]), dead, capacity(b, colors), retries,
                _when(b.get("next_flush_at"), now), last, note, str(b["max_size"]),
                rate(b.get("writes_history") or [], b["writes_per_s"], colors["accent"]),
                rate(b.get("flushed_history") or [], b["flushed_per_s"], colors["ok"]), strategy, str(b.get("dropped_total", 0)))

    def details(self, table: LiveTable, key: str) -> Details | None:
        b = getattr(self, "_status", {}).get(key)
        return buffer_details(b) if b is not None else None

    def selected_buffer(self) -> str | None:
        return self.table.selected_key()

    def _need_buffer(self) -> str | None:
        buffer_id = self.selected_buffer()
        if buffer_id is None:
            self.app.set_status("no buffer selected", error=True)
        return buffer_id

    def action_flush(self) -> None:
        buffer_id = self._need_buffer()
        if buffer_id is not None:
            from tui.commands import Command

            self.app.run_command(Command("buffer.flush", buffer_id))

    def action_clear(self) -> None:
        buffer_id = self._need_buffer()
        if buffer_id is not None:
            from tui.commands import Command

            self.app.run_command(Command("buffer.clear", buffer_id))

    def action_dead_letter(self) -> None:
        buffer_id = self._need_buffer()
        if buffer_id is not None:
            from tui.screens.dead_letter import DeadLetterScreen

            self.app.push_screen(DeadLetterScreen(buffer_id))


def buffer_details(b: dict[str, Any]) -> Details:
    bid = b["buffer_id"]
    fields: list[tuple[str, Any]] = [
        ("pending", f"{b['pending']} ({b.get('waiting', '?')} waiting, {b.get('in_flight', 0)} in flight)"),
        ("capacity (max_pending)", f"{b['max_pending']} ({b['when_full']} when full)" if b.get("max_pending") else "not set"),
        ("batch size (max_size)", b["max_size"]), ("strategy", b["flush_strategy"]),
        ("flush interval", f"{b['flush_interval_seconds']:g} s"), ("pass-through tool", b.get("pass_through_tool") or "none"),
        ("writes / flushed per s (60 s)", f"{b['writes_per_s']:.1f} / {b['flushed_per_s']:.1f}"),
        ("next flush", when(b.get("next_flush_at")) or "none due"),
        ("last flush", f"{b.get('last_flush_result') or '—'} {b.get('last_flush_count') or 0} items, {when(b.get('last_flush_at'))}"),
        ("retry batches", b.get("retry_batches", 0)), ("retries in total", b.get("retries_total", 0)),
        ("dead-letter", f"{plural(b.get('dead_letter_batches', 0), 'batch', 'batches')}, {plural(b.get('dead_letter_items', 0), 'item')}"),
        ("dropped in total", b.get("dropped_total", 0)),
        ("totals", f"{b.get('writes_total', 0)} written, {b.get('flushed_total', 0)} flushed in "
                   f"{plural(b.get('batches_total', 0), 'batch', 'batches')}"),
        ("flushed by", ", ".join(b.get("flushed_by") or []) or "no live runtime"),
    ]
    blocks = []
    if b.get("warning"):
        blocks.append(("warning", b["warning"], "text"))
    if b.get("last_flush_error"):
        blocks.extend(error_blocks(b["last_flush_error"]))
    blocks.append(("status", as_json(b), "json"))
    now = time.time()
    seconds = [now - len(b.get("writes_history") or []) + i for i in range(len(b.get("writes_history") or []))]
    charts = [Chart(f"{bid}: items written and flushed per second", seconds,
                    [("writes/s", [float(v) for v in b.get("writes_history") or []]),
                     ("flushed/s", [float(v) for v in b.get("flushed_history") or []])], ylabel="items/s")]

    def load(runtime: Any) -> Details:
        from tui.history import pending_history

        xs, pending = pending_history(runtime, bid)
        chart = Chart(f"{bid}: pending items over the last {int((now - xs[0]) / 60) + 1 if xs else 0} min", xs,
                      [("pending", pending)], ylabel="items")
        return Details(f"buffer {bid}", fields, blocks, [chart, *charts], data=b)

    return Details(f"buffer {bid}", fields, blocks, charts, data=b, load=load)
