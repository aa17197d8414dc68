"""The console tells the truth, live (issue 24): lists that follow, a state that is never silently stale,
keys that cannot hurt by habit."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

from rich.text import Text
from textual.app import App, ComposeResult

from tests.tui_helpers import runtime_ready, wait_for
from tui.app import TooldeckApp
from tui.widgets.feed import Feed
from tui.widgets.live_table import Col, LiveTable
from tui.widgets.panel import Panel


class OnePanel(Panel):
    title = "Failures"
    number = 3

    def compose(self) -> ComposeResult:
        yield LiveTable([Col("id", "id"), Col("what", "what", flex=True)], id="t")
        yield Feed(id="f", max_lines=500)


class PanelApp(App[None]):
    CSS_PATH = str(Path(__file__).resolve().parents[1] / "tui" / "app.tcss")  # the dashboard's own styles

    def compose(self) -> ComposeResult:
        yield OnePanel(id="p")


def rows(newest: int, n: int = 30) -> list[tuple[str, tuple[Any, ...]]]:
    """Newest first, as the Failures and Activity lists are."""
    return [(str(i), (str(i), f"failure {i}")) for i in range(newest, max(0, newest - n), -1)]


async def test_a_cursor_on_the_first_row_follows_new_rows_and_elsewhere_they_are_counted() -> None:
    app = PanelApp()
    async with app.run_test(size=(80, 12)) as pilot:
        table = app.query_one(LiveTable)
        panel = app.query_one(OnePanel)
        table.apply(rows(30))
        table.focus()
        await pilot.pause()
        assert table.selected_key() == "30"
        table.apply(rows(35))  # five newer rows: the cursor on the first row follows (tail mode)
        await pilot.pause()
        assert table.selected_key() == "35" and table.scroll_y == 0 and table.new_above == 0
        assert panel.border_title == "3 Failures"
        await pilot.press("j", "j")  # the operator looks at an older row: it stays under the cursor
        assert table.selected_key() == "33"
        table.apply(rows(47))
        await pilot.pause()
        assert table.selected_key() == "33" and table.new_above == 12
        assert panel.border_title == "3 Failures · ↑ 12 new (g)"
        await pilot.press("g")  # g goes to the newest, and the table follows again
        assert table.selected_key() == "47" and table.new_above == 0
        await wait_for(pilot, lambda: panel.border_title == "3 Failures", 5, "the count cleared")
        table.apply(rows(48))
        await pilot.pause()
        assert table.selected_key() == "48"


async def test_a_sorted_table_keeps_its_sort_and_its_first_row_as_values_change() -> None:
    app = PanelApp()
    async with app.run_test(size=(80, 12)) as pilot:
        table = app.query_one(LiveTable)
        table.sort_column = "what"
        table.apply([("a", ("a", "3")), ("b", ("b", "5")), ("c", ("c", "7"))])
        await pilot.pause()
        assert table.selected_key() == "a"
        table.apply([("a", ("a", "9")), ("b", ("b", "5")), ("c", ("c", "1"))])  # c is now the worst
        await pilot.pause()
        assert [r.key.value for r in table.ordered_rows] == ["c", "b", "a"] and table.selected_key() == "c"


async def test_the_feed_follows_the_newest_line_unless_the_cursor_left_it() -> None:
    app = PanelApp()
    async with app.run_test(size=(80, 12)) as pilot:
        feed = app.query_one(Feed)
        panel = app.query_one(OnePanel)
        feed.add([(Text(f"event {i}"), i) for i in range(50)])
        feed.focus()
        await pilot.pause()
        assert feed.selected() == 49
        feed.add([(Text(f"event {i}"), i) for i in range(50, 60)])
        await pilot.pause()
        assert feed.selected() == 59 and feed.scroll_offset.y == 0 and feed.new_above == 0
        await pilot.press("j", "j", "j")
        assert feed.selected() == 56
        feed.add([(Text(f"event {i}"), i) for i in range(60, 64)])
        await pilot.pause()
        assert feed.selected() == 56 and feed.new_above == 4
        assert panel.border_title == "3 Failures · ↑ 4 new (g)"
        await pilot.press("home")
        assert feed.selected() == 63 and feed.new_above == 0


async def test_lines_taken_out_and_added_again_show_their_own_text() -> None:
    """The Activity panel folds flush lines by taking the newest out and adding them again as new lines. The feed
    cached each line's rendering by `id()` of its text, and a new text can be born at a freed one's address: the
    dashboard then showed an old line in a new one's place (the same flush twice, another one missing)."""
    app = PanelApp()
    async with app.run_test(size=(100, 30)) as pilot:
        feed = app.query_one(Feed)
        feed.add([(Text(f"line {i} " + "x" * (i % 7)), i) for i in range(40)])
        await pilot.pause()
        for round_ in range(30):
            [feed.render_line(y) for y in range(feed.size.height)]  # every visible line rendered and cached
            taken = feed.pop_newest(8)
            del taken  # their texts are freed: their addresses can be reused
            feed.add([(Text(f"round {round_} line {i} " + "y" * (i % 5)), (round_, i)) for i in range(8)])
            await pilot.pause()
            shown = ["".join(segment.text for segment in feed.render_line(y)).rstrip() for y in range(feed.size.height)]
            wanted = [text.plain.rstrip() for text in feed.lines[feed.scroll_offset.y:feed.scroll_offset.y + feed.size.height]]
            assert [line.rstrip("…") for line in shown[:len(wanted)]] == wanted, round_


