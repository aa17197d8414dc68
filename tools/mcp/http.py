"""MCP over Streamable HTTP at `/mcp` (and each named endpoint at `/mcp/NAME`), guarded: bearer token, Host and
Origin checked on every request.

Binding to anything but loopback needs a bearer token (from `TOOLDECK_MCP_TOKEN` or
`--token-file`, never argv, where `ps` shows it to every user); without one the server refuses
to start. With a token, every request must carry `Authorization: Bearer <token>`. Host and
Origin are validated against the bound address and loopback names (the protocol's rule
against DNS rebinding), plus `[mcp.serve] allowed_hosts` / `allowed_origins`; on a wildcard
bind (0.0.0.0, ::) the Host check applies only when `allowed_hosts` is set, the token being
what keeps a rebinding page out. A refused request is a one-line JSON-RPC error and a log line;
a summary event at most every REFUSED_EVENT_SECONDS says how many were refused and why. Every
endpoint is its own SDK server and session manager behind the one guard and listener; a path
under `/mcp/` that names no endpoint is a 404 naming those that exist (to a client past the guard).
"""

from __future__ import annotations

import hmac
import ipaddress
import json
import logging
import os
import socket
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from state.db import StoreError
from tools.errors import ToolError, UsageError
from tools.mcp.config import PATH

if TYPE_CHECKING:
    from tools.host import RuntimeHost

log = logging.getLogger("tooldeck.mcp")
TOKEN_ENV = "TOOLDECK_MCP_TOKEN"
MIN_TOKEN_LENGTH = 16
REFUSED_EVENT_SECONDS = 10.0
LOOPBACK_NAMES = ("127.0.0.1", "localhost", "[::1]")
WILDCARDS = ("0.0.0.0", "::", "")


@dataclass(frozen=True)
class Bind:
    host: str
    port: int

    @property
    def loopback(self) -> bool:
        if self.host == "localhost":
            return True
        try:
            return ipaddress.ip_address(self.host).is_loopback
        except ValueError:
            return False

    @property
    def wildcard(self) -> bool:
        return self.host in WILDCARDS

    @property
    def host_header(self) -> str:
        return f"[{self.host}]" if ":" in self.host else self.host

    def url(self, port: int | None = None, path: str = PATH) -> str:
        return f"http://{self.host_header}:{self.port if port is None else port}{path}"


def parse_bind(text: str) -> Bind:
    """`HOST:PORT` (`[::1]:8765` for IPv6); a host name other than localhost is refused (bind an address)."""
    host, sep, port_text = text.rpartition(":")
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    if not sep or not port_text.isdigit() or not 0 <= int(port_text) <= 65535:
        raise UsageError(f"--http {text!r}: expected HOST:PORT, e.g. 127.0.0.1:8765")
    if host != "localhost":
        try:
            ipaddress.ip_address(host)
        except ValueError:
            raise UsageError(f"--http {text!r}: {host!r} is not an IP address (or localhost)") from None
    return Bind(host, int(port_text))


def read_token(token_file: str | None, environ: Mapping[str, str] | None = None) -> str | None:
    """The bearer token from `--token-file`, else TOOLDECK_MCP_TOKEN; None when neither is given."""
    environ = os.environ if environ is None else environ
    if token_file:
        path = Path(token_file).expanduser()
        try:
            token = path.read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as exc:
            raise UsageError(f"--token-file {path}: cannot read: {getattr(exc, 'strerror', None) or exc}") from None
        where = f"--token-file {path}"
    else:
        token = (environ.get(TOKEN_ENV) or "").strip()
        if not token:
            return None
        where = TOKEN_ENV
    if len(token) < MIN_TOKEN_LENGTH or any(c.isspace() for c in token):
        raise UsageError(f"{where}: the token must be at least {MIN_TOKEN_LENGTH} characters with no spaces")
    return token


