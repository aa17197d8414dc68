"""MCP over stdio: nothing but protocol on stdout, and a clean exit when stdin closes.

`claim_stdio` takes the protocol's pipes for the life of the process, before anything else
runs: the server reads and writes private duplicates, fd 0 reads /dev/null and fd 1 writes to
stderr. A stray print, a library's warning or a child process that inherits the descriptors
can then never corrupt the protocol stream or steal a request. The SDK's `stdio_server` frames
and parses the messages; it is handed line streams over those duplicates that wait for the
pipe in the event loop (not in a thread blocked in `read`), so a signal can end the input at
once, exactly as EOF does: in-flight calls are cancelled (their processes killed), the server
loop ends, and the caller closes the runtime, which delivers what the buffers hold.
"""

from __future__ import annotations

import json
import os
import sys
from collections import deque
from typing import Any

import anyio
from mcp.server.stdio import stdio_server
from mcp.shared.message import SessionMessage
from mcp_types import INVALID_REQUEST, PARSE_ERROR, ErrorData, JSONRPCError

from tools.mcp.signals import Stop

MAX_LINE = 64 * 1024 * 1024


def claim_stdio() -> tuple[int, int]:
    """(protocol in, protocol out): private duplicates of fds 0 and 1; fd 0 then reads /dev/null, fd 1 writes stderr."""
    sys.stdout.flush()
    proto_in, proto_out = os.dup(0), os.dup(1)  # non-inheritable: no child ever holds the protocol's pipes
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    os.dup2(2, 1)
    return proto_in, proto_out


class FdLines:
    """`async for line in FdLines(fd)`: lines from a pipe, read when the event loop says it is readable."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.buffer = b""
        self.pollable = True
        self.ended = False
        #: the lines handed out whose message the reader of the SDK's stream has not received yet, oldest first
        self.unmatched: deque[str] = deque()
        self._waiting: anyio.CancelScope | None = None
        os.set_blocking(fd, False)

    def __aiter__(self) -> FdLines:
        return self

    def end(self) -> None:
        """Read no more, as if the client had closed stdin (a signal stops the server the way EOF does)."""
        self.ended = True
        if self._waiting is not None:
            self._waiting.cancel()

    async def _chunk(self) -> bytes | None:
        """What the pipe has (b"" at EOF), or None after a wake-up with nothing to read."""
        if self.ended:
            return b""
        if self.pollable:
            with anyio.CancelScope() as self._waiting:
                try:
                    await anyio.wait_readable(self.fd)
                except (OSError, ValueError):  # a regular file cannot be polled: read it directly, it never blocks
                    self.pollable = False
            self._waiting = None
            if self.ended:
                return b""
        try:
            return os.read(self.fd, 1 << 16)
        except BlockingIOError:
            return None

    async def __anext__(self) -> str:
        while True:
            head, newline, rest = self.buffer.partition(b"\n")
            if newline:
                self.buffer = rest
                if head.strip():
                    return self._handed(head)
                continue
            if len(self.buffer) > MAX_LINE:
                raise ValueError(f"mcp stdio: a message longer than {MAX_LINE} bytes without a newline")
            chunk = await self._chunk()
            if chunk is None:
                continue
            if not chunk:  # EOF: the client closed our stdin
                head, self.buffer = self.buffer, b""
                if head.strip():
                    return self._handed(head)
                raise StopAsyncIteration
            self.buffer += chunk


    def _handed(self, head: bytes) -> str:
        line = head.decode("utf-8", "replace")
        self.unmatched.append(line)
        return line


class AnsweringErrors:
    """The SDK's read stream, answering a line that is not a JSON-RPC message instead of passing the SDK's parse
    exception on, which the SDK only logs: a client then waited forever for the id it sent (a request nested too
    deep for the SDK's parser; over HTTP the same body is refused with -32700). Invalid JSON is answered with
    PARSE_ERROR and id null, JSON that is no message with INVALID_REQUEST and its id (a notification gets no
    answer). The SDK's reader sends one item per line, in order, so an item's line is the oldest unmatched one."""

    def __init__(self, inner: Any, lines: FdLines, write: Any) -> None:
        self.inner = inner
        self.lines = lines
        self.write = write

    @property
    def last_context(self) -> Any:  # the sender's contextvars, which the SDK's dispatcher reads when present
        return getattr(self.inner, "last_context", None)

    async def receive(self) -> Any:
        while True:
            item = await self.inner.receive()
            line = self.lines.unmatched.popleft() if self.lines.unmatched else ""
            if not isinstance(item, Exception):
                return item
            answer = error_for(line, item)
            if answer is not None:
                await self.write.send(SessionMessage(answer))

    async def aclose(self) -> None:
        await self.inner.aclose()

    def __aiter__(self) -> AnsweringErrors:
        return self

    async def __anext__(self) -> Any:
        try:
            return await self.receive()
        except anyio.EndOfStream:
            raise StopAsyncIteration from None

    async def __aenter__(self) -> AnsweringErrors:
        await self.inner.__aenter__()
        return self

    async def __aexit__(self, *exc: Any) -> Any:
        return await self.inner.__aexit__(*exc)


def error_for(line: str, exc: Exception) -> JSONRPCError | None:
    """The JSON-RPC error answering `line`, which the SDK could not read as a message (None: a notification)."""
    reason = " ".join(str(exc).split())[:300]
    try:
        data = json.loads(line)
    except (ValueError, RecursionError):
        return JSONRPCError(jsonrpc="2.0", id=None, error=ErrorData(code=PARSE_ERROR, message=f"Parse error: {reason}"))
    request_id = data.get("id") if isinstance(data, dict) else None
    if isinstance(data, dict) and "method" in data and request_id is None:
        return None
    if isinstance(request_id, bool) or not isinstance(request_id, (str, int)):
        request_id = None
    return JSONRPCError(jsonrpc="2.0", id=request_id, error=ErrorData(code=INVALID_REQUEST, message=f"Invalid request: {reason}"))


class FdWriter:
    """`await write(text)`: the whole text to a pipe, waiting in the event loop while it is full."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        os.set_blocking(fd, False)

    async def write(self, text: str) -> None:
        data = memoryview(text.encode("utf-8"))
        while data:
            try:
                written = os.write(self.fd, data)
            except BlockingIOError:
                await anyio.wait_writable(self.fd)
                continue
            data = data[written:]

    async def flush(self) -> None:
        return None


async def _end_input_on(stop: Stop, lines: FdLines) -> None:
    await stop.wait()
    lines.end()


async def serve_stdio(endpoints: Any, proto_in: int, proto_out: int, stop: Stop) -> None:
    """Serve one client (of the one endpoint chosen) until it closes stdin, or until SIGTERM/SIGINT/SIGHUP (which
    end the input the same way)."""
    (tool_server,) = endpoints.servers
    lines = FdLines(proto_in)
    streams = stdio_server(stdin=lines, stdout=FdWriter(proto_out))  # type: ignore[arg-type]
    async with streams as (read, write), anyio.create_task_group() as tg:
        tg.start_soon(endpoints.background)
        tg.start_soon(_end_input_on, stop, lines)
        await tool_server.server.run(AnsweringErrors(read, lines, write), write, tool_server.init_options())
        tg.cancel_scope.cancel()
