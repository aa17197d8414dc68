"""The semantic memory's keeper (state/memory.py): builds it in a background thread, so neither
`Runtime(...)` nor the dashboard's first frame waits, then keeps it current: the catalog's changes,
failures any process records (tailing the `failures` table) and past successes (state/usage.py),
saving the tool index now and then and at stop."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from state.db import Store, StoreError
from state.memory import SemanticMemory, ToolDoc
from state.points import failure_point_id, normalise_scenario, tool_point_id
from state.usage import UsageMemory

log = logging.getLogger("tooldeck.memory")
SEVERITY_RANK = {"low": 1, "medium": 2, "high": 3, "critical": 4}
RANK_SEVERITY = {v: k for k, v in SEVERITY_RANK.items()}


class MemoryBuildError(StoreError):
    """The memory could not be built (Qdrant unreachable, embedder missing); names the mode and the cause."""


@dataclass
class MemoryTimings:
    """Where the time to selection-ready went (seconds), for the benchmark and the dashboard."""

    import_qdrant: float = 0.0
    load_embedder: float = 0.0
    wait_catalog: float = 0.0
    embed: float = 0.0
    upsert: float = 0.0
    tools: int = 0
    failures: int = 0
    ready_at: float = 0.0
    extra: dict[str, float] = field(default_factory=dict)


class MemoryService:
    """Builds the memory in the background and keeps it current (catalog changes, new failures from any process)."""

    def __init__(self, memory: SemanticMemory, store: Store, *, all_docs: Callable[[], list[ToolDoc]],
                 doc_for: Callable[[str, str], ToolDoc | None], catalog_finished: threading.Event,
                 tail_interval: float = 1.0, save_interval: float = 30.0) -> None:
        self.memory = memory
        self.store = store
        self.all_docs = all_docs
        self.doc_for = doc_for
        self.catalog_finished = catalog_finished
        self.tail_interval = tail_interval
        #: a changed tool index is saved at most this often (and when the service stops)
        self.save_interval = save_interval
        self._saved_at = 0.0
        self.ready = threading.Event()
        self.error: BaseException | None = None
        self.timings = MemoryTimings()
        self.started_at: float | None = None
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._work_lock = threading.Lock()
        self._pending: list[tuple[str, str, str]] = []
        self._failure_cursor = 0
        self._failure_mirror: dict[str, dict[str, Any]] = {}
        #: (tool_id, version) with at least one remembered failure: selection skips the failure query without one
        self.failed_keys: frozenset[tuple[str, str]] = frozenset()
        #: the scenarios tool versions succeeded on, from the event log (state/usage.py)
        self.usage = UsageMemory(memory, store)

    # -- lifecycle -----------------------------------------------------------------

    def start(self) -> None:
        """Start building in the background (idempotent); never blocks."""
        with self._start_lock:
            if self._thread is None and not self._stop.is_set():
                self.started_at = time.perf_counter()
                self._thread = threading.Thread(target=self._run, name="tooldeck-memory", daemon=True)
                self._thread.start()

    def wait_ready(self, timeout: float) -> bool:
        self.start()
        done = self.ready.wait(timeout)
        if self.error is not None:
            raise self.error
        return done

    def stop(self, timeout: float) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            # A build still importing qdrant (grpc) cannot be interrupted; leaving it to interpreter
            # exit aborted the process now and then (SIGABRT in grpc's half-done import), so wait
            # for it within the close budget. The dashboard's screen is restored before this runs.
            self._thread.join(timeout)
        if self._thread is None or not self._thread.is_alive():
            self.memory.close()

    def wake(self) -> None:
        self._wake.set()

    def tools_changed(self, changes: Iterable[Any]) -> None:
        """Catalog listener: queue (tool_id, version, status); the memory thread applies them."""
        with self._work_lock:
            self._pending.extend((c.tool_id, c.version, c.status) for c in changes)
        self._wake.set()

    # -- the background thread -----------------------------------------------------

    def _run(self) -> None:
        try:
            self._build()
        except Exception as exc:  # surfaced to every caller of wait_ready, and logged
            self.error = MemoryBuildError(f"semantic memory ({self.memory.mode}) failed to build: {type(exc).__name__}: "
                                          f"{str(exc).splitlines()[0] if str(exc) else ''}")
            log.error("semantic memory failed to build: %s: %s", type(exc).__name__, exc)
            self.ready.set()
            return
        while not self._stop.is_set():
            self._wake.wait(self.tail_interval)
            self._wake.clear()
            if self._stop.is_set():
                break
            try:
                self._apply_pending()
                self.catch_up()
                self.usage.catch_up()
                if time.monotonic() - self._saved_at >= self.save_interval:
                    self.save()
            except (StoreError, OSError, ValueError, RuntimeError) as exc:
                log.error("semantic memory update: %s: %s", type(exc).__name__, exc)
        if not self.ready.is_set():  # stopped while building: nothing worth saving
            return
        try:
            self._apply_pending()
            self.save()
        except (OSError, ValueError, RuntimeError) as exc:
            log.error("semantic memory: saving the tool index at stop: %s: %s", type(exc).__name__, exc)

    def save(self) -> bool:
        """Persist the tool index if it changed (embedded mode); True when written."""
        start = time.perf_counter()
        saved = self.memory.save_tools()
        self._saved_at = time.monotonic()
        if saved:
            self.timings.extra["save"] = time.perf_counter() - start
        return saved

    def _build(self) -> None:
        t = self.timings
        start = time.perf_counter()
        self.memory.open()
        t.import_qdrant = time.perf_counter() - start
        start = time.perf_counter()
        self.memory.embedder.load()
        t.load_embedder = time.perf_counter() - start
        start = time.perf_counter()
        while not self.catalog_finished.wait(0.2):
            if self._stop.is_set():
                return
        t.wait_catalog = time.perf_counter() - start
        start = time.perf_counter()
        t.extra["restored"] = self.memory.restore_tools()
        t.extra["restore"] = time.perf_counter() - start
        self.reindex()
        start = time.perf_counter()
        t.extra["past_successes"] = self.usage.read_back()
        t.extra["read_back"] = time.perf_counter() - start
        t.ready_at = time.perf_counter() - (self.started_at or start)
        self.ready.set()
        try:
            self.save()
        except (OSError, ValueError, RuntimeError) as exc:  # the index serves from memory; the next start rebuilds
            log.error("semantic memory: saving the tool index: %s: %s", type(exc).__name__, exc)

    def reindex(self) -> dict[str, int]:
        """Index every ready tool and every recorded failure scenario; safe to repeat (same point ids).

        Only tools whose embedded text the index does not hold yet are embedded (all of them on a
        first start, those changed since the persisted index was saved on a restart); points of
        tools no longer in the catalog are removed."""
        with self._work_lock:
            self._pending.clear()
        docs = self.all_docs()
        start, embedding = time.perf_counter(), self.memory.embedder.seconds
        self.timings.extra["embedded"] = self.memory.index_tools(docs)
        current = {tool_point_id(d.tool_id, d.version) for d in docs}
        self.memory.delete_tool_points(sorted(self.memory.tool_points() - current))
        self.timings.embed = self.memory.embedder.seconds - embedding
        self.timings.upsert = time.perf_counter() - start - self.timings.embed
        self.timings.tools = len(docs)
        self.timings.failures = self._reindex_failures()
        return {"tools": len(docs), "failures": self.timings.failures}

    def _apply_pending(self) -> None:
        with self._work_lock:
            pending, self._pending = self._pending, []
        if not pending:
            return
        upserts: dict[tuple[str, str], ToolDoc] = {}
        removals: set[tuple[str, str]] = set()
        for tool_id, version, status in pending:
            key = (tool_id, version)
            doc = self.doc_for(tool_id, version) if status != "removed" else None
            if doc is None:
                removals.add(key)
                upserts.pop(key, None)
            else:
                upserts[key] = doc
                removals.discard(key)
        self.memory.index_tools(list(upserts.values()))
        held = self.memory.tool_points()  # only what is indexed: a removal of nothing leaves the saved index as it is
        self.memory.delete_tool_points([point for key in removals if (point := tool_point_id(*key)) in held])

    # -- failure memory ------------------------------------------------------------

    #: Tailed by id: every failure row is inserted after its transaction bumped `failure_seq`
    #: (tools.recovery.circuit.bump_seq), whose row lock is held until commit, so failure ids are
    #: handed out in commit order on PostgreSQL too and `id > cursor` skips none.
    _AGGREGATE = (
        "SELECT tool_id, version, scenario, COUNT(*) AS n, MAX(ts) AS last_ts,"
        " MAX(CASE severity WHEN 'critical' THEN 4 WHEN 'high' THEN 3 WHEN 'medium' THEN 2 ELSE 1 END) AS sev"
        " FROM failures WHERE id > ? AND id <= ? AND scenario != '' AND delta > 0 GROUP BY tool_id, version, scenario"
    )

    def _reindex_failures(self) -> int:
        with self._work_lock:
            top = int(self.store.query_one("SELECT COALESCE(MAX(id), 0) FROM failures")[0])
            self._failure_mirror = {}
            self._merge_failures(self.store.query(self._AGGREGATE, (0, top)))
            self._failure_cursor = top
            return len(self._failure_mirror)

    def catch_up(self, top: int | None = None) -> int:
        """Embed failures recorded (by any process) since the last look; returns how many scenario points changed.

        `top` is the newest failure id when the caller has just read it.
        """
        if top is not None and top <= self._failure_cursor:
            return 0
        with self._work_lock:
            top = int(self.store.query_one("SELECT COALESCE(MAX(id), 0) FROM failures")[0])
            if top <= self._failure_cursor:
                return 0
            changed = self._merge_failures(self.store.query(self._AGGREGATE, (self._failure_cursor, top)))
            self._failure_cursor = top
            return changed

    def _merge_failures(self, rows: list[Any]) -> int:
        changed: dict[str, dict[str, Any]] = {}
        for row in rows:
            point = failure_point_id(row["tool_id"], row["version"], row["scenario"])
            item = self._failure_mirror.get(point) or changed.get(point)
            if item is None:
                item = {"tool_id": row["tool_id"], "version": row["version"], "scenario": normalise_scenario(row["scenario"]),
                        "severity": "low", "count": 0, "last_ts": 0.0}
            item["count"] += int(row["n"])
            item["last_ts"] = max(item["last_ts"], float(row["last_ts"]))
            if SEVERITY_RANK[item["severity"]] < int(row["sev"]):
                item["severity"] = RANK_SEVERITY[int(row["sev"])]
            changed[point] = item
        self.memory.upsert_failures(list(changed.values()))
        self._failure_mirror.update(changed)
        self.failed_keys = frozenset((i["tool_id"], i["version"]) for i in self._failure_mirror.values())
        return len(changed)
