"""The dashboard shows what a model, a tool or an MCP server wrote with its control characters visible:
the diff view (unified and side by side, hidden characters marked `!`), the proposal's detail line and details
screen (explanation, stage output, failure, traceback), the Activity panel and an event's details, the tools and
failures panels, the status line."""

from __future__ import annotations

import dataclasses
import time

import pytest

from state.events import Event
from tests.test_tui_snapshots import FixedApp
from tests.tui_fixture import DIFF, T0, frame, proposal
from tests.tui_helpers import screen_text, wait_for
from tui.screens.details import DetailScreen
from tui.widgets.diff_view import DiffView
from tui.widgets.evolution_panel import EvolutionPanel

#: One character of every class, as the candidate, the model or the tool wrote it.
HIDDEN = "\x1b[2J\x1b[H\x07\x7f\x9b\u202e\u2066\u200b\ufeff\U000e0041"
ATTACK = '+__import__("os").system("id")  # \x1b[2K\x1b[1G    name = name.strip()'
RAW = {c for c in HIDDEN if not c.isprintable()} | {"\r"}


def assert_visible(text: str, *spelled: str) -> None:
    leaked = sorted({f"U+{ord(c):04X}" for c in text if c in RAW})
    assert not leaked, f"raw characters reached the screen: {leaked}"
    for form in spelled:
        assert form in text, form


def hostile() -> dict:
    diff = DIFF.rstrip("\n") + f"\n{ATTACK}\n+# {HIDDEN}\n-x = 1 \u202e\n"
    stages = [*proposal()["stages"][:2], {"name": "tests", "passed": False, "ms": 3.0, "detail": f"1/2 passed: {HIDDEN}"}]
    return {**proposal(), "diff": diff, "stages": stages, "mutation_hint": f"hint {HIDDEN}",
            "explanation": f"allow spaces {HIDDEN} [bold]not markup[/bold]",
            "failure": f"tests: boom {HIDDEN} | Traceback (most recent call last):\n  File \"x.py\"\nValueError: {HIDDEN}"}


class HostileApp(FixedApp):
    def load_proposal(self, proposal_id: int) -> None:
        self.query_one(EvolutionPanel).show_detail(hostile())


def hostile_frame():
    snap = frame()
    tools = [dataclasses.replace(snap.tools[-1], error=f"broken {HIDDEN}"), *snap.tools[:-1]]
    failures = [{**snap.failures[0], "error": f"csv_parser: parse error {HIDDEN}"}, *snap.failures[1:]]
    events = [*snap.events, Event(5, T0, 1001, "s-2", "tool.error", "csv_parser", None, {"error": f"event {HIDDEN}"})]
    return dataclasses.replace(snap, tools=tools, failures=failures, events=events, proposals=[hostile()])


