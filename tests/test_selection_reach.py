"""Selection for a narrowed caller (tools/reach.py: an MCP endpoint's client): each query answers from the tools
it may reach, so tools it cannot reach never crowd its own out of the pool; the runtime's own selection asks each
index once, as before. The MCP side (search_tools, resilient_tool_call through an endpoint) is in
tests/test_mcp_search.py."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from state.memory import Hit
from tests.test_mcp_search import CSV_QUERY, crowded_workspace
from tools.reach import limited_to
from tools.recovery.selection import memory_for, select_candidates, top_reachable


def ranked(count: int, hidden: set[int], similarity: float = 0.9) -> tuple[list[int], Any]:
    """(the sizes asked for, a query over `count` hits best first, tool n at `similarity - n / 1000`)."""
    asked: list[int] = []
    hits = [Hit(f"p{n}", similarity - n / 1000, {"tool_id": f"{'hidden' if n in hidden else 'tool'}_{n}"}) for n in range(count)]

    def query(n: int) -> list[Hit]:
        asked.append(n)
        return hits[:n]

    return asked, query


def served(tool_id: str) -> bool:
    return not tool_id.startswith("hidden")


def test_outside_a_narrowed_call_a_query_is_asked_once_for_the_pool() -> None:
    asked, query = ranked(1000, hidden=set(range(100)))
    assert [h.payload["tool_id"] for h in top_reachable(query, 32)] == [f"hidden_{n}" for n in range(32)]
    assert asked == [32]


def test_a_narrowed_query_asks_for_more_until_the_pool_holds_reachable_hits() -> None:
    asked, query = ranked(1000, hidden=set(range(100)))
    with limited_to(served):
        hits = top_reachable(query, 32)
    assert [h.payload["tool_id"] for h in hits] == [f"tool_{n}" for n in range(100, 132)]
    assert asked == [32, 64, 128, 151]  # none reachable: twice as many; 28 of 128: the 4 missing, scaled


def test_a_narrowed_query_asks_by_the_share_it_can_reach_at_most_8x_more() -> None:
    asked, query = ranked(20000, hidden={n for n in range(20000) if n % 100 != 99})  # 1 in 100 reachable
    with limited_to(served):
        assert [h.payload["tool_id"] for h in top_reachable(query, 32)] == [f"tool_{n}" for n in range(99, 3200, 100)]
    # none in 64: twice as many; 1 in 128: 8x more (not the 31 x 128 it suggests); 11 in 1,152: 21 x 1152 / 11 x 1.25
    assert asked == [32, 64, 128, 128 + 8 * 128, 1152 + 2750]


def test_a_narrowed_query_short_of_a_few_asks_for_a_few_more() -> None:
    """An endpoint that hides one tool (the default hides evolve_tool): a second, slightly larger query, not twice
    the pool."""
    asked, query = ranked(1000, hidden={3})
    with limited_to(served):
        assert len(top_reachable(query, 32)) == 32
    assert asked == [32, 34]


def test_a_narrowed_query_stops_below_the_floor_and_at_the_end_of_the_catalog() -> None:
    asked, query = ranked(1000, hidden=set(range(500)), similarity=0.6)  # hit n at 0.6 - n / 1000
    with limited_to(served):
        assert top_reachable(query, 32, floor=0.5) == []  # past hit 100 nothing could be offered
    assert asked[-1] < 500 and query(asked[-1])[-1].similarity < 0.5
    asked, query = ranked(40, hidden=set(range(30)))
    with limited_to(served):
        assert [h.payload["tool_id"] for h in top_reachable(query, 32)] == [f"tool_{n}" for n in range(30, 40)]
    assert asked == [32, 288]  # 2 of 32 reachable: 8x more, past the end
    asked, query = ranked(100, hidden=set(range(100)))
    with limited_to(lambda tool_id: False):
        assert top_reachable(query, 32) == []
    assert asked[-1] > 100


def test_a_narrowed_selection_finds_its_tool_and_the_runtimes_own_asks_each_index_once(workspace: Path, make_runtime) -> None:
    crowded_workspace(workspace)
    runtime = make_runtime()
    memory = memory_for(runtime, 60).memory
    asked: list[tuple[str, int]] = []
    for name in ("search_tools", "search_tools_lexical"):
        def counted(*args: Any, _name: str = name, _real: Any = getattr(memory, name)) -> Any:
            asked.append((_name, args[1]))
            return _real(*args)
        setattr(memory, name, counted)

    own = select_candidates(runtime, CSV_QUERY)
    assert asked == [("search_tools", 32), ("search_tools_lexical", 32)]
    assert "csv_reader" not in [c.tool_id for c in own.candidates]  # the 60 copies described alike outrank it
    asked.clear()
    with limited_to(lambda tool_id: tool_id == "csv_reader"):
        narrowed = select_candidates(runtime, CSV_QUERY)
    assert [c.tool_id for c in narrowed.candidates] == ["csv_reader"]
    assert narrowed.best_tool == "csv_reader" and not any(s.tool_id.startswith("internal") for s in narrowed.skipped)
    assert len(asked) > 2  # it asked again, for more
