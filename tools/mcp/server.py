"""tooldeck's catalog as an MCP server: the SDK's low-level Server, wired to a serving runtime.

`tools/list` shows what listing.served_tools decides; `tools/call` runs through Runtime.call in a
worker thread (recorded, scored, circuit-tracked like any call) with the client's session. A
tool that fails answers with `is_error` and its one-line error, never a protocol error; a name
that is not a served tool is a protocol error (INVALID_PARAMS), as the protocol asks. The
transports (stdio.py, http.py) run `serve` and `background` in one task group.
"""

from __future__ import annotations

import functools
import json
import logging
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import anyio
import mcp_types as types
from mcp.server.connection import Connection
from mcp.server.context import ServerRequestContext
from mcp.server.lowlevel import Server
from mcp.server.lowlevel.server import NotificationOptions
from mcp.server.models import InitializationOptions
from mcp.server.subscriptions import InMemorySubscriptionBus, ListenHandler, ToolsListChanged
from mcp.shared.exceptions import MCPError

from state.db import StoreError
from state.redact import redact
from tools.errors import StateError, ToolError, UnknownToolError, UsageError
from tools.ids import TOOL_ID_RE
from tools.invoke import CallScope
from tools.mcp import schema
from tools.mcp.changes import Debounce
from tools.mcp.config import ServeConfig
from tools.mcp.listing import BUFFER_TOOL, ServedLists, ServedTool, describe, exposes, page, resolve_ready
from tools.mcp.progress import McpCall, McpCallHook
from tools.mcp.search import SEARCH_TOOL, ToolSearch
from tools.mcp.sessions import ClientSession, SessionRegistry
from tools.presence import HEARTBEAT_SECONDS
from tools.reach import limited_to
from tools.spec import files_within

if TYPE_CHECKING:
    from tools.host import RuntimeHost

log = logging.getLogger("tooldeck.mcp")
SESSION_KEY = "tooldeck.session"
PROGRESS_SECONDS = 1.0
LIST_WAIT_SECONDS = 10.0
VERSION_META = "tooldeck/version"
#: where an error result's details are (its structured content stays empty: see _error_result)
ERROR_META = "tooldeck/error"
INSTRUCTIONS = (
    "tooldeck's tool catalog. Every call is recorded and scored; a tool whose circuit is open or that an operator "
    "disabled is left out of the list. resilient_tool_call tries the best tools for a scenario in turn and returns "
    "the hop trace; buffer batches writes durably."
)


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("tooldeck")
    except PackageNotFoundError:
        return "0"


def connection_of(ctx: ServerRequestContext[Any, Any]) -> Connection:
    """The client's Connection (peer info, per-client state, teardown stack).

    SDK 2.3 hands low-level handlers a per-request ServerSession that holds it; the planned
    `Context.connection` (mcp.server.context) is not built by the runner yet.
    """
    return ctx.session._connection  # noqa: SLF001 - see the docstring


class _NotServedError(UnknownToolError):
    """A name MCP clients cannot call: no such tool, or the endpoint's `expose` / `hide` leave it out."""


def install_call_hook(runtime: RuntimeHost) -> None:
    """Once per runtime, however many endpoints it serves: the hook reads the endpoint of the call in its thread."""
    if not any(isinstance(hook, McpCallHook) for hook in runtime.hooks):
        runtime.hooks.append(McpCallHook())


class _Server(Server[Any]):
    """The SDK's Server, announcing `tools.listChanged` on every transport. Over stdio the serve loop is given
    the options; the Streamable HTTP session manager builds each `initialize` reply from
    `create_initialization_options()` with none, which announced `listChanged: false` while the server sent it
    (the TypeScript SDK's auto-refresh goes by the announcement)."""

    def create_initialization_options(self, notification_options: NotificationOptions | None = None,
                                      experimental_capabilities: dict[str, dict[str, Any]] | None = None,
                                      extensions: dict[str, dict[str, Any]] | None = None) -> InitializationOptions:
        return super().create_initialization_options(notification_options or NotificationOptions(tools_changed=True),
                                                     experimental_capabilities, extensions)