async def test_a_deleted_or_replaced_database_is_said_in_a_red_banner(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    (ws / "tools").mkdir(parents=True)
    app = TooldeckApp(ws, poll_seconds=0.1)
    async with app.run_test(size=(120, 40)) as pilot:
        await runtime_ready(pilot, app)
        banner = app.query_one("#banner")
        await wait_for(pilot, lambda: app.latest is not None, 20, "a snapshot")
        assert banner.has_class("hidden")
        db = ws / ".tooldeck" / "tooldeck.db"
        for path in (db, db.with_name("tooldeck.db-wal"), db.with_name("tooldeck.db-shm")):
            path.unlink(missing_ok=True)
        await wait_for(pilot, lambda: not banner.has_class("hidden"), 10, "the banner")
        assert "was deleted while this process had it open" in str(banner.render())
        assert "quit (q) and start tooldeck again" in str(banner.render())
        assert app.sub_title.startswith("STALE: DATABASE DELETED")
        assert not db.exists()  # the dashboard's own reads did not create an empty database in its place
        out = subprocess.run([sys.executable, "-m", "tools", "--workspace", str(ws), "tools"], capture_output=True,
                             text=True, timeout=60)  # another process creates a new, empty one
        assert out.returncode == 0, out.stderr
        await wait_for(pilot, lambda: "replaced by another file" in str(banner.render()), 10, "the replaced banner")


async def test_a_confirmation_wraps_its_question_and_enter_answers_no() -> None:
    from tests.tui_helpers import screen_text
    from tui.screens.dialogs import ConfirmScreen

    answers: list[bool] = []
    question = ("Replay all 1,234 dead-letter batches (56,789 items) of a-buffer-with-a-long-id? Each goes to its sink "
                "again and may fail again; the end of this sentence must be on screen: 56789-END")
    app = PanelApp()
    async with app.run_test(size=(80, 24)) as pilot:
        app.push_screen(ConfirmScreen(question), answers.append)
        await pilot.pause()
        assert "56789-END" in screen_text(app).replace("\n", " ")
        await pilot.press("enter")
        await pilot.pause()
        assert answers == [False]


async def test_what_needs_attention_is_one_line_in_the_header_and_badges_on_the_tabs() -> None:
    from tests.tui_fixture import frame
    from tui.snapshot import needs_attention

    snapshot = frame()  # 1 tool in error, 3 dead-letter batches, 1 open circuit, 1 proposal awaiting review
    assert [a.label() for a in needs_attention(snapshot)] == [
        "1 tool in error (1)", "3 dead-letter batches (2)", "1 open circuit (3)", "1 proposal to review (4)"]
    app = TooldeckApp(live=False)
    async with app.run_test(size=(200, 50)) as pilot:  # wide enough for every name (narrower: see the next test)
        app.apply_snapshot(snapshot)
        await pilot.pause()
        assert ("needs attention: 1 tool in error (1), 3 dead-letter batches (2), 1 open circuit (3), 1 proposal to review (4)"
                in app.sub_title)
    app = TooldeckApp(live=False)
    async with app.run_test(size=(100, 30)) as pilot:  # below 110 columns: one panel at a time, tabs with badges
        app.apply_snapshot(snapshot)
        await pilot.pause()
        tabs = str(app.query_one("#tabs").render())
        assert " 1 Tools 1 " in tabs and " 2 Buffers 3 " in tabs and " 3 Failures 1 " in tabs and " 4 Evolution 1 " in tabs
        assert " 5 Activity " in tabs and " 5 Activity 0" not in tabs


async def test_what_needs_attention_is_counted_when_its_names_do_not_fit_the_header() -> None:
    """At 80x24 the header ended in `needs attention: …`: the names were cut away whole at the terminal's edge. What
    does not fit is said as a count and the keys of the panels that show it; at a resize too."""
    import dataclasses

    from tests.test_tui_snapshots import FixedApp
    from tests.tui_fixture import frame
    from tests.tui_helpers import screen_text

    def header(app: TooldeckApp) -> str:
        return screen_text(app).splitlines()[0].strip()

    snapshot = frame()  # 1 tool in error, 3 dead-letter batches, 1 open circuit, 1 proposal awaiting review: 6 things
    fewer = dataclasses.replace(snapshot, summary="Ready: 6 tools", tools=[t for t in snapshot.tools if t.status != "error"],
                                buffers=[])  # an open circuit and a proposal to review
    app = FixedApp(live=False)
    async with app.run_test(size=(200, 50)) as pilot:
        app.apply_snapshot(snapshot)
        await pilot.pause()
        assert header(app).endswith("needs attention: 1 tool in error (1), 3 dead-letter batches (2), 1 open circuit (3), "
                                    "1 proposal to review (4)"), header(app)
        await pilot.resize_terminal(120, 40)
        await wait_for(pilot, lambda: header(app).endswith("needs attention: 6 (press 1, 2, 3, 4)"), 5, "the count at 120")
        await pilot.resize_terminal(80, 24)
        await wait_for(pilot, lambda: header(app).endswith("· needs attention: 6"), 5, "the count alone at 80")
        app.apply_snapshot(fewer)
        await pilot.pause()
        assert header(app).endswith("Ready: 6 tools · needs attention: 2 (press 3, 4)"), header(app)
        assert "…" not in header(app)


async def test_a_proposal_whose_status_changed_is_acted_on_as_it_is_now() -> None:
    """validating -> awaiting_review under a selected row: a slow load of the old state does not overwrite the new
    detail, and a key pressed before the new detail arrives reloads it instead of answering from the old status."""
    import dataclasses

    from tests.tui_fixture import T0, frame, proposal
    from tui.widgets.evolution_panel import EvolutionPanel

    loads: list[int] = []

    class App_(TooldeckApp):
        def load_proposal(self, proposal_id: int) -> None:
            loads.append(proposal_id)

    old = {**proposal(), "status": "validating", "updated": T0}
    new = {**proposal(), "status": "awaiting_review", "updated": T0 + 5}
    app = App_(live=False)
    async with app.run_test(size=(160, 50)) as pilot:
        panel = app.query_one(EvolutionPanel)
        app.apply_snapshot(dataclasses.replace(frame(), proposals=[old]))
        panel.show_detail(old)
        await pilot.pause()
        app.apply_snapshot(dataclasses.replace(frame(), proposals=[new]))  # the list has the new status ...
        await pilot.pause()
        loads.clear()
        panel.detail = old  # ... and the detail is still the old one (its load is under way)
        panel.table.focus()
        await pilot.press("a")
        status = str(app.query_one("#status-line").render())
        assert loads == [1] and "proposal #1 is now awaiting_review: reading it again before approve" in status, status
        assert "is validating" not in status
        panel.show_detail(new)
        assert "reading it again" not in str(app.query_one("#status-line").render())  # read: the line saying so went
        panel.show_detail(old)  # the slow load of the old state answers last: dropped
        assert panel.detail is not None and panel.detail["status"] == "awaiting_review"


async def test_filtering_a_maximised_panel_shows_the_box_and_esc_clears_the_filter_first() -> None:
    from textual.widgets import Footer, Input

    from tests.tui_fixture import frame

    app = TooldeckApp(live=False)
    async with app.run_test(size=(160, 50)) as pilot:
        app.apply_snapshot(frame())
        await pilot.pause()
        await pilot.press("3", "z")
        panel = app.query_one("#failures-panel")
        assert app.screen.maximized is panel
        await pilot.press("slash", "c", "s", "v")
        box = app.query_one("#filter-input", Input)
        await pilot.pause()
        assert box.region.height > 0 and app.query_one(Footer).region.height > 0  # on screen while maximised
        await pilot.press("enter")
        assert panel.filter_text == "csv"
        await pilot.press("escape")
        assert panel.filter_text == "" and app.screen.maximized is panel  # the first esc clears the filter
        await pilot.press("escape")
        assert app.screen.maximized is None


async def test_the_sorted_column_is_marked_in_the_header() -> None:
    app = PanelApp()
    async with app.run_test(size=(80, 12)) as pilot:
        table = app.query_one(LiveTable)
        table.apply(rows(5))
        table.focus()
        await pilot.pause()
        assert [str(c.label) for c in table.ordered_columns] == ["id", "what"]
        assert table.sort_by_cursor_column() == "id"
        await pilot.pause()
        assert [str(c.label) for c in table.ordered_columns] == ["id ▲", "what"]
        table.sort_by_cursor_column()
        assert [str(c.label) for c in table.ordered_columns] == ["id ▼", "what"]
        assert table.selected_key() == "5"


async def test_each_stage_result_and_the_explanation_are_beside_the_diff() -> None:
    from tests.tui_fixture import frame, proposal
    from tests.tui_helpers import screen_text
    from tui.widgets.evolution_panel import EvolutionPanel

    p = {**proposal(), "explanation": "Parse JSON when the text starts with { or [; CSV otherwise.",
         "stages": [*proposal()["stages"][:2],
                    {"name": "tests", "passed": True, "ms": 323.0, "detail": "5/5 tests passed; parent tests not kept: JSON is not CSV"},
                    {"name": "failing_scenario", "passed": True, "ms": 40.0, "detail": "1/1 recorded failing inputs now succeed"},
                    {"name": "regression", "passed": None, "skipped": True, "detail": "no recorded successful calls"}]}
    app = TooldeckApp(live=False)
    async with app.run_test(size=(160, 50)) as pilot:
        app.apply_snapshot(frame())
        app.query_one(EvolutionPanel).show_detail(p)
        await pilot.press("4", "z")
        await pilot.pause()
        text = screen_text(app)
        assert "why: Parse JSON when the text starts with { or [; CSV otherwise." in text
        assert "tests  5/5 tests passed; parent tests not kept: JSON is not CSV  323.0 ms" in text
        assert "failing_scenario  1/1 recorded failing inputs now succeed" in text
        assert "regression  skipped: no recorded successful calls" in text


async def test_a_long_line_in_the_side_by_side_diff_is_marked_and_scrolls_sideways() -> None:
    from tests.tui_helpers import screen_text
    from tui.widgets.diff_view import DiffView

    long = "x = compute(" + ", ".join(f"argument_{i}" for i in range(20)) + ")  # END-OF-LONG-LINE"
    diff = f"--- a/t.py (1.0.0)\n+++ b/t.py (1.1.0)\n@@ -1,2 +1,2 @@\n-y = 1\n+{long}\n short = 2\n"

    class DiffApp(App[None]):
        def compose(self) -> ComposeResult:
            yield DiffView()

    app = DiffApp()
    async with app.run_test(size=(80, 12)) as pilot:
        view = app.query_one(DiffView)
        view.show(diff)
        view.mode = "side-by-side"
        view.focus()
        await pilot.pause()
        text = screen_text(app)
        assert "END-OF-LONG-LINE" not in text and "…" in text  # cut, and the cut is marked
        assert view.virtual_size.width > 80  # there is somewhere to scroll to
        view.scroll_to(x=view.max_scroll_x, animate=False)
        await pilot.pause()
        text = screen_text(app)
        assert "END-OF-LONG-LINE" in text and "‹" in text


async def test_side_by_side_cuts_both_sides_with_an_ellipsis_and_aligns_them_beside_a_scrollbar() -> None:
    """The right side was drawn under the vertical scrollbar (its `…` hidden: cut with no mark) and the left side had
    no gutter column where the right has one after the `│`, so the two sides were one column apart."""
    from tests.tui_helpers import screen_text
    from tui.widgets.diff_view import DiffView

    long = "x = compute(" + ", ".join(f"argument_{i}" for i in range(20)) + ")"
    body = "".join(f" line_{i} = {i}\n" for i in range(30))  # enough rows for a vertical scrollbar
    diff = f"--- a/t.yaml (1.0.0)\n+++ b/t.yaml (1.1.0)\n@@ -1,2 +1,2 @@\n name: csv_parser\n-{long}A\n+{long}B\n{body}"

    class DiffApp(App[None]):
        def compose(self) -> ComposeResult:
            yield DiffView()

    for width in (80, 81):
        app = DiffApp()
        async with app.run_test(size=(width, 12)) as pilot:
            view = app.query_one(DiffView)
            view.show(diff)
            view.mode = "side-by-side"
            view.focus()
            await pilot.pause()
            lines = screen_text(app).splitlines()
        cut = next(line for line in lines if "x = compute" in line)
        left, right = cut.split("│")
        assert left.rstrip().endswith("…") and right.rstrip().endswith("…"), cut
        for needle in ("name: csv_parser", "@@ -1,2"):
            line = next(line for line in lines if needle in line)
            left, right = line.split("│")
            assert left.index(needle) == right.index(needle), line


async def test_activity_pages_back_through_the_stored_log_with_its_filter(tmp_path: Path) -> None:
    from state.events import PendingEvent
    from tools.runtime import Runtime
    from tui.widgets.activity import ActivityPanel

    ws = tmp_path / "ws"
    (ws / "tools").mkdir(parents=True)
    writer = Runtime(ws)
    writer.require_store(30)
    writer.events.emit_many([PendingEvent("test.old", payload={"n": i, "note": "needle-far-back" if i == 7 else ""})
                             for i in range(2500)])
    writer.close()
    app = TooldeckApp(ws, poll_seconds=0.1)
    try:
        async with app.run_test(size=(160, 50)) as pilot:
            await runtime_ready(pilot, app)
            panel = app.query_one(ActivityPanel)
            feed = panel.feed
            await wait_for(pilot, lambda: len(feed.entries) >= 200, 20, "the recent events")
            held = len(feed.entries)
            assert not any("needle-far-back" in line.plain for line, _ in feed.entries)  # 2,500 events back
            await pilot.press("5", "G")
            await wait_for(pilot, lambda: len(feed.entries) >= held + 500, 20, "a page back")
            assert "G/End pages back" in str(panel.border_subtitle)
            panel.set_filter("needle-far-back")  # a filter looks back through the stored log for its matches
            await wait_for(pilot, lambda: any("needle-far-back" in line.plain for line in feed.lines), 20, "the old match")
            panel.set_filter("")
            for _ in range(10):
                if panel._reached_end:
                    break
                await pilot.press("G")
                await pilot.pause(0.3)
            await wait_for(pilot, lambda: panel._reached_end, 20, "the oldest stored event")
            ids = [item.event.id for _, item in feed.entries]
            assert ids == sorted(ids, reverse=True) and len(set(ids)) == len(ids)  # newest first, no gap or repeat
            assert sum(1 for _, item in feed.entries if item.event.kind == "test.old") == 2500
            assert "back to the oldest stored" in str(panel.border_subtitle)
    finally:
        app.shutdown()


async def test_d_and_o_work_in_the_tools_list(tmp_path: Path) -> None:
    from tests.helpers import python_tool
    from tui.screens.dialogs import ConfirmScreen

    ws = tmp_path / "ws"
    python_tool(ws / "tools", "echo", "def run(d):\n    return d\n")
    app = TooldeckApp(ws, poll_seconds=0.1)
    try:
        async with app.run_test(size=(160, 50)) as pilot:
            await runtime_ready(pilot, app)
            tools = app.query_one("#tools-table", LiveTable)
            await wait_for(pilot, lambda: "echo" in [r.key.value for r in tools.ordered_rows], 20, "the tool")
            tools.focus()
            await wait_for(pilot, lambda: app.runtime.catalog.finished.is_set() and app.latest is not None
                           and len(tools.ordered_rows) == len(app.latest.tools), 20, "every tool listed")
            # a snapshot taken while echo still loaded has no manifest for it (d would say "select a tool first"):
            # wait for the row that shows it ready
            await wait_for(pilot, lambda: "ready" in str(tools.value("echo", "status")), 20, "echo shown ready")

            def on_echo() -> bool:
                tools.move_cursor(row=tools.get_row_index("echo"))
                return tools.selected_key() == "echo"

            await wait_for(pilot, on_echo, 20, "the cursor on echo")
            await pilot.press("d")
            await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen), 20, "the disable question")
            await pilot.press("y")
            await wait_for(pilot, lambda: "disabled" in str(tools.value("echo", "status")), 20, "disabled")
            await pilot.press("d")  # enabling needs no question
            await wait_for(pilot, lambda: "disabled" not in str(tools.value("echo", "status")), 20, "enabled")
            await pilot.press("o")
            await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen), 20, "the hold-open question")
            await pilot.press("y")
            await wait_for(pilot, lambda: "open" in str(tools.value("echo", "circuit")), 20, "the circuit open")
    finally:
        app.shutdown()


