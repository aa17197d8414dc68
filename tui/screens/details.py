"""Enter on any row: every field, the full error and traceback, the payload as JSON, charts; `y` copies."""

from __future__ import annotations

from typing import Any

from rich.console import Group
from rich.syntax import Syntax
from rich.table import Table
from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Footer, Label, Static

from tools.visible import json_visible, marked_lines, visible
from tui.details import Details
from tui.style import shown, shown_text


def fields_table(fields: list[tuple[str, Any]]) -> Table:
    """Every field, its value shown with control characters made visible (tools/visible.py), never as markup."""
    table = Table(box=None, show_header=False, expand=True, pad_edge=False)
    table.add_column("field", style="bold", no_wrap=True)
    table.add_column("value", overflow="fold")
    for name, value in fields:
        table.add_row(shown(name), shown_text(value) if isinstance(value, Text) else shown(value))
    return table


def block(heading: str, text: str, lexer: str, dark: bool = True) -> Group:
    """A titled block of foreign text (an error, a traceback, a payload, a diff), its hidden characters spelled out:
    JSON keeps its `\\uXXXX` form (still the same JSON); a diff marks each line that held one with `!`."""
    if lexer == "json":
        text = json_visible(text)
    elif lexer == "diff":
        lines = marked_lines(text)
        gutter = any(marked for _, marked in lines)
        text = "\n".join((("! " if marked else "  ") if gutter else "") + line for line, marked in lines)
    else:
        text = visible(text)
    body: Any = Text(text) if lexer == "text" else Syntax(text, lexer, word_wrap=True, background_color="default",
                                                          theme="ansi_dark" if dark else "ansi_light")
    return Group(Text(heading, style="bold underline"), body)


class DetailScreen(ModalScreen[None]):
    BINDINGS = [
        Binding("escape,q", "dismiss(None)", "Back", id="details.close"),
        Binding("y", "copy", "Copy", id="details.copy"),
    ]

    def __init__(self, details: Details) -> None:
        super().__init__()
        self.details = details

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog wide", id="details"):
            yield Label(shown(self.details.title), classes="dialog-question", id="details-title")
            with VerticalScroll(id="details-body"):
                yield Static(id="details-fields")
                yield Vertical(id="details-charts")
        yield Footer()

    def on_mount(self) -> None:
        self.show(self.details)
        if self.details.load is not None:
            self.load()

    @work(thread=True, exclusive=True, group="details", exit_on_error=False)
    def load(self) -> None:
        assert self.details.load is not None
        try:
            fuller = self.details.load(self.app.runtime)
        except Exception as exc:  # shown in the screen, the rest of the details stay
            self.app.call_from_thread(self.notify_error, f"{type(exc).__name__}: {exc}")
            return
        self.app.call_from_thread(self.show, fuller)

    def notify_error(self, text: str) -> None:
        self.notify(visible(text.split("\n")[0], multiline=False), title="details", severity="error", markup=False)

    def show(self, details: Details) -> None:
        self.details = details
        self.query_one("#details-title", Label).update(shown(details.title))
        parts: list[Any] = [fields_table(details.fields)]
        for heading, text, lexer in details.blocks:
            parts.extend([Text(""), block(heading, text, lexer, self.app.current_theme.dark)])
        self.query_one("#details-fields", Static).update(Group(*parts))
        charts = self.query_one("#details-charts", Vertical)
        charts.remove_children()
        if details.charts:
            from tui.widgets.chart import chart_widget

            charts.mount_all([chart_widget(chart) for chart in details.charts])

    def action_copy(self) -> None:
        text = self.details.copy_text()
        self.app.copy_to_clipboard(text)
        self.notify(f"copied {len(text):,} characters", title=self.details.title)
