"""Pilot tests of each panel against a real runtime and real processes."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.helpers import alive
from tests.tui_helpers import runtime_ready, screen_text, table_keys, wait_for
from tools.cli.demo_workspace import prepare_demo_workspace
from tui.app import TooldeckApp
from tui.screens.dead_letter import DeadLetterScreen
from tui.screens.dialogs import ConfirmScreen, PromptScreen
from tui.screens.tool_detail import ToolDetailScreen


@pytest.fixture
def demo_ws(tmp_path: Path, backend) -> Path:
    """The demo workspace, on each backend (the dashboard never asks which one it is on)."""
    ws, _ = prepare_demo_workspace(str(tmp_path / "demo"))
    settings = ws / "tooldeck.toml"
    settings.write_text(settings.read_text() + "\n[buffers]\nmax_attempts = 1\nbackoff_base_seconds = 0.05\n")
    return ws


def cli(ws: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "tools", "--workspace", str(ws), *args], capture_output=True, text=True, timeout=60)


def cell(table, row: str, column: str) -> str:
    """A cell's full value (also of a column left out for width)."""
    return str(table.value(row, column))


def sink_items(ws: Path) -> int:
    path = ws / ".tooldeck" / "sink.db"
    if not path.exists():
        return 0
    con = sqlite3.connect(path)
    try:
        return int(con.execute("SELECT COALESCE(SUM(count), 0) FROM batches").fetchone()[0])
    finally:
        con.close()


async def test_buffer_panel_follows_another_process_and_flushes_and_clears(demo_ws: Path) -> None:
    app = TooldeckApp(demo_ws, poll_seconds=0.1)
    try:
        async with app.run_test(size=(160, 50)) as pilot:
            await runtime_ready(pilot, app)
            out = cli(demo_ws, "buffer", "write", "ext", '{"n": 1}', '{"n": 2}', '{"n": 3}', "--strategy", "manual",
                      "--max-size", "10", "--pass-through", "usage_sink")
            assert out.returncode == 0, out.stderr
            table = app.query_one("#buffers-table")
            await wait_for(pilot, lambda: "ext" in table_keys(table) and cell(table, "ext", "pending") == "3",
                           what="the other process's writes on the fill bar")
            assert "30%" in cell(table, "ext", "fill") and cell(table, "ext", "batch") == "10"
            table.focus()
            table.move_cursor(row=table.get_row_index("ext"))
            await pilot.press("f")
            await wait_for(pilot, lambda: cell(table, "ext", "pending") == "0", what="flushed")
            assert sink_items(demo_ws) == 3
            assert cli(demo_ws, "buffer", "write", "ext", '{"n": 4}').returncode == 0
            await wait_for(pilot, lambda: cell(table, "ext", "pending") == "1", what="one more item")
            await pilot.press("x")
            await wait_for(pilot, lambda: isinstance(app.screen, PromptScreen), what="the clear confirmation")
            assert "deletes 1 pending item and 0 dead-letter items" in app.screen.title_text, app.screen.title_text
            await pilot.press("enter", "y")  # habit: neither Enter nor y clears; the buffer's id must be typed
            error = app.screen.query_one("#dialog-error")
            await wait_for(pilot, lambda: "type ext exactly to confirm" in str(error.render()), what="the inline error")
            assert isinstance(app.screen, PromptScreen) and cell(table, "ext", "pending") == "1"
            app.screen.query_one("#field-confirm").value = "ext"
            await pilot.press("enter")
            await wait_for(pilot, lambda: cell(table, "ext", "pending") == "0", what="cleared")
            await wait_for(pilot, lambda: "cleared 1 item" in str(app.query_one("#status-line").render()), what="the result")
            assert sink_items(demo_ws) == 3  # cleared items were not delivered
    finally:
        app.shutdown()


