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

import os
import sys
from typing import Any

import anyio
from mcp.server.stdio import stdio_server

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
                    return head.decode("utf-8", "replace")
                continue
            if len(self.buffer) > MAX_LINE:
                raise ValueError(f"mcp stdio: a message longer than {MAX_LINE} bytes without a newline")
            chunk = await self._chunk()
            if chunk is None:
                continue
            if not chunk:  # EOF: the client closed our stdin
                head, self.buffer = self.buffer, b""
                if head.strip():
                    return head.decode("utf-8", "replace")
                raise StopAsyncIteration
            self.buffer += chunk


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
        await tool_server.server.run(read, write, tool_server.init_options())
        tg.cancel_scope.cancel()
