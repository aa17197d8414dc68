"""What an MCP call does inside the runtime: its nested calls are checked against `expose` and reported as hops.

The call runs in a worker thread, and the calls it makes in turn (each hop of
`resilient_tool_call`, a buffer's pass-through delivery on `flush`) pass through the runtime's
call hooks in that same thread. `McpCallHook` is installed once on the serving runtime; while an
`McpCall` is active in the thread it refuses nested calls to tools `[mcp.serve] expose` hides
(so hiding `evolve_tool` cannot be undone by asking `resilient_tool_call` for it, nor a client of one
endpoint reach another's tools), and reports
each nested call that ran as one progress message, handed to the event loop that sends
`notifications/progress`.
"""

from __future__ import annotations

import contextvars
import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from tools.errors import ToolUnavailableError
from tools.reach import reachable

if TYPE_CHECKING:
    from tools.host import RuntimeHost

log = logging.getLogger("tooldeck.mcp")
_current: contextvars.ContextVar[McpCall | None] = contextvars.ContextVar("tooldeck_mcp_call", default=None)


class McpCall:
    """One tools/call in progress in this thread."""

    def __init__(self, outer_tool: str, exposed: Callable[[str], bool], send: Any = None, *,
                 where: str = "[mcp.serve]") -> None:
        self.outer_tool = outer_tool
        self.exposed = exposed  # the endpoint's (listing.exposes): a hop reaches only what its client could call
        self.where = where
        self.send = send  # an anyio MemoryObjectSendStream[str] when the client asked for progress
        self.hops = 0

    @contextmanager
    def active(self) -> Iterator[McpCall]:
        from tools.reach import limited_to

        token = _current.set(self)
        try:
            with limited_to(self.exposed):  # what selection considers for this client (tools/reach.py)
                yield self
        finally:
            _current.reset(token)

    def hop(self, entry: Any, outcome: str, duration_ms: float, error: Any) -> None:
        self.hops += 1
        if self.send is None:
            return
        import anyio
        import anyio.from_thread

        message = f"hop {self.hops}: {entry.tool_id} {entry.served_version} {outcome} in {duration_ms:.0f} ms"
        if error is not None:
            message += f": {str(error.message).splitlines()[0][:160]}"
        try:
            anyio.from_thread.run_sync(self.send.send_nowait, message)
        except (anyio.ClosedResourceError, anyio.BrokenResourceError, anyio.WouldBlock, RuntimeError) as exc:
            # the client cancelled or the server is stopping: progress is advisory, nobody is listening
            log.debug("progress for %s not sent: %s", self.outer_tool, type(exc).__name__)


class McpCallHook:
    """A runtime call hook; outside an MCP call it does nothing."""

    guard = True  # a refusal, so it also applies to calls that are not observed

    def before_call(self, runtime: RuntimeHost, entry: Any) -> None:
        call = _current.get()
        if call is not None and entry.tool_id != call.outer_tool and not reachable(entry.tool_id):
            raise ToolUnavailableError(f"{entry.tool_id}: not served over MCP ({call.where} expose), so "
                                       f"{call.outer_tool} cannot call it for an MCP client",
                                       tool_id=entry.tool_id, version=entry.served_version)

    def after_call(self, runtime: RuntimeHost, entry: Any, outcome: str, duration_ms: float, error: Any, data: Any) -> None:
        call = _current.get()
        if call is not None and entry.tool_id != call.outer_tool:
            call.hop(entry, outcome, duration_ms, error)
