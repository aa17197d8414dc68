"""Small modal screens: confirm, ask for text, choose one option, show a result. Each shows its own keys in its footer."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Footer, Input, Label, OptionList, Static

from tui.style import shown, shown_text


def _heading(title: str, note: str) -> ComposeResult:
    """A dialog's question, and its note when it has one."""
    yield Label(shown(title), classes="dialog-question")
    if note:
        yield Static(shown(note), classes="dialog-note")


class ConfirmScreen(ModalScreen[bool]):
    """Yes / no before anything destructive or broad (clear, replay all, disable, reject, rollback).

    No has the focus: Enter, the key that opens things everywhere else, answers no; yes is `y` or a
    deliberate move to the Yes button."""

    BINDINGS = [Binding("y", "dismiss(True)", "Yes", id="dialog.yes"), Binding("n", "dismiss(False)", "No", id="dialog.no"),
                Binding("escape", "dismiss(False)", "Cancel", id="dialog.cancel")]

    def __init__(self, question: str, *, danger: bool = True) -> None:
        super().__init__()
        self.question = question
        self.danger = danger

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label(shown(self.question), classes="dialog-question")
            with Horizontal(classes="dialog-buttons"):
                yield Button("Yes (y)", variant="error" if self.danger else "primary", id="yes")
                yield Button("No (n)", id="no")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#no", Button).focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "yes")


class PromptScreen(ModalScreen[dict[str, str] | None]):
    """Ask for one or more text fields; enter in any field submits, tab moves between them; None when cancelled."""

    BINDINGS = [Binding("escape", "dismiss(None)", "Cancel", id="dialog.cancel"),
                Binding("enter", "submit", "OK", id="dialog.ok", show=True, priority=False),
                Binding("tab", "app.focus_next", "Next field", id="dialog.next")]

    def __init__(self, title: str, fields: list[tuple[str, str, str]], *, note: str = "",
                 check: Callable[[dict[str, str]], str | None] | None = None) -> None:
        """`fields` are (name, label, default); `check` says what is wrong with the values (None: nothing), shown in
        the dialog with what was typed kept, so a mistake is corrected, not lost or sent to the main screen as keys."""
        super().__init__()
        self.title_text = title
        self.fields = fields
        self.note = note
        self.check = check

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield from _heading(self.title_text, self.note)
            for name, label, default in self.fields:
                yield Label(label)
                yield Input(value=default, id=f"field-{name}")
            yield Static("", id="dialog-error", classes="dialog-error hidden")
            with Horizontal(classes="dialog-buttons"):
                yield Button("OK (enter)", variant="primary", id="ok")
                yield Button("Cancel (esc)", id="cancel")
        yield Footer()

    def _values(self) -> dict[str, str]:
        return {name: self.query_one(f"#field-{name}", Input).value for name, _, _ in self.fields}

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.action_submit()

    def action_submit(self) -> None:
        values = self._values()
        problem = self.check(values) if self.check is not None else None
        error = self.query_one("#dialog-error", Static)
        if problem:
            error.update(shown(problem))
            error.remove_class("hidden")
            return
        self.dismiss(values)

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "ok":
            self.action_submit()
        else:
            self.dismiss(None)


def type_to_confirm(question: str, expected: str) -> PromptScreen:
    """A confirmation that asks to type `expected` (a buffer's id before its items are deleted): a deliberate act,
    as `kubectl delete` habits expect, that no habitual Enter or `y` can give."""
    return PromptScreen(question, [("confirm", f"type {expected} to confirm", "")],
                        check=lambda v: None if v["confirm"].strip() == expected else
                        f"type {expected} exactly to confirm, or esc to cancel")


class _Options(OptionList):
    def action_select(self) -> None:
        if self.highlighted is None and isinstance(self.screen, ChoiceScreen):
            self.screen.say(NOTHING_CHOSEN)  # in the dialog: a toast under a modal screen went unseen
            return
        super().action_select()


NOTHING_CHOSEN = "nothing chosen yet: pick an option with ↑/↓ first, or esc to cancel"


class ChoiceScreen(ModalScreen[str | None]):
    """Pick one option (the scope of an approval). Nothing is chosen until the operator moves to an option.

    What stops a choice (none made yet, `check` refusing it, or `say` from its caller: the proposal was decided
    meanwhile) is said in the dialog, which stays open; esc cancels."""

    BINDINGS = [Binding("escape", "dismiss(None)", "Cancel", id="dialog.cancel"),
                Binding("enter", "choose", "Choose", id="dialog.choose")]

    def __init__(self, title: str, options: list[tuple[str, str]], *, note: str = "", preselect: bool = True,
                 check: Callable[[str], str | None] | None = None) -> None:
        """`options` are (value, label); `preselect=False` starts with no option highlighted (a bare enter only says
        to pick one); `check` says why a value cannot be chosen now (None: it can)."""
        super().__init__()
        self.title_text = title
        self.options = options
        self.note = note
        self.preselect = preselect
        self.check = check

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield from _heading(self.title_text, self.note)
            yield _Options(*[shown(label, multiline=False) for _, label in self.options], id="choices")  # session labels are foreign
            yield Static("", id="dialog-error", classes="dialog-error hidden")
        yield Footer()

    def on_mount(self) -> None:
        choices = self.query_one(OptionList)
        choices.highlighted = 0 if self.preselect and self.options else None
        choices.focus()

    def say(self, problem: str) -> None:
        """Show why nothing was chosen (or can be), in the dialog."""
        error = self.query_one("#dialog-error", Static)
        error.update(shown(problem))
        error.remove_class("hidden")

    def action_choose(self) -> None:
        self._choose(self.query_one(OptionList).highlighted)

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        event.stop()
        self._choose(event.option_index)

    def _choose(self, index: int | None) -> None:
        if index is None:
            self.say(NOTHING_CHOSEN)
            return
        value = self.options[index][0]
        problem = self.check(value) if self.check is not None else None
        if problem:
            self.say(problem)
            return
        self.dismiss(value)


class TextScreen(ModalScreen[None]):
    """A scrollable view of a result (a call's output, a spec summary, a section); `y` copies it."""

    BINDINGS = [Binding("escape,q", "dismiss(None)", "Close", id="dialog.close"), Binding("y", "copy", "Copy", id="dialog.copy")]

    def __init__(self, title: str, body: Any, *, copy_text: str = "") -> None:
        super().__init__()
        self.title_text = title
        self.body = body
        self.copy_text = copy_text

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog wide"):
            yield Label(shown(self.title_text), classes="dialog-question")
            with VerticalScroll():
                yield Static(self._body(), classes="text-body")
        yield Footer()

    def _body(self) -> Any:
        """A result is a tool's or a model's text: a string or `Text` is made visible (tools/visible.py); a `Syntax`
        (JSON) gets its hidden characters as `\\uXXXX`; richer renderables are built visible by their callers."""
        from rich.syntax import Syntax
        from rich.text import Text

        from tools.visible import json_visible

        if isinstance(self.body, str):
            return shown(self.body)
        if isinstance(self.body, Text):
            return shown_text(self.body)
        if isinstance(self.body, Syntax):
            import copy

            body = copy.copy(self.body)  # `y` copies the real text
            body.code = json_visible(body.code)
            return body
        return self.body

    def action_copy(self) -> None:
        text = self.copy_text or str(getattr(self.body, "code", None) or getattr(self.body, "plain", None) or self.body)
        self.app.copy_to_clipboard(text)
        self.notify(f"copied {len(text):,} characters")
