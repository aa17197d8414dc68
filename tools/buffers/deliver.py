"""Handing one claimed batch to its pass-through tool, and what the outcome does to the batch.

Three outcomes: delivered (the batch and its items are deleted), failed (an attempt was spent:
retry with backoff, or dead-letter after `max_attempts`), and refused: the runtime did not run
the tool at all because its circuit is open or an operator disabled it. A refusal is not an
attempt: the batch waits ('waiting' in the store, "waiting for circuit" in status) until the
tool admits calls again, and the flusher claims nothing more for that tool in the meantime.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Protocol

from state.buffers import BufferTables, Claim
from tools.errors import CallRefusedError, ToolError

if TYPE_CHECKING:
    from tools.host import RuntimeHost

log = logging.getLogger("tooldeck.buffers")

#: how soon to look again at a tool whose refusal did not say when it admits calls (half-open with every
#: probe slot taken: the probes usually report within milliseconds)
HALF_OPEN_RECHECK_SECONDS = 0.5
#: ... and at a tool an operator holds open or disabled (at most this long while an open circuit cools down)
HELD_RECHECK_SECONDS = 5.0


class BufferHost(Protocol):
    """What the flusher needs from the buffer engine that owns it (the engine is handed in,
    never imported, so the engine may import the flusher)."""

    runtime: RuntimeHost
    tables: BufferTables
    lease_seconds: float
    max_attempts: int
    poll_seconds: float
    max_parallel: int

    def mine(self) -> set[str]: ...
    def new_owner(self) -> str: ...
    def backoff(self, attempts: int) -> float: ...
    def note_space(self) -> None: ...
    def take_counts(self) -> tuple[list[tuple[str, int, int, int]], dict[str, int]]: ...


@dataclass(frozen=True, slots=True)
class Outcome:
    """What one delivery did: `delivered`, `failed` (an attempt spent), or `waiting` (refused, no attempt).

    A failed batch is retried later unless `parked_after` says it was parked as dead-letter after that many attempts.
    """

    state: str
    error: str | None = None
    parked_after: int | None = None

    @property
    def ok(self) -> bool:
        return self.state == "delivered"


DELIVERED = Outcome("delivered")


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


class ToolWaits:
    """Pass-through tools that refused a delivery, and until when this process leaves them alone."""

    def __init__(self) -> None:
        self._until: dict[str, float] = {}
        self._lock = threading.Lock()

    def note(self, tool_id: str, until: float) -> None:
        with self._lock:
            self._until[tool_id] = until

    def until(self, tool_id: str | None, now: float) -> float | None:
        """When `tool_id` may be tried again, if that is still in the future."""
        if tool_id is None:
            return None
        with self._lock:
            until = self._until.get(tool_id)
            if until is not None and until <= now:
                del self._until[tool_id]
                return None
        return until


def refusal(exc: CallRefusedError, now: float) -> tuple[str, float]:
    """(reason shown in status, when to try again) for a call the runtime refused to run."""
    circuit = exc.details.get("circuit")
    retry_at = exc.details.get("retry_at")
    if circuit is None:  # disabled by an operator
        return f"waiting: {exc.message}", now + HELD_RECHECK_SECONDS
    reason = f"waiting for circuit: {exc.message}"
    if circuit == "half_open":
        return reason, now + HALF_OPEN_RECHECK_SECONDS
    if isinstance(retry_at, (int, float)) and retry_at > now:
        # look again at most HELD_RECHECK_SECONDS later: an operator may close the circuit before its cooldown ends
        return reason, min(float(retry_at), now + HELD_RECHECK_SECONDS)
    return reason, now + HELD_RECHECK_SECONDS  # held open by an operator, or just past its cooldown


class Deliverer:
    """Delivers one claimed batch and records the outcome; safe to use from several threads at once."""

    def __init__(self, engine: BufferHost) -> None:
        self.engine = engine
        self.leases = LeaseKeeper(engine)
        self.waits = ToolWaits()

    def deliver(self, claim: Claim, *, timeout: float | None = None) -> Outcome:
        """Hand one claimed batch to the pass-through tool; the batch is deleted only after it succeeded.

        `timeout` (closing) bounds the call below the tool's own timeout, which the runtime enforces otherwise.
        """
        engine = self.engine
        config = engine.tables.load(claim.buffer_id)
        tool = config.pass_through_tool if config is not None else None
        started = time.perf_counter()
        error: str | None = None
        refused: CallRefusedError | None = None
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
            except CallRefusedError as exc:
                refused = exc
            except ToolError as exc:  # its message names the tool already, mostly: once is enough
                error = exc.message if exc.message.startswith(f"{tool}: ") else f"{tool}: {exc.message}"
            except Exception as exc:  # any failure keeps the batch; the retry/dead-letter event records it
                error = f"{tool}: {type(exc).__name__}: {exc}"
            else:
                if isinstance(result, dict) and result.get("success") is False:
                    said = result.get("error") or result.get("message")
                    error = f"{tool}: answered success=false" + (f": {said}" if said else "")
            finally:
                self.leases.release(claim)
        if refused is not None and tool is not None:
            reason, until = refusal(refused, engine.tables.store.now())
            self.waits.note(tool, until)
            engine.tables.hold(claim, reason, until)
            return Outcome("waiting", reason)
        if error is None:
            engine.tables.complete(claim, tool, (time.perf_counter() - started) * 1000)
            engine.note_space()
            return DELIVERED
        fate = engine.tables.fail(claim, error, engine.max_attempts, engine.backoff)
        return Outcome("failed", error, parked_after=claim.attempts if fate == "dead" else None)
