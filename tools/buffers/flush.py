"""The flusher: one background thread per runtime that delivers due batches to their pass-through tool.

A non-serving runtime flushes only the buffers it wrote to (started lazily by
the first write); a serving runtime flushes every buffer. Batches are claimed
under a lease, so any number of flushers can share a buffer. On close the
thread finishes its in-flight delivery, then delivers what is due, and, for a
buffer no other live runtime flushes, the partial batch too, so a script that
writes and exits sees its items delivered.
"""

from __future__ import annotations

import logging
import threading
import time
from datetime import UTC, datetime
from typing import Any, Protocol

from state.buffers import BufferConfig, BufferTables, Claim
from tools.buffers.status import other_flushers
from tools.errors import ToolError

log = logging.getLogger("tooldeck.buffers")


class BufferHost(Protocol):
    """What the flusher needs from the buffer engine that owns it (the engine is handed in,
    never imported, so the engine may import the flusher)."""

    runtime: Any
    tables: BufferTables
    lease_seconds: float
    max_attempts: int
    poll_seconds: float

    def mine(self) -> set[str]: ...
    def new_owner(self) -> str: ...
    def backoff(self, attempts: int) -> float: ...
    def note_space(self) -> None: ...
    def take_counts(self) -> tuple[list[tuple[str, int, int, int]], dict[str, int]]: ...
RATES_EVERY = 1.0
PRUNE_EVERY = 60.0
KEEP_RATES_SECONDS = 300


class LeaseKeeper:
    """Renews the leases of batches this process is delivering, every lease/3 seconds.

    A lease then only expires when its flusher died (or hung past the lease), however slow the
    pass-through tool is, so a live delivery is never re-claimed and sent twice.
    """

    def __init__(self, engine: BufferHost) -> None:
        self.engine = engine
        self._held: dict[str, str] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def hold(self, claim: Claim) -> None:
        with self._lock:
            self._held[claim.batch_id] = claim.owner
            if self._thread is None and not self._stop.is_set():
                self._thread = threading.Thread(target=self._run, name="tooldeck-buffer-leases", daemon=True)
                self._thread.start()

    def release(self, claim: Claim) -> None:
        with self._lock:
            self._held.pop(claim.batch_id, None)

    def _run(self) -> None:
        lease = self.engine.lease_seconds
        while not self._stop.wait(lease / 3):
            with self._lock:
                held = list(self._held.items())
            if not held:
                continue
            try:
                self.engine.tables.renew(held, lease)
            except Exception as exc:  # a missed renewal at worst lets another flusher deliver the batch again
                log.error("buffers: renewing %d leases: %s: %s", len(held), type(exc).__name__, exc)

    def stop(self) -> None:
        self._stop.set()


