"""The flusher: one scheduler thread per runtime that hands due batches to a few delivery threads.

A non-serving runtime flushes only the buffers it wrote to (started lazily by
the first write); a serving runtime flushes every buffer. Batches are claimed
under a lease, so any number of flushers can share a buffer.

Deliveries of different buffers never wait on each other: the scheduler only
reads the store and starts at most one delivery per buffer, up to `[buffers]
max_parallel_deliveries` at once (a sink hanging until its timeout holds one
thread, not the flusher). A runtime has one batch of a buffer in flight at a
time, the oldest due first (retries and waiting batches, then a new batch),
so its deliveries of a buffer keep their order. Runtimes sharing a buffer
claim different batches and may overlap (a flusher killed mid-delivery then
stalls only its own batch, until its lease expires). A pass-through tool that
refused a delivery (open circuit, disabled) is left alone until it may admit
calls again (see `deliver`).

On close the scheduler stops, in-flight deliveries finish, then each buffer
(in parallel) delivers what is due and, for a buffer no other live runtime
flushes, the partial batch too, so a script that writes and exits sees its
items delivered; all within the close budget.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from functools import partial
from typing import Any

from state.buffers import Claim
from tools.buffers.deliver import BufferHost, Deliverer, Outcome
from tools.buffers.policy import DEFERRED, batch_due_at, full_batch_waiting, new_batch_due_at
from tools.buffers.pool import DeliveryPool
from tools.buffers.status import other_flushers

log = logging.getLogger("tooldeck.buffers")

#: how often the per-second write counts gathered in memory are saved: every flusher pass, and through the close
#: drain, so a writer killed (kill -9) loses at most the last second's counts (its items are durable regardless)
RATES_EVERY = 1.0
PRUNE_EVERY = 60.0
KEEP_RATES_SECONDS = 300
#: batch states whose next try is at next_attempt_at (the others in the open set are claimed: due at lease expiry)


class Flusher:
    """Delivers batches: from its delivery threads on a timer, or synchronously for flush/replay/immediate."""

    def __init__(self, engine: BufferHost, *, all_buffers: bool) -> None:
        self.engine = engine
        self.all_buffers = all_buffers
        self.deliverer = Deliverer(engine)
        self.leases = self.deliverer.leases
        self.pool = DeliveryPool(engine.max_parallel, on_done=self.wake, on_error=self._report)
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._deadline = 0.0
        self._pressed: set[str] = set()
        self._starved = False  # a due buffer found every delivery thread busy in the last pass
        self._counts_at = 0.0
        self._pruned_at = 0.0
        self._held_drops: dict[str, int] = {}
        self._drop_event_at: dict[str, float] = {}

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
        """Finish the in-flight deliveries, then deliver what is due (see module doc), all within `timeout`."""
        self._deadline = time.monotonic() + timeout
        with self._start_lock:
            self._stopping.set()
            thread = self._thread
        self._wake.set()
        if thread is not None:
            thread.join(max(0.0, self._deadline - time.monotonic()))
            self.leases.stop()
            self.pool.stop()
            if thread.is_alive():
                log.error("buffer flusher still delivering after %.1f s (busy: %s); those batches will be re-claimed "
                          "when their leases expire", timeout, ", ".join(sorted(self.pool.busy())) or "-")
                return
        else:
            self.leases.stop()
            self.pool.stop()
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
        self._save_counts()  # before the drain, which may take the whole close budget
        try:
            self._final()
        except Exception as exc:  # closing: record it, the items stay durable for the next flusher
            self._report("final flush", exc)
        try:
            self._persist_counts(force=True)
        except Exception as exc:  # stats only; the items are safe
            self._report("saving rates", exc)

    # -- the scheduler ------------------------------------------------------------------

    def _scope(self) -> set[str] | None:
        return None if self.all_buffers else self.engine.mine()

    def _pass(self) -> float:
        """Start a delivery for every buffer with a due batch and no delivery in flight; returns seconds to sleep.

        A finished delivery wakes the scheduler, so a buffer with a backlog gets its next batch at once.
        """
        engine, tables = self.engine, self.engine.tables
        self._persist_counts()
        scope = self._scope()
        pressed, self._pressed = self._pressed, set()
        now = engine.tables.store.now()
        delay = engine.poll_seconds
        busy = self.pool.busy()
        by_buffer: dict[str, list[Any]] = {}
        for b in tables.open_batches():  # oldest first
            by_buffer.setdefault(b["buffer_id"], []).append(b)
        due: list[tuple[float, str, Callable[[], None]]] = []
        for row in tables.rows():
            buffer_id = row["buffer_id"]
            if buffer_id in busy or (scope is not None and buffer_id not in scope):
                continue
            wait_until = self.deliverer.waits.until(row["pass_through_tool"], now)
            if wait_until is not None:  # its pass-through tool refused a delivery: leave it alone until then
                delay = min(delay, wait_until - now)
                continue
            job, soonest = self._due_job(row, by_buffer.get(buffer_id, ()), now, buffer_id in pressed)
            if job is not None:
                due.append(job)
            elif soonest is not None:
                delay = min(delay, soonest - now)
        due.sort(key=lambda job: job[0])
        started = 0
        for _, buffer_id, run in due:
            if not self.pool.submit(buffer_id, run):
                break  # every delivery thread is busy: the next one to finish wakes the scheduler
            started += 1
        self._starved = started < len(due)
        return max(0.001, delay)

    def _due_job(self, row: Any, batches: Any, now: float,
                 pressed: bool) -> tuple[tuple[float, str, Callable[[], None]] | None, float | None]:
        """The delivery a buffer is due for now (oldest open batch first, then a new batch), else when one falls due."""
        buffer_id = row["buffer_id"]
        soonest: float | None = None
        for b in batches:  # an open batch first, oldest first
            due_at = batch_due_at(b)
            if due_at is None:
                continue
            if due_at <= now:
                return (due_at, buffer_id, partial(self._redeliver, b["batch_id"])), None
            soonest = due_at if soonest is None else min(soonest, due_at)
        due_at = new_batch_due_at(row, now, pressed=pressed)
        if due_at is None:
            return None, soonest
        if due_at <= now:
            return (due_at, buffer_id, partial(self._deliver_new, buffer_id)), None
        return None, due_at if soonest is None else min(soonest, due_at)

    def _redeliver(self, batch_id: str) -> None:
        engine = self.engine
        claim = engine.tables.reclaim(batch_id, engine.new_owner(), engine.lease_seconds, engine.max_attempts)
        if claim is not None:
            self.deliverer.deliver(claim)

    def _deliver_new(self, buffer_id: str) -> None:
        """Deliver a new batch, and the next ones while full batches keep coming and no other buffer waits for
        a thread (a steady stream then costs no hand-off to the scheduler per batch)."""
        engine = self.engine
        while True:
            claim = engine.tables.claim_new(buffer_id, engine.new_owner(), engine.lease_seconds)
            if claim is None or not self.deliverer.deliver(claim).ok:
                return
            if self._starved or self._stopping.is_set():
                return
            rows = engine.tables.rows(buffer_id)
            if not rows or not full_batch_waiting(pass_through_tool=rows[0]["pass_through_tool"],
                                                  flush_strategy=rows[0]["flush_strategy"],
                                                  unclaimed=rows[0]["pending"] - rows[0]["inflight"], max_size=rows[0]["max_size"]):
                return

    # -- closing ------------------------------------------------------------------------

    def _final(self) -> None:
        engine, tables = self.engine, self.engine.tables
        mine = engine.mine()
        if mine:
            # unregister first: two runtimes closing together then both deliver (claims are exclusive) rather than
            # each leaving the partial batch to the other
            tables.unregister_flushers()
            covered = other_flushers(engine.runtime, tables, mine)
            waiting = sorted(mine)
            while waiting and self._time_left() > 0:
                for buffer_id in list(waiting):  # a buffer still delivering drains when that delivery is done
                    if self.pool.submit(buffer_id, partial(self._drain_on_close, buffer_id, buffer_id in covered)):
                        waiting.remove(buffer_id)
                if waiting:
                    self._wait_saving(until=lambda busy: len(busy) < self.pool.size
                                      and any(b not in busy for b in waiting))
        self._wait_saving()

    def _wait_saving(self, until: Callable[[set[str]], bool] | None = None) -> None:
        """`pool.wait` up to the close deadline, saving the rates every RATES_EVERY meanwhile."""
        while not self.pool.wait(min(self._deadline, time.monotonic() + RATES_EVERY), until):
            self._save_counts()
            if self._time_left() <= 0:
                return

    def _save_counts(self) -> None:
        try:
            self._persist_counts(force=True)
        except Exception as exc:  # stats only; the items are safe
            self._report("saving rates", exc)

    def _drain_on_close(self, buffer_id: str, covered: bool) -> None:
        """Deliver what is due, retries falling due within the close budget, and (if nobody else will) the rest."""
        engine, tables = self.engine, self.engine.tables
        while self._time_left() > 0:
            now = engine.tables.store.now()
            worked = False
            soonest: float | None = None
            for b in tables.open_batches(buffer_id):
                due_at = batch_due_at(b)
                if due_at is None:
                    continue
                if due_at <= now:
                    claim = tables.reclaim(b["batch_id"], engine.new_owner(), engine.lease_seconds, engine.max_attempts)
                    if claim is not None:
                        self.deliverer.deliver(claim, timeout=self._time_left())
                        worked = True
                elif b["state"] in DEFERRED and not covered:
                    soonest = due_at if soonest is None else min(soonest, due_at)
            rows = tables.rows(buffer_id)
            row = rows[0] if rows else None
            # nobody else will flush this buffer: what waits is due now; otherwise only what is due anyway
            due_at = new_batch_due_at(row, now, pressed=not covered) if row is not None else None
            if (row is not None and due_at is not None and due_at <= now
                    and self.deliverer.waits.until(row["pass_through_tool"], now) is None):
                claim = tables.claim_new(buffer_id, engine.new_owner(), engine.lease_seconds)
                if claim is not None:
                    self.deliverer.deliver(claim, timeout=self._time_left())
                    worked = True
            if worked:
                continue
            if soonest is None or soonest - engine.tables.store.now() >= self._time_left():
                return
            time.sleep(max(0.0, soonest - engine.tables.store.now()))

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
            prune = int(self.engine.tables.store.now()) - KEEP_RATES_SECONDS
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

    # -- deliveries in the caller's thread --------------------------------------------------

    def deliver(self, claim: Claim, *, timeout: float | None = None) -> Outcome:
        return self.deliverer.deliver(claim, timeout=timeout)

    def deliver_through(self, buffer_id: str, seq: int, tool: str | None = None) -> bool:
        """`immediate`: deliver batches in the caller until the one holding item `seq` went out.

        Not while `tool` (the pass-through) refused a delivery lately: the item waits for the flusher then.
        """
        engine = self.engine
        if self.deliverer.waits.until(tool, engine.tables.store.now()) is not None:
            self.wake()
            return False
        while True:
            claim = engine.tables.claim_new(buffer_id, engine.new_owner(), engine.lease_seconds)
            if claim is None:
                return self._delivered_elsewhere(buffer_id, seq)
            outcome = self.deliver(claim)
            if claim.last_seq >= seq:
                return outcome.ok and claim.first_seq <= seq

    def _delivered_elsewhere(self, buffer_id: str, seq: int) -> bool:
        """`immediate`, when another flusher (a timer, another process) claimed item `seq` first: wait for that
        delivery, within the lease it holds, so the write still returns after its item went out. False when the
        delivery failed (the flusher retries it) or the item was dropped before anyone claimed it."""
        deadline = time.monotonic() + self.engine.lease_seconds
        while time.monotonic() < deadline:
            where = self.engine.tables.batch_of(buffer_id, seq)
            if where is None or where[0] < seq:
                return False
            if where[1] is None:
                return True  # its batch went out: delivered batches are deleted with their items
            if where[1] != "claimed":
                return False
            time.sleep(0.005)
        return False

    def flush_now(self, buffer_id: str) -> dict[str, Any]:
        """Deliver a buffer's retry and waiting batches (ignoring backoff) and every unclaimed item.

        Stops at a failure of a new batch, and at the first refusal (the tool admits nothing now: the
        refused batch waits for it, its attempt untouched).
        """
        engine, tables = self.engine, self.engine.tables
        tally = _Tally()
        for b in tables.open_batches(buffer_id):
            if b["state"] == "claimed" and (b["lease_until"] or 0) > engine.tables.store.now():
                continue  # another flusher is delivering it right now
            claim = tables.reclaim(b["batch_id"], engine.new_owner(), engine.lease_seconds, engine.max_attempts, force=True)
            if claim is None:
                continue
            tally.add(self.deliver(claim), claim.count)
            if tally.waiting:
                break
        while tally.last is None or tally.last.ok:
            if tally.waiting:
                break
            claim = tables.claim_new(buffer_id, engine.new_owner(), engine.lease_seconds)
            if claim is None:
                break
            tally.add(self.deliver(claim), claim.count)
        rows = tables.rows(buffer_id)
        out: dict[str, Any] = {
            "success": tally.failed == 0 and tally.waiting == 0, "buffer_id": buffer_id, "flushed": tally.items > 0,
            "batches": tally.batches, "count": tally.items, "failed_batches": tally.failed,
            "dead_letter_batches": tally.parked, "waiting_batches": tally.waiting,
            "buffered": rows[0]["pending"] if rows else 0,
        }
        if tally.parked_after is not None:
            out["dead_letter_after_attempts"] = tally.parked_after
        if tally.error is not None or tally.waiting_reason is not None:
            out["error"] = tally.error if tally.error is not None else tally.waiting_reason
        return out


class _Tally:
    """Counts the deliveries of one explicit flush: `failed` includes the `parked` (dead-letter) batches; `error` is
    the last failure's, `waiting_reason` the last refusal's (a refusal is no failure)."""

    def __init__(self) -> None:
        self.batches = self.items = self.failed = self.parked = self.waiting = 0
        self.last: Outcome | None = None
        self.error: str | None = None
        self.waiting_reason: str | None = None
        self.parked_after: int | None = None

    def add(self, outcome: Outcome, count: int) -> None:
        self.last = outcome
        if outcome.ok:
            self.batches += 1
            self.items += count
            return
        if outcome.state == "waiting":
            self.waiting += 1
            self.waiting_reason = outcome.error
            return
        self.failed += 1
        self.error = outcome.error
        if outcome.parked_after is not None:
            self.parked += 1
            self.parked_after = outcome.parked_after