async def test_at_120_columns_the_tools_list_keeps_ids_and_scores_whole() -> None:
    from tests.tui_fixture import frame

    app = TooldeckApp(live=False)
    async with app.run_test(size=(120, 40)) as pilot:
        app.apply_snapshot(frame())
        await pilot.pause()
        table = app.query_one("#tools-table", LiveTable)
        shown = table.visible_keys
        assert {"tool", "status", "version", "score"} <= set(shown), shown
        assert "translator_remote" in {str(r.key.value) for r in table.ordered_rows}
        from tests.tui_helpers import screen_text

        assert "csv_parser ✗ → json_parser ✓" in screen_text(app)  # a resilient run's hop ids whole, free text cut first


async def test_buffer_bars_have_one_meaning_each_and_a_sink_error_is_held_until_a_success() -> None:
    import dataclasses

    from tests.tui_fixture import frame

    snap = frame()
    app = TooldeckApp(live=False)
    async with app.run_test(size=(120, 40)) as pilot:
        app.apply_snapshot(snap)
        await pilot.pause()
        table = app.query_one("#buffers-table", LiveTable)
        assert {"fill", "pending", "dead", "retries"} <= set(table.visible_keys), table.visible_keys  # at 120 columns
        assert str(table.value("usage_tracking", "capacity")).endswith("0.4%")  # 37 of max_pending 10,000
        assert str(table.value("metrics", "capacity")) == "—"  # no cap: no capacity bar
        assert "+1244 batches" in str(table.value("metrics", "fill"))  # the next batch is full, 1,244 more behind it
        orders = next(b for b in snap.buffers if b["buffer_id"] == "orders")
        failing = {**orders, "pass_through_tool": "orders_sink", "last_flush_error": "orders_sink: orders_sink: RuntimeError: refused"}
        between = {**orders, "pass_through_tool": "orders_sink", "last_flush_error": None, "last_flush_result": "failed"}
        ok = {**orders, "pass_through_tool": "orders_sink", "last_flush_error": None, "last_flush_result": "ok"}
        for b, expect in ((failing, "RuntimeError: refused"), (between, "RuntimeError: refused"), (ok, "")):
            app.apply_snapshot(dataclasses.replace(snap, buffers=[x if x["buffer_id"] != "orders" else b for x in snap.buffers]))
            await pilot.pause()
            assert str(table.value("orders", "note")) == expect


