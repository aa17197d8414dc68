"""Typed messages that thread workers post back to the UI thread."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from textual.message import Message

if TYPE_CHECKING:
    from tui.snapshot import Snapshot


@dataclass
class RuntimeStarted(Message):
    """The runtime object exists (its loader is still working in the background)."""

    runtime: Any


@dataclass
class SnapshotReady(Message):
    """A fresh view of the runtime's state, gathered off the event loop."""

    snapshot: Snapshot


@dataclass
class ActionDone(Message):
    """A blocking action (flush, approve, call...) finished; `error` is one line or None."""

    what: str
    result: Any = None
    error: str | None = None
    then: Any = None  # called with this message once the status line shows it (a screen refreshing its list)
    progress: int | None = None  # the token of the status line shown while it ran (`OperatorActions.end_status`)


@dataclass
class Progress(Message):
    """Progress of a long action (an evolution), for the status line."""

    what: str
    detail: str


@dataclass
class NewAbove(Message):
    """A live list's count of rows that arrived above its cursor unseen (0: it follows the newest again).

    A cursor on the first row follows new rows (tail mode, as k9s does); elsewhere the cursor keeps its
    row and the panel says how many came in above it; `g` / Home goes there."""

    widget: Any
    count: int


@dataclass
class ColumnsHidden(Message):
    """A live table's columns left out whole for want of width (their labels; empty: every column shown).

    The panel says so in its title, so a missing column is never a silent one; the row's details show them."""

    widget: Any
    labels: tuple[str, ...]