async def test_dead_letter_screen_lists_and_replays(demo_ws: Path) -> None:
    app = TooldeckApp(demo_ws, poll_seconds=0.1)
    try:
        async with app.run_test(size=(160, 50)) as pilot:
            await runtime_ready(pilot, app)
            assert cli(demo_ws, "buffer", "write", "doomed", '{"n": 1}', "--strategy", "manual", "--pass-through",
                       "slow_tool").returncode == 0
            table = app.query_one("#buffers-table")
            await wait_for(pilot, lambda: "doomed" in table_keys(table), what="the buffer row")
            table.focus()
            table.move_cursor(row=table.get_row_index("doomed"))
            await pilot.press("f")
            await wait_for(pilot, lambda: cell(table, "doomed", "dead") == "1", timeout=30, what="a dead-letter batch")
            await pilot.press("d")
            await wait_for(pilot, lambda: isinstance(app.screen, DeadLetterScreen), what="the dead-letter screen")
            screen = app.screen
            dead = screen.query_one("#dead-table")
            await wait_for(pilot, lambda: dead.row_count == 1, what="the parked batch listed")
            title = str(screen.query_one("#dead-title").render())
            assert "1 batch, 1 item" in title, title
            batch = dead.selected_key()
            assert '{"n": 1}' in str(dead.value(batch, "preview")).replace(" ", "").replace(":", ": ")
            parked = screen.batches[batch]["dead_at"]
            loads = screen.loads
            await pilot.press("r")  # slow_tool times out again: the batch is parked again and must show again
            status = app.query_one("#status-line")
            await wait_for(pilot, lambda: "1 batch replayed: 0 delivered, 1 failed again" in str(status.render()), timeout=60,
                           what="the replay's result")
            await wait_for(pilot, lambda: screen.loads > loads and dead.row_count == 1, timeout=30, what="the list refreshed")
            await wait_for(pilot, lambda: batch in screen.batches and screen.batches[batch]["dead_at"] > parked, timeout=30,
                           what="the re-parked batch listed again")
            await pilot.press("R")
            await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen), what="the replay-all confirmation")
            assert "Replay all 1 dead-letter batch (1 item) of doomed?" in app.screen.question
            await pilot.press("enter")  # No has the focus: Enter, the habit, replays nothing
            await wait_for(pilot, lambda: app.screen is screen, what="back in the dead-letter screen")
            await pilot.press("escape")
    finally:
        app.shutdown()


async def test_failures_panel_mark_by_hand_and_tool_controls(demo_ws: Path) -> None:
    app = TooldeckApp(demo_ws, poll_seconds=0.1)
    try:
        async with app.run_test(size=(160, 50)) as pilot:
            scores = app.query_one("#scores-table")
            await wait_for(pilot, lambda: "csv_parser@1.0.0" in table_keys(scores), what="scores")
            scores.focus()
            scores.move_cursor(row=scores.get_row_index("csv_parser@1.0.0"))
            await pilot.press("m")
            await wait_for(pilot, lambda: isinstance(app.screen, PromptScreen), what="the mark dialog")
            await pilot.press("enter")  # nothing typed: the dialog says what is missing and stays open
            await wait_for(pilot, lambda: "scenario is empty" in str(app.screen.query_one("#dialog-error").render()),
                           what="the empty scenario refused")
            assert isinstance(app.screen, PromptScreen)
            app.screen.query_one("#field-scenario").value = "parse JSON data"
            app.screen.query_one("#field-error").value = "JSONDecodeError"
            app.screen.query_one("#field-severity").value = "high"
            app.screen.query_one("#field-tool").value = "no_such_tool"
            await pilot.press("enter")  # a tool the mark would not find: said in the dialog, what was typed kept
            await wait_for(pilot, lambda: "no tool 'no_such_tool' in the catalog" in str(app.screen.query_one("#dialog-error").render()),
                           what="the unknown tool refused")
            assert app.screen.query_one("#field-scenario").value == "parse JSON data"
            app.screen.query_one("#field-tool").value = "csv_parser"
            app.screen.query_one("#field-tool").focus()
            await pilot.press("enter")  # enter in any field submits the dialog
            failures = app.query_one("#failures-table")
            await wait_for(pilot, lambda: failures.row_count >= 1, what="the failure listed")
            await wait_for(pilot, lambda: "not-for-json" in cell(scores, "csv_parser@1.0.0", "tags"), what="the negative tag")
            assert float(cell(scores, "csv_parser@1.0.0", "score")) < 1.0
            tools = app.query_one("#tools-table")
            tools.focus()
            tools.move_cursor(row=tools.get_row_index("csv_parser"), column=0)
            await pilot.press("enter")
            await wait_for(pilot, lambda: isinstance(app.screen, ToolDetailScreen), what="the tool detail")
            await wait_for(pilot, lambda: app.screen.info.get("tool_id") == "csv_parser", what="tool detail loaded")
            detail = app.screen
            await pilot.press("d")
            await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen), what="the disable confirmation")
            question = app.screen.question
            assert question.startswith("Disable csv_parser 1.0.0?") and "in the last minute will be refused" in question
            await pilot.press("y")
            await wait_for(pilot, lambda: app.runtime.extensions["failures"].scores_snapshot()[("csv_parser", "1.0.0")]["disabled"],
                           what="disabled")
            assert app.screen is detail
            with pytest.raises(Exception, match="disabled"):
                app.runtime.call("csv_parser", {"text": "a\n1\n"})
            await wait_for(pilot, lambda: app.screen.info.get("health", {}).get("disabled"), what="detail refreshed")
            await pilot.press("d")  # enabling needs no confirmation
            await wait_for(pilot, lambda: not app.runtime.extensions["failures"].scores_snapshot()[("csv_parser", "1.0.0")]["disabled"],
                           what="enabled again")
            await pilot.press("escape")
    finally:
        app.shutdown()


