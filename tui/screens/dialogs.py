"""Small modal screens: confirm, ask for text, choose one option, show a result."""

from __future__ import annotations

from typing import Any

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, OptionList, Static


def _heading(title: str, note: str) -> ComposeResult:
    """A dialog's question, and its note when it has one."""
    yield Label(title, classes="dialog-question")
    if note:
        yield Static(note, classes="dialog-note")


class ConfirmScreen(ModalScreen[bool]):
    """Yes / no before anything destructive (clear, reject, rollback)."""

    BINDINGS = [Binding("escape", "dismiss(False)", "Cancel", id="dialog.cancel"),
                Binding("y", "dismiss(True)", "Yes", id="dialog.yes"), Binding("n", "dismiss(False)", "No", id="dialog.no")]

    def __init__(self, question: str, *, danger: bool = True) -> None:
        super().__init__()
        self.question = question
        self.danger = danger

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label(self.question, classes="dialog-question")
            with Horizontal(classes="dialog-buttons"):
                yield Button("Yes (y)", variant="error" if self.danger else "primary", id="yes")
                yield Button("No (n)", id="no")

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "yes")


class PromptScreen(ModalScreen[dict[str, str] | None]):
    """Ask for one or more text fields; returns {name: value} or None when cancelled."""

    BINDINGS = [Binding("escape", "dismiss(None)", "Cancel", id="dialog.cancel")]

    def __init__(self, title: str, fields: list[tuple[str, str, str]], *, note: str = "") -> None:
        """`fields` are (name, label, default)."""
        super().__init__()
        self.title_text = title
        self.fields = fields
        self.note = note

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield from _heading(self.title_text, self.note)
            for name, label, default in self.fields:
                yield Label(label)
                yield Input(value=default, id=f"field-{name}")
            with Horizontal(classes="dialog-buttons"):
                yield Button("OK (enter)", variant="primary", id="ok")
                yield Button("Cancel (esc)", id="cancel")

    def _values(self) -> dict[str, str]:
        return {name: self.query_one(f"#field-{name}", Input).value for name, _, _ in self.fields}

    def on_input_submitted(self, event: Input.Submitted) -> None:
        inputs = list(self.query(Input))
        index = inputs.index(event.input)
        if index + 1 < len(inputs):
            inputs[index + 1].focus()
        else:
            self.dismiss(self._values())

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(self._values() if event.button.id == "ok" else None)


class ChoiceScreen(ModalScreen[str | None]):
    """Pick one option (e.g. the scope of an approval)."""

    BINDINGS = [Binding("escape", "dismiss(None)", "Cancel", id="dialog.cancel")]

    def __init__(self, title: str, options: list[tuple[str, str]], *, note: str = "") -> None:
        """`options` are (value, label)."""
        super().__init__()
        self.title_text = title
        self.options = options
        self.note = note

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield from _heading(self.title_text, self.note)
            yield OptionList(*[label for _, label in self.options], id="choices")

    def on_mount(self) -> None:
        self.query_one(OptionList).focus()

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        self.dismiss(self.options[event.option_index][0])


class TextScreen(ModalScreen[None]):
    """A scrollable view of a result (a call's output, a spec summary, a section)."""

    BINDINGS = [Binding("escape,q", "dismiss(None)", "Close", id="dialog.close")]

    def __init__(self, title: str, body: Any) -> None:
        super().__init__()
        self.title_text = title
        self.body = body

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog wide"):
            yield Label(self.title_text, classes="dialog-question")
            with VerticalScroll():
                yield Static(self.body, classes="text-body")
            yield Label("esc closes", classes="dialog-note")
