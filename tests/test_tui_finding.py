"""Finding things: a filter with counts and highlights in every panel, number keys, the footer and help,
first/last row keys, and resilient runs that keep the cursor on their run."""

from __future__ import annotations

import dataclasses
import time

import pytest

from tests.test_tui_snapshots import FixedApp
from tests.tui_fixture import T0, frame
from tests.tui_helpers import table_keys, wait_for
from tui.screens.help import HelpScreen
from tui.widgets.feed import Feed
from tui.widgets.live_table import LiveTable


@pytest.fixture(autouse=True)
def _utc(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()


async def shown(pilot) -> FixedApp:
    app = pilot.app
    app.apply_snapshot(frame())
    await pilot.pause()
    return app


async def type_filter(pilot, text: str) -> None:
    await pilot.press("slash")
    await pilot.press(*text)
    await pilot.press("enter")


@pytest.mark.parametrize(("number", "needle", "counts"), [
    (1, "parser", "2 of 7 tools"),
    (2, "audit", "1 of 4 buffers"),
    (3, "csv", "1 of 2 failures"),
    (4, "json", "2 of 3 proposals"),
    (5, "flush", "1 of 4 events"),
])
async def test_every_panel_filters_with_counts_and_highlights(number: int, needle: str, counts: str) -> None:
    app = FixedApp(live=False)
    async with app.run_test(size=(160, 50)) as pilot:
        await shown(pilot)
        await pilot.press(str(number))
        panel = app.focused_panel()
        assert panel is not None and panel.number == number
        await type_filter(pilot, needle)
        assert counts in panel.border_subtitle, panel.border_subtitle
        main = panel.query(LiveTable).first() if panel.query(LiveTable) else panel.query_one(Feed)
        if isinstance(main, LiveTable):
            rows = [main.get_row_at(i) for i in range(main.row_count)]
            assert rows and all(any(needle in str(c).lower() for c in row) for row in rows)
            assert any(span.style == "reverse" for row in rows for c in row for span in c.text.spans), "matches are highlighted"
        else:
            assert main.view and all(needle in text.plain for text in main.lines)
        await pilot.press("escape")  # esc on the panel clears its filter
        assert " of " not in panel.border_subtitle.split("·")[0]


async def test_number_keys_jump_and_z_maximises_the_panel_jumped_to() -> None:
    app = FixedApp(live=False)
    async with app.run_test(size=(160, 50)) as pilot:
        await shown(pilot)
        await pilot.press("4")
        assert app.focused_panel().id == "evolution-panel"
        await pilot.press("z")
        assert app.screen.maximized is not None and app.screen.maximized.id == "evolution-panel"
        await pilot.press("2")  # a jump restores the layout first
        assert app.screen.maximized is None and app.focused_panel().id == "buffers-panel"


async def test_footer_lists_enter_where_it_opens_and_help_lists_panel_keys_first() -> None:
    from textual.widgets._footer import FooterKey

    app = FixedApp(live=False)
    async with app.run_test(size=(160, 50)) as pilot:
        await shown(pilot)
        await pilot.press("1")
        await pilot.pause(0.2)
        keys = {k.action: k.description for k in app.screen.query(FooterKey)}
        assert keys.get("select_cursor") == "Open", keys
        await pilot.press("question_mark")
        await wait_for(pilot, lambda: isinstance(app.screen, HelpScreen), what="help")
        assert {k.action for k in app.screen.query(FooterKey)} == {"dismiss(None)"}  # the dialog's own keys
        table = app.screen.table
        wheres = list(table.columns[0].cells)
        assert wheres[0] == "Tables" and wheres.index("everywhere") > max(i for i, w in enumerate(wheres) if w != "everywhere"
                                                                             and w != "command line" and w)
        assert {"Tools", "Buffers", "Failures", "Evolution", "Activity", "Tool screen", "Dead letter"} <= set(wheres)


async def test_end_and_home_move_rows_not_columns() -> None:
    app = FixedApp(live=False)
    async with app.run_test(size=(160, 50)) as pilot:
        await shown(pilot)
        table = app.query_one("#tools-table")
        table.focus()
        await pilot.press("end")
        assert table.cursor_row == table.row_count - 1 and table.scroll_x == 0
        await pilot.press("home")
        assert table.cursor_row == 0
        await pilot.press("G", "k")
        assert table.cursor_row == table.row_count - 2
        await pilot.press("g", "j")
        assert table.cursor_row == 1


def run(run_id: int, ok: bool, fallback: bool) -> dict:
    hops = [{"tool_id": "csv_parser", "outcome": "exit_code"}] if fallback else []
    hops.append({"tool_id": "json_parser", "outcome": "ok" if ok else "crash"})
    return {"id": run_id, "ts": T0 + run_id, "scenario": f"run {run_id}", "ok": ok, "hops": hops}


async def test_resilient_cursor_stays_on_its_run_and_fallbacks_filter() -> None:
    from tui.snapshot import Collector

    assert Collector.RESILIENT_KEPT >= 100
    app = FixedApp(live=False)
    async with app.run_test(size=(160, 50)) as pilot:
        runs = [run(1, True, True), run(2, True, False)]
        app.apply_snapshot(dataclasses.replace(frame(), resilient=runs))
        await pilot.pause()
        table = app.query_one("#resilient-table")
        table.focus()
        table.move_cursor(row=table.get_row_index("1"))
        for n in range(3, 8):  # newer runs arrive above it
            runs = [run(n, n % 2 == 0, False), *runs]
            app.apply_snapshot(dataclasses.replace(frame(), resilient=runs))
            await pilot.pause()
            assert table.selected_key() == "1"
        assert table_keys(table)[0] == "7"
        await pilot.press("F")
        assert set(table_keys(table)) == {"1", "3", "5", "7"}  # a fallback, or a failed run
        await pilot.press("enter")
        assert app.screen.details.title.startswith("resilient call: run 1")


async def test_the_filter_box_leaves_the_header_and_the_tabs_on_screen() -> None:
    """Docked at the top, the filter box covered the header (the live status line) while it was open."""
    from tests.tui_helpers import screen_text

    app = FixedApp(live=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await shown(pilot)
        app.query_one("#tools-table").focus()
        await pilot.press("slash", "c", "s", "v")
        await pilot.pause(0.2)
        lines = screen_text(app).splitlines()
        assert "tooldeck" in lines[0] and "1 Tools" in lines[1], lines[:3]
        assert lines[2].strip() == "csv" and "1 of 7 tools" in screen_text(app), lines[:4]
        assert len(lines) == 24



async def test_a_number_key_and_z_in_one_burst_maximise_the_panel_jumped_to() -> None:
    """Keys that arrive together (`3 z` pasted, or typed fast over ssh) are handled one after the other before
    any deferred focus: z must act on the panel 3 jumped to, not on the one focused before."""
    from textual import events

    app = FixedApp(live=False)
    async with app.run_test(size=(160, 50)) as pilot:
        await shown(pilot)
        for number, panel in (("3", "failures-panel"), ("5", "activity-panel"), ("2", "buffers-panel")):
            for key in (number, "z"):
                app.post_message(events.Key(key, key))
            await pilot.pause()
            assert app.screen.maximized is not None and app.screen.maximized.id == panel, (number, app.screen.maximized)
            await pilot.press("z")
