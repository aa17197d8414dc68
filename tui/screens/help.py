"""`?`: the keys of the panels and screens first, then the global keys, read off the real bindings as the
keymap remapped them."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingsMap
from textual.containers import Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Footer, Label, Static

#: What a key does, in more words than its footer label (by binding id); a binding not named here shows its label.
DETAIL = {
    "table.open": "open the row: every field, the full error and traceback, the payload as JSON, charts (y copies)",
    "table.first": "first row (the newest: the list follows it)",
    "feed.open": "open the line: the event's every field (y copies)",
    "feed.last": "the oldest line held; again there: page back through the stored event log",
    "tools.disable": "disable (asks) or enable the selected tool",
    "tools.circuit_open": "hold the selected tool's circuit open (asks)",
    "buffers.flush": "flush the selected buffer now",
    "buffers.clear": "clear the selected buffer (type the buffer's id)",
    "buffers.dead_letter": "the buffer's dead-letter batches",
    "failures.mark": "mark a failure by hand",
    "failures.only_fallbacks": "only failed or fallback resilient runs",
    "evolution.approve": "approve (choose a scope)",
    "evolution.reject": "reject (asks why)",
    "evolution.cancel": "cancel a running evolution",
    "evolution.evolve": "evolve the selected tool with a hint",
    "evolution.diff_mode": "unified or side-by-side diff",
    "evolution.stats": "statistics: approval rate, rounds, where validation fails, tokens",
    "tool.disable": "disable (asks, with what it stops) or enable",
    "tool.circuit_open": "hold the circuit open (asks)",
    "tool.circuit_closed": "close the circuit",
    "dead_letter.replay": "replay the batch",
    "dead_letter.replay_all": "replay all (asks, with the count)",
    "sort": "sort by the column under the cursor (again: reverse)",
    "maximize": "maximise the focused panel",
    **{f"jump_{n}": f"jump to {name} (z then maximises)"
       for n, name in enumerate(("Tools", "Buffers", "Failures", "Evolution", "Activity"), 1)},
}


def key_rows(app: Any, where: str, bindings: Iterable[Binding]) -> list[tuple[str, str, str]]:
    """(where, keys, what) for each binding with a description, its keys as the keymap in tooldeck.toml
    remapped them (the way Textual applies it when a key is pressed)."""
    chosen = BindingsMap(bindings)
    chosen.apply_keymap(app._keymap)  # noqa: SLF001 - Textual keeps the keymap here and has no getter
    grouped: dict[str, tuple[list[str], Binding]] = {}
    for _key, binding in chosen:
        if not binding.description:
            continue
        keys, _ = grouped.setdefault(binding.id or f"{binding.action} {binding.description}", ([], binding))
        keys.append(app.get_key_display(binding))
    return [(where, " ".join(keys), DETAIL.get(binding.id or "", binding.description)) for keys, binding in grouped.values()]


def help_rows(app: Any) -> list[tuple[str, str, str]]:
    """Every key `?` lists, read off the real bindings (panels and screens first, then the app's): a key remapped
    or added shows here as it works."""
    from tui.screens.dead_letter import DeadLetterScreen
    from tui.screens.tool_detail import ToolDetailScreen
    from tui.widgets.buffers_panel import BuffersPanel
    from tui.widgets.evolution_panel import EvolutionPanel
    from tui.widgets.failures_panel import FailuresPanel
    from tui.widgets.feed import Feed
    from tui.widgets.live_table import LiveTable
    from tui.widgets.tools_panel import ToolsPanel

    sections: list[tuple[str, Any]] = [
        ("Tables", LiveTable), ("Tools", ToolsPanel), ("Buffers", BuffersPanel), ("Failures", FailuresPanel),
        ("Evolution", EvolutionPanel), ("Activity", Feed), ("Tool screen", ToolDetailScreen),
        ("Dead letter", DeadLetterScreen), ("Help", HelpScreen),
    ]
    rows = [row for where, owner in sections for row in key_rows(app, where, owner.BINDINGS)]
    return rows + key_rows(app, "everywhere", type(app).BINDINGS)


class HelpScreen(ModalScreen[None]):
    BINDINGS = [Binding("escape,q,question_mark", "dismiss(None)", "Close", id="help.close"),
                Binding("j,down", "scroll(1)", "Down", show=False, id="help.down"),
                Binding("k,up", "scroll(-1)", "Up", show=False, id="help.up"),
                Binding("pagedown,space", "scroll(10)", "Page down", show=False, id="help.page_down"),
                Binding("pageup", "scroll(-10)", "Page up", show=False, id="help.page_up")]

    def __init__(self, rows: list[tuple[str, str, str]]) -> None:
        """`rows`: (where, keys, what), from `help_rows`."""
        super().__init__()
        self.rows = rows

    def compose(self) -> ComposeResult:
        table = Table(box=None, show_header=True, header_style="bold", expand=True)
        table.add_column("where", no_wrap=True)
        table.add_column("key", no_wrap=True)
        table.add_column("what")
        for where, key, description in self.rows:
            table.add_row(where, key, description)
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
