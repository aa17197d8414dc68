"""When a buffer or a batch is due: the one flush policy, pure functions of a buffer's state.

The flusher's scheduler, its close drain, the writer's "a full batch is waiting" wake-up and the
status view all ask these, so the rule that delivers a batch is the rule the dashboard shows.
Times are on the store's clock (`Store.now()`); nothing here reads a clock or the store.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

#: batch states that wait for a time of their own (`next_attempt_at`), not for a lease to expire
DEFERRED = ("retry", "waiting")


def batch_due_at(batch: Mapping[str, Any]) -> float | None:
    """When an open batch falls due: a deferred one (retry, refused) at its next attempt; a claimed one
    when its lease expires (its flusher died). None: never by itself."""
    return batch["next_attempt_at"] if batch["state"] in DEFERRED else batch["lease_until"]


def flushes_by_itself(pass_through_tool: str | None, flush_strategy: str) -> bool:
    """Whether the flusher delivers this buffer without being asked (`manual`, or no sink: never)."""
    return pass_through_tool is not None and flush_strategy != "manual"


def full_batch_waiting(*, pass_through_tool: str | None, flush_strategy: str, unclaimed: int, max_size: int) -> bool:
    """A whole batch of unclaimed items is ready: deliver it now, and the next one after it."""
    return flushes_by_itself(pass_through_tool, flush_strategy) and unclaimed >= max_size


def new_batch_due_at(buffer: Mapping[str, Any], now: float, *, pressed: bool = False) -> float | None:
    """When the buffer's unclaimed items fall due as a new batch (`now` or earlier: due now), or None.

    Due at once under `immediate`, with a full batch, or when `pressed` (a writer blocked on a full
    buffer, or a runtime closing with nobody else to flush); otherwise when the oldest unclaimed item
    has waited `flush_interval_seconds`. `buffer` is a row of the buffers view (pending, inflight,
    max_size, flush_strategy, pass_through_tool, oldest_ts, flush_interval_seconds)."""
    unclaimed = buffer["pending"] - buffer["inflight"]
    if unclaimed <= 0 or not flushes_by_itself(buffer["pass_through_tool"], buffer["flush_strategy"]):
        return None
    if pressed or buffer["flush_strategy"] == "immediate" or unclaimed >= buffer["max_size"]:
        return now
    return (buffer["oldest_ts"] or now) + buffer["flush_interval_seconds"]

