"""`?`: every key, generated from the live bindings so a remapped key shows as remapped."""

from __future__ import annotations

from rich.table import Table
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Label, Static

PANEL_KEYS = [
    ("Tools", "enter", "open the tool: manifest, recent calls and failures, operator controls"),
    ("Buffers", "f / x / d", "flush now / clear (asks first) / dead-letter batches and replay"),
    ("Failures", "m / enter", "mark a failure by hand / expand a resilient call into its hops"),
    ("Evolution", "a / r / b / c", "approve (asks the scope) / reject (asks why) / roll back / cancel"),
    ("Evolution", "e / v", "evolve the selected tool with a hint / unified or side-by-side diff"),
    ("Any table", "s", "sort by the column under the cursor (again: reverse)"),
]


class HelpScreen(ModalScreen[None]):
    BINDINGS = [Binding("escape,q,question_mark", "dismiss(None)", "Close", id="help.close")]

    def __init__(self, bindings: list[tuple[str, str]]) -> None:
        super().__init__()
        self.bindings_shown = bindings

    def compose(self) -> ComposeResult:
        table = Table(box=None, show_header=True, header_style="bold", expand=True)
        table.add_column("where")
        table.add_column("key")
        table.add_column("what")
        for key, description in self.bindings_shown:
            table.add_row("everywhere", key, description)
        for where, key, description in PANEL_KEYS:
            table.add_row(where, key, description)
        table.add_row("command line", ":", '/tool evolve csv_parser "Support JSON input too"')
        table.add_row("", "", '/tool call json_parser {"text": "[1,2]"}   /buffer flush usage_tracking   /spec specs/x.md')
        with Vertical(classes="dialog wide", id="help"):
            yield Label("tooldeck keys", classes="dialog-question")
            with VerticalScroll():
                yield Static(table)
            yield Label("keys can be remapped in tooldeck.toml [keymap], e.g. quit = \"ctrl+q\"; esc closes", classes="dialog-note")
