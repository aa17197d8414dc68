"""The flush policy (tools/buffers/policy.py): when a buffer or a batch is due, as pure functions.

The scheduler, the close drain, the writer's wake-up and the status view all ask it, so these
tests pin the rule without a clock, a store or a sleep."""

from __future__ import annotations

from typing import Any

import pytest

from tools.buffers.policy import batch_due_at, flushes_by_itself, full_batch_waiting, new_batch_due_at

NOW = 1_000.0


def buffer(**over: Any) -> dict[str, Any]:
    row = {"pending": 3, "inflight": 0, "max_size": 10, "flush_strategy": "batch", "pass_through_tool": "sink",
           "oldest_ts": NOW - 2.0, "flush_interval_seconds": 5.0}
    row.update(over)
    return row


def test_a_partial_batch_falls_due_when_its_oldest_item_has_waited_the_interval() -> None:
    assert new_batch_due_at(buffer(), NOW) == NOW + 3.0
    assert new_batch_due_at(buffer(oldest_ts=NOW - 9.0), NOW) == NOW - 4.0  # overdue: due now


@pytest.mark.parametrize("over", [{"pending": 10}, {"flush_strategy": "immediate"}, {"pending": 25, "inflight": 10}])
def test_a_full_batch_or_an_immediate_buffer_is_due_now(over: dict[str, Any]) -> None:
    assert new_batch_due_at(buffer(**over), NOW) == NOW


def test_pressing_makes_what_waits_due_now() -> None:
    assert new_batch_due_at(buffer(), NOW, pressed=True) == NOW


@pytest.mark.parametrize("over", [{"pass_through_tool": None}, {"flush_strategy": "manual"}, {"pending": 0},
                                  {"pending": 5, "inflight": 5}])
def test_nothing_is_due_without_a_sink_under_manual_or_with_everything_claimed(over: dict[str, Any]) -> None:
    assert new_batch_due_at(buffer(**over), NOW, pressed=True) is None


def test_a_missing_oldest_time_counts_from_now() -> None:
    assert new_batch_due_at(buffer(oldest_ts=None), NOW) == NOW + 5.0


def test_open_batches_fall_due_at_their_next_attempt_or_when_their_lease_expires() -> None:
    assert batch_due_at({"state": "retry", "next_attempt_at": NOW + 4, "lease_until": None}) == NOW + 4
    assert batch_due_at({"state": "waiting", "next_attempt_at": NOW + 7, "lease_until": NOW + 1}) == NOW + 7
    assert batch_due_at({"state": "claimed", "next_attempt_at": None, "lease_until": NOW + 1}) == NOW + 1
    assert batch_due_at({"state": "dead", "next_attempt_at": None, "lease_until": None}) is None


def test_a_full_batch_waiting_wakes_the_flusher_only_when_it_would_deliver() -> None:
    assert full_batch_waiting(pass_through_tool="sink", flush_strategy="batch", unclaimed=10, max_size=10)
    assert not full_batch_waiting(pass_through_tool="sink", flush_strategy="batch", unclaimed=9, max_size=10)
    assert not full_batch_waiting(pass_through_tool="sink", flush_strategy="manual", unclaimed=50, max_size=10)
    assert not full_batch_waiting(pass_through_tool=None, flush_strategy="batch", unclaimed=50, max_size=10)
    assert flushes_by_itself("sink", "immediate") and not flushes_by_itself(None, "immediate")
