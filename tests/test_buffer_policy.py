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


def test_every_buffer_setting_has_exactly_one_validator() -> None:
    from state.buffers import CONFIG_FIELDS
    from tools.buffers.settings import VALIDATORS

    assert set(VALIDATORS) == set(CONFIG_FIELDS)


@pytest.mark.parametrize(("raw", "message"), [
    ({"flush_strategy": "sometimes"}, "flush_strategy must be one of batched, immediate, manual, got 'sometimes'"),
    ({"max_size": 0}, "max_size must be an integer from 1 to 100000, got 0"),
    ({"max_size": True}, "max_size must be an integer from 1 to 100000, got True"),
    ({"flush_interval_seconds": "5"}, "flush_interval_seconds must be a number from 0.001 to 86400, got '5'"),
    ({"pass_through_tool": "buffer"}, "pass_through_tool cannot be the buffer tool itself"),
    ({"pass_through_tool": "../etc"}, "pass_through_tool"),
    ({"pass_through_input": [1]}, "pass_through_input must be an object, got list"),
    ({"when_full": "explode"}, "when_full must be one of block, drop_newest, drop_oldest"),
])
def test_a_bad_setting_names_the_buffer_and_the_field(raw: dict[str, Any], message: str) -> None:
    from tools.buffers.settings import clean
    from tools.errors import ToolInputError

    with pytest.raises(ToolInputError, match="^buffer 'b': .*") as caught:
        clean("b", raw)
    assert message in caught.value.message


def test_settings_are_normalised_and_unset_explicitly() -> None:
    from tools.buffers.settings import clean

    assert clean("b", {"max_pending": 0, "pass_through_tool": "", "flush_interval_seconds": 2, "other": 1,
                       "max_size": None}) == {"max_pending": None, "pass_through_tool": None, "flush_interval_seconds": 2.0}
