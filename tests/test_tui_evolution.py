"""The evolution panel end to end: evolve with the replay provider, review the diff, approve in the UI,
and the next call is served by the new version; then roll back and reject."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.messages_server import anthropic_server_fixture, messages_server_fixture  # noqa: F401
from tests.tui_helpers import table_keys, wait_for
from tools.cli.demo_workspace import prepare_demo_workspace
from tools.errors import ToolError
from tui.app import TooldeckApp
from tui.screens.dialogs import ChoiceScreen, ConfirmScreen, PromptScreen
from tui.widgets.diff_view import DiffView
from tui.widgets.evolution_panel import EvolutionPanel

JSON_INPUT = {"text": '[{"name": "ada", "age": 36}]'}


@pytest.fixture
def demo_ws(tmp_path: Path, backend) -> Path:
    """The demo workspace, on each backend."""
    ws, _ = prepare_demo_workspace(str(tmp_path / "demo"))
    return ws


def status_of(table, key: str) -> str:
    return str(table.get_cell(key, "status"))


async def evolve_from_ui(app: TooldeckApp, pilot, hint: str) -> None:
    tools = app.query_one("#tools-table")
    tools.move_cursor(row=tools.get_row_index("csv_parser"), column=0)
    app.query_one("#proposals-table").focus()
    await pilot.press("e")
    await wait_for(pilot, lambda: isinstance(app.screen, PromptScreen), what="the evolve dialog")
    app.screen.query_one("#field-hint").value = hint
    app.screen.query_one("#field-error").value = "JSONDecodeError"
    app.screen.query_one("#field-hint").focus()
    await pilot.press("enter")  # enter in the first field submits (OK (enter) means what it says)


async def select_proposal(app: TooldeckApp, pilot, proposal_id: int) -> EvolutionPanel:
    """Move the proposals table's cursor to a proposal once it is listed; returns the panel once it details it."""
    proposals = app.query_one("#proposals-table")
    key = str(proposal_id)
    await wait_for(pilot, lambda: key in table_keys(proposals), what="the proposal")
    proposals.focus()
    proposals.move_cursor(row=proposals.get_row_index(key), column=0)
    panel = app.query_one(EvolutionPanel)
    await wait_for(pilot, lambda: panel.detail is not None and panel.detail.get("id") == proposal_id, what="its detail")
    return panel


