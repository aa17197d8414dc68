"""One imported MCP server's connection, kept alive on the hub's event loop: connect, list, call, reconnect.

`ServerLink.run` is the connection's whole life: `connecting`, then `ready` once `initialize` and
every page of `tools/list` answered (the tools go to the catalog), then it waits for the server's
`notifications/tools/list_changed` (listing again) or for the connection to end; a failure or an
end is `error` with the reason, and the next attempt follows a capped backoff. A hung server
costs only its own link: every step has the server's timeout.

Stdio servers are started with `tools.invoke.spawn`, like every child of the runtime (its own
process group, the parent-death signal, the group reaper, killed when the runtime closes); the
SDK's ClientSession speaks the protocol over their pipes, read in the event loop. Their stderr
is logged line by line, redacted, and its tail is the reason when they exit. Streamable HTTP
servers use the SDK's client transport with the configured headers.
"""

from __future__ import annotations

import contextlib
import logging
import os
import subprocess
import threading
import time
from collections import deque
from collections.abc import AsyncIterator, Callable
from typing import Any

from state.redact import redact
from tools.errors import (
    ToolCrashError,
    ToolError,
    ToolInputError,
    ToolOutputTooLargeError,
    ToolTimeoutError,
    ToolUnavailableError,
)
from tools.invoke import kill_group, spawn
from tools.mcp.bounded import CHUNK, LineReader, Oversize, bounded_transport, is_too_large, too_large_error
from tools.mcp.servers import ServerConfig, resolve

log = logging.getLogger("tooldeck.mcp")


class _SdkLogRoute(logging.Handler):
    """Re-logs the MCP SDK client's records on `tooldeck.mcp` at DEBUG, prefixed `MCP SDK:`.

    The SDK logs what it meets on its own ("Session termination failed: ..." when it cannot end the session of
    a server that died mid-call), and with no handler configured Python's last-resort handler prints every
    warning to stderr, under the one line tooldeck says about the same failure. The failure itself is ours to
    report (the call's error, the server's status and events); the SDK's account stays for a debug log.
    """

    def emit(self, record: logging.LogRecord) -> None:
        if log.isEnabledFor(logging.DEBUG):
            log.debug("MCP SDK: %s: %s", record.name, record.getMessage(), exc_info=record.exc_info)


def _route_sdk_logs() -> None:
    sdk = logging.getLogger("mcp.client")
    if not any(isinstance(h, _SdkLogRoute) for h in sdk.handlers):
        sdk.addHandler(_SdkLogRoute())
        sdk.propagate = False  # routed once, through tooldeck.mcp, never at the SDK's own level


_route_sdk_logs()
DEFAULT_TIMEOUT = 30.0
#: a server gets at least this long to start, initialize and list its tools, whatever its call timeout
CONNECT_FLOOR_SECONDS = 30.0
BACKOFF_BASE = 0.5
BACKOFF_MAX = 30.0
STOP_SECONDS = 2.0  # a stdio server's grace after its stdin closes, before its group is killed
MAX_PAGES = 1000
STDERR_TAIL = 20
STDERR_LINE = 64 * 1024  # a longer stderr line is cut to its head
STDERR_LOG_PER_SECOND = 50  # past this, a flood's lines are counted, not logged one by one
STDERR_TEXT = 2000  # what of a stderr line is logged
STDERR_SHOWN = 300  # what of one is kept in the tail an exit reason quotes
#: what a stdio server inherits from the runtime's environment; everything else is its `env`
MINIMAL_ENV = ("PATH", "HOME", "USER", "LOGNAME", "SHELL", "TERM", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "TMPDIR")

IDLE, CONNECTING, READY, ERROR = "idle", "connecting", "ready", "error"
CONNECTION_CLOSED = -32000  # the JSON-RPC code the SDK gives a request whose connection ended


class Disconnected(Exception):
    """The connection ended (the server exited, or closed it); the message is the reason."""