@pytest.fixture(autouse=True)
def _utc(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()


async def test_diff_view_spells_out_and_marks_hidden_characters() -> None:
    app = HostileApp(live=False)
    async with app.run_test(size=(200, 60)) as pilot:
        app.apply_snapshot(hostile_frame())
        diff = app.query_one(DiffView)
        await wait_for(pilot, lambda: diff.diff, what="the diff")
        await pilot.press("4", "z")  # the evolution panel maximised
        await pilot.pause()
        diff.scroll_to(y=len(diff._unified) - 4, animate=False)
        await pilot.pause()
        text = screen_text(app)
        assert_visible(text, '# \\x1b[2K\\x1b[1G    name = name.strip()', "<U+202E>", "<U+200B>", "<U+E0041>")
        marked = [line for line in text.splitlines() if "!+" in line or "!-" in line]
        assert any("\\x1b[2K" in line for line in marked) and any("<U+202E>" in line for line in marked), text
        assert " +++ b/" in text or " --- a/" in text or "  import" in text or " @@" in text  # the others get a blank gutter
        assert "hint hint \\x1b[2J" not in text and "hint: hint \\x1b[2J" in text  # the detail line
        assert "tests: boom \\x1b[2J" in text
        await pilot.press("v")  # side by side
        await pilot.pause()
        text = screen_text(app)
        assert_visible(text, "\\x1b[2K", "<U+202E>")
        assert any(line.count("!") >= 1 and "\\x1b[2K" in line for line in text.splitlines())


async def test_details_screens_activity_tools_and_failures_show_hidden_characters_visibly() -> None:
    app = HostileApp(live=False)
    async with app.run_test(size=(200, 60)) as pilot:
        app.apply_snapshot(hostile_frame())
        await wait_for(pilot, lambda: app.query_one(DiffView).diff, what="the diff")
        await pilot.pause()
        assert_visible(screen_text(app), "broken \\x1b[2J", "parse error \\x1b[2J", "event \\x1b[2J")  # tables, activity

        table = app.query_one("#proposals-table")
        table.focus()
        table.move_cursor(row=0, column=0)
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, DetailScreen), what="the proposal's details")
        await pilot.pause()
        screen = app.screen
        text = screen_text(app)
        assert_visible(text, "allow spaces \\x1b[2J", "[bold]not markup[/bold]", "1/2 passed: \\x1b[2J", "ValueError: \\x1b[2J")
        assert screen.details.data["explanation"] == hostile()["explanation"]  # `y` copies the real text
        screen.query_one("#details-body").scroll_end(animate=False)
        await pilot.pause()
        assert "! +__import__(\"os\").system(\"id\")  # \\x1b[2K" in screen_text(app)  # the diff block, marked
        await pilot.press("escape")
        await wait_for(pilot, lambda: not isinstance(app.screen, DetailScreen), what="back")

        from tui.widgets.activity import ActivityPanel, Line, event_details

        event = hostile_frame().events[-1]
        app.open_details(event_details(Line(event, 1, 1)))
        await wait_for(pilot, lambda: isinstance(app.screen, DetailScreen), what="the event's details")
        await pilot.pause()
        assert_visible(screen_text(app), "event \\x1b[2J")
        assert app.query(ActivityPanel)
        await pilot.press("escape")
        await wait_for(pilot, lambda: not isinstance(app.screen, DetailScreen), what="back")

        app.set_status(f"evolve greet: {HIDDEN} [red]x[/red]", error=True)
        await pilot.pause()
        assert_visible(screen_text(app), "evolve greet: \\x1b[2J", "[red]x[/red]")


async def test_tool_detail_screen_shows_a_description_and_a_failure_visibly(workspace) -> None:
    from tests.helpers import python_tool
    from tests.tui_helpers import runtime_ready
    from tools.errors import ToolError
    from tui.app import TooldeckApp
    from tui.screens.tool_detail import ToolDetailScreen

    python_tool(workspace / "tools", "sly", f"def run(data):\n    raise ValueError({HIDDEN!r})\n")
    manifest = workspace / "tools" / "sly.yaml"  # YAML admits bidi and zero-width characters raw in its source
    manifest.write_text(manifest.read_text().replace("description: test tool sly",
                                                     "description: 'sly \u202e\u2066\u200b\ufeff [red]x[/red]'"))
    app = TooldeckApp(workspace, poll_seconds=0.1)
    try:
        async with app.run_test(size=(200, 60)) as pilot:
            await runtime_ready(pilot, app)
            with pytest.raises(ToolError):
                app.runtime.call("sly", {})
            app.runtime.calls.flush()
            app.open_tool("sly")
            await wait_for(pilot, lambda: isinstance(app.screen, ToolDetailScreen) and app.screen.info, what="the tool screen")
            await pilot.pause()
            text = screen_text(app)
            assert_visible(text, "sly <U+202E><U+2066><U+200B><U+FEFF> [red]x[/red]", "\\x1b[2J\\x1b[H\\x07")
    finally:
        app.shutdown()


