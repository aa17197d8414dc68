"""Pilot tests of the dashboard shell: first paint, tools loading live, keys, the command line."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers import python_tool, write_tool
from tests.tui_helpers import screen_text, table_keys, wait_for
from tui.app import TooldeckApp
from tui.messages import SnapshotReady
from tui.screens.dialogs import TextScreen
from tui.screens.help import HelpScreen


@pytest.fixture
def ws(workspace: Path) -> Path:
    for name in ("alpha", "beta", "gamma"):
        python_tool(workspace / "tools", name, f"def run(d):\n    return {{'tool': '{name}', 'got': d}}\n")
    write_tool(workspace / "tools", "broken", "name: broken\ntype: wrong\n")
    return workspace


@pytest.fixture
def app(ws: Path) -> TooldeckApp:
    return TooldeckApp(ws, poll_seconds=0.1)


async def test_tools_appear_with_status_and_header_summary(app: TooldeckApp) -> None:
    seen: list[SnapshotReady] = []

    def hook(message: object) -> None:
        if isinstance(message, SnapshotReady):
            seen.append(message)

    try:
        async with app.run_test(size=(160, 50), message_hook=hook) as pilot:
            table = app.query_one("#tools-table")
            await wait_for(pilot, lambda: {"alpha", "beta", "gamma", "broken"} <= set(table_keys(table)), what="tools rows")
            await wait_for(pilot, lambda: app.sub_title.startswith("Ready:"), what="Ready in the header")
            assert "1 error" in app.sub_title
            assert seen, "the poller posts SnapshotReady messages"
            # the header updates with each snapshot; the table repaints on the next tick
            await wait_for(pilot, lambda: "error" in str(table.get_row("broken")[1]), what="the broken tool marked error")
            assert "wrong" in str(table.value("broken", "detail"))
            assert app.first_paint_at is not None
    finally:
        app.shutdown()


async def test_filter_sort_pause_maximise_help(app: TooldeckApp) -> None:
    try:
        async with app.run_test(size=(160, 50)) as pilot:
            table = app.query_one("#tools-table")
            await wait_for(pilot, lambda: "gamma" in table_keys(table), what="tools rows")
            table.focus()
            await pilot.press("slash")
            await pilot.press(*"alp")
            await wait_for(pilot, lambda: table_keys(table) == ["alpha"], what="filtered rows")
            await pilot.press("escape")
            await wait_for(pilot, lambda: "gamma" in table_keys(table), what="filter cleared")
            table.focus()
            table.move_cursor(column=0)
            await pilot.press("s")
            first = table_keys(table)
            await pilot.press("s")
            assert table_keys(table) == list(reversed(first))
            await pilot.press("space")
            assert app.paused and app.sub_title.startswith("PAUSED")
            applied = app.snapshots_applied
            await pilot.pause(0.5)
            assert app.snapshots_applied == applied, "paused: no snapshot applied"
            await pilot.press("space")
            assert not app.paused
            await pilot.press("z")
            assert app.screen.maximized is not None
            await pilot.press("escape")
            assert app.screen.maximized is None
            await pilot.press("question_mark")
            assert isinstance(app.screen, HelpScreen)
            await pilot.press("escape")
            assert not isinstance(app.screen, HelpScreen)
    finally:
        app.shutdown()


async def test_command_line_call_and_errors(app: TooldeckApp) -> None:
    try:
        async with app.run_test(size=(160, 50)) as pilot:
            table = app.query_one("#tools-table")
            await wait_for(pilot, lambda: "alpha" in table_keys(table), what="tools rows")
            await pilot.press("colon")
            box = app.query_one("#command-input")
            assert box.has_focus and box.value == "/"
            box.value = '/tool call alpha {"x": 1}'
            await pilot.press("enter")
            await wait_for(pilot, lambda: isinstance(app.screen, TextScreen), what="the call result")
            await pilot.press("escape")
            status = app.query_one("#status-line")
            await pilot.press("colon")
            box.value = "/tool frobnicate alpha"
            await pilot.press("enter")
            assert "unknown /tool command" in str(status.render()) and status.has_class("error")
            await pilot.press("colon")
            box.value = "/tool call nope {}"
            await pilot.press("enter")
            await wait_for(pilot, lambda: "unknown tool 'nope'" in str(status.render()), what="unknown tool error")
            await pilot.press("colon")
            box.value = "/tool call alpha {bad"
            await pilot.press("enter")
            assert "not valid JSON" in str(status.render())
    finally:
        app.shutdown()


async def test_quit_with_q_and_ctrl_c(ws: Path) -> None:
    for key in ("q", "ctrl+c"):
        app = TooldeckApp(ws, poll_seconds=0.1)
        try:
            async with app.run_test(size=(100, 30)) as pilot:
                await wait_for(pilot, lambda app=app: app.runtime is not None, what="runtime")
                await pilot.press(key)
                await pilot.pause(0.1)
                assert not app.is_running
        finally:
            app.shutdown()


async def test_keymap_from_settings_remaps_a_binding(ws: Path) -> None:
    (ws / "tooldeck.toml").write_text('[keymap]\nquit = "ctrl+q"\n"pause" = "p"\n')
    app = TooldeckApp(ws, poll_seconds=0.1)
    try:
        async with app.run_test(size=(120, 40)) as pilot:
            await wait_for(pilot, lambda: app.runtime is not None and app.runtime.catalog.finished.is_set(), what="runtime")
            await pilot.pause(0.2)
            await pilot.press("p")
            assert app.paused
            await pilot.press("ctrl+q")
            await pilot.pause(0.1)
            assert not app.is_running
    finally:
        app.shutdown()


async def test_a_keymap_value_that_is_no_key_is_shown_and_the_default_kept(ws: Path) -> None:
    """`quit = "nonsense+++"` took q away from quit, showed `nonsense+++` in the footer and said nothing."""
    (ws / "tooldeck.toml").write_text('[keymap]\nquit = "nonsense+++"\n"pause" = "p"\n')
    app = TooldeckApp(ws, poll_seconds=0.1)
    try:
        async with app.run_test(size=(120, 40)) as pilot:
            await wait_for(pilot, lambda: app.runtime is not None and app.runtime.catalog.finished.is_set(), what="runtime")
            status = str(app.query_one("#status-line").render())
            assert "[keymap]: not a key, kept the default: quit = 'nonsense+++'" in status, status
            await pilot.press("p")  # the good entry applies
            assert app.paused
            await pilot.press("q")
            await pilot.pause(0.1)
            assert not app.is_running
    finally:
        app.shutdown()


@pytest.mark.slow
async def test_every_builtin_theme_renders() -> None:
    from tests.tui_fixture import frame

    app = TooldeckApp(live=False)
    async with app.run_test(size=(120, 40)) as pilot:
        for name in sorted(app.available_themes):
            app.theme = name
            app.apply_snapshot(frame())
            await pilot.pause()
        assert app.snapshots_applied == len(app.available_themes)


@pytest.mark.parametrize(("what", "text", "line"), [
    ("evolve flaky_tool", "evolve flaky_tool (proposal 2): no recording", "evolve flaky_tool (proposal 2): no recording"),
    ("hang_tool: disabled", "disabled", "hang_tool: disabled"),
    ("ansi_tool 1.0.0: circuit forced open", "circuit forced open", "ansi_tool 1.0.0: circuit forced open"),
    ("reject #3", "proposal 3 is approved (decided meanwhile)", "reject #3: proposal 3 is approved (decided meanwhile)"),
    ("spec specs/a.md", "specs/a.md: no such file", "spec specs/a.md: no such file"),
    ("spec .env", ".env: dotfiles are not read", "spec .env: dotfiles are not read"),
    ("spec a.md", "a.mdx: other file", "spec a.md: a.mdx: other file"),
])
def test_the_status_line_says_an_outcome_once(what: str, text: str, line: str) -> None:
    from tui.app_actions import status_line

    assert status_line(what, text) == line


def status_row(app: TooldeckApp) -> str:
    """The status line as the terminal shows it."""
    return screen_text(app).splitlines()[app.query_one("#status-line").region.y]


def status_of(app: TooldeckApp) -> str:
    """What the status line says (under a dialog too)."""
    return str(app.main.query_one("#status-line").render())


async def test_a_status_wider_than_the_terminal_ends_in_an_ellipsis() -> None:
    """A long status was cut at the terminal's edge mid-word, nothing saying that more was there; a second line of
    it was dropped without a mark. It is one line as a table cell is: ⏎ for a newline, `…` where it is cut."""
    app = TooldeckApp(live=False)
    async with app.run_test(size=(80, 24)) as pilot:
        app.set_status("evolve flaky_tool: " + "the model answered with a candidate that " * 3 + "THE END", error=True)
        await pilot.pause()
        row = status_row(app)
        assert row.startswith(" evolve flaky_tool: the model answered") and row.rstrip().endswith("…"), row
        assert "THE END" not in row
        app.set_status("flaky_tool: exited with code 1\nTraceback \x1b[2J")
        await pilot.pause()
        assert status_row(app).strip() == "flaky_tool: exited with code 1⏎Traceback \\x1b[2J"


async def test_counting_what_an_action_affects_leaves_the_status_line_when_the_dialog_shows_the_count(app: TooldeckApp) -> None:
    """`tool.disable alpha: counting what it affects…` stayed under the dialog that already showed the count, and
    after the dialog closed."""
    from tui.screens.dialogs import ConfirmScreen

    try:
        async with app.run_test(size=(160, 50)) as pilot:
            await wait_for(pilot, lambda: app.runtime is not None and app.runtime.catalog.finished.is_set(), what="runtime")
            app.run_command_line("/tool disable alpha")
            assert "counting what it affects…" in status_of(app)
            await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen), what="the question with its count")
            assert "counting" not in status_of(app), status_of(app)
            await pilot.press("n")
            await wait_for(pilot, lambda: "cancelled" in status_of(app), what="the answer")
    finally:
        app.shutdown()


async def test_a_progress_line_lasts_as_long_as_its_work_and_no_longer(monkeypatch: pytest.MonkeyPatch) -> None:
    """A progress line is true while its work runs (a result's clock does not clear it) and goes when the work
    ends, unless a newer line replaced it."""
    import threading

    from tui import app_actions

    monkeypatch.setattr(app_actions, "STATUS_SECONDS", 0.05)
    release = threading.Event()

    def work(_runtime: object) -> dict[str, str]:
        release.wait(10)
        return {"status": "asking"}

    app = TooldeckApp(live=False)
    async with app.run_test(size=(120, 30)) as pilot:
        app.run_blocking("evolution stats", work, progress="counting every proposal…")
        await pilot.pause(0.3)  # a result would have been cleared by now
        assert "counting every proposal…" in status_of(app)
        release.set()
        await wait_for(pilot, lambda: not status_of(app).strip(), what="the line gone with its work")

        monkeypatch.setattr(app_actions, "STATUS_SECONDS", 60.0)
        release.clear()
        ended: list[object] = []
        app.run_blocking("evolution stats", work, then=ended.append, progress="counting every proposal…")
        app.set_status("sorted by score")  # newer than the progress line: its work ending leaves it
        release.set()
        await wait_for(pilot, lambda: ended, what="the work's end")
        assert "sorted by score" in status_of(app)


async def test_testing_a_tool_without_tests_from_the_palette_says_so_in_words(app: TooldeckApp) -> None:
    """The palette's "Test tool alpha" on a manifest without tests showed `[]` and `0 passed, 0 failed`."""
    from textual.command import CommandPalette

    try:
        async with app.run_test(size=(160, 50)) as pilot:
            await wait_for(pilot, lambda: "alpha" in table_keys(app.query_one("#tools-table")), what="tools rows")
            await pilot.press("ctrl+p")
            await wait_for(pilot, lambda: isinstance(app.screen, CommandPalette), what="the palette")
            await pilot.press(*"Test tool alpha")
            await wait_for(pilot, lambda: "Test tool alpha" in screen_text(app), what="the palette's hit")
            await pilot.press("enter")
            await wait_for(pilot, lambda: isinstance(app.screen, TextScreen) and "tests of alpha" in screen_text(app), what="the result")
            text = screen_text(app)
            assert "alpha 1.0.0: the manifest has no tests, so there is nothing to run" in text, text
            assert "[]" not in text
            assert "tool.test alpha: the manifest has no tests" in status_of(app)
    finally:
        app.shutdown()


async def test_help_lists_the_real_bindings_as_the_keymap_remapped_them(ws: Path) -> None:
    """`sessions = "W"`: the footer said `W Sessions` while `?` still listed `w`; and `?` left out the Evolution
    panel's `S` (statistics). Help is read off the bindings now."""
    (ws / "tooldeck.toml").write_text('[keymap]\nsessions = "W"\n"evolution.approve" = "A"\n')
    app = TooldeckApp(ws, poll_seconds=0.1)
    try:
        async with app.run_test(size=(160, 60)) as pilot:
            await wait_for(pilot, lambda: app.runtime is not None and app.runtime.catalog.finished.is_set(), what="runtime")
            await pilot.press("question_mark")
            await wait_for(pilot, lambda: isinstance(app.screen, HelpScreen), what="help")
            table = app.screen.table
            rows = list(zip(table.columns[0].cells, table.columns[1].cells, table.columns[2].cells, strict=True))
            assert ("everywhere", "W", "Sessions") in rows and not any(k == "w" for _, k, _ in rows), rows
            assert any(w == "Evolution" and k == "S" and "statistics" in d for w, k, d in rows), rows
            assert any(w == "Evolution" and k == "A" and d.startswith("approve") for w, k, d in rows), rows
            assert not any(w == "Evolution" and k == "a" for w, k, _ in rows), rows
    finally:
        app.shutdown()