async def _tool_screen_after_calls(pilot: Any, app: Any, tool_id: str, inputs: list[dict[str, Any]]) -> Any:
    """Call `tool_id` with each input (failures recorded, not raised), then open its tool screen; the screen."""
    from tools.errors import ToolError
    from tui.screens.tool_detail import ToolDetailScreen

    await runtime_ready(pilot, app)
    for data in inputs:
        try:
            app.runtime.call(tool_id, data)
        except ToolError:
            pass
    app.runtime.calls.flush()
    app.open_tool(tool_id)
    await wait_for(pilot, lambda: isinstance(app.screen, ToolDetailScreen), 20, "the tool screen")
    return app.screen


async def test_the_tool_screen_scrolls_to_its_charts_and_each_reads_right(tmp_path: Path) -> None:
    from tests.helpers import python_tool
    from tests.tui_helpers import screen_text

    ws = tmp_path / "ws"
    python_tool(ws / "tools", "half", "def run(d):\n    if d.get('fail'):\n        raise ValueError('asked')\n    return d\n")
    app = TooldeckApp(ws, poll_seconds=0.1)
    try:
        async with app.run_test(size=(160, 50)) as pilot:
            screen = await _tool_screen_after_calls(pilot, app, "half", [{"fail": i % 2 == 0} for i in range(6)])
            await wait_for(pilot, lambda: len(screen.query("#tool-charts > *")) == 2, 20, "two charts")
            await pilot.pause(0.5)
            body = screen.query_one("#tool-activity")
            body.scroll_end(animate=False)
            await pilot.pause(0.5)
            assert body.max_scroll_y > 0 and body.scroll_y == body.max_scroll_y  # it scrolls, to the end
            circuit = screen.query("#tool-charts > *").last()
            assert circuit.region.bottom <= body.region.bottom  # the last chart whole in view, its time axis too
            text = screen_text(app)
            assert "share of calls failed, per minute" in text and "% failed" in text
            assert "100" in text  # a share's axis runs 0-100, not 50-150
            assert text.count("min before now") >= 1 and "open" in text and "closed" in text  # the circuit chart, whole
            assert "per minute" in text and "s before now" not in text  # a per-minute chart's axis is in minutes
            assert "-60" in text  # the last hour, to now
    finally:
        app.shutdown()


