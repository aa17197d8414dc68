"""The failure ledger, quality scores, negative tags, and the call hook that keeps them current.

Every failure the runtime sees is one row in `failures` (written at once: failures
are rare) and one `tool.failure` event. Successes are counted in memory and
written in batches by a sync thread, which also reloads what other processes
changed (rows whose `rev` passed the last seen `failure_seq`), so the hook on the
path of every call reads dictionaries and never waits for the store. The tables and
their SQL are `state.failures`; this module is the domain logic over them.
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from state import failures as tables
from state.db import StoreError
from state.events import PendingEvent
from state.redact import redact
from tools.errors import CallRefusedError, StateError, ToolError, UsageError
from tools.ids import check_tool_id
from tools.recovery.circuit import CLOSED, HALF_OPEN, OPEN, Circuit, CircuitConfig
from tools.recovery.rules import ACCELERATION_WINDOW_SECONDS, auto_severity, check_severity, demote, demotion, negative_tags, recover

if TYPE_CHECKING:
    from tools.host import RuntimeHost

log = logging.getLogger("tooldeck.failures")
ERROR_CLASS_RE = re.compile(r"^[a-z][a-z0-9_]{0,39}\Z")
MAX_SCENARIO = 2000
MAX_ERROR = 2000




def clip_middle(text: str, limit: int) -> str:
    """`text` within `limit` characters: its start (the error's message: "tool: Class: what happened") and
    its end (the innermost frames, or the last output), with what is left out between them marked."""
    if len(text) <= limit:
        return text
    mark = " \u2026 "
    head = (limit - len(mark)) * 2 // 5
    return text[:head] + mark + text[len(text) - (limit - len(mark) - head):]

@dataclass(frozen=True, slots=True)
class _Failure:
    """One failure as it is written: its text already redacted and cut, and this process's circuit verdict."""

    tool_id: str
    version: str
    scenario: str
    error: str
    severity: str
    error_class: str
    origin: str
    probe: bool
    open_reason: str | None

class Health:
    """This process's view of one (tool, version): score, tags, circuit, unflushed successes."""

    __slots__ = ("base", "score", "failures", "successes", "tags", "circuit", "pending_ok", "source", "tool_tags")

    def __init__(self, base: float, window: int, source: str = "", tool_tags: tuple[str, ...] = ()) -> None:
        self.base = base
        self.score = base
        self.failures = 0
        self.successes = 0
        self.tags: frozenset[str] = frozenset()
        self.circuit = Circuit(window)
        self.pending_ok = 0
        self.source = source
        self.tool_tags = tool_tags


class FailureTracker:
    """The `failures` extension: a CallHook, the score/tag/circuit cache, and the ledger writer."""

    def __init__(self, runtime: RuntimeHost) -> None:
        self.runtime = runtime
        self.store = runtime.store
        self.events = runtime.events
        self.cfg = CircuitConfig.from_settings(runtime.settings.section("circuit"))
        section = runtime.settings.section("failures")
        self.sync_interval = float(section.get("sync_interval_seconds", 0.5))
        self.acceleration_window = float(section.get("acceleration_window_seconds", ACCELERATION_WINDOW_SECONDS))
        self._lock = threading.Lock()
        self._sync_lock = threading.Lock()
        self._health: dict[tuple[str, str], Health] = {}
        self._dirty: set[tuple[str, str]] = set()
        self._controls: dict[tuple[str, str], dict[str, Any]] = {}
        self._gated: frozenset[str] = frozenset()
        self._seq = -1
        self._synced_at = 0.0
        self._local = threading.local()
        self._listeners: list[Callable[[], None]] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.sync(force=True)

    # -- lifecycle -----------------------------------------------------------------

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="tooldeck-failures", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.sync_interval):
            try:
                self.sync(force=True)
            except (StoreError, ToolError) as exc:
                log.error("failure tracker sync: %s", exc)

    def stop(self, timeout: float) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
        try:
            self._flush_successes()
        except (StoreError, ToolError) as exc:
            log.error("failure tracker final flush: %s", exc)

    def on_failure(self, listener: Callable[[], None]) -> None:
        """Be told (with no arguments, from the recording thread) that a failure row landed."""
        self._listeners.append(listener)

    # -- the hook (every call) -----------------------------------------------------

    def before_call(self, runtime: RuntimeHost, entry: Any) -> None:
        if entry.tool_id in self._gated:
            self._gate(entry)

    def after_call(self, runtime: RuntimeHost, entry: Any, outcome: str, duration_ms: float, error: ToolError | None,
                   data: Any) -> None:
        key = (entry.tool_id, entry.served_version)
        probes: set[tuple[str, str]] | None = getattr(self._local, "probes", None)
        probe = probes is not None and key in probes
        if probes is not None and probe:
            probes.discard(key)
        if error is None:
            health = self._health.get(key) or self._new_health(entry, key)
            with self._lock:
                health.pending_ok += 1
                health.successes += 1
                if health.score < health.base:
                    health.score = recover(health.score, health.base, 1)
                if health.circuit.state == CLOSED:
                    health.circuit.ok()
                self._dirty.add(key)
            if probe:
                try:
                    self._probe_ok(entry.tool_id, entry.served_version)
                except StoreError as exc:  # the probe slot times out instead; logged
                    log.error("could not record a probe success of %s %s: %s", entry.tool_id, entry.served_version, exc)
            return
        context = getattr(self._local, "context", None)
        scenario, marking = context if context is not None else ("", False)
        message = error.message + (f" | {error.stderr_tail}" if error.stderr_tail else "")
        try:
            self.record_failure(entry, scenario=scenario if marking else "", error=message, severity=None,
                                error_class=outcome, origin="resilient" if context is not None else "runtime", probe=probe)
        except StoreError as exc:  # the caller must see the tool's own error, not ours; the loss is logged
            log.error("could not record a %s failure of %s %s: %s", outcome, entry.tool_id, entry.served_version, exc)

    @contextmanager
    def scenario(self, scenario: str, mark: bool) -> Iterator[None]:
        """Failures observed in this thread inside the block belong to `scenario` (a resilient run)."""
        previous = getattr(self._local, "context", None)
        self._local.context = (scenario, mark)
        try:
            yield
        finally:
            self._local.context = previous

    def _new_health(self, entry: Any, key: tuple[str, str]) -> Health:
        manifest = entry.manifest
        base = float(manifest.quality_score) if manifest is not None else 1.0
        tags = tuple(manifest.tags) if manifest is not None else ()
        with self._lock:
            return self._health.setdefault(key, Health(base, self.cfg.window, entry.source, tags))

    def _gate(self, entry: Any) -> None:
        tool_id, version = entry.tool_id, entry.served_version
        control = self._controls.get((tool_id, version)) or self._controls.get((tool_id, "*"))
        if control is not None:
            reason = f": {control['reason']}" if control.get("reason") else ""
            raise CallRefusedError(f"{tool_id} {version} is disabled by {control.get('actor') or 'an operator'}{reason}",
                                       tool_id=tool_id, version=version, details={"disabled": True})
        health = self._health.get((tool_id, version))
        if health is None or health.circuit.state == CLOSED:
            return
        circuit = health.circuit
        now = self.store.now()
        state = circuit.effective_state(now, self.cfg)
        if state == OPEN:
            if circuit.forced:
                raise CallRefusedError(f"{tool_id} {version}: circuit held open by an operator ({circuit.reason})",
                                           tool_id=tool_id, version=version, details={"circuit": OPEN})
            left = (circuit.opened_at or now) + self.cfg.cooldown_seconds - now
            raise CallRefusedError(f"{tool_id} {version}: circuit open ({circuit.reason}); next probe in {left:.0f} s",
                                       tool_id=tool_id, version=version, details={"circuit": OPEN, "retry_at": now + left})
        if circuit.state == HALF_OPEN and circuit.probes >= self.cfg.half_open_probes and (circuit.probe_deadline or 0) > now:
            raise CallRefusedError(f"{tool_id} {version}: circuit half-open, {circuit.probes} probe calls in flight",
                                       tool_id=tool_id, version=version, details={"circuit": HALF_OPEN})
        try:
            with self.store.tx() as con:
                rev = tables.bump_seq(con)
                admitted = tables.claim_probe(con, tool_id, version, cooldown=self.cfg.cooldown_seconds,
                                              probes=self.cfg.half_open_probes, probe_timeout=self.cfg.probe_timeout_seconds,
                                              now=now, rev=rev)
                row = tables.health_row(con, tool_id, version)
        except StoreError as exc:
            raise CallRefusedError(f"{tool_id} {version}: circuit half-open and no probe slot could be claimed ({exc})",
                                       tool_id=tool_id, version=version, details={"circuit": HALF_OPEN}) from exc
        with self._lock:
            if row is not None:
                circuit.apply_row(row)
        if not admitted:
            raise CallRefusedError(f"{tool_id} {version}: circuit half-open, no probe slot free",
                                       tool_id=tool_id, version=version, details={"circuit": HALF_OPEN})
        probes = getattr(self._local, "probes", None)
        if probes is None:
            probes = self._local.probes = set()
        probes.add((tool_id, version))

    def _probe_ok(self, tool_id: str, version: str) -> None:
        now = self.store.now()
        with self.store.tx() as con:
            rev = tables.bump_seq(con)
            closed = tables.probe_succeeded(con, tool_id, version, probes=self.cfg.half_open_probes, now=now, rev=rev)
            row = tables.health_row(con, tool_id, version)
        self._apply_rows([row] if row is not None else [])
        if closed:
            self.events.emit("circuit.closed", tool_id, version, reason="probe calls succeeded")

    # -- the ledger ----------------------------------------------------------------

    def record_failure(self, entry: Any, *, scenario: str, error: str, severity: str | None, error_class: str,
                       origin: str, probe: bool = False) -> dict[str, Any]:
        """Write one failure: ledger row, demotion, negative tags, circuit transition, event."""
        key = (entry.tool_id, entry.served_version)
        health = self._health.get(key) or self._new_health(entry, key)
        severity = severity or auto_severity(error_class)
        open_reason = self._local_verdict(health, demotion(severity, error_class, health.source, 0))
        failure = _Failure(entry.tool_id, entry.served_version, redact(scenario.strip())[:MAX_SCENARIO],
                           clip_middle(redact(error.strip()), MAX_ERROR), severity, error_class, origin, probe, open_reason)
        with self.store.tx() as con:
            record, fresh = self._write_failure(con, failure, health)
        self._apply_rows([fresh])
        for listener in list(self._listeners):
            listener()
        return record

    def _local_verdict(self, health: Any, rule: Any) -> str | None:
        """This process's circuit window's verdict on one more failure: why it opens the circuit, or None."""
        with self._lock:
            circuit = health.circuit
            if not (rule.counts_for_circuit and circuit.state == CLOSED):
                return None
            reason = circuit.failed(self.cfg)
            return "critical failure" if rule.trips_circuit else reason

    def _write_failure(self, con: Any, f: _Failure, health: Any) -> tuple[dict[str, Any], Any]:
        """In one transaction: the demotion (accelerated by recent failures), the new negative tags, the ledger
        row, the circuit transition the store's state allows, and their events; (the record, the fresh row)."""
        now = self.store.now()
        rev = tables.bump_seq(con)
        tables.ensure_health(con, f.tool_id, f.version, health.base, now)
        recent = tables.demoting_failures_since(con, f.tool_id, f.version, now - self.acceleration_window)
        rule = demotion(f.severity, f.error_class, health.source, recent + 1)
        row = tables.health_row(con, f.tool_id, f.version)
        score = demote(float(row["score"]), rule.delta)
        old_tags = set(json.loads(row["tags"] or "[]"))
        added = [t for t in negative_tags(f.scenario, f.tool_id, health.tool_tags) if t not in old_tags] if rule.may_tag else []
        tags = sorted(old_tags | set(added))
        failure_id = tables.add_failure(con, tables.FailureRow(
            f.tool_id, f.version, f.scenario, f.error, rule.severity, f.error_class, f.origin, rule.delta, score, added,
            self.runtime.session, self.runtime.pid), rev, now, tags)
        opened = self._circuit_opens(row["circuit"], rule.counts_for_circuit, f.probe, f.open_reason, f.error_class)
        if opened is not None:
            tables.open_circuit(con, f.tool_id, f.version, opened, now, rev)
        fresh = tables.health_row(con, f.tool_id, f.version)
        events = [("tool.failure", {"failure_id": failure_id, "severity": rule.severity, "error_class": f.error_class,
                                    "origin": f.origin, "scenario": f.scenario[:200], "error": clip_middle(f.error, 300),
                                    "delta": rule.delta, "score": round(score, 4), "tags_added": added})]
        if opened is not None:
            events.append(("circuit.opened", {"reason": opened}))
        # in the same transaction: the ledger row and its events land together
        self.runtime.events.emit_many_in(con, [PendingEvent(kind, f.tool_id, f.version, payload) for kind, payload in events],
                                         now=now)
        record = {"failure_id": failure_id, "tool_id": f.tool_id, "version": f.version, "severity": rule.severity,
                  "error_class": f.error_class, "origin": f.origin, "delta": rule.delta, "score": score, "tags_added": added,
                  "tags": tags, "circuit": fresh["circuit"], "scenario": f.scenario}
        return record, fresh

    @staticmethod
    def _circuit_opens(shared_state: str, counts: bool, probe: bool, open_reason: str | None, error_class: str) -> str | None:
        """Why this failure opens the circuit (as the store has it now), or None: a failed probe reopens
        a circuit that is not closed; the local window's verdict opens a closed one."""
        if counts and probe and shared_state != CLOSED:
            return f"probe call failed ({error_class})"
        if open_reason is not None and shared_state == CLOSED:
            return open_reason
        return None

    # -- sync with other processes -------------------------------------------------

    def sync(self, force: bool = False, *, seq: int | None = None) -> None:
        """Write batched successes, then reload whatever changed since the last sync.

        Unforced, it does nothing within `sync_interval` of the last sync. `seq` is a
        `failure_seq` value the caller has just read (selection reads it together with
        the failures cursor in one query); with no successes to write it saves a query.
        """
        if not force and time.monotonic() - self._synced_at < self.sync_interval:
            return
        with self._sync_lock:
            self._synced_at = time.monotonic()
            if self._dirty:
                self._flush_successes()
                seq = None  # our own flush may have moved it
            if seq is None:
                seq = tables.current_seq(self.store)
            if seq == self._seq:
                return
            rows = tables.changed_since(self.store, self._seq)
            controls = tables.disabled_controls(self.store)
            with self._lock:
                self._controls = {(r["tool_id"], r["version"]): dict(r) for r in controls}
            self._apply_rows(rows)
            self._seq = seq

    def _apply_rows(self, rows: list[Any]) -> None:
        with self._lock:
            for row in rows:
                key = (row["tool_id"], row["version"])
                health = self._health.get(key)
                if health is None:
                    health = self._health[key] = Health(float(row["base"]), self.cfg.window, *self._entry_info(key))
                health.base = float(row["base"])
                health.score = float(row["score"])
                health.failures = int(row["failures"])
                health.successes = int(row["successes"]) + health.pending_ok
                health.tags = frozenset(json.loads(row["tags"] or "[]"))
                health.circuit.apply_row(row)
            gated = {tool for tool, _v in self._controls}
            gated.update(key[0] for key, h in self._health.items() if h.circuit.state != CLOSED)
            self._gated = frozenset(gated)

    def _entry_info(self, key: tuple[str, str]) -> tuple[str, tuple[str, ...]]:
        entry = self.runtime.catalog.find(*key)
        if entry is None or entry.manifest is None:
            return "", ()
        return entry.source, tuple(entry.manifest.tags)

    def _flush_successes(self) -> None:
        with self._lock:
            dirty, self._dirty = self._dirty, set()
            batch = []
            for key in dirty:
                health = self._health.get(key)
                if health is not None and health.pending_ok:
                    batch.append((key, health.pending_ok, health.base))
                    health.pending_ok = 0
        if not batch:
            return
        try:
            self._write_successes(batch)
        except StoreError:
            with self._lock:  # keep the counts for the next flush
                for key, count, _base in batch:
                    health = self._health.get(key)
                    if health is not None:
                        health.pending_ok += count
                        self._dirty.add(key)
            raise

    def _write_successes(self, batch: list[tuple[tuple[str, str], int, float]]) -> None:
        now = self.store.now()
        with self.store.tx() as con:
            rev: int | None = None
            for (tool_id, version), count, base in batch:
                tables.ensure_health(con, tool_id, version, base, now)
                row = tables.health_row(con, tool_id, version)
                score = recover(float(row["score"]), float(row["base"]), count)
                if score != float(row["score"]):
                    rev = rev if rev is not None else tables.bump_seq(con)
                    tables.set_score(con, tool_id, version, score, rev, now)
                    tables.note_score(con, tool_id, version, score, score - float(row["score"]), "recovery", now)
                tables.add_successes(con, tool_id, version, count)

    # -- read side (CLI, dashboard, selection, evolution) --------------------------

    def disabled(self, tool_id: str, version: str) -> dict[str, Any] | None:
        controls = self._controls
        if not controls:
            return None
        return controls.get((tool_id, version)) or controls.get((tool_id, "*"))

    def view(self, tool_id: str, version: str) -> Health | None:
        """The live in-memory record (read-only for callers), or None when nothing is known beyond the manifest."""
        return self._health.get((tool_id, version))

    def refusing(self) -> frozenset[tuple[str, str]]:
        """The (tool, version) keys calls are refused for now: disabled (version "*": every version) or circuit open.
        Tracked tools only, so cheap at any catalog size: MCP's change watcher compares it between rechecks instead of
        walking the catalog (an open circuit turning half-open changes it, with no event of its own)."""
        with self._lock:
            opened = [k for k, h in self._health.items() if h.circuit.state != CLOSED and self.circuit_state(h) == OPEN]
            return frozenset(self._controls) | frozenset(opened)

    def circuit_state(self, health: Health) -> str:
        return health.circuit.effective_state(self.store.now(), self.cfg) if health.circuit.state != CLOSED else CLOSED

    def health(self, tool_id: str, version: str) -> dict[str, Any] | None:
        """One (tool, version) as selection sees it, or None when nothing is known beyond the manifest."""
        h = self._health.get((tool_id, version))
        if h is None:
            return None
        return {"score": h.score, "tags": h.tags, "failures": h.failures, "circuit": h.circuit.effective_state(self.store.now(), self.cfg),
                "forced": h.circuit.forced, "circuit_reason": h.circuit.reason, "opened_at": h.circuit.opened_at}

    def scores_snapshot(self) -> dict[tuple[str, str], dict[str, Any]]:
        """(tool_id, version) -> score, tags, circuit, disabled, failures, for every loaded version and every tracked one."""
        now = self.store.now()
        out: dict[tuple[str, str], dict[str, Any]] = {}
        for entry in self.runtime.catalog.all_entries():
            if entry.manifest is not None:
                out[(entry.tool_id, entry.served_version)] = {
                    "score": float(entry.manifest.quality_score), "tags": [], "circuit": CLOSED, "disabled": False, "failures": 0,
                }
        with self._lock:
            items = list(self._health.items())
            controls = dict(self._controls)
        for key, h in items:
            out[key] = {"score": round(h.score, 4), "tags": sorted(h.tags), "circuit": h.circuit.effective_state(now, self.cfg),
                        "disabled": False, "failures": h.failures}
        for key, row in out.items():
            row["disabled"] = (key in controls) or ((key[0], "*") in controls)
        return out

    def recent_failures(self, tool_id: str | None = None, version: str | None = None, limit: int = 50) -> list[dict[str, Any]]:
        """Newest first; evolution builds its prompt from these, the dashboard lists them."""
        return tables.recent_failures(self.store, tool_id, version, limit)

    def score_history(self, tool_id: str, version: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
        """Oldest first, for a trend line."""
        return tables.score_history(self.store, tool_id, version, limit)

    def recent_resilient(self, limit: int = 20) -> list[dict[str, Any]]:
        """Resilient runs, newest last: each one `resilient.run` event with its hops."""
        return [{"id": e.id, "ts": e.ts, "session": e.session, **e.payload}
                for e in self.events.recent(limit, kinds=["resilient.run"])]


# -- the public API -----------------------------------------------------------------

def tracker_for(runtime: RuntimeHost) -> FailureTracker:
    tracker = runtime.extension("failures")
    if tracker is None:
        raise StateError("failure tracking is not installed in this runtime (see the runtime.error events)")
    return tracker


def check_report(tool_id: Any, scenario: Any, error_message: Any, severity: Any = "medium",
                 error_class: Any = None) -> tuple[str, str]:
    """A failure reported by hand, checked (UsageError naming the field): (severity, error class) as recorded. The
    scenario and the error are what the score's demotion, the negative tags and the failure memory are made from,
    so neither may be blank (the CLI, the builtin and the dashboard's dialog ask the same)."""
    check_tool_id(tool_id)
    severity = check_severity(severity)
    for name, value in (("scenario", scenario), ("error_message", error_message)):
        if not isinstance(value, str):
            raise UsageError(f"mark_tool_failure: {name} must be a string, got {type(value).__name__}")
        if not value.strip():
            raise UsageError(f"mark_tool_failure: {name} is empty: say {'what was asked' if name == 'scenario' else 'what went wrong'}")
    error_class = error_class or "reported"
    if not isinstance(error_class, str) or not ERROR_CLASS_RE.fullmatch(error_class):
        raise UsageError(f"mark_tool_failure: invalid error_class {error_class!r}: lowercase letters, digits and _ (<= 40)")
    return severity, error_class


def mark_tool_failure(runtime: RuntimeHost, tool_id: str, scenario: str, error_message: str, severity: str = "medium",
                      error_class: str | None = None, *, version: str | None = None) -> dict[str, Any]:
    """Record a failure a caller saw: demote the tool version, tag it, feed its circuit and the failure memory."""
    severity, error_class = check_report(tool_id, scenario, error_message, severity, error_class)
    entry = runtime.resolve(tool_id, version)
    return tracker_for(runtime).record_failure(entry, scenario=scenario, error=error_message, severity=severity,
                                               error_class=error_class, origin="manual")


def tool_mark_failure(runtime: RuntimeHost, data: Any) -> dict[str, Any]:
    """The `mark_tool_failure` builtin tool, taking the original callers' JSON."""
    if not isinstance(data, dict):
        raise UsageError("mark_tool_failure: input must be a JSON object")
    for field in ("tool_id", "scenario", "error_message"):
        if field not in data:
            raise UsageError(f"mark_tool_failure: missing field {field!r}")
    record = mark_tool_failure(runtime, data["tool_id"], data["scenario"], data["error_message"],
                               data.get("severity", "medium"), data.get("error_class"), version=data.get("version"))
    return {"success": True, **record}


def install(runtime: RuntimeHost) -> None:
    tracker = FailureTracker(runtime)
    runtime.extensions["failures"] = tracker
    runtime.hooks.append(tracker)
    runtime.add_service("failures", tracker)
    tracker.start()
