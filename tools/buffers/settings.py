"""A buffer's explicit settings: one validator per field of `state.buffers.CONFIG_FIELDS`.

Each validator takes (buffer_id, field, value) and returns the value to store (None: unset the
setting explicitly) or raises ToolInputError naming the buffer and the field. A test keeps the
table and the fields equal, so a new field cannot go unchecked.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tools.errors import ToolError, ToolInputError
from tools.ids import check_tool_id

#: what the `buffer` builtin does (its `operation` field)
OPERATIONS = ("write", "write_many", "flush", "status", "clear", "configure", "dead_letters", "replay")
STRATEGIES = ("batched", "immediate", "manual")
WHEN_FULL = ("block", "drop_newest", "drop_oldest")

Validator = Callable[[str, str, Any], Any]


def _refuse(buffer_id: str, message: str) -> ToolInputError:
    return ToolInputError(f"buffer {buffer_id!r}: {message}", tool_id="buffer")


def one_of(choices: tuple[str, ...]) -> Validator:
    def check(buffer_id: str, name: str, value: Any) -> Any:
        if value not in choices:
            raise _refuse(buffer_id, f"{name} must be one of {', '.join(choices)}, got {value!r}")
        return value
    return check


def number(*, integer: bool, low: float, high: float, zero_unsets: bool = False) -> Validator:
    """A number in [low, high] (an int when `integer`; a float otherwise). `zero_unsets`: 0 means
    unbounded, stored as an explicit None."""
    kind = int if integer else (int, float)

    def check(buffer_id: str, name: str, value: Any) -> Any:
        if isinstance(value, bool) or not isinstance(value, kind) or not (low <= value <= high):
            what = "an integer" if integer else "a number"
            raise _refuse(buffer_id, f"{name} must be {what} from {low:g} to {high:g}, got {value!r}")
        if zero_unsets and value == 0:
            return None
        return value if integer else float(value)
    return check


def sink_tool(buffer_id: str, name: str, value: Any) -> Any:
    """A tool id other than the buffer tool itself; "" unsets the pass-through tool."""
    if value == "":
        return None
    try:
        check_tool_id(value, name)
    except ToolError as exc:
        raise _refuse(buffer_id, exc.message) from exc
    if value == "buffer":
        raise _refuse(buffer_id, f"{name} cannot be the buffer tool itself")
    return value


def an_object(buffer_id: str, name: str, value: Any) -> Any:
    if not isinstance(value, dict):
        raise _refuse(buffer_id, f"{name} must be an object, got {type(value).__name__}")
    return value


VALIDATORS: dict[str, Validator] = {
    "flush_strategy": one_of(STRATEGIES),
    "max_size": number(integer=True, low=1, high=100_000),
    "flush_interval_seconds": number(integer=False, low=0.001, high=86_400),
    "pass_through_tool": sink_tool,
    "pass_through_input": an_object,  # its JSON size and secrets: checked as an item is (the engine's serialiser)
    "max_pending": number(integer=True, low=0, high=1_000_000_000, zero_unsets=True),
    "when_full": one_of(WHEN_FULL),
    "block_timeout_seconds": number(integer=False, low=0, high=3600),
}


def clean(buffer_id: str, raw: dict[str, Any]) -> dict[str, Any]:
    """The explicit settings in `raw`, checked (None means 'not given'); keys that are not settings are ignored."""
    return {name: check(buffer_id, name, raw[name]) for name, check in VALIDATORS.items() if raw.get(name) is not None}
