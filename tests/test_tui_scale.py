"""A dashboard over many tools stays light (issue 24, scale of the live view): the tool list is re-read at a pace
its cost allows, unchanged rows cost no table work, and the rows say their age when they are not fresh."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from tui.snapshot import Collector, ToolRow


def generated_tools(ws: Path, n: int) -> None:
    tools = ws / "tools"
    tools.mkdir(parents=True)
    (tools / "gen.py").write_text("def run(data):\n    return data\n")
    for i in range(n):
        (tools / f"gen_{i:03d}.yaml").write_text(
            f"name: gen_{i:03d}\ntype: python\nentry: gen.py:run\ndescription: generated tool {i}\n")


def test_the_tool_rows_are_read_again_only_as_often_as_their_cost_allows(tmp_path: Path) -> None:
    """Re-reading every tool on every poll kept a core busy at 10,000 tools: a read that took `cost` s of CPU waits
    `cost / share` s for the next one, and the snapshot says when its rows were read."""
    from tools.runtime import Runtime

    generated_tools(tmp_path, 40)
    rt = Runtime(tmp_path, serve=True)
    try:
        rt.require_store(30)
        assert rt.catalog.finished.wait(30)
        frugal = Collector(rt, share=1e-6)  # any read at all costs more than this share allows for hours
        first, second = frugal.collect(), frugal.collect()
        assert sum(t.tool_id.startswith("gen_") for t in first.tools) == 40  # and the built-in tools
        assert second.tools is first.tools  # not read again
        assert second.tools_at == first.tools_at <= second.taken_at
        assert second.summary == first.summary == f"Ready: {len(first.tools)} tools"
        eager = Collector(rt, share=1e9)  # a read costs nothing against this share: every poll reads
        first, second = eager.collect(), eager.collect()
        assert second.tools_at > first.tools_at
        assert second.tools is first.tools  # read again and found equal: the same list goes on (no panel work)
    finally:
        rt.close()


def _tools(n: int) -> list[ToolRow]:
    return [ToolRow(f"gen_{i:04d}", "ready", "1.0.0", "", "python", "workspace", 1.0, "closed", i, 0, 1.0, "")
            for i in range(n)]


async def test_an_apply_with_one_changed_tool_builds_and_updates_only_that_row() -> None:
    """Equal rows (a fresh read of an unchanged workspace) keep their cells: applying 2,000 tools with one changed
    builds one row's cells and updates one row's cells, not 2,000 (seconds of event loop at 10,000 tools)."""
    from tests.tui_fixture import frame
    from tui.app import TooldeckApp
    from tui.widgets.tools_panel import ToolsPanel

    built: list[str] = []
    cells = ToolsPanel._cells

    def counting(row: ToolRow, colors: dict[str, str]) -> tuple:
        built.append(row.tool_id)
        return cells(row, colors)

    app = TooldeckApp(live=False)
    async with app.run_test(size=(160, 50)) as pilot:
        tools = _tools(2000)
        app.apply_snapshot(dataclasses.replace(frame(), tools=tools))
        await pilot.pause()
        table = app.query_one("#tools-table")
        updated: list[str] = []
        update_cell = table.update_cell
        table.update_cell = lambda row, column, value, **kw: (updated.append(row), update_cell(row, column, value, **kw))
        ToolsPanel._cells = staticmethod(counting)  # type: ignore[method-assign]
        try:
            again = [dataclasses.replace(t, calls=t.calls + 1 if t.tool_id == "gen_1000" else t.calls) for t in tools]
            app.apply_snapshot(dataclasses.replace(frame(), tools=again))
            await pilot.pause()
        finally:
            ToolsPanel._cells = staticmethod(cells)  # type: ignore[method-assign]
        assert built == ["gen_1000"]
        assert set(updated) == {"gen_1000"}
        assert table.value("gen_1000", "calls") == "1001"


async def test_tool_rows_read_a_while_ago_say_their_age_in_the_border() -> None:
    """A 10,000-tool list is read every ~11 s: its panel says how old the rows are rather than look live."""
    import time

    from tests.tui_fixture import frame
    from tui.app import TooldeckApp
    from tui.messages import SnapshotReady

    app = TooldeckApp(live=False)
    async with app.run_test(size=(160, 50)) as pilot:
        now = time.time()
        snapshot = dataclasses.replace(frame(), tools=_tools(3), taken_at=now, tools_at=now - 12.4)
        app.apply_snapshot(snapshot)
        app.post_message(SnapshotReady(snapshot))
        await pilot.pause()
        panel = app.query_one("#tools-panel")
        assert str(panel.border_subtitle).endswith("3 tools · read 12 s ago")
        fresh = dataclasses.replace(snapshot, tools_at=now - 0.3)
        app.post_message(SnapshotReady(fresh))
        await pilot.pause()
        assert str(panel.border_subtitle).endswith("3 tools")
