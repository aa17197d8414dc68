"""What an imported MCP server sends, read within `max_output_bytes`: counted as it arrives, never parsed past the cap.

A result past the cap must not cost the runtime its memory nor the server its connection. So the
bytes are counted on the wire, before anything parses them: a stdio message (one line) past the
cap is skipped to its newline, keeping only its first and last few hundred bytes; a Streamable
HTTP response body (JSON) or SSE event past it is dropped and the rest of that response closed.
Either way the request it answered gets a JSON-RPC error in its place, marked
`OUTPUT_TOO_LARGE`, which the link turns into the call's `output_too_large` failure; the
connection, and every other call on it, goes on. The stdio reader needs the answered request's
id from the skipped bytes: servers put it first (the Python SDK) or last (the TypeScript SDK),
so it is read from the kept head or tail; a message whose id cannot be read there ends the
connection, as a garbled stream must.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

#: `error.data.tooldeck` of a JSON-RPC error put in place of a message past the cap
OUTPUT_TOO_LARGE = "output_too_large"
CHUNK = 64 * 1024
HEAD = 4096
TAIL = 512
_ID = rb'(-?\d+|"(?:[^"\\]|\\.)*")'
#: a message's id as its first key, or its second after `"jsonrpc": "2.0"` (the Python SDK's order)
_HEAD_ID = re.compile(rb'\A\s*\{\s*(?:"jsonrpc"\s*:\s*"2\.0"\s*,\s*)?"id"\s*:\s*' + _ID)
#: a message's id as its last key: one closing brace after it ends the message (the TypeScript SDK's order)
_TAIL_ID = re.compile(rb'"id"\s*:\s*' + _ID + rb'\s*\}\s*\Z')


@dataclass(frozen=True)
class Oversize:
    """A message skipped for passing the cap: its size and what was kept of it."""

    size: int
    head: bytes
    tail: bytes

    def request_id(self) -> int | str | None:
        """The id of the request it answered, when the kept bytes show it at the top level."""
        found = _HEAD_ID.match(self.head) or _TAIL_ID.search(self.tail)
        if found is None:
            return None
        try:
            value = json.loads(found.group(1))
        except ValueError:
            return None
        return value if isinstance(value, (int, str)) and not isinstance(value, bool) else None


def too_large_error(request_id: int | str, size: int, limit: int, *, at_least: bool = False) -> dict[str, Any]:
    """The JSON-RPC error that stands in for a response past the cap (plain JSON)."""
    what = "the server's answer" if at_least else f"the server's answer of {size} bytes"
    return {"jsonrpc": "2.0", "id": request_id,
            "error": {"code": -32603, "message": f"{what} passed max_output_bytes ({limit} bytes)",
                      "data": {"tooldeck": OUTPUT_TOO_LARGE, "bytes": size, "limit": limit}}}


def is_too_large(data: Any) -> bool:
    """Whether an MCPError's data marks the answer this module dropped."""
    return isinstance(data, dict) and data.get("tooldeck") == OUTPUT_TOO_LARGE


class LineReader:
    """Lines from an asyncio StreamReader, each at most `limit` bytes; a longer one comes back as an Oversize.

    Reads fixed chunks (never `readline`, whose buffer grows to the line), scans only the new bytes
    for a newline, and holds at most `limit` + one chunk.
    """

    def __init__(self, reader: Any, limit: int) -> None:
        self.reader = reader
        self.limit = limit
        self._buf = bytearray()
        self._scanned = 0

    async def next(self) -> bytes | Oversize | None:
        """The next line (without its newline), an Oversize, or None at the end of the stream."""
        while True:
            end = self._buf.find(b"\n", self._scanned)
            if end >= 0:
                line: bytes | Oversize = bytes(self._buf[:end]) if end <= self.limit else \
                    Oversize(end, bytes(self._buf[:HEAD]), bytes(self._buf[max(0, end - TAIL):end]))
                del self._buf[:end + 1]
                self._scanned = 0
                return line
            self._scanned = len(self._buf)
            if len(self._buf) > self.limit:
                return await self._skip()
            chunk = await self.reader.read(CHUNK)
            if not chunk:
                if self._buf:
                    rest = bytes(self._buf)
                    self._buf.clear()
                    self._scanned = 0
                    return rest
                return None
            self._buf += chunk

    async def _skip(self) -> Oversize:
        """Drop the current line up to its newline, counting it and keeping its head and tail."""
        head, tail, size = bytes(self._buf[:HEAD]), bytes(self._buf[-TAIL:]), len(self._buf)
        self._buf.clear()
        self._scanned = 0
        while True:
            chunk = await self.reader.read(CHUNK)
            if not chunk:
                return Oversize(size, head, tail)
            end = chunk.find(b"\n")
            if end >= 0:
                self._buf += chunk[end + 1:]
                return Oversize(size + end, head, (tail + chunk[:end])[-TAIL:])
            size += len(chunk)
            tail = (tail + chunk)[-TAIL:]