def backoff(attempts: int) -> float:
    """Seconds before reconnecting after `attempts` failed attempts in a row: doubling from BACKOFF_BASE, capped."""
    return min(BACKOFF_MAX, BACKOFF_BASE * 2 ** min(max(attempts, 1) - 1, 16))


def minimal_env(extra: dict[str, str]) -> dict[str, str]:
    from tools.secrets import is_secret_name

    env = {k: v for k in MINIMAL_ENV if (v := os.environ.get(k)) is not None and not is_secret_name(k)}
    env.update(extra)
    return env


class StderrLog:
    """A stdio server's stderr in the log, line by line, at most STDERR_LOG_PER_SECOND a second: a flood is counted."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.second = 0
        self.count = 0
        self.dropped = 0

    def line(self, raw: bytes) -> None:
        """Log one line (redacted), or count it: during a flood a line costs a clock read and a counter."""
        now = int(time.monotonic())
        if now != self.second:
            self.close()
            self.second, self.count = now, 0
        self.count += 1
        if self.count <= STDERR_LOG_PER_SECOND:
            log.info("mcp %s stderr: %s", self.name, stderr_text(raw))
            return
        if not self.dropped:
            log.warning("mcp %s: stderr flood, more than %d lines a second: counting them, not logging them", self.name,
                        STDERR_LOG_PER_SECOND)
        self.dropped += 1

    def close(self) -> None:
        if self.dropped:
            log.warning("mcp %s: %d more stderr lines not logged (more than %d a second)", self.name, self.dropped,
                        STDERR_LOG_PER_SECOND)
            self.dropped = 0


def stderr_text(raw: bytes) -> str:
    """A stderr line as it may be shown: decoded, secrets masked, cut to 2,000 characters."""
    text: str = redact(raw[:STDERR_TEXT].decode("utf-8", "replace").rstrip())
    return text


class StdioProcess:
    """A stdio server's process and its pipes, as the SDK's session wants them (read and write streams)."""

    def __init__(self, link: ServerLink, env: dict[str, str]) -> None:
        self.link = link
        config = link.config
        assert config.command is not None
        self.proc: subprocess.Popen[bytes] = spawn([config.command, *config.args], children=link.children,
                                                   stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                                   cwd=link.cwd, env=minimal_env(env))
        self._stderr: deque[bytes] = deque(maxlen=STDERR_TAIL)  # raw: redacted when read, not per line of a flood
        self.transports: list[Any] = []

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def stderr(self) -> list[str]:
        """The last lines of stderr, secrets masked, each at most STDERR_SHOWN characters."""
        return [shown for raw in self._stderr if (shown := stderr_text(raw)[:STDERR_SHOWN])]

    def exit_reason(self) -> str:
        code = self.proc.poll()
        what = f"exited with code {code}" if code is not None and code >= 0 else \
            f"was killed by signal {-code}" if code is not None else "closed its stdout"
        tail = " | ".join(self.stderr[-3:])
        return f"the server {what}" + (f": {tail}" if tail else "")

    @contextlib.asynccontextmanager
    async def streams(self, on_end: Callable[[], None]) -> AsyncIterator[tuple[Any, Any]]:
        """The session's (read, write) over the pipes; `on_end` is called once stdout ends (the server is gone)."""
        import anyio
        import mcp_types as types
        from mcp.shared.message import SessionMessage

        from tools.mcp.stdio import FdWriter

        assert self.proc.stdin is not None and self.proc.stdout is not None and self.proc.stderr is not None
        read_send, read_recv = anyio.create_memory_object_stream[SessionMessage | Exception](16)  # no rendezvous per message
        write_send, write_recv = anyio.create_memory_object_stream[SessionMessage](0)
        stdout = LineReader(await self._pipe_reader(self.proc.stdout), self.link.config.max_output_bytes)
        stderr = LineReader(await self._pipe_reader(self.proc.stderr), STDERR_LINE)
        in_fd = self.proc.stdin.fileno()
        drained = anyio.Event()

        async def reader() -> None:
            try:
                async with read_send:
                    while (line := await stdout.next()) is not None:
                        if isinstance(line, Oversize):
                            await read_send.send(self._too_large(line))
                            continue
                        if not line.strip():
                            continue
                        try:
                            message: SessionMessage | Exception = SessionMessage(
                                types.jsonrpc_message_adapter.validate_json(line, by_name=False))
                        except ValueError as exc:
                            log.warning("mcp %s: not a JSON-RPC message on stdout: %s", self.link.name,
                                        redact(line[:200].decode("utf-8", "replace")))
                            message = exc
                        await read_send.send(message)
            except (Disconnected, OSError) as exc:  # an answer past the cap without its id, or the pipe failing
                self._stderr.append(f"stdout: {exc}".encode()[:STDERR_TEXT])
            finally:
                on_end()

        async def writer() -> None:
            out = FdWriter(in_fd)
            try:
                async with write_recv:
                    async for message in write_recv:
                        await out.write(message.message.model_dump_json(by_alias=True, exclude_unset=True) + "\n")
            except OSError:  # the server is gone: end the session's input too
                read_send.close()

        async def errors() -> None:
            logged = StderrLog(self.link.name)
            try:
                with contextlib.suppress(OSError):
                    while (line := await stderr.next()) is not None:
                        raw = (line.head if isinstance(line, Oversize) else line)[:STDERR_TEXT]
                        if raw.strip():
                            self._stderr.append(raw)
                            logged.line(raw)
            finally:
                logged.close()
                drained.set()

        try:
            async with anyio.create_task_group() as tg:
                tg.start_soon(reader)
                tg.start_soon(writer)
                tg.start_soon(errors)
                try:
                    yield read_recv, write_send
                finally:
                    with anyio.CancelScope(shield=True):
                        await self.stop()  # once it is gone its pipes end: stderr's last lines are read, not lost
                        with anyio.move_on_after(0.5):
                            await drained.wait()
                    tg.cancel_scope.cancel()
        finally:
            for transport in self.transports:
                transport.close()
            self.link.children.discard(self.proc)

    def _too_large(self, skipped: Oversize) -> Any:
        """The error that answers a request in place of its result past the cap (the connection stays)."""
        import mcp_types as types
        from mcp.shared.message import SessionMessage

        request_id = skipped.request_id()
        limit = self.link.config.max_output_bytes
        if request_id is None:
            raise Disconnected(f"a message of {skipped.size} bytes passed max_output_bytes ({limit} bytes) "
                               "and its request id could not be read")
        log.warning("mcp %s: an answer of %d bytes passed max_output_bytes (%d bytes); dropped", self.link.name,
                    skipped.size, limit)
        return SessionMessage(types.jsonrpc_message_adapter.validate_python(too_large_error(request_id, skipped.size, limit)))

    async def _pipe_reader(self, pipe: Any) -> Any:
        """An asyncio StreamReader over a pipe, its reader registered with the loop once (not per read)."""
        import asyncio

        from tools.invoke import widen_pipe

        widen_pipe(pipe.fileno())  # as local tools' pipes: a 70 MB stderr flood is ~70 hand-overs, not ~1,100
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader(limit=CHUNK, loop=loop)
        transport, _protocol = await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader, loop=loop), pipe)
        self.transports.append(transport)
        return reader

    async def stop(self) -> None:
        """Close its stdin, give it STOP_SECONDS to exit, then kill its process group."""
        import anyio

        proc = self.proc
        for stream in (proc.stdin,):
            with contextlib.suppress(OSError):
                stream.close()  # type: ignore[union-attr]
        deadline = time.monotonic() + STOP_SECONDS
        while proc.poll() is None and time.monotonic() < deadline:
            await anyio.sleep(0.01)
        kill_group(proc)  # what it spawned goes too, even when it exited on its own
        deadline = time.monotonic() + STOP_SECONDS
        while proc.poll() is None and time.monotonic() < deadline:
            await anyio.sleep(0.01)


