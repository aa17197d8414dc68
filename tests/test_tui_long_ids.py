"""A legal 64-character tool id (and a problem manifest's 128-character file name) must not push numbers and
statuses out of the tables or cut them: the row's name is the one column that may end in …, every other column is
shown whole or left out whole, and the panel's title names the columns left out."""

from __future__ import annotations

import time
from typing import Any

import pytest

from tests.test_tui_snapshots import FixedApp
from tests.tui_fixture import T0, frame
from tests.tui_helpers import screen_text
from tui.snapshot import Snapshot, ToolRow
from tui.widgets.live_table import GAP, LiveTable, one_line

LONG = "long_" + "y" * 59
BAD_FILE = "x" * 123 + ".yaml"


@pytest.fixture(autouse=True)
def _utc(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()


def long_frame(problem: bool = False) -> Snapshot:
    snap = frame()
    snap.tools.insert(0, ToolRow(LONG, "ready", "1.0.0", "", "python", "workspace", 0.95, "closed", 321, 3, 4.0, ""))
    if problem:
        snap.tools.append(ToolRow(BAD_FILE, "error", "", "", "", "workspace", None, "", 0, 0, None,
                                  f"tools/{BAD_FILE}: invalid tool id"))
    snap.scores.insert(0, {"tool_id": LONG, "version": "1.0.0", "score": 0.95, "tags": [], "circuit": "closed",
                           "disabled": False, "failures": 3, "trend": [1.0, 0.95]})
    snap.failures.insert(0, {"id": 3, "ts": T0, "tool_id": LONG, "scenario": "summarise the quarterly report",
                             "error_class": "timeout", "severity": "high",
                             "error": "timed out after 3 s (process group killed) while reading its output"})
    return snap


def check_table(app: Any, table: LiveTable, title: str | None = None) -> None:
    """Every cell on screen is its whole value, or (the row's name and free text only) a prefix ending in …;
    the columns fit the table; the panel's title names every column left out."""
    lines = screen_text(app).splitlines()
    region = table.content_region
    widths = [c.width for c in table.ordered_columns]
    assert sum(widths) <= region.width, (table.id, widths, region)
    for row in range(min(table.row_count, region.height - 1)):
        key = table._order[row]
        line = lines[region.y + 1 + row][region.x:region.right]
        x = 0
        for index, width in zip(table.shown_columns, widths, strict=True):
            spec = table.specs[index]
            shown = line[x:x + width - GAP].rstrip()
            whole = one_line(table.value(key, spec.key)).plain
            x += width
            if shown == whole:
                continue
            assert spec.flex or spec.names_row, f"{table.id} {spec.label}: {shown!r} is not {whole!r}"
            assert shown.endswith("…") and whole.startswith(shown[:-1]), f"{table.id} {spec.label}: {shown!r}"
    hidden = [s.label for i, s in enumerate(table.specs) if i not in table.shown_columns]
    assert list(table.hidden_labels) == hidden
    if hidden:
        if title is None:
            title = str(table.parent.border_title) if table.parent is not None else ""
        named = title.split("not shown: ", 1)[-1].split(", ") if "not shown: " in title else []  # a panel's tables together
        assert set(hidden) <= set(named), (table.id, title)


async def check_all(app: FixedApp, pilot: Any, snap: Snapshot, tables: tuple[str, ...]) -> None:
    app.apply_snapshot(snap)
    await pilot.pause(0.2)
    for table_id in tables:
        table = app.query_one(f"#{table_id}", LiveTable)
        if table.region.width and table.region.height > 1:
            check_table(app, table)


TABLES = ("tools-table", "scores-table", "failures-table", "buffers-table", "proposals-table")


@pytest.mark.parametrize("problem", [False, True])
@pytest.mark.parametrize("size", [(80, 24), (160, 50)])
async def test_a_long_tool_id_cuts_no_number_or_status(size: tuple[int, int], problem: bool) -> None:
    app = FixedApp(live=False)
    async with app.run_test(size=size) as pilot:
        app.query_one("#tools-table").focus()
        await check_all(app, pilot, long_frame(problem), TABLES)
        assert "ready" in screen_text(app)
        for number in ("1", "3"):  # maximised, the panel has the room for every column but a name it cuts
            await pilot.press(number, "z")
            await check_all(app, pilot, long_frame(problem), TABLES)
            await pilot.press("z")
            await pilot.pause(0.1)


async def test_at_160x50_the_maximised_tools_panel_keeps_its_columns_beside_a_128_character_name() -> None:
    app = FixedApp(live=False)
    async with app.run_test(size=(160, 50)) as pilot:
        app.apply_snapshot(long_frame(problem=True))
        await pilot.pause()
        await pilot.press("1", "z")
        await pilot.pause(0.2)
        table = app.query_one("#tools-table", LiveTable)
        assert {"status", "version", "fail", "calls", "circuit", "score", "p50"} <= set(table.visible_keys)
        check_table(app, table)


async def test_the_sessions_view_keeps_numbers_whole_beside_a_long_label_and_names_what_it_leaves_out() -> None:
    from tui.screens.sessions import SessionsScreen

    snap = long_frame()
    snap.sessions = [{"session": "s-1a2b3c", "node": "n", "pid": 4242, "host": "box", "started": T0, "heartbeat": T0,
                      "label": f"tooldeck call {LONG}", "kind": "cli", "calls_1m": 3, "failures_1m": 1}]
    app = FixedApp(live=False)
    async with app.run_test(size=(80, 24)) as pilot:
        app.apply_snapshot(snap)
        await pilot.pause()
        await pilot.press("w")
        await pilot.pause(0.3)
        assert isinstance(app.screen, SessionsScreen)
        table = app.screen.query_one("#sessions-table", LiveTable)
        assert "heartbeat" in table.visible_keys, table.visible_keys
        check_table(app, table, str(app.screen.query_one("#sessions-title").content))


async def test_the_dead_letter_view_names_the_columns_it_leaves_out() -> None:
    from tui.screens.dead_letter import DeadLetterScreen

    app = FixedApp(live=False)
    async with app.run_test(size=(80, 24)) as pilot:
        app.apply_snapshot(long_frame())
        await pilot.pause()
        screen = DeadLetterScreen("audit")
        await app.push_screen(screen)
        await pilot.pause()
        screen._fill([{"batch_id": "b-" + "7" * 60, "count": 123456, "attempts": 3, "dead_at": T0,
                       "last_error": "sink timed out after 30 s while writing the batch", "items_preview": ["{}" * 40]}])
        await pilot.pause(0.2)
        table = screen.query_one("#dead-table", LiveTable)
        assert table.hidden_labels, table.visible_keys
        check_table(app, table, str(screen.query_one("#dead-title").content))