async def test_quitting_leaves_no_child_process(demo_ws: Path) -> None:
    app = TooldeckApp(demo_ws, poll_seconds=0.1, traffic=True)
    try:
        async with app.run_test(size=(120, 40)) as pilot:
            await wait_for(pilot, lambda: app._traffic_proc is not None, what="the traffic generator")
            app.runtime.call("json_parser", {"text": "[1]"})
            workers = app.runtime.workers.pids()
            traffic = app._traffic_proc.pid
            buffers = app.query_one("#buffers-table")
            await wait_for(pilot, lambda: "usage_tracking" in table_keys(buffers), timeout=30, what="demo traffic in the buffer panel")
            await pilot.press("q")
    finally:
        app.shutdown()
    deadline = time.monotonic() + 10
    while any(alive(p) for p in [traffic, *workers]) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not alive(traffic) and not any(alive(p) for p in workers)


def test_demo_traffic_survives_sigterm_and_flushes(demo_ws: Path) -> None:
    proc = subprocess.Popen([sys.executable, "-m", "tools.cli.demo_traffic", "--workspace", str(demo_ws), "--rate", "500",
                             "--seconds", "4"], stderr=subprocess.PIPE, text=True)
    _, err = proc.communicate(timeout=90)
    assert proc.returncode == 0, err
    assert sink_items(demo_ws) > 100, err
    out = cli(demo_ws, "buffer", "status", "usage_tracking", "--json")
    status = json.loads(out.stdout)
    row = status[0] if isinstance(status, list) else status.get("buffers", [status])[0]
    assert row["pending"] == 0, row


async def test_resilient_runs_expand_into_their_hops(demo_ws: Path) -> None:
    from tools.recovery.resilient import call_tool_resilient
    from tui.screens.details import DetailScreen

    app = TooldeckApp(demo_ws, poll_seconds=0.1)
    try:
        async with app.run_test(size=(160, 50)) as pilot:
            await runtime_ready(pilot, app)
            result = call_tool_resilient(app.runtime, "translate to french", {"text": "Hello", "target": "fr"}, tags=["translation"])
            assert result["ok"]
            table = app.query_one("#resilient-table")
            await wait_for(pilot, lambda: table.row_count == 1, what="the resilient run listed")
            key = table_keys(table)[0]
            assert "translator_dictionary ✓" in str(table.value(key, "hops"))
            table.focus()
            table.move_cursor(row=0, column=0)
            await pilot.press("enter")
            await wait_for(pilot, lambda: isinstance(app.screen, DetailScreen), what="the hops")
            assert "translate to french" in app.screen.details.title
            hops = [value for name, value in app.screen.details.fields if name.startswith("hop ")]
            assert any("translator_dictionary" in str(h) and "ok" in str(h) for h in hops), hops
    finally:
        app.shutdown()