async def test_the_tool_screen_scrolls_its_calls_and_charts_without_a_tab_first(tmp_path: Path) -> None:
    """The column of calls, failures and charts scrolled only after Tab: the keys went to the manifest beside it,
    which had nothing to scroll. It has the focus when the screen opens; the mouse wheel scrolls either column."""
    from textual.events import MouseScrollDown

    from tests.helpers import python_tool

    ws = tmp_path / "ws"
    python_tool(ws / "tools", "half", "def run(d):\n    if d.get('fail'):\n        raise ValueError('asked')\n    return d\n")
    app = TooldeckApp(ws, poll_seconds=0.1)
    try:
        async with app.run_test(size=(160, 50)) as pilot:
            screen = await _tool_screen_after_calls(pilot, app, "half", [{"fail": i % 2 == 0} for i in range(6)])
            await wait_for(pilot, lambda: len(screen.query("#tool-charts > *")) == 2, 20, "the charts")
            body = screen.query_one("#tool-activity")
            await wait_for(pilot, lambda: body.max_scroll_y > 0, 5, "more than the column holds")
            await pilot.press("pagedown")
            await wait_for(pilot, lambda: body.scroll_y > 0, 5, "pagedown scrolling the calls and charts")
            await pilot.press("end")
            await wait_for(pilot, lambda: body.scroll_y == body.max_scroll_y, 5, "end at the last chart")
            await pilot.press("home", "shift+tab")  # the manifest focused: the wheel still scrolls what it is over
            assert screen.focused is screen.query_one("#tool-manifest") and body.scroll_y == 0
            await pilot._post_mouse_events([MouseScrollDown], body, offset=(5, 5))
            await wait_for(pilot, lambda: body.scroll_y > 0, 5, "the wheel scrolling the calls and charts")
    finally:
        app.shutdown()


