"""Records of the buffer tables: a buffer's settings, what a write did, a claimed batch.

Plain frozen dataclasses shared by `state.buffers` (which reads and writes them)
and the engine in `tools.buffers.engine`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

#: settings persisted per buffer (the rest of the row is counters)
CONFIG_FIELDS = (
    "flush_strategy", "max_size", "flush_interval_seconds", "pass_through_tool", "pass_through_input",
    "max_pending", "when_full", "block_timeout_seconds",
)
DEFAULT_CONFIG: dict[str, Any] = {
    "flush_strategy": "batched",
    "max_size": 100,
    "flush_interval_seconds": 5.0,
    "pass_through_tool": None,
    "pass_through_input": {},
    "max_pending": None,
    "when_full": "block",
    "block_timeout_seconds": 30.0,
}


@dataclass(frozen=True, slots=True)
class BufferConfig:
    """A buffer's persisted settings as one process last read them (`config_version` tells staleness)."""

    buffer_id: str
    bkey: int
    epoch: str
    config_version: int
    flush_strategy: str
    max_size: int
    flush_interval_seconds: float
    pass_through_tool: str | None
    pass_through_input: dict[str, Any]
    max_pending: int | None
    when_full: str
    block_timeout_seconds: float

    def settings(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in CONFIG_FIELDS}


@dataclass(frozen=True, slots=True)
class WriteResult:
    """What one write (or one chunk of `write_many`) did, read back from the buffer row."""

    written: int
    dropped: int
    pending: int
    unclaimed: int
    max_size: int
    flush_strategy: str
    config_version: int
    last_seq: int | None
    full: bool = False


@dataclass(frozen=True, slots=True)
class Cleared:
    """What `clear` did: items discarded, and items left to the delivery that holds them right now.

    A batch being delivered (claimed under a live lease) is not cleared: its sink may already have it, so
    discarding it would say "not delivered" of items that were; its delivery completes or fails as any other.
    """

    removed: int
    in_flight: int

    def text(self) -> str:
        """One line for the CLI and the dashboard: what went, and what was left to its delivery."""
        line = f"cleared {self.removed} item{'' if self.removed == 1 else 's'}"
        if self.in_flight:
            line += (f"; {self.in_flight} item{'' if self.in_flight == 1 else 's'} in flight"
                     f" {'was' if self.in_flight == 1 else 'were'} left to their delivery")
        return line


@dataclass(frozen=True, slots=True)
class Claim:
    """A batch this process holds the lease on: deliver it, then `complete` or `fail` it."""

    batch_id: str
    buffer_id: str
    bkey: int
    first_seq: int
    last_seq: int
    count: int
    attempts: int
    owner: str
    items_json: list[str]

    def items(self) -> list[Any]:
        return json.loads("[" + ",".join(self.items_json) + "]")


def config_from_row(row: Any) -> BufferConfig:
    try:
        extra = json.loads(row["pass_through_input"] or "{}")
    except json.JSONDecodeError:
        extra = {}
    return BufferConfig(
        row["buffer_id"], row["bkey"], row["epoch"], row["config_version"], row["flush_strategy"], row["max_size"],
        row["flush_interval_seconds"], row["pass_through_tool"], extra, row["max_pending"], row["when_full"],
        row["block_timeout_seconds"],
    )