async def test_scores_stay_ranked_worst_first(demo_ws: Path) -> None:
    from tools.recovery.ledger import mark_tool_failure

    app = TooldeckApp(demo_ws, poll_seconds=0.1)
    try:
        async with app.run_test(size=(160, 50)) as pilot:
            scores = app.query_one("#scores-table")
            await wait_for(pilot, lambda: "usage_sink@1.0.0" in table_keys(scores), what="scores")
            mark_tool_failure(app.runtime, "usage_sink", "store the batch", "disk full", "critical")
            await wait_for(pilot, lambda: table_keys(scores)[0] == "usage_sink@1.0.0", what="the demoted tool ranked first")
    finally:
        app.shutdown()


async def test_the_worst_tool_is_in_view_when_its_panel_comes_back(demo_ws: Path) -> None:
    """At 80x24 one panel is on screen; the Failures panel keeps taking its rows while another is shown. A tool that
    became the worst meanwhile is on the first row, under the cursor, and in view when the panel comes back (it
    was scrolled above the view: the table had scrolled for a window of no height)."""
    from tools.recovery.ledger import mark_tool_failure

    app = TooldeckApp(demo_ws, poll_seconds=0.1)
    try:
        async with app.run_test(size=(80, 24)) as pilot:
            await runtime_ready(pilot, app)
            scores = app.query_one("#scores-table")
            await wait_for(pilot, lambda: "usage_sink@1.0.0" in table_keys(scores), what="scores")
            mark_tool_failure(app.runtime, "csv_parser", "parse it", "bad", "high")
            await wait_for(pilot, lambda: table_keys(scores)[0] == "csv_parser@1.0.0", what="csv_parser ranked first")
            await pilot.press("2")
            mark_tool_failure(app.runtime, "usage_sink", "store the batch", "disk full", "critical")
            await wait_for(pilot, lambda: table_keys(scores)[0] == "usage_sink@1.0.0", what="the demoted tool ranked first")
            await pilot.pause(0.3)
            await pilot.press("3")
            await pilot.pause(0.3)
            assert scores.selected_key() == "usage_sink@1.0.0" and scores.scroll_y == 0
            first_row = screen_text(app).splitlines()[4]
            assert "usage_sink" in first_row and "open" in first_row, screen_text(app)
    finally:
        app.shutdown()


async def test_tool_detail_operator_controls(demo_ws: Path) -> None:
    """In the tool detail: r resets the score (asks first), t removes a tag, o / c force the circuit."""
    from tools.recovery.ledger import mark_tool_failure
    from tui.screens.dialogs import ChoiceScreen

    app = TooldeckApp(demo_ws, poll_seconds=0.1)
    try:
        async with app.run_test(size=(160, 50)) as pilot:
            await runtime_ready(pilot, app)
            mark_tool_failure(app.runtime, "csv_parser", "parse JSON data", "JSONDecodeError", "high")
            tracker = app.runtime.extensions["failures"]

            def health() -> dict:
                return tracker.scores_snapshot()[("csv_parser", "1.0.0")]

            assert health()["score"] < 1.0 and "not-for-json" in health()["tags"]
            app.open_tool("csv_parser")
            await wait_for(pilot, lambda: isinstance(app.screen, ToolDetailScreen) and app.screen.info.get("tool_id"),
                           what="the tool detail")
            await pilot.press("o")
            await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen), what="the hold-open confirmation")
            await pilot.press("y")
            await wait_for(pilot, lambda: health()["circuit"] == "open", what="circuit forced open")
            await pilot.press("c")
            await wait_for(pilot, lambda: health()["circuit"] == "closed", what="circuit forced closed")
            await wait_for(pilot, lambda: "not-for-json" in app.screen.info.get("health", {}).get("tags", []), what="tags shown")
            await pilot.press("t")
            await wait_for(pilot, lambda: isinstance(app.screen, ChoiceScreen), what="the tag choice")
            await pilot.press("enter")
            await wait_for(pilot, lambda: "not-for-json" not in health()["tags"], what="tag removed")
            await wait_for(pilot, lambda: isinstance(app.screen, ToolDetailScreen), what="back in the detail")
            await pilot.press("r")
            await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen), what="the reset confirmation")
            await pilot.press("y")
            await wait_for(pilot, lambda: health()["score"] == 1.0, what="score reset")
            events = [e.kind for e in app.runtime.events.recent(100)]
            assert {"control.circuit", "control.remove_tag", "control.reset_score"} <= set(events), events
    finally:
        app.shutdown()


