"""What the call in progress may reach: the one rule a caller narrower than the runtime sets.

A runtime may call every tool it has. An MCP client may reach only what its endpoint serves, and a
builtin it calls (`resilient_tool_call`, a buffer's pass-through) acts for that client. While such a
call runs, `limited_to(predicate)` is in force on its thread: selection does not consider a tool
outside it (so a resilient call's hops, skipped list and messages never name one, and the tools it
cannot reach do not crowd out of its queries the ones it can), and the MCP call hook refuses one that
is called anyway. Outside it, everything is reachable.
"""

from __future__ import annotations

import contextvars
from collections.abc import Callable, Iterator
from contextlib import contextmanager

_limit: contextvars.ContextVar[Callable[[str], bool] | None] = contextvars.ContextVar("tooldeck_reach", default=None)


def narrowed() -> bool:
    """Whether the call in progress is narrowed: only then does selection ask its indexes for more than its pool
    (tools/recovery/selection.py), so a runtime's own calls pay nothing for the rule."""
    return _limit.get() is not None


def reachable(tool_id: str) -> bool:
    """Whether the call in progress may reach `tool_id` (always, outside a narrowed call)."""
    limit = _limit.get()
    return limit is None or bool(limit(tool_id))


@contextmanager
def limited_to(predicate: Callable[[str], bool]) -> Iterator[None]:
    token = _limit.set(predicate)
    try:
        yield
    finally:
        _limit.reset(token)