class ServerLink:
    """One server's connection and what it listed. Its coroutines run on the hub's loop; the rest is thread-safe reads."""

    def __init__(self, config: ServerConfig, *, children: Any, cwd: str,
                 publish: Callable[[ServerLink, list[dict[str, Any]]], None],
                 on_status: Callable[[ServerLink], None]) -> None:
        self.config = config
        self.name = config.name
        self.children = children
        self.cwd = cwd
        self.publish = publish
        self.on_status = on_status
        self.status = ERROR if config.problem else IDLE
        self.error: str | None = config.problem
        self.tool_count: int | None = None
        self.session: Any = None  # the SDK's ClientSession while ready
        self.pid: int | None = None
        self.server_info: str | None = None
        self.protocol: str | None = None
        self.attempts = 0  # failed attempts since the last ready
        self.connected_at: float | None = None
        self.listed_at: float | None = None  # when its last tools/list reply arrived (time.time())
        self.published_at: float | None = None  # when those tools were in the catalog
        self.started = False  # run() was scheduled in this process
        self._process: StdioProcess | None = None
        #: set while the link is ready or in error (a caller waiting for the first connection wakes on either)
        self.settled = threading.Event()
        if self.status == ERROR:
            self.settled.set()

    @property
    def timeout(self) -> float:
        return self.config.timeout_seconds or DEFAULT_TIMEOUT

    @property
    def connect_timeout(self) -> float:
        """To start the server, initialize and list: a process start is not held to a short call timeout."""
        return self.config.connect_timeout_seconds or max(self.timeout, CONNECT_FLOOR_SECONDS)

    def _set(self, status: str, error: str | None = None) -> None:
        """A new status; reconnecting keeps the last error (what `mcp list` shows while it retries), ready clears it."""
        self.status, self.error = status, (self.error if status == CONNECTING and error is None else error)
        if status in (READY, ERROR):
            self.settled.set()
        else:
            self.settled.clear()
        self.on_status(self)

    # -- the connection's life -----------------------------------------------------

    async def run(self) -> None:
        """Connect, serve, reconnect with a capped backoff, until cancelled (the runtime closing)."""
        import anyio
        from mcp.shared.exceptions import MCPError

        if self.config.problem:
            self._set(ERROR, self.config.problem)
            return
        while True:
            self._set(CONNECTING)
            self._process = None
            try:
                await self._connection()
                reason = "the server closed the connection"
            except Exception as exc:  # any failure of this server puts it (and only it) in error
                reason = self._reason(exc, MCPError)
            self.session = None
            self.pid = None
            self.attempts += 1
            where = self.config.where
            self._set(ERROR, redact(reason if reason.startswith(where) else f"{where}: {reason}").splitlines()[0][:500])
            delay = backoff(self.attempts)
            log.warning("mcp %s: %s; reconnecting in %.1f s", self.name, self.error, delay)
            await anyio.sleep(delay)

    def _reason(self, exc: BaseException, mcp_error: type[Exception]) -> str:
        """One line for why a connection failed or ended (the first error inside a task group's group)."""
        if isinstance(exc, BaseExceptionGroup):  # a timeout breaks the streams too: the timeout is the reason
            timed_out = exc.subgroup(lambda e: isinstance(e, TimeoutError))
            exc = timed_out if timed_out is not None else exc
        while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
            exc = exc.exceptions[0]
        closed = isinstance(exc, Disconnected) or (isinstance(exc, mcp_error) and exc.code == CONNECTION_CLOSED)  # type: ignore[attr-defined]
        if closed and self._process is not None:  # stopped by now: its exit status and its last words
            return self._process.exit_reason()
        if isinstance(exc, Disconnected):
            return str(exc)
        if isinstance(exc, ToolError):
            return exc.message
        if isinstance(exc, mcp_error):
            return f"protocol error {exc.code}: {exc.message}"  # type: ignore[attr-defined]
        if isinstance(exc, TimeoutError):
            if self.session is None:
                return f"did not start and initialize within {self.connect_timeout:g} s (connect_timeout_seconds)"
            return f"no answer within {self.timeout:g} s (timeout_seconds)"
        if isinstance(exc, OSError):
            what = f"cannot start {self.config.command!r}" if self.config.transport == "stdio" else f"cannot reach {self.config.url}"
            return f"{what}: {exc.strerror or exc}"
        return f"{type(exc).__name__}: {exc}" if str(exc) else f"the connection broke ({type(exc).__name__})"

    async def _connection(self) -> None:
        import anyio
        import mcp_types as types
        from mcp.client.session import ClientSession
        from mcp.shared.message import SessionMessage

        secrets = resolve(self.config)  # ${VAR} read now, at every (re)connection
        wake_send, wake_recv = anyio.create_memory_object_stream[str](16)

        def ended() -> None:
            with contextlib.suppress(anyio.WouldBlock, anyio.ClosedResourceError, anyio.BrokenResourceError):
                wake_send.send_nowait("closed")

        async with contextlib.AsyncExitStack() as stack:
            tg = await stack.enter_async_context(anyio.create_task_group())
            stack.callback(tg.cancel_scope.cancel)
            process: StdioProcess | None = None
            if self.config.transport == "stdio":
                process = self._process = await anyio.to_thread.run_sync(StdioProcess, self, secrets.env)
                self.pid = process.pid
                read, write = await stack.enter_async_context(process.streams(ended))
            else:
                transport = await stack.enter_async_context(
                    _http_streams(self.config.url or "", secrets.headers, self.timeout, self.config.max_output_bytes))
                relay_send, read = anyio.create_memory_object_stream[SessionMessage | Exception](0)
                write = transport[1]

                async def relay() -> None:
                    """The transport's messages to the session; its end is this connection's end."""
                    try:
                        async with relay_send:
                            async for message in transport[0]:
                                await relay_send.send(message)
                    finally:
                        ended()

                tg.start_soon(relay)

            async def on_message(message: Any) -> None:
                if isinstance(message, types.ToolListChangedNotification):
                    with contextlib.suppress(anyio.WouldBlock, anyio.ClosedResourceError, anyio.BrokenResourceError):
                        wake_send.send_nowait("changed")

            info = types.Implementation(name="tooldeck", version="1")
            session = await stack.enter_async_context(ClientSession(read, write, client_info=info, message_handler=on_message))
            with anyio.fail_after(self.connect_timeout):
                result = await session.initialize()
            self.protocol = result.protocol_version
            self.server_info = f"{result.server_info.name} {result.server_info.version}".strip()
            await self._list(session, self.connect_timeout)
            self.session = session
            self.attempts = 0
            self.connected_at = time.time()
            self._set(READY)
            log.info("mcp %s: ready, %d tools (%s, protocol %s)", self.name, self.tool_count or 0, self.server_info,
                     self.protocol)
            async with wake_recv:
                async for what in wake_recv:
                    if what == "closed":
                        raise Disconnected("the server closed the connection")
                    await self._list(session, self.timeout)

    async def _list(self, session: Any, budget: float) -> None:
        """Every page of tools/list (the cursor followed), then the catalog told."""
        import anyio
        import mcp_types as types

        tools: list[dict[str, Any]] = []
        cursor: str | None = None
        seen: set[str] = set()
        with anyio.fail_after(budget):
            for _page in range(MAX_PAGES):
                params = types.PaginatedRequestParams(cursor=cursor) if cursor else None
                result = await session.list_tools(params=params)
                tools.extend(t.model_dump(by_alias=True, mode="json", exclude_none=True) for t in result.tools)
                cursor = result.next_cursor
                if not cursor:
                    break
                if cursor in seen:
                    raise ToolError(f"tools/list returned the cursor {cursor[:40]!r} twice")
                seen.add(cursor)
            else:
                raise ToolError(f"tools/list had more than {MAX_PAGES} pages")
        self.listed_at = time.time()
        self.tool_count = len(tools)
        await anyio.to_thread.run_sync(self.publish, self, tools)
        self.published_at = time.time()

    # -- calls -----------------------------------------------------------------------

    async def call(self, tool_id: str, version: str, tool: str, arguments: dict[str, Any], timeout: float) -> dict[str, Any]:
        """One tools/call; the result as plain JSON (camelCase), or the call's failure as a ToolError."""
        import anyio
        import mcp_types as types
        from mcp.shared.exceptions import MCPError

        session = self.session
        if session is None or self.status != READY:
            raise self.unavailable(tool_id, version)
        try:
            result = await session.call_tool(tool, arguments, read_timeout_seconds=timeout)
        except MCPError as exc:
            if exc.code == types.REQUEST_TIMEOUT:  # the SDK sent notifications/cancelled
                raise ToolTimeoutError(f"{tool_id}: no result within {timeout:g} s; the call was cancelled on the server",
                                       tool_id=tool_id, version=version) from None
            if is_too_large(exc.data):
                raise ToolOutputTooLargeError(f"{tool_id}: {exc.message}; the answer was dropped, the connection kept",
                                              tool_id=tool_id, version=version) from None
            if exc.code == types.CONNECTION_CLOSED:
                raise ToolCrashError(f"{tool_id}: MCP server {self.name!r} closed the connection during the call",
                                     tool_id=tool_id, version=version) from None
            if exc.code in (types.INVALID_PARAMS, types.METHOD_NOT_FOUND):
                raise ToolInputError(f"{tool_id}: the server refused the call: {exc.message}"[:500], tool_id=tool_id,
                                     version=version) from None
            raise ToolCrashError(f"{tool_id}: protocol error {exc.code}: {exc.message}"[:500], tool_id=tool_id,
                                 version=version) from None
        except (anyio.ClosedResourceError, anyio.BrokenResourceError):
            raise ToolCrashError(f"{tool_id}: MCP server {self.name!r} closed the connection during the call",
                                 tool_id=tool_id, version=version) from None
        except RuntimeError as exc:  # the SDK's refusal of a result shape it cannot hand back (input required, ...)
            raise ToolCrashError(f"{tool_id}: {exc}"[:500], tool_id=tool_id, version=version) from None
        except ValueError as exc:  # the result did not match the tool's own output schema (the SDK checks it)
            raise ToolError(f"{tool_id}: {' '.join(str(exc).split())}"[:500], tool_id=tool_id, version=version,
                            error_class="bad_output") from None
        return {
            "isError": bool(result.is_error),
            "structuredContent": result.structured_content,
            "content": [{"type": "text", "text": c.text} if isinstance(c, types.TextContent)
                        else c.model_dump(by_alias=True, mode="json", exclude_none=True) for c in result.content],
        }

    def unavailable(self, tool_id: str, version: str) -> ToolUnavailableError:
        why = {IDLE: "is not connected", CONNECTING: "is connecting", ERROR: "is in error"}.get(self.status, self.status)
        detail = f": {self.error}" if self.error and self.status == ERROR else ""
        return ToolUnavailableError(f"{tool_id}: MCP server {self.name!r} {why}{detail}", tool_id=tool_id, version=version,
                                    details={"server": self.name, "server_status": self.status})


@contextlib.asynccontextmanager
async def _http_streams(url: str, headers: dict[str, str], timeout: float, cap: int) -> AsyncIterator[tuple[Any, Any]]:
    """The SDK's Streamable HTTP client over an httpx client whose bodies and events stop at `cap` (tools.mcp.bounded)."""
    import httpx2
    from mcp.client.streamable_http import streamable_http_client

    limits = httpx2.Timeout(timeout, read=max(timeout, 300.0))
    transport = bounded_transport(httpx2.AsyncHTTPTransport(), cap)
    async with httpx2.AsyncClient(headers=headers, timeout=limits, transport=transport) as client, \
            streamable_http_client(url, http_client=client, max_sse_event_size=None) as (read, write):
        yield read, write