async def test_one_line_cells_spell_out_bel_and_cr_instead_of_dropping_them() -> None:
    """Rich's `Text` drops BEL, BS, VT, FF and CR: a cell built as `Text(error)` lost them before they could be
    spelled out, so `\\x1b]0;pwned-title\\x07 \\r\\x1b[31mRED` showed as `...pwned-title \\x1b[31mRED`."""
    from tui.screens.dead_letter import DeadLetterScreen

    failure = "\x1b]0;pwned-title\x07 \r\x1b[31mRED"
    sink = "sink down \x1b[31mRED\x1b[0m\rhidden"
    snap = frame()
    failures = [{**snap.failures[0], "error": failure}, *snap.failures[1:]]
    buffers = [{**b, "warning": None, "last_flush_error": sink} if b["buffer_id"] == "audit" else b for b in snap.buffers]
    events = [*snap.events, Event(5, T0, 1001, "s-2", "tool.error", "csv_parser", None, {"error": "event \x07\x08\x0b\x0c\r end"})]
    app = FixedApp(live=False)
    async with app.run_test(size=(240, 70)) as pilot:
        app.apply_snapshot(dataclasses.replace(snap, failures=failures, buffers=buffers, events=events))
        await pilot.pause()
        failures_table, buffers_table = app.query_one("#failures-table"), app.query_one("#buffers-table")
        error = next(str(failures_table.value(k, "error")) for k in (key.value for key in failures_table.rows)
                     if "pwned" in str(failures_table.value(k, "error")))
        assert "pwned-title\\x07 \\r\\x1b[31mRED" in error, error
        note = str(buffers_table.value("audit", "note"))
        assert "\\x1b[0m\\rhidden" in note, note
        assert_visible(screen_text(app), "event \\x07\\x08\\x0b\\x0c\\r end")  # the Activity line

        screen = DeadLetterScreen("audit")
        await app.push_screen(screen)
        await pilot.pause()
        screen._fill([{"batch_id": "b-1", "count": 1, "attempts": 3, "dead_at": T0, "last_error": sink, "items_preview": ["{}"]}])
        await pilot.pause()
        dead = screen.query_one("#dead-table")
        assert "\\x1b[0m\\rhidden" in str(dead.value("b-1", "error"))


def test_a_stage_detail_and_a_hop_reason_keep_bel_and_cr_in_the_details() -> None:
    """`Text.append` drops BEL and CR as the constructor does: a stage's detail in a proposal's details and a
    resilient hop's reason lost them."""
    from tui.widgets.evolution_panel import proposal_details
    from tui.widgets.failures_panel import hop_label

    colors = {"ok": "green", "error": "red", "warn": "yellow", "accent": "cyan", "primary": "blue", "muted": "dim"}
    stage = {"name": "tests", "passed": False, "ms": 3.0, "detail": "1/2 passed: \x07 bell \r over"}
    details = proposal_details({**proposal(), "stages": [stage]}, colors)
    line = dict(details.fields)["stage tests"]
    assert "\\x07 bell \\r over" in line.plain, line.plain
    hop = hop_label({"tool_id": "a", "version": "1", "outcome": "error", "why": "down \x07\rnow"}, colors)
    assert "down \\x07\\rnow" in hop.plain, hop.plain


def test_a_dashboard_cell_cut_to_its_column_never_ends_inside_a_spelled_out_character() -> None:
    """Rich cut `abc<U+202E>evil` to `abc<U+2…`, which hides what was there: the cut falls before the marker."""
    from rich.console import Console

    from tui.widgets.live_table import Cell, one_line

    console = Console(width=40, record=True, color_system=None)
    for width in range(5, 14):
        lines = console.render_lines(Cell(one_line("abc\u202eevil tail")), console.options.update_width(width))
        drawn = "".join(seg.text for seg in lines[0]).rstrip()
        assert drawn.endswith("…") and ("<" not in drawn or "<U+202E>" in drawn), (width, drawn)
