"""What an operator does on the dashboard: keys, the filter, the command line, dialogs, evolutions.

A mixin of `TooldeckApp` (tui/app.py keeps the layout, the runtime and the repaint loop).
Blocking work runs in thread workers and comes back as `ActionDone` / `Progress` messages.
"""

from __future__ import annotations

from typing import Any

from textual import work
from textual.widgets import Input, Static

from tui.messages import ActionDone, Progress
from tui.widgets.evolution_panel import EvolutionPanel
from tui.widgets.panel import Panel
from tui.widgets.tools_panel import ToolsPanel

#: how long a status line stays (an error's longer): after that it is old news and is cleared
STATUS_SECONDS, STATUS_ERROR_SECONDS = 15.0, 60.0


class CommandSuggester:
    """Completes tool and buffer ids on the command line from the latest snapshot."""

    def __init__(self, app: Any) -> None:
        self.app = app

    def __call__(self, value: str) -> str | None:
        from tui.commands import completions

        snap = self.app.latest
        tools = [t.tool_id for t in snap.tools] if snap else []
        buffers = [str(b.get("buffer_id")) for b in snap.buffers] if snap else []
        options = completions(value, tools, buffers)
        return options[0] if options else None



def status_line(what: str, text: str) -> str:
    """`what: text` for the status line, saying nothing twice: an outcome that already names the action
    (`evolve x (proposal 2): ...`) stands alone, one the action ends with (`x: disabled`) adds nothing, and
    one that starts with the action's target (`spec a.md` failing with `a.md: not found`) names it once, so a
    status cut at the terminal's edge keeps more of the reason."""
    if text.startswith(what):
        return text
    if what.endswith(text):
        return what
    target = what.rsplit(" ", 1)[-1]
    if " " in what and text.startswith(f"{target}: "):
        return f"{what}{text[len(target):]}"
    return f"{what}: {text}"

