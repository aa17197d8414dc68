"""Past successes: the scenarios each tool version served, so a tool is also found by what it was used for.

A tool's description is written once, by its author; the scenarios it succeeded on are written by
the people and workflows that use it, in their words. Tool2Vec (Ma et al., 2024) embeds a tool's
real queries and reports up to +27 Recall@K over its description alone. Here each successful
resilient call (one `resilient.run` event naming the version that answered and the scenario,
state/events.py) becomes a point of the memory's usage collection; selection searches it beside
the tools and takes a tool's similarity as the best of its description's and its past
scenarios' (tools/recovery/selection.py `with_past_successes`).

Where they come from: the event log, which every process on every node writes, tailed by the
memory service like the failures (a success elsewhere reaches this process within its tail
interval; this process's own at once, `catch_up` after the event). No table of its own: a start
reads back the newest `START_EVENTS` resilient runs the log still holds (its retention). At most
`MAX_POINTS` distinct (tool version, scenario) points are kept; the least recently successful
goes first.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Any

from state.db import Store
from state.events import Event, EventLog
from state.points import normalise_scenario, tool_point_id, usage_point_id

#: distinct (tool version, scenario) points kept (~1 KB each in the vector index at 256 dimensions)
MAX_POINTS = 20_000
#: resilient runs read back at start, newest first
START_EVENTS = 5_000
#: events read per query of the tail
_PAGE = 500


class UsageMemory:
    """The usage collection's points, kept current from the event log; thread-safe."""

    def __init__(self, memory: Any, store: Store, *, max_points: int = MAX_POINTS) -> None:
        #: the SemanticMemory whose usage collection this fills (its embedder, upsert_usage, delete_usage)
        self.memory = memory
        self.store = store
        self.max_points = max_points
        self._lock = threading.Lock()
        #: point -> its payload (tool_id, version, scenario, count, last_ts, tool_point: the tool's own point), least
        #: recently successful first
        self._points: OrderedDict[str, dict[str, Any]] = OrderedDict()
        self._cursor: int | None = None  # None: not read back yet
        self._read_at_start: set[int] = set()

    def __len__(self) -> int:
        return len(self._points)

    def read_back(self) -> int:
        """The newest START_EVENTS resilient runs; the tail then goes on from the log's end. Returns the successes read."""
        log = EventLog(self.store)
        with self._lock:
            self._cursor = log.last_id()
            runs = log.recent(START_EVENTS, kinds=["resilient.run"])
            self._read_at_start = {e.id for e in runs}
            return self._add([e for e in runs if _is_success(e)])

    def catch_up(self) -> int:
        """Remember the successful resilient runs logged (by any process) since the last look; returns how many."""
        if self._cursor is None:
            return 0
        log = EventLog(self.store)
        with self._lock:
            found: list[Event] = []
            while True:
                events = log.tail(self._cursor, limit=_PAGE)  # every kind, so the cursor moves past all of them
                found.extend(e for e in events if _is_success(e) and e.id not in self._read_at_start)
                if events:
                    self._cursor = events[-1].id
                if len(events) < _PAGE:
                    break
            return self._add(found)

    def _add(self, runs: list[Event]) -> int:
        new: dict[str, dict[str, Any]] = {}
        for e in runs:
            scenario = normalise_scenario(str(e.payload["scenario"]))
            point = usage_point_id(str(e.tool_id), str(e.version), scenario)
            item = self._points.get(point) or new.get(point)
            if item is None:
                item = new[point] = {"tool_id": e.tool_id, "version": e.version, "scenario": scenario, "count": 0, "last_ts": 0.0,
                                     "tool_point": tool_point_id(str(e.tool_id), str(e.version))}
            item["count"] += 1
            item["last_ts"] = max(item["last_ts"], e.ts)
            if point in self._points:
                self._points.move_to_end(point)
        if new:
            items = list(new.values())
            self.memory.upsert_usage(items, self.memory.embedder.embed([i["scenario"] for i in items]))
            self._points.update(new)
        gone = []
        while len(self._points) > self.max_points:
            gone.append(self._points.popitem(last=False)[0])
        if gone:
            self.memory.delete_usage(gone)
        return len(runs)


def _is_success(e: Event) -> bool:
    scenario = e.payload.get("scenario")
    return (e.kind == "resilient.run" and bool(e.payload.get("ok")) and bool(e.tool_id) and bool(e.version)
            and isinstance(scenario, str) and bool(scenario.strip()))
