"""Everything a dashboard frame shows, gathered in a thread worker (never on the event loop).

No Textual here: the collector reads the runtime and the shared SQLite store and
returns plain data; the widgets diff it against what they show.
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # state (sqlite3 and the rest) is imported once the runtime polls, not on the way to the first frame
    from state.calls import CallStats
    from state.events import Event


@dataclass(frozen=True, slots=True)
class ToolRow:
    tool_id: str
    status: str
    version: str
    promoted: str  # "" or the scope the served version is promoted in
    type: str
    source: str
    score: float | None
    circuit: str
    calls: int
    failures: int
    p50_ms: float | None
    error: str
    disabled: bool = False
    tags: tuple[str, ...] = ()
    #: (session, version) approvals of this tool for sessions other than the one whose version is shown
    pinned: tuple[tuple[str, str], ...] = ()


@dataclass
class Snapshot:
    taken_at: float
    summary: str
    loading: bool
    tools: list[ToolRow] = field(default_factory=list)
    buffers: list[dict[str, Any]] = field(default_factory=list)
    scores: list[dict[str, Any]] = field(default_factory=list)
    failures: list[dict[str, Any]] = field(default_factory=list)
    resilient: list[dict[str, Any]] = field(default_factory=list)
    proposals: list[dict[str, Any]] = field(default_factory=list)
    sessions: list[dict[str, Any]] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    #: where the shared state lives: {"backend": "sqlite" | "postgresql", "where": path or URL without a password}
    backend: dict[str, Any] = field(default_factory=dict)
    #: why the data shown may not be the workspace's state any more (its database file deleted or replaced)
    stale: str | None = None
    #: another process holds the state's write lock (SQLite): writes wait, reads go on
    write_blocked: bool = False
    #: when (time.time()) `tools` was read: with many tools it is re-read less often than every poll (Collector.paced)
    tools_at: float = 0.0


def tool_counts(rows: list[ToolRow]) -> dict[str, int]:
    """The one definition of the tool counts, for the header and the Tools panel: a tool is a row
    (a tool id, or a manifest file that could not be read); evolved versions are not extra tools."""
    counts = {"ready": 0, "error": 0, "loading": 0, "total": len(rows)}
    for row in rows:
        key = row.status if row.status in ("ready", "error") else "loading"
        counts[key] += 1
    return counts


@dataclass(frozen=True, slots=True)
class Attention:
    """Something the operator should look at: how many, what, and the panel (its number key) that shows it."""

    count: int
    what: str  # singular noun phrase
    many: str  # its plural
    panel: int

    def label(self) -> str:
        from tools.cli.output import plural

        return f"{plural(self.count, self.what, self.many)} ({self.panel})"


def needs_attention(snapshot: Snapshot) -> list[Attention]:
    """The one definition of what needs the operator, for the header line and the tabs' badges: tools in error,
    dead-letter batches, open circuits, proposals awaiting review (each only when there is one)."""
    found = [
        Attention(_in_error(snapshot.tools), "tool in error", "tools in error", 1),
        Attention(sum(int(b.get("dead_letter_batches") or 0) for b in snapshot.buffers), "dead-letter batch",
                  "dead-letter batches", 2),
        Attention(sum(1 for s in snapshot.scores if s.get("circuit") == "open"), "open circuit", "open circuits", 3),
        Attention(sum(1 for p in snapshot.proposals if p.get("status") == "awaiting_review"), "proposal to review",
                  "proposals to review", 4),
    ]
    return [a for a in found if a.count]


def attention_words(found: list[Attention], room: int) -> str:
    """What needs attention, said in `room` cells if it can be: each count named with its panel's key (`1 open circuit
    (3), 1 proposal to review (4)`); else how many in all and the keys that show them (`2 (press 3, 4)`); else the
    count alone. A header cut at the terminal's edge showed `needs attention: …`, which said nothing."""
    from rich.cells import cell_len

    total = sum(a.count for a in found)
    words = ""
    for words in (", ".join(a.label() for a in found), f"{total} (press {', '.join(str(a.panel) for a in found)})", str(total)):
        if cell_len(words) <= room:
            break
    return words


_counted: tuple[Any, int] = (None, 0)  # (the last tools list counted, its tools in error)


def _in_error(tools: list[ToolRow]) -> int:
    """Tools in error, counted once per tools list (the poller hands the same list on until it re-reads it)."""
    global _counted
    if _counted[0] is not tools:
        _counted = (tools, sum(1 for t in tools if t.status == "error"))
    return _counted[1]


def summary_line(rows: list[ToolRow], finished: bool) -> str:
    counts = tool_counts(rows)
    if not finished:
        return f"Loading {counts['ready'] + counts['error']}/{counts['total']} tools"
    errors = f", {counts['error']} error{'s' if counts['error'] != 1 else ''}" if counts["error"] else ""
    return f"Ready: {counts['ready']} of {counts['total']} tools{errors}" if counts["error"] else f"Ready: {counts['total']} tools"


#: how often the poller checks whether another process holds the database's write lock
LOCK_PROBE_SECONDS = 0.5
#: the share of a core the poller may spend on each part of a frame whose cost grows with the number of tools (the
#: Tools rows, the score ranking): a part that took `cost` s of CPU is read again `cost / PACE_SHARE` s later at the
#: earliest, so up to ~150 tools (~25 us each) are read every poll, 1,000 every ~1 s, and 10,000 (0.23 s of rows,
#: 0.05 s of scores) every ~11 s and ~2.5 s: re-read every poll they kept a core busy and the event loop waited for
#: the GIL
PACE_SHARE = 0.02
#: a paced part whose re-read found nothing changed waits up to this many times longer for the next one (idle over
#: 10,000 tools, the rows are read every few minutes); an event about it or new call statistics end the wait at once
IDLE_BACKOFF = 8


class Collector:
    """Builds snapshots; slow parts (call statistics) refresh at a lower rate."""

    #: event kinds that make a slow-moving part of the frame worth re-reading at once
    TRIGGERS = {
        "failures": ("tool.failure", "circuit.", "control.", "resilient.", "score."),
        "proposals": ("evolution.", "promotion."),
    }

    #: event kinds that may change a paced part (new call statistics may change both)
    PACED_TRIGGERS = {
        "tools": ("tool.", "load.", "promotion.", "mcp.", "circuit.", "control.", "score.", "evolution.materialised"),
        "scores": ("tool.", "circuit.", "control.", "score.", "promotion."),
    }

    RESILIENT_KEPT = 200  # resilient runs listed: enough that a fallback stays findable for minutes

    def __init__(self, runtime: Any, *, stats_every: float = 2.0, event_batch: int = 500, share: float = PACE_SHARE) -> None:
        from tui.history import Sampler

        self.runtime = runtime
        self.sampler = Sampler(runtime)
        self.stats_every = stats_every
        self.event_batch = event_batch
        self.last_event_id = 0
        self._stats: dict[tuple[str, str], CallStats] = {}
        self._stats_at = 0.0
        self._lock_probed_at = 0.0
        self._write_blocked = self._blocked_once = False
        self._slow: dict[str, Any] = {}
        self._slow_at = 0.0
        self._runs: deque[dict[str, Any]] = deque(maxlen=self.RESILIENT_KEPT)
        self.share = share
        #: name -> (read at (monotonic), the CPU it took, the value, read at (time.time()), idle back-off factor)
        self._paced: dict[str, tuple[float, float, Any, float, int]] = {}
        self._hints: set[str] = set()  # paced parts something may have changed since their last read
        self._summary: tuple[Any, bool, str] | None = None  # (tools list, loading, summary line of it)

    def start_from_recent(self, backlog: int = 200) -> None:
        """Show the last `backlog` events on open, then tail from there."""
        last = self.runtime.events.last_id()
        self.last_event_id = max(0, last - backlog)

    def collect(self) -> Snapshot:
        rt = self.runtime
        now = time.monotonic()
        discovered = rt.catalog.discovered.is_set()
        # the runtime's own line until the tools are known (it counts every entry: not on every poll after that)
        snap = Snapshot(time.time(), "" if discovered else rt.summary(), not rt.catalog.finished.is_set())
        try:
            rt.store  # noqa: B018 - raises the start error, if any
        except Exception as exc:  # the header shows why the runtime is not usable
            snap.summary = snap.summary or rt.summary()
            snap.errors.append(str(exc))
            return snap
        snap.backend = rt.store.describe()
        snap.stale = rt.store.file_problem()
        if now - self._lock_probed_at >= LOCK_PROBE_SECONDS:  # a write-lock probe, at most twice a second
            self._lock_probed_at = now
            blocked = rt.store.write_blocked()  # twice in a row: a writer's few milliseconds are not an outage
            self._write_blocked, self._blocked_once = blocked and self._blocked_once, blocked
        snap.write_blocked = self._write_blocked
        if now - self._stats_at > self.stats_every:
            from state.calls import tool_stats
            from state.promotions import all_promotions

            stats, promotions = tool_stats(rt.store), all_promotions(rt.store)
            if stats != self._stats or promotions != getattr(self, "_promotions", None):
                self._hints.update(self.PACED_TRIGGERS)
            self._stats, self._promotions = stats, promotions
            self._stats_at = now
        snap.events = rt.events.tail(self.last_event_id, limit=self.event_batch)
        if snap.events:
            self.last_event_id = snap.events[-1].id
        for name, prefixes in self.TRIGGERS.items():
            if any(e.kind.startswith(prefixes) for e in snap.events):
                self._slow.pop(name, None)
        for name, prefixes in self.PACED_TRIGGERS.items():
            if any(e.kind.startswith(prefixes) for e in snap.events):
                self._hints.add(name)
        if snap.loading:
            self._hints.add("tools")  # statuses change as the catalog loads
        snap.tools, snap.tools_at = self.paced("tools", self._tool_rows)
        if discovered:
            snap.summary = self._summary_line(snap.tools, snap.loading)
        for name, gather in self.gatherers().items():
            try:
                gather(snap)
            except Exception as exc:  # one failing panel source must not blank the others
                snap.errors.append(f"{name}: {type(exc).__name__}: {exc}")
        return snap

    def paced(self, name: str, fn: Any) -> tuple[Any, float]:
        """(`fn()`, when (time.time()) it was read): read again only once `cost / share` seconds have passed since
        the last read, `cost` being the CPU seconds that read took (this thread's), so its share of a core stays
        under `share`. A read that found nothing changed doubles the wait (up to IDLE_BACKOFF times) until a hint
        (an event about it, new call statistics) says something may have."""
        now = time.monotonic()
        at, cost, value, read_at, backoff = self._paced.get(name, (0.0, 0.0, None, 0.0, 1))
        if name in self._hints:
            self._hints.discard(name)
            backoff = 1
        if value is None or now - at >= backoff * cost / self.share:
            started, read_at = time.thread_time(), time.time()
            new = fn()
            if new == value:  # the same object goes on: the panels compare it by identity and skip it
                backoff = min(2 * backoff, IDLE_BACKOFF)
            else:
                value, backoff = new, 1
            at, cost = now, time.thread_time() - started
        self._paced[name] = (at, cost, value, read_at, backoff)
        return value, read_at

    def _summary_line(self, tools: list[ToolRow], loading: bool) -> str:
        """The header's count line, computed once per tool list read (it counts every row)."""
        if self._summary is None or self._summary[0] is not tools or self._summary[1] != loading:
            self._summary = (tools, loading, summary_line(tools, not loading))
        return self._summary[2]

    def gatherers(self) -> dict[str, Any]:
        return {"sessions": self._sessions, "buffers": self._buffers, "failures": self._failures, "proposals": self._proposals}

    def _every(self, name: str, seconds: float, fn: Any) -> Any:
        """`fn()` at most every `seconds` (for the slower-moving parts of a frame)."""
        now = time.monotonic()
        at, value = self._slow.get(name, (0.0, None))
        if now - at >= seconds or value is None:
            value = fn()
            self._slow[name] = (now, value)
        return value

    def _sessions(self, snap: Snapshot) -> None:
        snap.sessions = self._every("sessions", 2.0, self._live_sessions)

    def _live_sessions(self) -> list[dict[str, Any]]:
        """Live runtimes with their calls and failed calls in the last minute (per session)."""
        from state.history import session_activity

        activity = session_activity(self.runtime.store, time.time() - 60)
        rows = []
        for r in self.runtime.live_runtimes():
            calls, failed = activity.get(r["session"], (0, 0))
            rows.append({**r, "calls_1m": calls, "failures_1m": failed})
        return rows

    def _buffers(self, snap: Snapshot) -> None:
        engine = self.runtime.extensions.get("buffers")
        if engine is not None:
            snap.buffers = [b.to_dict() for b in engine.status()]
            if not self._blocked_once:  # a sample is a write: while another process holds the lock it would wait
                self.sampler(snap.buffers)  # for it (up to the busy timeout) and hold every panel's next frame

    def _failures(self, snap: Snapshot) -> None:
        tracker = self.runtime.extensions.get("failures")
        if tracker is None:
            return
        ranked, _ = self.paced("scores", lambda: sorted(tracker.scores_snapshot().items(),
                                                        key=lambda kv: (kv[1].get("score", 1.0), kv[0]))[:40])
        trends = self._every("trends", 2.0, lambda: {
            key: [float(h["score"]) for h in tracker.score_history(key[0], key[1], 20)]
            for key, _ in ranked
        })
        snap.scores = [{"tool_id": k[0], "version": k[1], **v, "trend": trends.get(k, [])} for k, v in ranked]
        snap.failures, snap.resilient = self._every("failures", 1.0, lambda: (tracker.recent_failures(limit=100),
                                                                              self._resilient_runs(tracker)))

    def _resilient_runs(self, tracker: Any) -> list[dict[str, Any]]:
        """The last RESILIENT_KEPT runs, newest last: read once, then only the runs logged since."""
        if not self._runs:
            self._runs.extend(tracker.recent_resilient(self.RESILIENT_KEPT))
        else:
            after = int(self._runs[-1]["id"])
            self._runs.extend({"id": e.id, "ts": e.ts, "session": e.session, **e.payload}
                              for e in self.runtime.events.tail(after, limit=self.RESILIENT_KEPT, kinds=["resilient.run"]))
        return list(self._runs)

    def _proposals(self, snap: Snapshot) -> None:
        from tools.evolution import list_proposals

        snap.proposals = self._every("proposals", 1.0, lambda: list_proposals(self.runtime, limit=50))

    def _tool_rows(self) -> list[ToolRow]:
        rt = self.runtime
        failures = rt.extensions.get("failures")
        live = failures.scores_snapshot() if failures is not None else {}
        pinned_by_tool: dict[str, list[tuple[str, str]]] = {}
        for (tool, session), pinned_version in getattr(self, "_promotions", {}).items():
            pinned_by_tool.setdefault(tool, []).append((session, pinned_version))
        rows: list[ToolRow] = []
        for tool_id in rt.catalog.ids():
            base = rt.catalog.find(tool_id)
            if base is None:
                continue
            entry, scope, refused = base, "", ""
            if base.manifest is not None:
                served = rt.resolution(tool_id, wait=False)  # what a call runs now, and what it fell back from
                if served.promoted and served.entry is not None:
                    entry, scope = served.entry, served.scope
                elif served.promoted:  # approved on another node, loaded here by the first call
                    scope, refused = served.scope, f"{served.version} loads on its first call here"
                if served.fell_back_from:  # e.g. tampered after approval: say why it is not served
                    version, why = served.fell_back_from[0]
                    refused = f"{version} not served: {why}"
            version = entry.served_version
            pinned = tuple(sorted((s, v) for s, v in pinned_by_tool.get(tool_id, ()) if s not in ("global", scope)))
            stats = self._stats.get((tool_id, version))
            extra = live.get((tool_id, version), {})
            manifest = entry.manifest
            score = extra.get("score", manifest.quality_score if manifest else None)
            rows.append(ToolRow(
                tool_id=tool_id, status=entry.status, version=version, promoted=scope,
                type=manifest.type if manifest else "", source=entry.source, score=score,
                circuit=str(extra.get("circuit", "closed" if manifest else "")),
                calls=stats.calls if stats else 0, failures=stats.failures if stats else 0,
                p50_ms=stats.p50_ms if stats else None, error=entry.error or refused,
                disabled=bool(extra.get("disabled", False)), tags=tuple(extra.get("tags", ())), pinned=pinned,
            ))
        for problem in rt.catalog.problems():
            key = f"{problem.path.parent.name}/{problem.path.name}"
            rows.append(ToolRow(key, "error", "", "", "", "problem", None, "", 0, 0, None, problem.message))
        return rows
