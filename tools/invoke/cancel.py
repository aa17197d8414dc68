"""Cancelling a call from another thread: the processes working for a call register with its scope.

A caller that may give up on a call (an MCP client sending `notifications/cancelled`) runs it
inside `CallScope.active()`. While an executable's process or a python tool's worker works for
the call, it is registered with the scope; `cancel()` kills those process groups at once, the
call ends with ToolCancelledError, and calls that start after the cancel (the next hops of a
resilient call) are refused before they spawn anything. A call outside any scope pays one
context-variable lookup.
"""

from __future__ import annotations

import contextvars
import itertools
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from tools.errors import ToolCancelledError

_current: contextvars.ContextVar[CallScope | None] = contextvars.ContextVar("tooldeck_call_scope", default=None)


class CallScope:
    """One cancellable call (and the calls nested in it, in the same thread)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._kills: dict[int, Callable[[], None]] = {}
        self._ids = itertools.count()
        self._cancelled = False
        self.killed = 0

    @property
    def cancelled(self) -> bool:
        return self._cancelled

    @contextmanager
    def active(self) -> Iterator[CallScope]:
        """Calls made in this thread inside the block belong to this scope."""
        token = _current.set(self)
        try:
            yield self
        finally:
            _current.reset(token)

    def cancel(self) -> int:
        """Kill every process working for the call now; returns how many were killed."""
        with self._lock:
            self._cancelled = True
            kills = list(self._kills.values())
        for kill in kills:
            kill()
        self.killed += len(kills)
        return len(kills)

    def _add(self, kill: Callable[[], None]) -> int | None:
        with self._lock:
            if not self._cancelled:
                key = next(self._ids)
                self._kills[key] = kill
                return key
        kill()  # cancelled before the process was registered: it dies at once
        self.killed += 1
        return None

    def _remove(self, key: int | None) -> None:
        if key is not None:
            with self._lock:
                self._kills.pop(key, None)


def current_scope() -> CallScope | None:
    return _current.get()


def check_cancelled(scope: CallScope | None, tool_id: str, version: str | None) -> None:
    """Refuse to start work for a call its caller has cancelled."""
    if scope is not None and scope.cancelled:
        raise ToolCancelledError(f"{tool_id}: cancelled by the caller", tool_id=tool_id, version=version)


@contextmanager
def killable(scope: CallScope | None, kill: Callable[[], None]) -> Iterator[None]:
    """While the block runs, cancelling `scope` runs `kill` (from the cancelling thread)."""
    if scope is None:
        yield
        return
    key = scope._add(kill)
    try:
        yield
    finally:
        scope._remove(key)