async def test_evolve_review_approve_then_served_then_rollback_and_reject(demo_ws: Path) -> None:
    app = TooldeckApp(demo_ws, poll_seconds=0.1)
    try:
        async with app.run_test(size=(160, 50)) as pilot:
            tools = app.query_one("#tools-table")
            await wait_for(pilot, lambda: "csv_parser" in table_keys(tools), what="tools")
            with pytest.raises(ToolError):
                app.runtime.call("csv_parser", JSON_INPUT)  # the base version is CSV-only
            await evolve_from_ui(app, pilot, "Support JSON input too")
            proposals = app.query_one("#proposals-table")
            await wait_for(pilot, lambda: "1" in table_keys(proposals) and status_of(proposals, "1") == "awaiting_review",
                           timeout=60, what="a proposal awaiting review")
            panel = app.query_one(EvolutionPanel)
            await wait_for(pilot, lambda: panel.detail is not None and panel.detail.get("status") == "awaiting_review",
                           what="the proposal detail")
            diff = app.query_one(DiffView)
            assert "csv_parser" in diff.diff and diff.mode == "unified"
            proposals.focus()
            await pilot.press("v")
            assert diff.mode == "side-by-side"
            await pilot.press("a")
            await wait_for(pilot, lambda: isinstance(app.screen, ChoiceScreen), what="the scope choice")
            choices = app.screen.query_one("#choices")
            assert choices.highlighted is None, "no scope is pre-selected"
            await pilot.press("enter")  # a bare enter approves nothing
            await pilot.pause(0.3)
            assert isinstance(app.screen, ChoiceScreen) and status_of(proposals, "1") == "awaiting_review"
            await pilot.press("end", "enter")  # global is the last option
            await wait_for(pilot, lambda: status_of(proposals, "1") == "approved", timeout=30, what="approved")
            app.runtime.invalidate_promotions()
            result = app.runtime.call("csv_parser", JSON_INPUT)
            assert result["rows"][0]["name"] == "ada"
            assert app.runtime.resolve("csv_parser").served_version == "1.1.0"
            await wait_for(pilot, lambda: "↑global" in str(tools.get_cell("csv_parser", "version")), what="promoted in Tools")
            proposals.focus()
            await pilot.press("b")
            await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen), what="the rollback confirmation")
            await pilot.press("y")
            await wait_for(pilot, lambda: app.runtime.resolved_version("csv_parser")[0] is None or
                           (app.runtime.invalidate_promotions() or False), timeout=20, what="rolled back")
            app.runtime.invalidate_promotions()
            with pytest.raises(ToolError):
                app.runtime.call("csv_parser", JSON_INPUT)
            await evolve_from_ui(app, pilot, "Support JSON input, second attempt")
            await wait_for(pilot, lambda: "2" in table_keys(proposals) and status_of(proposals, "2") == "awaiting_review",
                           timeout=60, what="a second proposal")
            proposals.move_cursor(row=proposals.get_row_index("2"))
            await wait_for(pilot, lambda: panel.detail is not None and panel.detail.get("id") == 2, what="detail of #2")
            proposals.focus()
            status = app.query_one("#status-line")
            await pilot.press("V")  # validate again (sandboxed, no model call); a stale detail is read again first
            await wait_for(pilot, lambda: "#2 validated again" in str(status.render()), timeout=90, what="validated again")
            assert "#2 validated again: awaiting_review" in str(status.render())
            await wait_for(pilot, lambda: panel.detail is not None and panel.detail.get("id") == 2
                           and panel.detail.get("status") == "awaiting_review", what="the detail after it")
            await pilot.press("r")
            await wait_for(pilot, lambda: isinstance(app.screen, PromptScreen), what="the reject dialog")
            dialog = app.screen
            assert "(csv_parser 1.2.0)" in dialog.title_text  # names the tool and version
            await pilot.press("enter", "q")  # an empty reason: the dialog stays with the error, keys stay in it
            await wait_for(pilot, lambda: "a reason is required" in str(dialog.query_one("#dialog-error").render()),
                           what="the inline error")
            assert app.screen is dialog and dialog.query_one("#field-reason").value == "q" and app.is_running
            app.screen.query_one("#field-reason").value = "prefer the first version"
            await pilot.press("enter")
            await wait_for(pilot, lambda: status_of(proposals, "2") == "rejected", timeout=20, what="rejected")
    finally:
        app.shutdown()


async def test_cancel_a_running_evolution_from_the_panel(workspace: Path, anthropic_server) -> None:
    """`c` on a proposal still generating (the model is slow to answer) cancels it after a confirmation."""
    from tests.evolution_helpers import greet_answer, greet_tool, settings

    settings(workspace)
    greet_tool(workspace)
    anthropic_server.reply_tool_use("write_tool_version", greet_answer(), delay=8.0)
    app = TooldeckApp(workspace, poll_seconds=0.1)
    try:
        async with app.run_test(size=(160, 50)) as pilot:
            tools = app.query_one("#tools-table")
            await wait_for(pilot, lambda: "greet" in table_keys(tools), what="tools")
            app.evolve("greet", "Allow spaces", "")
            proposals = app.query_one("#proposals-table")
            await wait_for(pilot, lambda: "1" in table_keys(proposals) and status_of(proposals, "1") == "generating",
                           what="a running evolution")
            panel = app.query_one(EvolutionPanel)
            await wait_for(pilot, lambda: panel.detail is not None and panel.detail.get("status") == "generating",
                           what="its detail")
            proposals.focus()
            await pilot.press("c")
            await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen), what="the cancel confirmation")
            await pilot.press("y")
            await wait_for(pilot, lambda: status_of(proposals, "1") == "cancelled", timeout=20, what="cancelled")
    finally:
        app.shutdown()


