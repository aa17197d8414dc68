"""Layout snapshots: the main screen at 80x24 and 160x50, the diff viewer in both modes, the help screen.

The app renders a fixed frame (tests/tui_fixture.py) with no runtime, so clocks,
pids and load order cannot change the picture.
"""

from __future__ import annotations

import time

import pytest

from tests.tui_fixture import frame, proposal
from tui.app import TooldeckApp
from tui.widgets.evolution_panel import EvolutionPanel


@pytest.fixture(autouse=True)
def _utc(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()


class FixedApp(TooldeckApp):
    def load_proposal(self, proposal_id: int) -> None:  # the fixture has its proposal already
        self.query_one(EvolutionPanel).show_detail(proposal())


def make_app() -> FixedApp:
    return FixedApp(live=False)


async def show(pilot) -> None:
    app = pilot.app
    app.apply_snapshot(frame())
    await pilot.pause()
    app.query_one("#tools-table").focus()
    await pilot.pause()


def test_main_screen_80x24(snap_compare) -> None:
    assert snap_compare(make_app(), terminal_size=(80, 24), run_before=show)


def test_main_screen_160x50(snap_compare) -> None:
    assert snap_compare(make_app(), terminal_size=(160, 50), run_before=show)


async def _diff(pilot, mode: str) -> None:
    await show(pilot)
    panel = pilot.app.query_one(EvolutionPanel)
    panel.query_one("#proposals-table").focus()
    await pilot.pause()
    if mode == "side-by-side":
        await pilot.press("v")
    await pilot.press("z")
    await pilot.pause()


def test_diff_unified(snap_compare) -> None:
    assert snap_compare(make_app(), terminal_size=(120, 40), run_before=lambda p: _diff(p, "unified"))


def test_diff_side_by_side(snap_compare) -> None:
    assert snap_compare(make_app(), terminal_size=(120, 40), run_before=lambda p: _diff(p, "side-by-side"))


def test_help_screen(snap_compare) -> None:
    async def before(pilot) -> None:
        await show(pilot)
        await pilot.press("question_mark")
        await pilot.pause()

    assert snap_compare(make_app(), terminal_size=(120, 40), run_before=before)
