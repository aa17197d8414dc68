"""`?`: the keys of the panels and screens first, then the global keys (as remapped by the keymap)."""

from __future__ import annotations

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Footer, Label, Static

PANEL_KEYS = [
    ("Any row", "enter", "open it: every field, the full error and traceback, the payload as JSON, charts (y copies)"),
    ("Tools", "enter", "the tool: manifest, recent calls and failures, failure rate and circuit charts, controls"),
    ("Tools", "d / o", "disable (asks) or enable / hold the circuit open (asks), on the selected row"),
    ("Buffers", "f / x / d", "flush now / clear (type the buffer's id) / dead-letter batches"),
    ("Failures", "m / F", "mark a failure by hand / only failed or fallback resilient runs"),
    ("Evolution", "a / r / b / c", "approve (choose a scope) / reject (asks why) / roll back / cancel a running one"),
    ("Evolution", "e / v / V", "evolve the selected tool with a hint / unified or side-by-side diff / validate again"),
    ("Tool screen", "d / r / t", "disable (asks, with what it stops) or enable / reset the score / remove a tag"),
    ("Tool screen", "o / c / y", "hold the circuit open (asks) / close it / copy"),
    ("Dead letter", "r / R / enter", "replay the batch / replay all (asks, with the count) / every item of the batch"),
    ("Panels", "1-5", "jump to Tools, Buffers, Failures, Evolution, Activity (z then maximises)"),
    ("Tables", "s", "sort by the column under the cursor (again: reverse)"),
    ("Tables", "home g / end G / j k", "first row (the newest: the list follows it) / last row / down, up"),
    ("Activity", "end G", "at the oldest line held: page back through the stored event log"),
    ("Help", "j k / pgup pgdn", "scroll this list"),
]


class HelpScreen(ModalScreen[None]):
    BINDINGS = [Binding("escape,q,question_mark", "dismiss(None)", "Close", id="help.close"),
                Binding("j,down", "scroll(1)", "Down", show=False, id="help.down"),
                Binding("k,up", "scroll(-1)", "Up", show=False, id="help.up"),
                Binding("pagedown,space", "scroll(10)", "Page down", show=False, id="help.page_down"),
                Binding("pageup", "scroll(-10)", "Page up", show=False, id="help.page_up")]

    def __init__(self, bindings: list[tuple[str, str]]) -> None:
        super().__init__()
        self.bindings_shown = bindings

    def compose(self) -> ComposeResult:
        table = Table(box=None, show_header=True, header_style="bold", expand=True)
        table.add_column("where", no_wrap=True)
        table.add_column("key", no_wrap=True)
        table.add_column("what")
        for where, key, description in PANEL_KEYS:
            table.add_row(where, key, description)
        for key, description in self.bindings_shown:
            table.add_row("everywhere", key, description)
        table.add_row("everywhere", "ctrl+p", "command palette")
        table.add_row("command line", ":", '/tool evolve csv_parser "Support JSON input too"')
        table.add_row("", "", '/tool call json_parser {"text": "[1,2]"}   /buffer flush usage_tracking   /spec specs/x.md')
        self.table = table
        with Vertical(classes="dialog wide", id="help"):
            yield Label("tooldeck keys", classes="dialog-question")
            with VerticalScroll(id="help-body"):
                yield Static(table)
            yield Label(Text('keys can be remapped in tooldeck.toml [keymap], e.g. quit = "ctrl+q"'), classes="dialog-note")
        yield Footer()

    def action_scroll(self, lines: int) -> None:
        body = self.query_one("#help-body", VerticalScroll)
        body.scroll_to(y=body.scroll_y + lines, animate=False)