async def test_the_dashboard_rides_out_a_database_outage(tmp_path: Path, pg_cluster, monkeypatch: pytest.MonkeyPatch) -> None:
    """Its database refuses connections and drops the open ones: the dashboard keeps the last data, says
    the state is unreachable, and follows the live state again once the database is back."""
    name = pg_cluster.create()
    monkeypatch.setenv("TOOLDECK_DATABASE_URL", pg_cluster.url(name))
    ws, _ = prepare_demo_workspace(str(tmp_path / "demo"))
    app = TooldeckApp(ws, poll_seconds=0.1)
    try:
        async with app.run_test(size=(160, 50)) as pilot:
            await runtime_ready(pilot, app)
            table = app.query_one("#buffers-table")
            assert cli(ws, "buffer", "write", "before", '{"n": 1}', "--strategy", "manual").returncode == 0
            await wait_for(pilot, lambda: "before" in table_keys(table), what="a buffer written before the outage")
            pg_cluster.admin.execute(f"ALTER DATABASE {name} ALLOW_CONNECTIONS false")
            pg_cluster.admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (name,))
            status = app.query_one("#status-line")
            await wait_for(pilot, lambda: "state store unreachable" in str(status.render()), timeout=30, what="the outage")
            assert app.sub_title.startswith("STATE UNREACHABLE")
            assert "before" in table_keys(table)  # the last data stays on screen
            pg_cluster.admin.execute(f"ALTER DATABASE {name} ALLOW_CONNECTIONS true")
            await wait_for(pilot, lambda: "reachable again" in str(status.render()), timeout=30, what="the recovery")
            assert not app.sub_title.startswith("STATE UNREACHABLE")
            assert cli(ws, "buffer", "write", "after", '{"n": 2}', "--strategy", "manual").returncode == 0
            await wait_for(pilot, lambda: "after" in table_keys(table), what="a buffer written after the outage")
    finally:
        app.shutdown()
    pg_cluster.drop(name)


@pytest.mark.parametrize("size", [(160, 50), (80, 24)])
async def test_shift_s_in_the_evolution_panel_shows_the_review_stats(tmp_path: Path, size: tuple[int, int]) -> None:
    """The dashboard's Evolution panel shows what `tooldeck review stats` prints (the same rows), hints visible;
    at 80 columns one block a row, the column names and keys whole (the table cut them to three letters)."""
    from state import proposals
    from tests.tui_helpers import runtime_ready, screen_text, wait_for
    from tui.screens.dialogs import TextScreen

    ws = tmp_path / "ws"
    (ws / "tools").mkdir(parents=True)
    app = TooldeckApp(ws, poll_seconds=0.1)
    try:
        async with app.run_test(size=size) as pilot:
            await runtime_ready(pilot, app)
            with app.runtime.store.tx() as con:
                for version, status, hint in [("1.1.0", "approved", "detect the delimiter"), ("1.2.0", "rejected", "retry\x1b[31m"),
                                              ("1.3.0", "approved", "detect the delimiter")]:
                    pid = proposals.create(con, tool_id="csv_parser", version=version, status=status, mutation_hint=hint,
                                           created=1.0, updated=1.0, rounds=1, input_tokens=100, output_tokens=50)
                    assert pid is not None
                    proposals.update(con, pid, {"approved_at": 1.0 if status == "approved" else None})
            app.query_one("#proposals-table").focus()
            await pilot.press("S")
            await wait_for(pilot, lambda: isinstance(app.screen, TextScreen), 20, "the stats screen")
            await pilot.pause(0.2)
            text = screen_text(app)
            assert "Evolution statistics" in text and "67%" in text  # 2 of 3 decided proposals approved
            assert "detect the delimiter" in text and ("csv_parser" in text or size[0] == 80)  # at 80x24: further down
            assert "\x1b" not in text and "retry\\x1b[31m" in text, text  # a hint's escape is shown, not run
            assert "3 proposals, 67% of the decided ones approved" in str(app.main.query_one("#status-line").render())
            if size[0] == 80:
                assert "tokens/approval" in text and "rolled back 0" in text and "hint: detect the delimiter" in text, text
    finally:
        app.shutdown()