def check_bind(bind: Bind, token: str | None) -> None:
    if not bind.loopback and token is None:
        raise UsageError(f"--http {bind.host_header}:{bind.port}: serving beyond loopback needs a bearer token; set "
                         f"{TOKEN_ENV} or pass --token-file (never on the command line)")


class Guard:
    """ASGI middleware: token, Host and Origin on every HTTP request, before the MCP transport sees it."""

    def __init__(self, app: Any, *, token: str | None, bind: Bind, port: int, allowed_hosts: tuple[str, ...],
                 allowed_origins: tuple[str, ...], on_refused: Any = None) -> None:
        self.app = app
        self.token = token.encode() if token else None
        names = [*LOOPBACK_NAMES] + ([] if bind.wildcard or bind.host_header in LOOPBACK_NAMES else [bind.host_header])
        self.hosts = {f"{name}:{port}" for name in names} | set(allowed_hosts)
        self.check_host = not bind.wildcard or bool(allowed_hosts)
        self.origins = {f"{scheme}://{name}:{port}" for scheme in ("http", "https") for name in names} | set(allowed_origins)
        self.on_refused = on_refused
        self.refused = 0

    def problem(self, headers: dict[str, str]) -> tuple[int, str] | None:
        host = headers.get("host", "")
        if self.check_host and host not in self.hosts:
            return 421, f"Host {host[:80]!r} is not served here"
        origin = headers.get("origin")
        if origin is not None and origin not in self.origins:
            return 403, f"Origin {origin[:80]!r} is not allowed ([mcp.serve] allowed_origins)"
        if self.token is not None:
            auth = headers.get("authorization", "")
            scheme, _, value = auth.partition(" ")
            if scheme.lower() != "bearer" or not value:
                return 401, "missing bearer token (Authorization: Bearer ...)"
            if not hmac.compare_digest(value.strip().encode(), self.token):
                return 401, "invalid bearer token"
        return None

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        found = self.problem(headers)
        if found is None:
            await self.app(scope, receive, send)
            return
        status, message = found
        self.refused += 1
        client = scope.get("client") or ("?", 0)
        log.warning("mcp http: refused %s %s from %s: %s", scope.get("method"), scope.get("path"), client[0], message)
        if self.on_refused is not None:
            self.on_refused(status, message)
        body = json.dumps({"jsonrpc": "2.0", "id": None, "error": {"code": -32001, "message": message}}).encode()
        extra = [(b"www-authenticate", b'Bearer realm="tooldeck"')] if status == 401 else []
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()), *extra]})
        await send({"type": "http.response.body", "body": body})


class RefusedReport:
    """`mcp.http_refused` events: at most one per REFUSED_EVENT_SECONDS, with the count since the last one."""

    def __init__(self, runtime: RuntimeHost) -> None:
        self.runtime = runtime
        self.count = 0
        self.reasons: dict[str, int] = {}
        self.at = 0.0

    def __call__(self, status: int, message: str) -> None:
        self.count += 1
        reason = message.split(" ", 1)[0] if status != 401 else message
        self.reasons[reason] = self.reasons.get(reason, 0) + 1
        now = time.monotonic()
        if now - self.at >= REFUSED_EVENT_SECONDS:
            self.at = now
            count, reasons, self.count, self.reasons = self.count, self.reasons, 0, {}
            try:
                self.runtime.events.emit("mcp.http_refused", refused=count, reasons=reasons)
            except (StoreError, ToolError) as exc:  # the log lines are the record; the event is a summary
                log.error("mcp http: could not record refused requests: %s", exc)


def listen_socket(bind: Bind) -> socket.socket:
    family = socket.AF_INET6 if ":" in bind.host else socket.AF_INET
    # IPPROTO_TCP, not 0: asyncio turns Nagle off (TCP_NODELAY) only on a socket that says it is TCP. With Nagle on,
    # a response written as headers then body waited for the client's delayed ACK: ~40 ms a JSON-answered request.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # accepted sockets inherit it on Linux
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((bind.host, bind.port))
    except OSError as exc:
        sock.close()
        raise UsageError(f"--http {bind.host_header}:{bind.port}: cannot listen: {exc.strerror or exc}") from None
    sock.listen(128)
    sock.set_inheritable(False)
    return sock


