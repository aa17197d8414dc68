"""Smaller things seen while reviewing: skipped stages, a failed candidate, the diff's scroll, the light theme,
which version answered a call, one tool count for the header and the panel."""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import pytest

from tests.helpers import python_tool
from tests.test_tui_snapshots import FixedApp
from tests.tui_fixture import DIFF, frame, proposal
from tests.tui_helpers import screen_text, table_keys, wait_for
from tui.app import TooldeckApp
from tui.widgets.diff_view import DiffView
from tui.widgets.evolution_panel import EvolutionPanel


@pytest.fixture(autouse=True)
def _utc(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()


class ReviewApp(FixedApp):
    proposals: dict[int, dict] = {}

    def load_proposal(self, proposal_id: int) -> None:
        self.query_one(EvolutionPanel).show_detail(self.proposals[proposal_id])


async def test_skipped_stage_and_failed_candidate_and_diff_scroll() -> None:
    skipped = {**proposal(), "stages": [*proposal()["stages"][:4],
                                        {"name": "regression", "passed": True, "skipped": True, "ms": 0.0,
                                         "detail": "no recorded calls to replay"}]}
    failed = {**proposal(), "id": 2, "status": "failed_validation", "failure": "the model's answer has no code block",
              "diff": "--- a/csv_parser.py (1.0.0)\n+++ b/csv_parser_v1_1_0.py (1.1.0)\n@@ -1,3 +0,0 @@\n-import csv\n-import io\n-x = 1\n"}
    longer = {**proposal(), "id": 3, "diff": DIFF * 6}
    app = ReviewApp(live=False)
    app.proposals = {1: skipped, 2: failed, 3: longer}
    async with app.run_test(size=(160, 50)) as pilot:
        app.apply_snapshot(dataclasses.replace(frame(), proposals=[longer, failed, skipped]))
        await pilot.pause()
        panel = app.query_one(EvolutionPanel)
        table = app.query_one("#proposals-table")
        diff = app.query_one(DiffView)

        table.move_cursor(row=table.get_row_index("1"))
        await wait_for(pilot, lambda: panel.detail is not None and panel.detail["id"] == 1, what="proposal 1")
        await pilot.press("4", "z")  # the panel maximised: the whole stage line on screen
        await pilot.pause()
        text = screen_text(app)
        assert "– regression  skipped: no recorded calls to replay" in text and "✓ regression" not in text

        table.move_cursor(row=table.get_row_index("2"))
        await wait_for(pilot, lambda: panel.detail is not None and panel.detail["id"] == 2, what="proposal 2")
        assert diff.diff == "" and "the model's answer has no code block" in diff.placeholder
        await pilot.pause()
        assert "-import csv" not in screen_text(app)  # not a diff deleting the whole file

        table.move_cursor(row=table.get_row_index("3"))
        await wait_for(pilot, lambda: panel.detail is not None and panel.detail["id"] == 3, what="proposal 3")
        diff.scroll_to(y=40, animate=False)
        await pilot.pause()
        assert diff.scroll_offset.y == 40
        table.move_cursor(row=table.get_row_index("1"))
        await wait_for(pilot, lambda: panel.detail is not None and panel.detail["id"] == 1, what="proposal 1 again")
        await pilot.pause()
        assert diff.scroll_offset.y == 0, "another proposal's diff opens at its top"


async def test_light_theme_restyles_the_diff_and_keeps_values_legible() -> None:
    from tui.style import theme_colors

    app = ReviewApp(live=False)
    app.proposals = {1: proposal()}
    async with app.run_test(size=(120, 40)) as pilot:
        app.apply_snapshot(dataclasses.replace(frame(), proposals=[proposal()]))
        await pilot.pause()
        diff = app.query_one(DiffView)
        await wait_for(pilot, lambda: diff.diff, what="the diff")
        dark_line = diff.render_line(12)
        app.theme = "textual-light"
        await pilot.pause()
        light_line = diff.render_line(12)
        backgrounds = {str(seg.style.bgcolor) for seg in light_line if seg.style and seg.style.bgcolor}
        assert backgrounds != {str(seg.style.bgcolor) for seg in dark_line if seg.style and seg.style.bgcolor}
        assert diff._highlighter is not None and diff._highlighter._theme is not None
        colors = theme_colors(app)
        from textual.color import Color

        from tui.style import MIN_CONTRAST, contrast

        assert colors["warn"].lower() != app.current_theme.warning.lower()  # the theme's text colour, made readable
        assert contrast(Color.parse(colors["warn"]), Color.parse(app.theme_variables["background"])) >= MIN_CONTRAST


async def test_tool_call_says_which_version_answered_and_one_tool_count(workspace: Path) -> None:
    from tui.screens.dialogs import TextScreen

    python_tool(workspace / "tools", "alpha", "def run(d):\n    return {'ok': True}\n", version="1.2.0")
    python_tool(workspace / "tools", "beta", "def run(d):\n    return {'ok': True}\n")
    (workspace / "tools" / "broken.yaml").write_text("name: broken\ntype: wrong\n")
    app = TooldeckApp(workspace, poll_seconds=0.1)
    try:
        async with app.run_test(size=(160, 50)) as pilot:
            tools = app.query_one("#tools-table")
            await wait_for(pilot, lambda: {"alpha", "beta"} <= set(table_keys(tools)) and app.sub_title.startswith("Ready"),
                           what="tools loaded")
            await wait_for(pilot, lambda: "error" in app.query_one("#tools-panel").border_subtitle, what="the panel's counts")
            total = len(table_keys(tools))
            assert f"of {total} tools" in app.sub_title and f"{total} tools" in app.query_one("#tools-panel").border_subtitle
            app.run_command_line('/tool call alpha {"x": 1}')
            await wait_for(pilot, lambda: isinstance(app.screen, TextScreen), what="the call's result")
            assert app.screen.title_text == "alpha 1.2.0 answered"
    finally:
        app.shutdown()


async def test_the_detail_says_when_the_files_on_disk_are_not_the_ones_validated() -> None:
    """The dashboard showed the validation's PASS stages beside a diff that changed after it, as `review show` did."""
    changed = {**proposal(), "changed_on_disk": "csv_parser_v1_1_0.py changed on disk since validation: the stages shown "
                                                 "are for the earlier diff (sha256 0123456789ab...; now ba9876543210...)",
               "problems": ["csv_parser_v1_1_0.py:1: the coding cookie '# coding: latin-1' makes Python read this file as "
                            "iso8859-1"]}
    app = ReviewApp(live=False)
    app.proposals = {1: changed}
    async with app.run_test(size=(200, 50)) as pilot:
        app.apply_snapshot(dataclasses.replace(frame(), proposals=[changed]))
        await pilot.pause()
        panel = app.query_one(EvolutionPanel)
        table = app.query_one("#proposals-table")
        table.move_cursor(row=table.get_row_index("1"))
        await wait_for(pilot, lambda: panel.detail is not None and panel.detail["id"] == 1, what="proposal 1")
        await pilot.press("4", "z")
        await pilot.pause()
        text = screen_text(app)
        assert "CHANGED ON DISK: csv_parser_v1_1_0.py changed on disk since validation" in text, text
        assert "NOT AS SHOWN: csv_parser_v1_1_0.py:1: the coding cookie" in text
