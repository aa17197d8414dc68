"""The Streamable HTTP transport `mcp serve --http` answers with: one JSON body per request, a stream only for a
request that asks for progress.

The protocol lets a server answer each POSTed request either as `application/json` (the response alone) or as a
`text/event-stream` (notifications and requests tied to the call, then the response); a client must accept both.
The SDK picks one mode per server. The stream costs the server ~0.4 ms of CPU a request (its task group, cancel
scopes, ping and send tasks: measured 0.96 vs 0.55 ms a call on the SDK's minimal server), yet tooldeck sends
nothing tied to a request except progress, and progress is sent only to a request that carries a `progressToken`.
So the choice is made per request here: such a request is streamed, every other is answered as JSON.

Nothing else changes. Notifications that belong to no request (`list_changed`) go on the session's GET stream as
before; a JSON-answered request cannot carry a server-initiated request (the SDK's `can_send_request`), and
tooldeck sends none. Should anything tied to a JSON-answered request be sent after all, it is dropped (as the SDK
does in its own JSON mode), never mistaken for the response.
"""

from __future__ import annotations

import json
import logging
from contextvars import ContextVar
from typing import Any, cast
from uuid import uuid4

from mcp.server.streamable_http import StreamableHTTPServerTransport
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
from mcp_types import JSONRPCError, JSONRPCResponse

log = logging.getLogger("tooldeck.mcp")

#: whether the POST this task is handling is answered as one JSON body (set by `Transport._handle_post_request`)
_AS_JSON: ContextVar[bool] = ContextVar("tooldeck_mcp_as_json", default=False)


def streams(body: bytes) -> bool:
    """Whether a POSTed message is answered as an event stream: a request whose `_meta` carries a progressToken.
    A body that does not parse is left to the SDK's stream path, which says what is wrong with it."""
    try:
        message = json.loads(body)
    except (ValueError, RecursionError):
        return True
    params = message.get("params") if isinstance(message, dict) else None
    meta = params.get("_meta") if isinstance(params, dict) else None
    return not isinstance(message, dict) or (isinstance(meta, dict) and meta.get("progressToken") is not None)


class _ResponseOnly:
    """A JSON-answered request's receiving stream: what the SDK reads its response from, skipping anything else
    tied to the request (a JSON body has room for the response alone)."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner

    async def receive(self) -> Any:
        while True:
            event = await self._inner.receive()
            if isinstance(event.message, JSONRPCResponse | JSONRPCError):
                return event
            log.debug("mcp http: dropped a message tied to a request answered as JSON")

    def __getattr__(self, name: str) -> Any:  # close, aclose, statistics: the stream's own
        return getattr(self._inner, name)


class _RequestStreams(dict[Any, Any]):
    """The transport's per-request streams: the one of a JSON-answered request keeps to its response."""

    def __setitem__(self, key: Any, pair: Any) -> None:
        if _AS_JSON.get():
            pair = (pair[0], _ResponseOnly(pair[1]))
        super().__setitem__(key, pair)


class Transport(StreamableHTTPServerTransport):
    """The SDK's transport, its response mode chosen per request (module docstring)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._request_streams = cast(Any, _RequestStreams())

    @property  # the SDK's attribute, read per request here
    def is_json_response_enabled(self) -> bool:
        return _AS_JSON.get()

    @is_json_response_enabled.setter
    def is_json_response_enabled(self, value: bool) -> None:
        """Set by the SDK's constructor; the mode is per request (`_AS_JSON`), not per session."""

    async def _handle_post_request(self, scope: Any, request: Any, receive: Any, send: Any) -> None:
        token = _AS_JSON.set(not streams(await request.body()))  # Starlette keeps the body for the SDK's read
        try:
            await super()._handle_post_request(scope, request, receive, send)
        finally:
            _AS_JSON.reset(token)


class SessionManager(StreamableHTTPSessionManager):
    """The SDK's session manager, its sessions served by `Transport`."""

    def _admit_session(self, requestor: Any) -> Any:
        # the SDK's own method (mcp 2.3), with this module's transport
        if self.max_sessions is not None and len(self._server_instances) >= self.max_sessions:
            return None
        transport = Transport(mcp_session_id=uuid4().hex, event_store=self.event_store,
                              security_settings=self.security_settings, retry_interval=self.retry_interval,
                              idle_timeout=self.session_idle_timeout)
        session_id = transport.mcp_session_id
        assert session_id is not None
        if requestor is not None:
            self._session_owners[session_id] = requestor
        self._server_instances[session_id] = transport
        log.debug("mcp http: new session %s", session_id)
        return transport
