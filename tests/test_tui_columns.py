"""No value cut into a lie: numbers and statuses whole at 160x50 and as they change, free text ends in an ellipsis;
at 80x24 every panel shows rows of its main table and the footer fits."""

from __future__ import annotations

import time

import pytest
from textual.app import App, ComposeResult

from tests.test_tui_snapshots import FixedApp
from tests.tui_fixture import frame
from tests.tui_helpers import screen_text, wait_for
from tui.widgets.live_table import Col, LiveTable


@pytest.fixture(autouse=True)
def _utc(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()


async def show(app: FixedApp, pilot) -> str:
    app.apply_snapshot(frame())
    await pilot.pause()
    app.query_one("#tools-table").focus()
    await pilot.pause(0.2)
    return screen_text(app)


async def test_statuses_and_numbers_are_whole_at_160x50() -> None:
    app = FixedApp(live=False)
    async with app.run_test(size=(160, 50)) as pilot:
        text = await show(app, pilot)
    for whole in ("awaiting_review", "failed_validation", "rolled_back", "half-open", "disabled", "1.2.0 ↑s-7f3a9c",
                  " 12345 ", " 17 ", " 62297 ", "+1244 batches", "114%", "0.4%"):
        assert whole in text, f"{whole!r} is not on screen whole"
    assert "▁" * 10 not in text.splitlines()[-1]  # no horizontal scrollbar: the tables fit their panels


class OneTable(App[None]):
    def compose(self) -> ComposeResult:
        yield LiveTable([Col("id", "id"), Col("status", "status"), Col("count", "count"),
                         Col("note", "note", flex=True, drop=1, min_width=10)], id="t")


async def test_columns_follow_their_content_as_it_changes() -> None:
    app = OneTable()
    async with app.run_test(size=(60, 8)) as pilot:
        table = app.query_one(LiveTable)
        table.apply([("a", ("a", "ready", "1", "short"))])
        await pilot.pause()
        table.apply([("a", ("a", "awaiting_review", "17", "a note far too long to fit in what is left of this table"))])
        await pilot.pause(0.2)
        line = screen_text(app).splitlines()[1]
        assert "awaiting_review" in line and " 17 " in line, line
        assert line.rstrip().endswith("…"), line  # free text takes the rest, with an ellipsis
        table.apply([("a", ("a", "ok", "1234567", "multi\nline"))])
        await pilot.pause(0.2)
        text = screen_text(app)
        assert "1234567" in text and "multi⏎line" in text and len(text.splitlines()) == 8


async def test_a_column_that_does_not_fit_is_left_out_whole_and_comes_back() -> None:
    app = OneTable()
    async with app.run_test(size=(30, 8)) as pilot:
        table = app.query_one(LiveTable)
        table.apply([("a", ("a" * 12, "half_open", "99999", "text"))])
        await pilot.pause(0.2)
        assert "note" not in table.visible_keys and table.value("a", "note") == "text"
        assert "half_open" in screen_text(app) and "99999" in screen_text(app)
        await pilot.resize_terminal(80, 8)
        await wait_for(pilot, lambda: "note" in table.visible_keys, what="the note column back when there is room")


@pytest.mark.parametrize("number", [1, 2, 3, 4, 5])
async def test_80x24_every_panel_shows_rows_and_the_footer_fits(number: int) -> None:
    from textual.widgets._footer import FooterKey

    from tui.widgets.feed import Feed

    app = FixedApp(live=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await show(app, pilot)
        await pilot.press(str(number))
        await pilot.pause(0.2)
        panel = app.focused_panel()
        assert panel is not None and panel.number == number and panel.display
        main = panel.query(LiveTable).first() if panel.query(LiveTable) else panel.query_one(Feed)
        if isinstance(main, LiveTable):
            assert main.row_count >= 2 and main.size.height - 1 >= 2, (main.id, main.size)  # the header and two rows
        else:
            assert len(main.view) >= 2 and main.size.height >= 2
        keys = list(app.screen.query(FooterKey))
        assert keys and all(k.region.right <= 80 for k in keys), [(k.key, k.region) for k in keys]
        assert {"help", "quit"} <= {k.action for k in keys}


class TwoFlex(App[None]):
    def compose(self) -> ComposeResult:
        yield LiveTable([Col("id", "id"), Col("error", "error", flex=True, min_width=10),
                         Col("scenario", "scenario", flex=True, drop=1, min_width=10)], id="t")


async def test_a_cell_is_as_wide_as_it_is_shown_and_a_cut_one_keeps_its_gap() -> None:
    """Control and invisible characters are spelled out (`\\x1b`, `<U+200B>`): the column was sized for the raw
    text, so the shown text ran over the gap into the next column; a cut free-text cell ended its ellipsis in the
    gap, flush against the next column."""
    app = TwoFlex()
    async with app.run_test(size=(70, 6)) as pilot:
        table = app.query_one(LiveTable)
        hostile = "t\x1b[2J\u200b\u202eol"
        table.apply([(hostile, (hostile, "an error message far too long to be shown whole here in this table",
                                "a scenario also too long to be shown whole"))])
        await pilot.pause(0.2)
        line = screen_text(app).splitlines()[1]
        assert line.startswith("t\\x1b[2J<U+200B><U+202E>ol "), line
        for cut in ("an error", "a scen"):
            start = line.index(cut)
            assert line[start - 1] == " ", line  # a blank between the columns
        assert "… a scen" in line, line
