"""`tooldeck mcp serve`: check everything that can be refused, then run a serving runtime behind MCP.

Refusals come first and are one line each (a bad `--http`, a missing token off loopback, an
unreadable token file, a bad `[mcp.serve]`), before any port is bound or the protocol's pipes
are taken. The runtime is a serving one (background load, buffers flushed, catalog watched);
when the transport ends (stdin closed, or a signal) the client sessions are ended and the
runtime closes, delivering what the buffers hold within its close budget.
"""

from __future__ import annotations

import logging
import os
import sys
from typing import TYPE_CHECKING, Any

from tools.errors import UsageError
from tools.ids import check_name
from tools.mcp.signals import Stop

if TYPE_CHECKING:
    from tools.host import RuntimeHost

log = logging.getLogger("tooldeck.mcp")
CLOSE_SECONDS = 10.0


def serve(*, workspace: str | None, http: str | None = None, token_file: str | None = None, session: str | None = None,
          demo: bool = False, endpoint: str | None = None) -> int:
    from tools.mcp.config import ENDPOINT_NAME_RE
    from tools.mcp.http import TOKEN_ENV, Bind, check_bind, listen_socket, parse_bind, read_token

    stop = Stop()
    stop.install()  # from here on a signal stops the server through its clean exit
    bind = parse_bind(http) if http else None
    if bind is None and token_file:
        raise UsageError("--token-file applies to --http only (stdio needs no token)")
    if endpoint is not None and bind is not None:
        raise UsageError("--endpoint applies to stdio only (over --http every endpoint is served, at /mcp/NAME)")
    if endpoint is not None and not ENDPOINT_NAME_RE.match(endpoint):
        raise UsageError(f"--endpoint {endpoint[:60]!r}: an endpoint name is 1-40 letters, digits, '_' or '-'")
    token = read_token(token_file) if bind is not None else None
    if bind is not None:
        check_bind(bind, token)
    if token is not None:
        os.environ[TOKEN_ENV] = token  # redaction masks it everywhere; tools' environments drop it (tools.secrets)
    pinned = session or os.environ.get("TOOLDECK_SESSION") or None
    if pinned is not None:
        check_name(pinned, "session")
    proto: tuple[int, int] | None = None
    sock = None
    if bind is None:
        from tools.mcp.stdio import claim_stdio

        proto = claim_stdio()
    else:  # bound before the runtime starts: a port in use is a one-line refusal, and port 0 gets its real number
        sock = listen_socket(bind)
        bind = Bind(bind.host, sock.getsockname()[1])
    _import_before_threads(stdio=bind is None)
    from tools.runtime import Runtime

    label = f"mcp serve {bind.url()}" if bind is not None else f"mcp serve (stdio{f', endpoint {endpoint}' if endpoint else ''})"
    runtime = Runtime(workspace, serve=True, session=pinned, demo=demo, label=label, kind="mcp serve")
    endpoints: Any = None
    try:
        endpoints = _endpoints(runtime, "http" if bind is not None else "stdio", pinned, endpoint)
        sys.stderr.write(f"tooldeck mcp serve: workspace {runtime.workspace}, session {runtime.own_session}"
                         f"{'' if pinned else ' (each client gets its own)'}\n")
        sys.stderr.flush()
        import anyio

        if bind is None:
            from tools.mcp.stdio import serve_stdio

            assert proto is not None
            anyio.run(serve_stdio, endpoints, *proto, stop)
        else:
            from tools.mcp.http import serve_http

            anyio.run(serve_http, endpoints, bind, token, sock, stop)
    finally:
        stop.install()  # the event loop left the default handlers behind: a signal must not cut the close short
        if endpoints is not None:
            endpoints.close("server stopped")
        runtime.close(timeout=CLOSE_SECONDS)
        if endpoints is not None:  # a server that never started (its settings refused) only says why, once
            sys.stderr.write("tooldeck mcp serve: stopped\n")
            sys.stderr.flush()
    _exit_now_if_memory_is_building(runtime)
    return 0


def _import_before_threads(*, stdio: bool) -> None:
    """Import, on this thread, everything serving needs before the runtime starts its threads.

    The `mcp` package's first import runs an import cycle (`mcp` -> `mcp.client` -> ... ->
    `mcp.server.stdio`); two threads making it at once fail with "cannot import name ... from
    partially initialized module" (the runtime's MCP hub thread imports `mcp` for `[mcp.servers]`,
    this thread `mcp.server.*`). Done here first, every later import finds complete modules.
    """
    import mcp  # noqa: F401 - the package's own cycle, completed on this thread

    import tools.buffers  # noqa: F401 - the serve config reads its OPERATIONS
    import tools.mcp.config  # noqa: F401
    import tools.mcp.endpoints  # noqa: F401
    import tools.mcp.server  # noqa: F401

    if stdio:
        import tools.mcp.stdio  # noqa: F401
    else:
        import tools.mcp.http  # noqa: F401


def _endpoints(runtime: RuntimeHost, transport: str, pinned: str | None, endpoint: str | None) -> Any:
    """The endpoints served over a started runtime (reading its settings raises what stopped it from starting):
    every one over HTTP, the chosen one over stdio."""
    from tools.mcp.config import load_serve_config
    from tools.mcp.endpoints import Endpoints

    config, warnings = load_serve_config(runtime.settings)
    chosen = config.all_endpoints() if transport == "http" else (config.endpoint(endpoint),)
    for warning in warnings:
        runtime.events.emit("runtime.warning", warning=warning)
        log.warning("%s", warning)
    return Endpoints(runtime, config, chosen, transport=transport, pinned=pinned)


def _exit_now_if_memory_is_building(runtime: RuntimeHost) -> None:
    """Exit at once, everything closed, when a semantic-memory build is still importing its libraries.

    A serving runtime builds its memory in a daemon thread that imports qdrant_client (and grpc).
    A client that disconnects within a second or two of starting the server would otherwise have
    the interpreter finalise while grpc is half-imported, and the process now and then died of
    SIGABRT instead of exiting 0 (~1 in 30 quick sessions). The runtime is closed by now (buffers
    delivered, database closed), so nothing is left for finalisation to do but that crash; an MCP
    client also gives a server only ~2 s after closing its stdin before it signals it.
    """
    memory = runtime.extensions.get("memory")
    if memory is None or memory.started_at is None or memory.ready.is_set():
        return
    from tools.logs import setup_logging

    release = setup_logging(runtime.home / "logs")  # the closed runtime let go of its log
    log.info("mcp serve: exiting while the semantic memory build is still in progress")
    release()
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)
