"""Enter on a row of any panel opens its details: every field, the full error and traceback, the payload
as JSON, charts; `y` copies; esc goes back. Activity shows one line per event."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.test_tui_snapshots import FixedApp
from tests.tui_fixture import frame
from tests.tui_helpers import runtime_ready, table_keys, wait_for
from tools.cli.demo_workspace import prepare_demo_workspace
from tools.errors import ToolError
from tui.app import TooldeckApp
from tui.screens.details import DetailScreen
from tui.screens.tool_detail import ToolDetailScreen
from tui.widgets.activity import ActivityPanel, describe
from tui.widgets.feed import Feed


@pytest.fixture
def demo_ws(tmp_path: Path) -> Path:
    ws, _ = prepare_demo_workspace(str(tmp_path / "demo"))
    return ws


def block(screen: DetailScreen, heading: str) -> str:
    return next(text for h, text, _ in screen.details.blocks if h == heading)


async def open_row(pilot, table, key: str) -> DetailScreen:
    app = pilot.app
    table.focus()
    table.move_cursor(row=table.get_row_index(key), column=0)
    await pilot.press("enter")
    await wait_for(pilot, lambda: isinstance(app.screen, DetailScreen), what=f"the details of {key}")
    return app.screen


async def back(pilot) -> None:
    await pilot.press("escape")
    await wait_for(pilot, lambda: not isinstance(pilot.app.screen, DetailScreen), what="back on the dashboard")


async def test_details_from_failures_activity_buffers_and_resilient_runs(demo_ws: Path) -> None:
    from tools.recovery import call_tool_resilient

    app = TooldeckApp(demo_ws, poll_seconds=0.1)
    try:
        async with app.run_test(size=(160, 50)) as pilot:
            await runtime_ready(pilot, app)
            with pytest.raises(ToolError):
                app.runtime.call("flaky_tool", {"value": "x", "failure_rate": 1})
            call_tool_resilient(app.runtime, "translate to french", {"text": "Hello", "target": "fr"}, tags=["translation"])
            app.runtime.extensions["buffers"].write("orders", {"n": 1})

            # a failure: the whole error with its traceback, and `y` copies the record as JSON
            failures = app.query_one("#failures-table")
            await wait_for(pilot, lambda: table_keys(failures), what="the failure listed")
            key = table_keys(failures)[0]
            screen = await open_row(pilot, failures, key)
            assert "flaky failure (rate 1" in block(screen, "error")
            trace = block(screen, "stderr / traceback")
            assert trace.startswith("Traceback (most recent call last)") and "RuntimeError: flaky failure" in trace
            await pilot.press("y")
            copied = json.loads(app.clipboard)
            assert copied["tool_id"] == "flaky_tool" and "Traceback" in copied["error"]
            await back(pilot)

            # an activity event: one line on the feed, the payload as JSON in the details
            feed = app.query_one(Feed)
            await wait_for(pilot, lambda: any(e.event.kind == "tool.failure" for e in (item for _, item in feed.view)),
                           what="the failure event in Activity")
            index = next(i for i, (_, item) in enumerate(feed.view) if item.event.kind == "tool.failure")
            line = feed.view[index][0].plain
            # one line (the border holds), the error's message first: the event keeps its start and its end
            assert "\n" not in line and "error=flaky_tool: RuntimeError: flaky failure" in line, line
            feed.focus()
            feed.cursor = index
            await pilot.press("enter")
            await wait_for(pilot, lambda: isinstance(app.screen, DetailScreen), what="the event's details")
            payload = json.loads(block(app.screen, "payload"))
            assert payload["error_class"] == "crash" and "RuntimeError: flaky failure" in payload["error"]
            await back(pilot)

            # a resilient run's event line reads as JSON, not a Python repr
            await wait_for(pilot, lambda: any(item.event.kind == "resilient.run" for _, item in feed.view), what="the run event")
            run_line = next(text.plain for text, item in feed.view if item.event.kind == "resilient.run")
            assert 'hops=[{"' in run_line and "{'" not in run_line, run_line

            # a buffer: every figure, and its charts once the history is read
            buffers = app.query_one("#buffers-table")
            await wait_for(pilot, lambda: "orders" in table_keys(buffers), what="the buffer row")
            screen = await open_row(pilot, buffers, "orders")
            fields = dict(screen.details.fields)
            assert fields["batch size (max_size)"] == 100 and fields["capacity (max_pending)"].startswith(("not set", "10000"))
            await wait_for(pilot, lambda: len(screen.query("ChartView")) == 2, what="the pending and rate charts")
            await back(pilot)

            # a resilient run: its hops
            runs = app.query_one("#resilient-table")
            await wait_for(pilot, lambda: table_keys(runs), what="the resilient run")
            screen = await open_row(pilot, runs, table_keys(runs)[0])
            assert any(name == "hop 1" for name, _ in screen.details.fields)
            await back(pilot)

            # a tool: its own screen, with the failure-rate and circuit charts
            tools = app.query_one("#tools-table")
            tools.focus()
            tools.move_cursor(row=tools.get_row_index("flaky_tool"), column=0)
            await pilot.press("enter")
            await wait_for(pilot, lambda: isinstance(app.screen, ToolDetailScreen), what="the tool screen")
            await wait_for(pilot, lambda: len(app.screen.query("ChartView")) == 2, what="the tool's charts")
            await pilot.press("y")
            assert json.loads(app.clipboard)["tool_id"] == "flaky_tool"
    finally:
        app.shutdown()


async def test_details_of_a_proposal_and_of_a_broken_manifest() -> None:
    app = FixedApp(live=False)
    async with app.run_test(size=(160, 50)) as pilot:
        app.apply_snapshot(frame())
        await pilot.pause()
        proposals = app.query_one("#proposals-table")
        screen = await open_row(pilot, proposals, "1")
        fields = dict(screen.details.fields)
        assert fields["status"] == "awaiting_review" and "stage regression" in fields
        assert "+        data = json.loads(stripped)" in block(screen, "diff")
        await back(pilot)
        tools = app.query_one("#tools-table")
        screen = await open_row(pilot, tools, "broken_tool")
        assert "Input should be 'executable', 'python', 'builtin' or 'llm'" in block(screen, "error")


def test_activity_describes_values_as_json_on_one_line() -> None:
    from state.events import Event

    event = Event(1, 0.0, 1, "s", "resilient.run", None, None,
                  {"hops": [{"hop": 1, "tool_id": "a"}], "error": "boom\nTraceback (most recent call last):\n  x"})
    text = describe(event)
    assert 'hops=[{"hop":1,"tool_id":"a"}]' in text
    line = ActivityPanel.format(event, {"error": "red", "accent": "cyan", "ok": "green", "warn": "yellow"})
    assert "\n" not in line.plain and "boom⏎Traceback" in line.plain


def test_activity_lines_with_and_without_a_tool_line_up() -> None:
    """A buffer's flush (no tool id) had its detail one column right of where the tool ids start."""
    from state.events import Event

    colors = {"error": "red", "accent": "cyan", "ok": "green", "warn": "yellow"}
    with_tool = ActivityPanel.format(Event(1, 0.0, 1, "s", "tool.error", "csv_parser", None, {"error": "x"}), colors)
    without = ActivityPanel.format(Event(2, 0.0, 1, "s", "buffer.flush", None, None, {"buffer_id": "b", "count": 5}),
                                   colors)
    assert with_tool.plain.index("csv_parser") == without.plain.index("buffer_id=b"), (with_tool.plain, without.plain)


def test_interleaved_flushes_of_several_buffers_coalesce_per_buffer() -> None:
    from state.events import Event
    from tui.widgets.activity import coalesce

    events = []
    for i in range(6):
        buffer_id = "a" if i % 2 == 0 else "b"
        events.append(Event(i, 0.0, 1, "s", "buffer.flush", None, None, {"buffer_id": buffer_id, "count": 10}))
    events.append(Event(9, 0.0, 1, "s", "tool.failure", "x", "1.0.0", {"error": "boom"}))
    lines = [(e.payload.get("buffer_id"), n, items) for e, n, items in coalesce(events)]
    assert lines == [("a", 3, 30), ("b", 3, 30), (None, 1, 0)]


async def test_a_long_activity_line_ends_in_an_ellipsis() -> None:
    from rich.text import Text
    from textual.app import App

    from tests.tui_helpers import screen_text

    class One(App[None]):
        def compose(self):
            yield Feed()

    app = One()
    async with app.run_test(size=(40, 5)) as pilot:
        app.query_one(Feed).add([(Text("x" * 60 + " [4242]"), 1)])
        await pilot.pause()
        first = screen_text(app).splitlines()[0]
        assert first.rstrip().endswith("…") and "[4242]" not in first, first