_EVENT_END = re.compile(rb"\r\n\r\n|\n\n|\r\r")


def bounded_transport(inner: Any, limit: int) -> Any:
    """An httpx2 transport over `inner` whose response bodies (JSON) and SSE events stop at `limit` bytes."""
    import httpx2

    class Bounded(httpx2.AsyncBaseTransport):
        async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
            response = await inner.handle_async_request(request)
            kind = response.headers.get("content-type", "").lower()
            request_id = _request_id(request)
            if kind.startswith("application/json"):
                return await _bounded_json(response, request, request_id, limit)
            if kind.startswith("text/event-stream"):
                return httpx2.Response(response.status_code, headers=response.headers, request=request,
                                       stream=events_stream(response.stream, request_id, limit),
                                       extensions=response.extensions)
            return response

        async def aclose(self) -> None:
            await inner.aclose()

    return Bounded()


def _request_id(request: Any) -> int | str | None:
    """The JSON-RPC id of a POST's one message (MCP over Streamable HTTP sends one message per POST)."""
    if request.method != "POST":
        return None
    try:
        body = json.loads(request.content)
    except (ValueError, TypeError, RecursionError):
        return None
    value = body.get("id") if isinstance(body, dict) else None
    return value if isinstance(value, (int, str)) and not isinstance(value, bool) else None


async def _bounded_json(response: Any, request: Any, request_id: int | str | None, limit: int) -> Any:
    import httpx2

    body = bytearray()
    async for chunk in response.stream:
        body += chunk
        if len(body) > limit:
            await response.stream.aclose()
            if request_id is None:
                raise httpx2.StreamError(f"a response body passed max_output_bytes ({limit} bytes)")
            error = json.dumps(too_large_error(request_id, len(body), limit, at_least=True)).encode()
            return httpx2.Response(200, headers={"content-type": "application/json"}, content=error, request=request)
    await response.stream.aclose()
    headers = [(k, v) for k, v in response.headers.multi_items() if k.lower() not in ("content-length", "transfer-encoding")]
    return httpx2.Response(response.status_code, headers=headers, content=bytes(body), request=request,
                           extensions=response.extensions)


def events_stream(stream: Any, request_id: int | str | None, limit: int) -> Any:
    """`_BoundedEvents` as an httpx2 byte stream (httpx2 checks the type of a response's stream)."""
    return _stream_class()(stream, request_id, limit)


@functools.cache
def _stream_class() -> type:
    import httpx2

    return type("BoundedEvents", (_BoundedEvents, httpx2.AsyncByteStream), {})


class _BoundedEvents:
    """An SSE body passed on event by event; an event past the limit ends the body with an error event in its place."""

    def __init__(self, stream: Any, request_id: int | str | None, limit: int) -> None:
        self.stream = stream
        self.request_id = request_id
        self.limit = limit

    async def __aiter__(self) -> AsyncIterator[bytes]:
        pending = bytearray()
        async for chunk in self.stream:
            start = max(0, len(pending) - 3)  # a delimiter may straddle the chunks: only the new bytes are scanned
            pending += chunk
            ends = [m.end() for m in _EVENT_END.finditer(pending, start)]
            if ends:
                yield bytes(pending[:ends[-1]])
                del pending[:ends[-1]]
            if len(pending) > self.limit:
                size = len(pending)
                pending.clear()
                await self.stream.aclose()
                if self.request_id is not None:  # the SDK gives a response event the POST's own request id
                    error = json.dumps(too_large_error(self.request_id, size, self.limit, at_least=True))
                    yield f"event: message\ndata: {error}\n\n".encode()
                return
        if pending:
            yield bytes(pending)

    async def aclose(self) -> None:
        await self.stream.aclose()