class Flusher:
    """Delivers batches: from its own thread on a timer, or synchronously for flush/replay/immediate."""

    def __init__(self, engine: BufferHost, *, all_buffers: bool) -> None:
        self.engine = engine
        self.all_buffers = all_buffers
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._deadline = 0.0
        self._pressed: set[str] = set()
        self._counts_at = 0.0
        self._pruned_at = 0.0
        self._held_drops: dict[str, int] = {}
        self._drop_event_at: dict[str, float] = {}
        self.leases = LeaseKeeper(engine)

    # -- lifecycle --------------------------------------------------------------------

    def start(self) -> None:
        if self._thread is not None or self._stopping.is_set():
            return
        with self._start_lock:
            if self._thread is None and not self._stopping.is_set():
                self._thread = threading.Thread(target=self._run, name="tooldeck-buffers", daemon=True)
                self._thread.start()

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def wake(self) -> None:
        if not self._wake.is_set():
            self._wake.set()

    def press(self, buffer_id: str) -> None:
        """A writer is blocked on a full buffer: flush it now, whatever its size."""
        self._pressed.add(buffer_id)
        self._wake.set()

    def stop(self, timeout: float) -> None:
        """Finish the in-flight delivery, then deliver what is due (see module doc), all within `timeout`."""
        self._deadline = time.monotonic() + timeout
        with self._start_lock:
            self._stopping.set()
            thread = self._thread
        self._wake.set()
        if thread is not None:
            thread.join(max(0.0, self._deadline - time.monotonic()))
            self.leases.stop()
            if thread.is_alive():
                log.error("buffer flusher still delivering after %.1f s; its batch will be re-claimed when its lease expires",
                          timeout)
                return
        else:
            self.leases.stop()
            self._persist_counts(force=True)

    def _report(self, where: str, exc: BaseException) -> None:
        log.error("buffers: %s: %s: %s", where, type(exc).__name__, exc)
        try:
            self.engine.runtime.events.emit("buffer.error", where=where, error=f"{type(exc).__name__}: {exc}")
        except Exception as again:  # the store itself is failing: the log line above is the record
            log.error("buffers: could not record the error event: %s", again)

    def _run(self) -> None:
        while not self._stopping.is_set():
            self._wake.clear()
            try:
                delay = self._pass()
            except Exception as exc:  # the thread must outlive one bad pass; the error is logged and evented
                self._report("flush pass", exc)
                delay = 1.0
            if delay > 0:
                self._wake.wait(delay)
        try:
            self._final()
        except Exception as exc:  # closing: record it, the items stay durable for the next flusher
            self._report("final flush", exc)
        try:
            self._persist_counts(force=True)
        except Exception as exc:  # stats only; the items are safe
            self._report("saving rates", exc)

    # -- the timer ----------------------------------------------------------------------

    def _scope(self) -> set[str] | None:
        return None if self.all_buffers else self.engine.mine()

    def _pass(self) -> float:
        """One round over due retries, expired leases and full or old buffers; returns seconds to sleep."""
        engine, tables = self.engine, self.engine.tables
        self._persist_counts()
        scope = self._scope()
        pressed, self._pressed = self._pressed, set()
        delay = engine.poll_seconds
        worked = False
        now = time.time()
        for b in tables.open_batches():
            if scope is not None and b["buffer_id"] not in scope:
                continue
            due_at = b["next_attempt_at"] if b["state"] == "retry" else b["lease_until"]
            if due_at is None:
                continue
            if due_at <= now:
                claim = tables.reclaim(b["batch_id"], engine.new_owner(), engine.lease_seconds, engine.max_attempts)
                if claim is not None:
                    self.deliver(claim)
                    worked = True
            else:
                delay = min(delay, due_at - now)
        for row in tables.rows():
            buffer_id = row["buffer_id"]
            if scope is not None and buffer_id not in scope:
                continue
            if row["pass_through_tool"] is None or row["flush_strategy"] == "manual":
                continue
            unclaimed = row["pending"] - row["inflight"]
            if unclaimed <= 0:
                continue
            now = time.time()
            if row["flush_strategy"] == "immediate" or unclaimed >= row["max_size"] or buffer_id in pressed:
                due_at = now
            else:
                due_at = (row["oldest_ts"] or now) + row["flush_interval_seconds"]
            if due_at <= now:
                claim = tables.claim_new(buffer_id, engine.new_owner(), engine.lease_seconds)
                if claim is not None:
                    self.deliver(claim)
                    worked = True
            else:
                delay = min(delay, due_at - now)
        return 0.0 if worked else max(0.001, delay)

    def _final(self) -> None:
        engine, tables = self.engine, self.engine.tables
        mine = engine.mine()
        if not mine:
            return
        # unregister first: two runtimes closing together then both deliver (claims are exclusive) rather than
        # each leaving the partial batch to the other
        tables.unregister_flushers()
        covered = other_flushers(engine.runtime, tables, mine)
        for buffer_id in sorted(mine):
            if self._time_left() <= 0:
                return
            self._drain_on_close(buffer_id, buffer_id in covered)

    def _drain_on_close(self, buffer_id: str, covered: bool) -> None:
        """Deliver what is due, retries falling due within the close budget, and (if nobody else will) the rest."""
        engine, tables = self.engine, self.engine.tables
        while self._time_left() > 0:
            now = time.time()
            worked = False
            soonest: float | None = None
            for b in tables.open_batches(buffer_id):
                due_at = b["next_attempt_at"] if b["state"] == "retry" else b["lease_until"]
                if due_at is None:
                    continue
                if due_at <= now:
                    claim = tables.reclaim(b["batch_id"], engine.new_owner(), engine.lease_seconds, engine.max_attempts)
                    if claim is not None:
                        self.deliver(claim, timeout=self._time_left())
                        worked = True
                elif b["state"] == "retry" and not covered:
                    soonest = due_at if soonest is None else min(soonest, due_at)
            rows = tables.rows(buffer_id)
            row = rows[0] if rows else None
            if row is not None and row["pass_through_tool"] is not None and row["flush_strategy"] != "manual":
                unclaimed = row["pending"] - row["inflight"]
                due = unclaimed > 0 and (not covered or unclaimed >= row["max_size"]
                                         or (row["oldest_ts"] or 0) + row["flush_interval_seconds"] <= time.time())
                if due:
                    claim = tables.claim_new(buffer_id, engine.new_owner(), engine.lease_seconds)
                    if claim is not None:
                        self.deliver(claim, timeout=self._time_left())
                        worked = True
            if worked:
                continue
            if soonest is None or soonest - time.time() >= self._time_left():
                return
            time.sleep(max(0.0, soonest - time.time()))

    def _time_left(self) -> float:
        return self._deadline - time.monotonic()

    def _persist_counts(self, *, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._counts_at < RATES_EVERY:
            return
        self._counts_at = now
        rates, drops = self.engine.take_counts()
        prune = None
        if now - self._pruned_at > PRUNE_EVERY:
            prune = int(time.time()) - KEEP_RATES_SECONDS
            self._pruned_at = now
        self.engine.tables.add_rates(rates, prune_before=prune)
        for buffer_id, n in drops.items():
            self._held_drops[buffer_id] = self._held_drops.get(buffer_id, 0) + n
        for buffer_id, n in list(self._held_drops.items()):
            if force or now - self._drop_event_at.get(buffer_id, 0.0) >= 1.0:
                config = self.engine.tables.load(buffer_id)
                self.engine.tables.drop_event(buffer_id, n, config.when_full if config else "")
                self._drop_event_at[buffer_id] = now
                del self._held_drops[buffer_id]

    # -- delivery ------------------------------------------------------------------------

    def deliver(self, claim: Claim, *, timeout: float | None = None) -> str | None:
        """Hand one claimed batch to the pass-through tool; None on success, else the error (batch kept)."""
        engine = self.engine
        config = engine.tables.load(claim.buffer_id)
        tool = config.pass_through_tool if config is not None else None
        started = time.perf_counter()
        error: str | None = None
        if config is None or tool is None:
            error = f"buffer {claim.buffer_id!r} has no pass_through_tool"
        else:
            payload = dict(config.pass_through_input)
            payload["buffered_items"] = claim.items()
            payload["buffer_metadata"] = {
                "buffer_id": claim.buffer_id, "batch_id": claim.batch_id, "count": claim.count,
                "flushed_at": datetime.now(UTC).isoformat(timespec="milliseconds"),
            }
            if timeout is not None:
                timeout = max(0.1, timeout)
            self.leases.hold(claim)
            try:
                result = engine.runtime.call(tool, payload, timeout=timeout)
            except ToolError as exc:
                error = f"{tool}: {exc.message}"
            except Exception as exc:  # any failure keeps the batch; the retry/dead-letter event records it
                error = f"{tool}: {type(exc).__name__}: {exc}"
            else:
                if isinstance(result, dict) and result.get("success") is False:
                    error = f"{tool}: answered success=false: {result.get('error') or result.get('message') or ''}".rstrip()
            finally:
                self.leases.release(claim)
        if error is None:
            engine.tables.complete(claim, tool, (time.perf_counter() - started) * 1000)
            engine.note_space()
            return None
        engine.tables.fail(claim, error, engine.max_attempts, engine.backoff)
        return error

    def deliver_through(self, buffer_id: str, seq: int) -> bool:
        """`immediate`: deliver batches in the caller until the one holding item `seq` went out."""
        engine = self.engine
        while True:
            claim = engine.tables.claim_new(buffer_id, engine.new_owner(), engine.lease_seconds)
            if claim is None:
                return False  # another flusher holds it
            error = self.deliver(claim)
            if claim.last_seq >= seq:
                return error is None and claim.first_seq <= seq

    def flush_now(self, buffer_id: str) -> dict[str, Any]:
        """Deliver a buffer's retry batches (ignoring backoff) and every unclaimed item, stopping at a failure."""
        engine, tables = self.engine, self.engine.tables
        batches = items = failed = 0
        last_error: str | None = None
        for b in tables.open_batches(buffer_id):
            if b["state"] == "claimed" and (b["lease_until"] or 0) > time.time():
                continue  # another flusher is delivering it right now
            claim = tables.reclaim(b["batch_id"], engine.new_owner(), engine.lease_seconds, engine.max_attempts, force=True)
            if claim is None:
                continue
            last_error = self.deliver(claim)
            batches, items, failed = _tally(last_error, claim.count, batches, items, failed)
        while last_error is None:
            claim = tables.claim_new(buffer_id, engine.new_owner(), engine.lease_seconds)
            if claim is None:
                break
            last_error = self.deliver(claim)
            batches, items, failed = _tally(last_error, claim.count, batches, items, failed)
        rows = tables.rows(buffer_id)
        out: dict[str, Any] = {
            "success": failed == 0, "buffer_id": buffer_id, "flushed": items > 0, "batches": batches, "count": items,
            "failed_batches": failed, "buffered": rows[0]["pending"] if rows else 0,
        }
        if last_error is not None:
            out["error"] = last_error
        return out

    def retry_now(self, batch_id: str, config: BufferConfig) -> bool:
        engine = self.engine
        claim = engine.tables.reclaim(batch_id, engine.new_owner(), engine.lease_seconds, engine.max_attempts, force=True)
        return claim is not None and self.deliver(claim) is None


def _tally(error: str | None, count: int, batches: int, items: int, failed: int) -> tuple[int, int, int]:
    """Count one delivery of a flush: a delivered batch and its items, or a failed batch."""
    return (batches + 1, items + count, failed) if error is None else (batches, items, failed + 1)