async def test_a_proposal_repeating_a_rejected_approach_is_flagged_in_the_detail_details_and_approve_dialog(
        workspace: Path, make_runtime, anthropic_server) -> None:
    """The warning `review show` prints, in its words, wherever the dashboard shows the proposal or asks to approve it."""
    from tests.evolution_helpers import greet_tool, settings
    from tests.test_evolution_memory import evolved
    from tests.tui_helpers import screen_text
    from tools.evolution.review import reject
    from tui.screens.details import DetailScreen

    settings(workspace)
    greet_tool(workspace)
    rt = make_runtime()
    first = evolved(rt, anthropic_server)
    reject(rt, first["id"], "keep names as typed \x07", "bob")
    again = evolved(rt, anthropic_server)
    warning = f"REPEATS proposal {first['id']} (rejected): keep names as typed \\x07"
    app = TooldeckApp(workspace, poll_seconds=0.1)
    try:
        async with app.run_test(size=(200, 60)) as pilot:
            await select_proposal(app, pilot, again["id"])
            await pilot.pause()
            assert warning in screen_text(app)

            await pilot.press("enter")
            await wait_for(pilot, lambda: isinstance(app.screen, DetailScreen), what="the proposal's details")
            await pilot.pause()
            assert warning in screen_text(app)
            await pilot.press("escape")
            await wait_for(pilot, lambda: not isinstance(app.screen, DetailScreen), what="back")

            await pilot.press("a")
            await wait_for(pilot, lambda: isinstance(app.screen, ChoiceScreen), what="the scope choice")
            await pilot.pause()
            assert warning in screen_text(app)
            await pilot.press("escape")
    finally:
        app.shutdown()


async def test_the_approve_dialog_says_in_itself_that_a_scope_is_needed_and_that_the_proposal_was_decided_meanwhile(
        workspace: Path, make_runtime, anthropic_server) -> None:
    """A bare enter said nothing (a toast under the modal went unseen), and a proposal the CLI rejected while the
    dialog was open left it open, saying nothing until enter was refused on the status line behind it."""
    from textual.widgets import Static

    from tests.evolution_helpers import greet_tool, settings
    from tests.test_evolution_memory import evolved
    from tools.evolution.review import reject

    settings(workspace)
    greet_tool(workspace)
    cli = make_runtime()  # another process's runtime on the same state, as `tooldeck review reject` is
    pending = evolved(cli, anthropic_server)
    app = TooldeckApp(workspace, poll_seconds=0.1)
    try:
        async with app.run_test(size=(160, 50)) as pilot:
            await select_proposal(app, pilot, pending["id"])
            await pilot.press("a")
            await wait_for(pilot, lambda: isinstance(app.screen, ChoiceScreen), what="the scope choice")
            dialog = app.screen
            error = dialog.query_one("#dialog-error", Static)
            await pilot.press("enter")
            await pilot.pause()
            assert app.screen is dialog and not error.has_class("hidden")
            assert "pick an option" in str(error.render())

            reject(cli, pending["id"], "not this way", "bob")
            await wait_for(pilot, lambda: "rejected meanwhile" in str(error.render()), timeout=20,
                           what="the dialog saying the proposal was decided")
            await pilot.press("end", "enter")
            await pilot.pause()
            assert app.screen is dialog and "rejected meanwhile" in str(error.render())
            assert status_of(app.query_one("#proposals-table"), str(pending["id"])) == "rejected"
            await pilot.press("escape")
            assert not isinstance(app.screen, ChoiceScreen)
    finally:
        app.shutdown()