async def test_the_tool_screen_shows_each_call_and_failure_on_one_line(tmp_path: Path) -> None:
    """A long input or error ends in an ellipsis: it wrapped into a second line, cut mid-word ("Traceba")."""
    from tests.helpers import python_tool
    from tests.tui_helpers import screen_text

    ws = tmp_path / "ws"
    python_tool(ws / "tools", "loud", "def run(d):\n    raise RuntimeError('a very long complaint ' * 6)\n")
    app = TooldeckApp(ws, poll_seconds=0.1)
    try:
        async with app.run_test(size=(160, 50)) as pilot:
            await _tool_screen_after_calls(pilot, app, "loud", [{"text": f"call {i} " + "x" * 80} for i in range(3)])
            await wait_for(pilot, lambda: "a very long" in screen_text(app), 20, "the failures")
            lines = screen_text(app).splitlines()
            calls = [line for line in lines if "call " in line and "xxx" in line]
            failures = [line for line in lines if "a very long complain" in line]
            assert len(calls) == 3 and len(failures) == 3, "\n".join(lines)
            assert all("…" in line for line in calls + failures)
            assert not any(line.strip(" │█").startswith(("complaint", "xxx")) for line in lines)  # no wrapped second line
    finally:
        app.shutdown()


async def test_help_scrolls_with_j_and_k_at_80x24() -> None:
    app = TooldeckApp(live=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("question_mark")
        await pilot.pause()
        body = app.screen.query_one("#help-body")
        assert body.max_scroll_y > 0  # more keys than rows
        await pilot.press("j", "j", "j")
        assert body.scroll_y == 3
        await pilot.press("k")
        assert body.scroll_y == 2


async def test_every_text_colour_reads_at_4_5_to_1_in_both_themes_and_switching_back_restores_them() -> None:
    """Reads the styles the panels rendered (the Tools table's cells, an Activity line) after each theme switch,
    and checks each text colour's WCAG contrast on the theme's background, surface and panel colours."""
    from rich.text import Text
    from textual.color import Color

    from state.events import Event
    from tests.tui_fixture import frame
    from tui.style import MIN_CONTRAST, contrast, theme_colors
    from tui.widgets.activity import ActivityPanel, Line

    def text_colours(app: TooldeckApp) -> set[str]:
        table = app.query_one("#tools-table", LiveTable)
        out: set[str] = set()
        for row in table.ordered_rows:
            for shown in table.get_row(row.key):
                cell = shown.text  # the Cell around it draws the gap
                if isinstance(cell, Text):
                    for span in [*cell.spans, None]:
                        style = cell.style if span is None else span.style
                        color = getattr(style, "color", None) if not isinstance(style, str) else None
                        if isinstance(style, str) and style and style not in ("dim", "bold", "reverse"):
                            out.add(style.replace("bold ", "").split(" on ")[0])
                        elif color is not None and color.triplet is not None:
                            out.add(color.triplet.hex)
        feed = app.query_one("#activity-log")
        for text, _ in list(feed.entries)[:20]:
            for span in text.spans:
                if isinstance(span.style, str) and span.style.startswith("#"):
                    out.add(span.style)
        return out

    snap = frame()
    snap.events.append(Event(99, snap.taken_at, 1, "s", "tool.failure", "csv_parser", "1.0.0", {"error": "boom"}))
    app = TooldeckApp(live=False)
    seen: dict[str, set[str]] = {}
    async with app.run_test(size=(160, 50)) as pilot:
        app.apply_snapshot(snap)
        activity = app.query_one(ActivityPanel)
        activity.feed.add([(activity.format(e, theme_colors(app)), Line(e)) for e in snap.events])
        for theme in ("textual-dark", "textual-light", "textual-dark"):
            app.theme = theme
            await pilot.pause()
            colours = text_colours(app)
            grounds = [Color.parse(app.theme_variables[k]) for k in ("background", "surface", "panel")]
            low = {c: round(min(contrast(Color.parse(c), g) for g in grounds), 2) for c in colours}
            assert colours and all(r >= MIN_CONTRAST for r in low.values()), (theme, low)
            seen.setdefault(theme, colours)
            assert colours == seen[theme]  # switching back gives the same colours, none of the other theme's left


async def test_a_database_locked_by_another_process_is_said_at_once_with_its_age(tmp_path: Path) -> None:
    import time

    ws = tmp_path / "ws"
    (ws / "tools").mkdir(parents=True)
    app = TooldeckApp(ws, poll_seconds=0.1)
    holder = None
    try:
        async with app.run_test(size=(160, 50)) as pilot:
            await runtime_ready(pilot, app)
            await wait_for(pilot, lambda: app.latest is not None, 20, "a snapshot")
            db = ws / ".tooldeck" / "tooldeck.db"
            holder = subprocess.Popen([sys.executable, "-c", (
                "import sqlite3, sys, time; c = sqlite3.connect(sys.argv[1], isolation_level=None);"
                " c.execute('BEGIN EXCLUSIVE'); print('held', flush=True); time.sleep(float(sys.argv[2]))"), str(db), "6"],
                stdout=subprocess.PIPE, text=True)
            assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
            held = time.monotonic()
            await wait_for(pilot, lambda: app.sub_title.startswith("STATE LOCKED"), 10, "the lock in the header")
            print(f"the lock was in the header {time.monotonic() - held:.2f} s after it was taken")
            assert "another process holds the write lock" in app.sub_title
            await wait_for(pilot, lambda: not app.sub_title.startswith("STATE LOCKED"), 20, "the header after the release")
            assert "write lock is free again after" in str(app.query_one("#status-line").render())
    finally:
        if holder is not None:
            holder.kill()
            holder.wait(10)
        app.shutdown()


async def test_repeated_flush_lines_fold_per_buffer_across_refreshes() -> None:
    import dataclasses

    from state.events import Event
    from tests.tui_fixture import frame
    from tui.widgets.activity import ActivityPanel

    def flush(i: int, buffer: str) -> Event:
        return Event(i, 1000.0 + i, 1, "s", "buffer.flush", None, None, {"buffer_id": buffer, "count": 50})

    app = TooldeckApp(live=False)
    async with app.run_test(size=(160, 50)) as pilot:
        panel = app.query_one(ActivityPanel)
        base = dataclasses.replace(frame(), events=[])
        for events in ([flush(1, "a"), flush(2, "b")], [flush(3, "a")], [flush(4, "a"), flush(5, "b")]):
            panel.apply(dataclasses.replace(base, events=events), {"error": "red", "accent": "cyan", "ok": "green", "warn": "yellow"})
            await pilot.pause()
        lines = [line.plain for line in panel.feed.lines]
        assert len(lines) == 2 and "×2 (100 items)" in lines[0] and "×3 (150 items)" in lines[1], lines
        failure = Event(6, 1006.0, 1, "s", "tool.failure", "t", "1.0.0", {"error": "boom"})
        panel.apply(dataclasses.replace(base, events=[failure, flush(7, "a")]), {"error": "red", "accent": "cyan", "ok": "green",
                                                                                 "warn": "yellow"})
        await pilot.pause()
        lines = [line.plain for line in panel.feed.lines]  # one line a buffer: a's newest flush carries its count on top
        assert len(lines) == 3 and "×4 (200 items)" in lines[0] and "tool.failure" in lines[1] and "×2" in lines[2], lines
        for events in ([dataclasses.replace(failure, id=8)], [flush(9, "a")]):  # a refresh between: they still fold
            panel.apply(dataclasses.replace(base, events=events), {"error": "red", "accent": "cyan", "ok": "green", "warn": "yellow"})
            await pilot.pause()
        lines = [line.plain for line in panel.feed.lines]
        assert len(lines) == 4 and "×5 (250 items)" in lines[0] and "tool.failure" in lines[1], lines
        assert lines[0].index("×5") < lines[0].index("buffer_id=a"), lines[0]  # before the detail a narrow panel cuts


async def test_the_locked_counter_keeps_counting_while_the_lock_is_held(tmp_path: Path) -> None:
    """Held for 12 s by another process (BEGIN IMMEDIATE) while a buffer has pending items: the header's
    `STATE LOCKED n s` goes on counting (it stopped after a few seconds, the poller waiting to write a buffer
    sample: the live console must never go silently stale)."""
    import re

    from tools.cli.demo_workspace import prepare_demo_workspace

    ws, _ = prepare_demo_workspace(str(tmp_path / "demo"))
    app = TooldeckApp(ws, poll_seconds=0.1)
    holder = None
    try:
        async with app.run_test(size=(160, 50)) as pilot:
            await runtime_ready(pilot, app)
            await wait_for(pilot, lambda: app.latest is not None, 20, "a snapshot")
            from tests.test_tui_panels import cli

            assert cli(ws, "buffer", "write", "ext", '{"n": 1}', "--strategy", "batched").returncode == 0
            await wait_for(pilot, lambda: any(b["buffer_id"] == "ext" for b in app.latest.buffers), 10, "the buffer")
            db = ws / ".tooldeck" / "tooldeck.db"
            holder = subprocess.Popen([sys.executable, "-c", (
                "import sqlite3, sys, time; c = sqlite3.connect(sys.argv[1], isolation_level=None);"
                " c.execute('BEGIN IMMEDIATE'); print('held', flush=True); time.sleep(float(sys.argv[2]))"), str(db), "60"],
                stdout=subprocess.PIPE, text=True)
            assert holder.stdout is not None and holder.stdout.readline().strip() == "held"

            def seconds() -> int:
                found = re.match(r"STATE LOCKED (\d+) s", app.sub_title)
                return int(found.group(1)) if found else -1

            await wait_for(pilot, lambda: seconds() >= 0, 15, "the lock in the header")
            first = seconds()  # it froze a few seconds in: it must go well past that (the margin: a loaded machine)
            await wait_for(pilot, lambda: seconds() >= first + 8, 20, "the counter counting on")
            holder.kill()
            holder.wait(10)
            await wait_for(pilot, lambda: not app.sub_title.startswith("STATE LOCKED"), 30, "the header after the release")
    finally:
        if holder is not None:
            holder.kill()
            holder.wait(10)
        app.shutdown()


async def test_the_tool_screen_follows_new_calls_of_its_tool(tmp_path: Path) -> None:
    """Three calls from the CLI while the tool screen is open: it lists them (it went on showing the old calls
    while the Tools row behind it counted the new ones)."""
    from tests.helpers import python_tool
    from tests.test_tui_panels import cli

    ws = tmp_path / "ws"
    python_tool(ws / "tools", "echo", "def run(d):\n    return d\n")
    app = TooldeckApp(ws, poll_seconds=0.1)
    try:
        async with app.run_test(size=(160, 50)) as pilot:
            screen = await _tool_screen_after_calls(pilot, app, "echo", [{"n": 0}])
            await wait_for(pilot, lambda: len(screen.info.get("calls", [])) == 1, 20, "the first call listed")
            for n in (1, 2, 3):
                assert cli(ws, "call", "echo", f'{{"n": {n}}}').returncode == 0
            await wait_for(pilot, lambda: len(screen.info["calls"]) == 4, 15, "the CLI's three calls listed")
            assert app.screen is screen and len(screen.query("#tool-charts > *")) == 2  # drawn again in place
    finally:
        app.shutdown()
