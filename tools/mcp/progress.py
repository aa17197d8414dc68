"""Progress of a long MCP call: a tick every second, and one message per hop of a resilient call.

The call runs in a worker thread; nested calls it makes (each hop of `resilient_tool_call`, a
buffer's pass-through delivery) pass through the runtime's call hooks in that same thread.
`HopHook` is installed once on the serving runtime and reports those nested calls to the
`HopChannel` of the MCP call in progress (a context variable of the thread), which hands them to
the event loop that sends `notifications/progress`.
"""

from __future__ import annotations

import contextvars
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

log = logging.getLogger("tooldeck.mcp")
_channel: contextvars.ContextVar[HopChannel | None] = contextvars.ContextVar("tooldeck_mcp_hops", default=None)


class HopChannel:
    """Carries hop messages of one MCP call from its worker thread to the event loop."""

    def __init__(self, send: Any, outer_tool: str) -> None:
        self.send = send  # an anyio MemoryObjectSendStream[str]
        self.outer_tool = outer_tool
        self.hops = 0

    @contextmanager
    def active(self) -> Iterator[None]:
        token = _channel.set(self)
        try:
            yield
        finally:
            _channel.reset(token)

    def hop(self, entry: Any, outcome: str, duration_ms: float, error: Any) -> None:
        import anyio
        import anyio.from_thread

        self.hops += 1
        message = f"hop {self.hops}: {entry.tool_id} {entry.served_version} {outcome} in {duration_ms:.0f} ms"
        if error is not None:
            message += f": {str(error.message).splitlines()[0][:160]}"
        try:
            anyio.from_thread.run_sync(self.send.send_nowait, message)
        except (anyio.ClosedResourceError, anyio.BrokenResourceError, anyio.WouldBlock, RuntimeError) as exc:
            # the client cancelled or the server is stopping: progress is advisory, nobody is listening
            log.debug("progress for %s not sent: %s", self.outer_tool, type(exc).__name__)


class HopHook:
    """A runtime call hook: a nested call made inside an MCP call is one hop of its progress."""

    guard = False

    def before_call(self, runtime: Any, entry: Any) -> None:
        return None

    def after_call(self, runtime: Any, entry: Any, outcome: str, duration_ms: float, error: Any, data: Any) -> None:
        channel = _channel.get()
        if channel is not None and entry.tool_id != channel.outer_tool:
            channel.hop(entry, outcome, duration_ms, error)