class ToolServer:
    """One per endpoint of a serving process; any number of clients, over one transport.

    Each endpoint has its own SDK Server, so its clients, their sessions and the `list_changed` it sends
    are its own (tools.mcp.endpoints runs the endpoints of a process together).
    """

    def __init__(self, runtime: RuntimeHost, config: ServeConfig, *, transport: str, pinned: str | None) -> None:
        self.runtime = runtime
        self.config = config
        label = f"{transport}, endpoint {config.name}" if config.name else transport
        self.registry = SessionRegistry(runtime, transport=label, pinned=pinned)
        self.bus = InMemorySubscriptionBus()
        self.listen = ListenHandler(self.bus)
        self.connections: set[Connection] = set()
        self.debounce = Debounce()
        self.search = ToolSearch(runtime, config) if config.tool_search else None
        self.served = ServedLists(runtime, config)  # kept between pages; cleared by the catalog and the change watcher
        self.server: Server[Any] = _Server(
            "tooldeck", version=_version(), instructions=INSTRUCTIONS,
            on_list_tools=self._list_tools, on_call_tool=self._call_tool, on_subscriptions_listen=self.listen,
        )
        self.server.middleware.append(self._observe)
        install_call_hook(runtime)

    def init_options(self) -> InitializationOptions:
        return self.server.create_initialization_options()

    # -- clients ---------------------------------------------------------------------

    async def _observe(self, ctx: ServerRequestContext[Any, Any], call_next: Any) -> Any:
        """Middleware: a client that completed `initialize` becomes a session."""
        result = await call_next(ctx)
        if ctx.method == "initialize":
            params: Mapping[str, Any] = ctx.params or {}
            raw_info = params.get("clientInfo")
            info: dict[str, Any] = raw_info if isinstance(raw_info, dict) else {}
            protocol = result.get("protocolVersion") if isinstance(result, dict) else None
            session = await anyio.to_thread.run_sync(self.registry.open, info.get("name"), info.get("version"),
                                                     str(protocol or params.get("protocolVersion") or "?"))
            connection = connection_of(ctx)
            connection.state[SESSION_KEY] = session
            self.connections.add(connection)
            connection.exit_stack.push_async_callback(self._disconnected, connection, session)
        return result

    async def _disconnected(self, connection: Connection, session: ClientSession) -> None:
        self.connections.discard(connection)
        await anyio.to_thread.run_sync(self.registry.close, session, "disconnected")

    async def client_for(self, ctx: ServerRequestContext[Any, Any]) -> ClientSession:
        session = connection_of(ctx).state.get(SESSION_KEY)
        if session is not None:
            return session
        # a 2026-07-28 request: no connection outlives it; the client's name keys its session
        params = ctx.session.client_params
        info = params.client_info if params is not None else None
        name, version = (info.name, info.version) if info is not None else (None, None)
        return await anyio.to_thread.run_sync(self.registry.for_client, name, version, ctx.protocol_version)

    # -- tools/list ------------------------------------------------------------------

    def _listing(self, client: ClientSession) -> list[ServedTool]:
        self.runtime.catalog.finished.wait(LIST_WAIT_SECONDS)  # a client listing at start sees the whole catalog
        if self.search is not None:  # `tool_search`: search_tools, the pinned tools and what this client found
            return self.search.listing(client)
        return self.served.get(client.session)

    async def _list_tools(self, ctx: ServerRequestContext[Any, Any],
                          params: types.PaginatedRequestParams | None) -> types.ListToolsResult:
        client = await self.client_for(ctx)
        tools = await anyio.to_thread.run_sync(self._listing, client)
        try:
            chunk, next_cursor = page(tools, params.cursor if params is not None else None, self.config.page_size)
        except UsageError as exc:
            raise MCPError(types.INVALID_PARAMS, exc.message) from None
        return types.ListToolsResult(tools=[self._tool(t) for t in chunk], next_cursor=next_cursor)

    @staticmethod
    def _tool(t: ServedTool) -> types.Tool:
        return types.Tool(
            name=t.tool_id, title=t.shown_title, description=t.description, input_schema=t.input_schema,
            output_schema=t.output_schema, annotations=types.ToolAnnotations.model_validate(t.annotations) if t.annotations else None,
            _meta={VERSION_META: t.version},
        )

    # -- tools/call ------------------------------------------------------------------

    def exposes(self, tool_id: str) -> bool:
        return exposes(self.runtime, self.config, tool_id)

    def _lookup(self, name: str, session: str) -> ServedTool:
        runtime = self.runtime
        if TOOL_ID_RE.match(name) and self.config.uses_tags and not self.exposes(name):
            try:  # a tag selects a tool once its manifest is read: wait while it loads
                runtime.get_tool(name, timeout=30.0)
            except ToolError:
                pass
        if not TOOL_ID_RE.match(name) or not self.exposes(name):
            what = "is not a tool id" if not TOOL_ID_RE.match(name) else f"is not served over MCP ({self.config.where} expose)"
            raise _NotServedError(f"tool {name[:80]!r} {what}", tool_id=None)
        entry = resolve_ready(runtime, name, session, runtime.promotions())
        if entry is None:
            try:
                with limited_to(self.exposes):  # the catalog then suggests only what this client can call
                    base = runtime.get_tool(name, timeout=30.0)  # waits while it loads; a broken manifest raises
            except UnknownToolError as exc:
                raise _NotServedError(exc.message) from None
            entry = resolve_ready(runtime, name, session, runtime.promotions()) or base
        return describe(entry, self.config)

    def _invoke(self, name: str, arguments: dict[str, Any] | None, session: str, scope: CallScope,
                call: McpCall) -> tuple[ServedTool, Any]:
        """In a worker thread: check, then call through the runtime as the client's session."""
        served = self._lookup(name, session)
        arguments = served.arguments(arguments)  # the endpoint's defaults under what the client sent
        refused = served.refused_operation(arguments) or self._refused_target(served, arguments)
        if refused is not None:
            raise UsageError(refused, tool_id=name)
        data = schema.tool_input(arguments, served.input_wrapped)
        with scope.active(), call.active(), files_within(self.config.file_roots):  # what builtins may read for a client
            return served, self._visible_buffers(served, self.runtime.call(name, data, session=session))

    def _refused_target(self, served: ServedTool, arguments: dict[str, Any] | None) -> str | None:
        """A buffer's pass-through tool runs later, in the flusher: a hidden one is refused when it is named, and
        a buffer already delivering to one (set up by another endpoint's client, or the operator) is out of reach
        (a flush, an immediate write, a replay would run it; status and dead letters name it)."""
        if served.tool_id != BUFFER_TOOL:
            return None
        arguments = arguments or {}
        target = arguments.get("pass_through_tool")
        if isinstance(target, str) and target and not self.exposes(target):
            return f"{served.tool_id}: pass_through_tool {target[:80]!r} is not served over MCP ({self.config.where} expose)"
        # re-pointing is refused too: it would hand the items already buffered for that tool to this client's
        buffer_id = arguments.get("buffer_id")
        if not isinstance(buffer_id, str) or not buffer_id:
            return None  # no buffer named: the tool's own check (or status of all, filtered in _visible_buffers)
        current = _pass_through_of(self.runtime, buffer_id)
        if current is not None and not self.exposes(current):
            return (f"{served.tool_id}: buffer {buffer_id[:80]!r} delivers to a tool that is not served over MCP "
                    f"({self.config.where} expose)")
        return None

    def _visible_buffers(self, served: ServedTool, result: Any) -> Any:
        """`status` of every buffer, without those delivering to tools this client cannot call."""
        if served.tool_id != BUFFER_TOOL or not isinstance(result, dict) or not isinstance(result.get("buffers"), list):
            return result
        kept = [b for b in result["buffers"] if not isinstance(b, dict) or not b.get("pass_through_tool")
                or self.exposes(str(b["pass_through_tool"]))]
        return {**result, "buffers": kept}

    async def _call_tool(self, ctx: ServerRequestContext[Any, Any], params: types.CallToolRequestParams) -> types.CallToolResult:
        client = await self.client_for(ctx)
        if self.search is not None and params.name == SEARCH_TOOL:  # the endpoint's own tool (tools/mcp/search.py)
            try:
                return await self.search.call(client, params.arguments, functools.partial(self._tell_list_changed, ctx))
            except ToolError as exc:
                return _error_result(exc)
        scope = CallScope()
        if (ctx.meta or {}).get("progress_token") is None:
            served, result, error = await self._run(params, client, scope, McpCall(params.name, self.exposes, where=self.config.where))
        else:
            send, receive = anyio.create_memory_object_stream[str](32)
            async with anyio.create_task_group() as tg:
                tg.start_soon(self._progress, ctx, params.name, receive)
                try:
                    call = McpCall(params.name, self.exposes, send, where=self.config.where)
                    served, result, error = await self._run(params, client, scope, call)
                finally:
                    tg.cancel_scope.cancel()
                    send.close()
        if isinstance(error, _NotServedError):
            raise MCPError(types.INVALID_PARAMS, error.message) from None
        client.called(params.name, error is None)
        if error is not None:
            return _error_result(error)
        assert served is not None
        result = redact(result)  # what a tool returns reaches a client only through the one redaction (errors too)
        text = schema.result_text(result)
        content = schema.structured(result, wrapped=served.output_wrapped, has_schema=served.output_schema is not None)
        return types.CallToolResult(content=[types.TextContent(text=text)], structured_content=content)

    async def _run(self, params: types.CallToolRequestParams, client: ClientSession, scope: CallScope,
                   call: McpCall) -> tuple[ServedTool | None, Any, ToolError | None]:
        """(served tool, result, None) or (None, None, the error) of one call in a worker thread."""
        work = functools.partial(self._invoke, params.name, params.arguments, client.session, scope, call)
        try:
            served, result = await anyio.to_thread.run_sync(work, abandon_on_cancel=True)
        except anyio.get_cancelled_exc_class():
            # notifications/cancelled (or the client went away): kill the call's processes now; the
            # worker thread then ends the call as `cancelled`, recorded but not held against the tool
            killed = scope.cancel()
            log.info("mcp call %s of %s cancelled (%d process group(s) killed)", params.name, client.session, killed)
            raise
        except ToolError as exc:
            return None, None, exc
        except StoreError as exc:  # the workspace's database, not the tool: still an answer, not a protocol error
            return None, None, StateError(str(exc), tool_id=params.name)
        return served, result, None

    async def _progress(self, ctx: ServerRequestContext[Any, Any], tool: str, receive: Any) -> None:
        """A notification every PROGRESS_SECONDS while the call runs, and one per hop as it happens."""
        started = time.monotonic()
        sent = 0
        async with receive:
            while True:
                message: str | None = None
                with anyio.move_on_after(PROGRESS_SECONDS):
                    try:
                        message = await receive.receive()
                    except anyio.EndOfStream:
                        return
                sent += 1
                elapsed = time.monotonic() - started
                await ctx.session.report_progress(sent, None, message or f"{tool}: running for {elapsed:.0f} s")

    # -- background (tools.mcp.endpoints runs it): list changes, heartbeats ----------

    async def _tell_list_changed(self, ctx: ServerRequestContext[Any, Any]) -> None:
        """`list_changed` to the client of this request alone (its list is its own: what it found)."""
        connection = connection_of(ctx)
        if connection in self.connections and connection.initialized.is_set():
            await connection.send_tool_list_changed()

    async def broadcast_list_changed(self) -> None:
        for connection in list(self.connections):
            if connection.initialized.is_set():
                await connection.send_tool_list_changed()
        await self.bus.publish(ToolsListChanged())
        log.info("mcp: tools/list of %s changed; told %d connection(s)", self.config.path, len(self.connections))

    async def heartbeat(self) -> None:
        while True:
            await anyio.sleep(HEARTBEAT_SECONDS)
            try:
                await anyio.to_thread.run_sync(self.registry.tick)
            except (ToolError, StoreError) as exc:
                log.error("mcp: session heartbeat: %s", exc)

    def close(self, reason: str) -> None:
        """End every client session (their runtimes rows and events); blocking."""
        self.listen.close()
        self.served.close()
        self.registry.close_all(reason)


def _pass_through_of(runtime: RuntimeHost, buffer_id: str) -> str | None:
    """The tool a buffer delivers to now, or None (no such buffer, none set, or not a buffer id: the tool says so)."""
    from tools.buffers import engine_for

    try:
        config = engine_for(runtime).config(buffer_id, create=False)
    except ToolError:
        return None
    return config.pass_through_tool if config is not None else None


def _error_result(error: ToolError) -> types.CallToolResult:
    """A tool's failure as the client sees it: the one-line error as text, its details (error class, a
    resilient call's hops) under `_meta["tooldeck/error"]`, and no structured content: clients (the
    TypeScript SDK) check structured content against the tool's output schema even when `isError` is
    set, and an error's details never match it (-32602 instead of the error)."""
    message = redact(error.message).splitlines()[0] if error.message else error.error_class
    details = redact(json.loads(json.dumps(error.to_dict(), default=str)))
    return types.CallToolResult(content=[types.TextContent(text=message)], is_error=True, _meta={ERROR_META: details})