class OperatorActions:
    """Mixed into TooldeckApp; every method runs on the event loop unless marked a worker."""

    app: Any
    runtime: Any
    _stop: Any  # threading.Event set when the app quits
    latest: Any
    paused: bool
    main: Any  # the dashboard screen (TooldeckApp.main)
    _retitle: Any  # say the header again (TooldeckApp._retitle)
    _status_token = 0  # which status line is on screen: a progress line's owner clears it only while it is still there

    # -- actions -------------------------------------------------------------------

    def set_status(self, text: str, error: bool = False, *, progress: bool = False) -> int:
        """One line under the panels. It often carries a tool's or a model's error: shown visibly, never as markup, and
        as a table cell is (`one_line`): a newline is ⏎, a line wider than the terminal ends in `…` at its edge.

        A result is news for a while and is then cleared. A `progress` line (`counting what it affects…`) is true
        until its work ends, however long that takes, and no longer: its owner hands the token returned here to
        `end_status` when the work ends (done, failed, its dialog closed)."""
        from tui.widgets.live_table import one_line

        line = self.main.query_one("#status-line", Static)
        line.update(one_line(text))
        line.set_class(error, "error")
        self._status_token += 1
        timer = getattr(self, "_status_timer", None)
        if timer is not None:
            timer.stop()
        # a result is news for a while, not for minutes: cleared unless something newer replaced it
        self._status_timer = None if progress else self.set_timer(STATUS_ERROR_SECONDS if error else STATUS_SECONDS,
                                                                    self._clear_status)
        return self._status_token

    def end_status(self, token: int) -> None:
        """The work behind the progress line `token` ended: the line goes, unless something newer replaced it."""
        if token == self._status_token:
            self._clear_status()

    def _clear_status(self) -> None:
        line = self.main.query_one("#status-line", Static)
        line.update("")
        line.set_class(False, "error")

    def focused_panel(self) -> Panel | None:
        node = self.focused
        while node is not None and not isinstance(node, Panel):
            node = node.parent
        return node

    def action_help(self) -> None:
        from tui.screens.help import HelpScreen, help_rows

        self.push_screen(HelpScreen(help_rows(self)))

    def action_sessions(self) -> None:
        from tui.screens.sessions import SessionsScreen

        self.push_screen(SessionsScreen())

    def open_details(self, details: Any) -> None:
        from tui.screens.details import DetailScreen

        self.push_screen(DetailScreen(details))

    def action_filter(self) -> None:
        """`/` filters the focused panel; the box shows that panel's filter (each panel keeps its own)."""
        panel = self.focused_panel() or self._filter_target()
        self._filter_panel = panel
        box = self.main.query_one("#filter-input", Input)
        box.placeholder = f"filter {panel.title if panel else 'the focused panel'} (enter keeps it, esc clears)"
        box.value = getattr(panel, "filter_text", "")
        box.remove_class("hidden")
        box.focus()

    def on_input_changed(self, event: Input.Changed) -> None:
        if event.input.id != "filter-input":
            return
        panel = getattr(self, "_filter_panel", None)
        if panel is not None and getattr(panel, "filter_text", "") != event.value:
            panel.set_filter(event.value)

    def _filter_target(self) -> Panel | None:
        return getattr(self, "_filter_panel", None) or getattr(self, "_last_panel", None)

    def on_descendant_focus(self, event: Any) -> None:
        if not self.screen_stack:  # tearing down
            return
        panel = self.focused_panel()
        if panel is not None:
            self._last_panel = panel
            if self.compact:
                self._show_tab(panel)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        if event.input.id == "filter-input":
            self._refocus_panel()
        elif event.input.id == "command-input":
            self._command_submitted(event)

    def _refocus_panel(self) -> None:
        panel = getattr(self, "_filter_panel", None) or getattr(self, "_last_panel", None)
        if panel is not None:
            for widget in panel.query("*"):
                if widget.can_focus:
                    widget.focus()
                    return
        self.main.query_one("#tools-table").focus()

    def action_escape(self) -> None:
        box = self.main.query_one("#filter-input", Input)
        if box.has_focus:
            box.value = ""
            box.add_class("hidden")
            self._refocus_panel()
            return
        command = self.main.query_one("#command-input", Input)
        if not command.has_class("hidden"):  # open: esc closes it wherever the focus went meanwhile
            had_focus = command.has_focus
            command.add_class("hidden")
            if had_focus:
                self._refocus_panel()
            return
        panel = self.focused_panel()
        if panel is not None and panel.filter_text:
            if getattr(self, "_filter_panel", None) is panel:
                box.value = ""
            panel.set_filter("")
            box.add_class("hidden")
            return
        if self.screen.maximized is not None:
            self.screen.minimize()

    def action_sort(self) -> None:
        panel = self.focused_panel()
        if panel is not None:
            column = panel.sort()
            if column:
                self.set_status(f"sorted by {column}")

    def action_toggle_pause(self) -> None:
        self.paused = not self.paused
        self.set_status("live updates paused (space resumes)" if self.paused else "live updates resumed")
        if not self.paused:
            self._tick()
        self._retitle()

    def action_toggle_maximize(self) -> None:
        if self.screen.maximized is not None:
            self.screen.minimize()
            return
        panel = self.focused_panel()
        if panel is not None:
            self.screen.maximize(panel, container=False)

    def action_command_line(self) -> None:
        box = self.main.query_one("#command-input", Input)
        box.suggester = _Suggester(self)
        box.remove_class("hidden")
        box.value = box.value or "/"
        box.focus()
        box.cursor_position = len(box.value)

    def _command_submitted(self, event: Input.Submitted) -> None:
        box = event.input
        line = event.value
        box.value = ""
        box.add_class("hidden")
        self._refocus_panel()
        self.run_command_line(line)

    def run_command_line(self, line: str) -> None:
        from tui.commands import CommandError, parse

        try:
            command = parse(line)
        except CommandError as exc:
            self.set_status(f"{line.strip()}: {exc}", error=True)
            return
        self.run_command(command)

    def run_command(self, command: Any) -> None:
        """Run a command line or panel action; anything destructive or broad asks first, with its count."""
        from tui.actions import question_for, run_command

        what = f"{command.action} {command.target}"
        if command.action in ("buffer.clear", "tool.disable"):
            self.run_blocking(what, lambda rt: {"status": "asking", "question": question_for(rt, command)},
                              then=lambda message: self._confirm_command(command, message), progress=f"{what}: counting what it affects…")
            return
        self.run_blocking(what, run_command, command, progress=f"running {what}…")

    def _confirm_command(self, command: Any, message: ActionDone) -> None:
        from tui.actions import run_command

        if message.error or not isinstance(message.result, dict):
            return
        what = f"{command.action} {command.target}"
        typed = command.target if command.action == "buffer.clear" else None  # deleting items: type the buffer id
        self.confirm_then(message.result["question"], lambda: self.run_blocking(what, run_command, command, progress=f"running {what}…"),
                          type_to_confirm=typed)

    def confirm_then(self, question: str, then: Any, *, danger: bool = True, type_to_confirm: str | None = None) -> None:
        """Ask first (No has the focus); with `type_to_confirm`, the operator types that text to go on."""
        from tui.screens.dialogs import ConfirmScreen
        from tui.screens.dialogs import type_to_confirm as typed_screen

        def done(yes: Any) -> None:
            if yes:
                then()
            else:
                self.set_status("cancelled")

        screen = ConfirmScreen(question, danger=danger) if type_to_confirm is None else typed_screen(question, type_to_confirm)
        self.push_screen(screen, done)

    def run_blocking(self, what: str, fn: Any, *args: Any, then: Any = None, progress: str = "") -> None:
        """Run a blocking action off the event loop; the result comes back as ActionDone (then `then(message)`).
        `progress` is the status line while it runs (`counting every proposal…`), gone when it ends."""
        token = self.set_status(progress, progress=True) if progress else None
        self._run_blocking(what, fn, args, then, token)

    @work(thread=True, group="actions", exit_on_error=False)
    def _run_blocking(self, what: str, fn: Any, args: tuple[Any, ...], then: Any, progress: int | None) -> None:
        try:
            result = fn(self.runtime, *args)
        except Exception as exc:  # every failure becomes one line on screen
            message = getattr(exc, "message", None) or f"{type(exc).__name__}: {exc}"
            self.post_message(ActionDone(what, error=str(message), then=then, progress=progress))
            return
        self.post_message(ActionDone(what, result=result, then=then, progress=progress))

    def on_action_done(self, message: ActionDone) -> None:
        if not self.screen_stack:  # an action that ended while the dashboard closes: nothing left to show it on
            return
        if message.progress is not None:  # its outcome replaces it, or (a question asked) the dialog shows the answer
            self.end_status(message.progress)
        result = message.result
        if message.error:
            self.set_status(status_line(message.what, message.error), error=True)
        else:
            if isinstance(result, dict) and "screen" in result:
                from tui.screens.dialogs import TextScreen

                self.push_screen(TextScreen(result.get("title", message.what), result["screen"], copy_text=result.get("copy", "")))
            status = result.get("status", "done") if isinstance(result, dict) else "done"
            if status != "asking":
                self.set_status(status_line(message.what, str(status)))
        if message.then is not None:
            message.then(message)


    # -- panel helpers ---------------------------------------------------------------

    def selected_tool(self) -> str | None:
        return self.main.query_one(ToolsPanel).selected_tool()

    @work(thread=True, exclusive=True, group="proposal", exit_on_error=False)
    def load_proposal(self, proposal_id: int) -> None:
        from textual.worker import get_current_worker

        from tools.evolution import get_proposal

        proposal = get_proposal(self.runtime, proposal_id)
        if not get_current_worker().is_cancelled:  # a newer load was asked for: its answer is the one to show
            self.call_from_thread(self.main.query_one(EvolutionPanel).show_detail, proposal)

    def ask_evolve(self, tool_id: str) -> None:
        from tui.screens.dialogs import PromptScreen

        def done(values: dict[str, str] | None) -> None:
            if not values or not (values["hint"].strip() or values["error"].strip()):
                self.set_status("evolution cancelled (give a hint or an error)")
                return
            self.evolve(tool_id, values["hint"], values["error"])

        self.push_screen(PromptScreen(f"Evolve {tool_id}", [("hint", "what should change (mutation hint)", ""),
                                                            ("error", "the error to fix (optional)", "")],
                                      note="The model's candidate is validated in the sandbox, then waits for your review."), done)

    @work(thread=True, group="evolve", exit_on_error=False)
    def evolve(self, tool_id: str, hint: str, error: str) -> None:
        from tools.evolution import evolve_tool

        def progress(update: dict[str, Any]) -> None:
            self.post_message(Progress(f"evolve {tool_id}", str(update.get("message") or update.get("stage") or "")))

        try:
            # quitting the dashboard cancels a running evolution (recorded as cancelled, not left running)
            proposal = evolve_tool(self.runtime, tool_id, error, hint, progress=progress, cancel=self._stop)
        except Exception as exc:  # one line on screen: no model configured, unknown tool, ...
            self.post_message(ActionDone(f"evolve {tool_id}", error=getattr(exc, "message", None) or str(exc)))
            return
        self.post_message(ActionDone(f"evolve {tool_id}", result={"status": f"proposal #{proposal.get('id')} {proposal.get('status')}"}))

    def on_progress(self, message: Progress) -> None:
        self.set_status(f"{message.what}: {message.detail}", progress=True)  # until the next stage, or the outcome

    def open_tool(self, tool_id: str, version: str | None = None) -> None:
        from tui.screens.tool_detail import ToolDetailScreen

        self.push_screen(ToolDetailScreen(tool_id, version))

    def prefill_command(self, text: str) -> None:
        box = self.main.query_one("#command-input", Input)
        box.value = text
        self.action_command_line()


class _Suggester:
    """Adapter to Textual's Suggester interface (async get_suggestion)."""

    def __new__(cls, app: Any) -> Any:
        from textual.suggester import Suggester

        complete = CommandSuggester(app)

        class Completer(Suggester):
            async def get_suggestion(self, value: str) -> str | None:
                return complete(value)

        return Completer(use_cache=False, case_sensitive=True)