class NoEndpoint:
    """ASGI: a path under `/mcp/` that names no endpoint: 404, and which paths there are."""

    def __init__(self, paths: list[str]) -> None:
        self.paths = paths

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        asked = str(scope.get("path", ""))[:120]
        message = f"no MCP endpoint at {asked!r} (endpoints: {', '.join(self.paths)}; [mcp.serve.endpoints.NAME] adds one)"
        body = json.dumps({"jsonrpc": "2.0", "id": None, "error": {"code": -32601, "message": message}}).encode()
        await send({"type": "http.response.start", "status": 404,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})


def endpoints_app(endpoints: Any, security: Any) -> Any:
    """One Starlette app: each endpoint's SDK route at its path, their session managers run by its lifespan."""
    import contextlib
    from collections.abc import AsyncIterator

    from mcp.server.streamable_http_manager import StreamableHTTPASGIApp
    from starlette.applications import Starlette
    from starlette.routing import Route

    from tools.mcp.http_transport import SessionManager

    routes: list[Any] = []
    managers = []
    for tool_server in endpoints.servers:  # what the SDK's `streamable_http_app` builds, with a request's answer
        manager = SessionManager(app=tool_server.server, security_settings=security)  # as JSON unless it streams
        managers.append(manager)
        routes.append(Route(tool_server.config.path, endpoint=StreamableHTTPASGIApp(manager)))
    routes.append(Route(PATH + "/{rest:path}", NoEndpoint([s.config.path for s in endpoints.servers])))

    @contextlib.asynccontextmanager
    async def lifespan(_app: Any) -> AsyncIterator[None]:
        async with contextlib.AsyncExitStack() as stack:
            for manager in managers:
                await stack.enter_async_context(manager.run())
            yield

    return Starlette(routes=routes, lifespan=lifespan)


async def serve_http(endpoints: Any, bind: Bind, token: str | None, sock: socket.socket | None, stop: Any) -> None:
    """Serve Streamable HTTP on `sock` (bound to `bind`) until SIGTERM/SIGINT/SIGHUP."""
    import anyio
    import uvicorn
    from mcp.server.transport_security import TransportSecuritySettings

    port = bind.port
    config = endpoints.config  # the listener's guard is the top-level [mcp.serve]'s, shared by every endpoint
    guard_args = dict(token=token, bind=bind, port=port, allowed_hosts=config.allowed_hosts,
                      allowed_origins=config.allowed_origins)
    guard = Guard(None, **guard_args, on_refused=RefusedReport(endpoints.runtime))
    security = TransportSecuritySettings(enable_dns_rebinding_protection=guard.check_host, allowed_hosts=sorted(guard.hosts),
                                         allowed_origins=sorted(guard.origins))
    guard.app = endpoints_app(endpoints, security)

    class _Server(uvicorn.Server):
        def capture_signals(self) -> Any:  # signals are ours: stop, then close the runtime (uvicorn would re-raise them)
            import contextlib

            return contextlib.nullcontext()

    server = _Server(uvicorn.Config(guard, log_config=None, access_log=False, lifespan="on", proxy_headers=False,
                                    timeout_graceful_shutdown=3, ws="none"))

    async def stop_on_signal() -> None:
        await stop.wait()
        server.should_exit = True

    sys.stderr.write(f"tooldeck mcp serve: listening on {bind.url(port)}"
                     f"{' (bearer token required)' if token else ''}\n")
    for named in config.endpoints:
        sys.stderr.write(f"tooldeck mcp serve: endpoint {named.name} at {bind.url(port, named.path)}\n")
    sys.stderr.flush()
    async with anyio.create_task_group() as tg:
        tg.start_soon(endpoints.background)
        tg.start_soon(stop_on_signal)
        await server.serve(sockets=[sock] if sock is not None else None)
        tg.cancel_scope.cancel()
