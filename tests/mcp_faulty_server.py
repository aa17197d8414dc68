"""An MCP server that misbehaves on request, for the faulty-server tests (run as a script; the SDK's low-level Server).

    python tests/mcp_faulty_server.py --state DIR [--exit-at-start] [--http [--json-response]]

Tools: ok (answers at once), big (a text result of `mb` megabytes), crash (exits mid-call), hang (blocks its event
loop: not even a cancellation gets through), garbage (writes lines that are not JSON-RPC to stdout, then answers),
flood (writes a line of `mb` megabytes and then `lines` short lines to stderr, then answers). `pid` in DIR holds its pid.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import anyio
import mcp_types as types
from mcp.server.lowlevel import Server

parser = argparse.ArgumentParser()
parser.add_argument("--state", required=True)
parser.add_argument("--exit-at-start", action="store_true")
parser.add_argument("--http", action="store_true")
parser.add_argument("--json-response", action="store_true", help="over HTTP, answer with JSON bodies instead of SSE")
args = parser.parse_args()
STATE = Path(args.state)
STATE.mkdir(parents=True, exist_ok=True)
if args.exit_at_start:
    sys.stderr.write("faulty server: missing configuration, giving up\n")
    sys.exit(3)
(STATE / "pid").write_text(str(os.getpid()))
WIRE = os.dup(1)  # the protocol's stdout: the SDK diverts fd 1 to stderr while it serves

MB = {"type": "object", "properties": {"mb": {"type": "number"}}}
TOOLS = [types.Tool(name=name, description=f"a faulty server's {name} tool", input_schema=MB)
         for name in ("ok", "big", "crash", "hang", "garbage", "flood")]


def text(body: str) -> types.CallToolResult:
    return types.CallToolResult(content=[types.TextContent(text=body)])


async def list_tools(ctx: object, params: types.PaginatedRequestParams | None) -> types.ListToolsResult:
    return types.ListToolsResult(tools=TOOLS)


async def call_tool(ctx: object, params: types.CallToolRequestParams) -> types.CallToolResult:
    name, data = params.name, params.arguments or {}
    size = int(float(data.get("mb", 1)) * 1_000_000)
    if name == "ok":
        return text('{"ok": true}')
    if name == "big":
        return text("x" * size)
    if name == "crash":
        sys.stderr.write("faulty server: crashing mid-call\n")
        sys.stderr.flush()
        os._exit(7)
    if name == "hang":
        time.sleep(3600)  # blocks the loop: no cancellation, no other call gets through
    if name == "garbage":
        os.write(WIRE, b"this is not JSON-RPC\n{\"half\": \n\x00\xff\xfe garbage\n")
        return text('{"after_garbage": true}')
    if name == "flood":  # one line of `mb` megabytes, then `lines` short ones
        chunk = b"e" * 1_000_000
        for _ in range(size // len(chunk)):
            os.write(2, chunk)
        os.write(2, b"\n" + b"a short line of a flood\n" * int(data.get("lines", 0)))
        return text('{"flooded": true}')
    return text(f"unknown tool {name!r}")


server = Server("faulty-test-server", version="1.0", on_list_tools=list_tools, on_call_tool=call_tool)


async def main_stdio() -> None:
    from mcp.server.stdio import stdio_server

    async with stdio_server() as (read, write):
        await server.run(read, write, server.create_initialization_options())


def main_http() -> None:
    import socket

    import uvicorn

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    app = server.streamable_http_app(streamable_http_path="/mcp", host="127.0.0.1", json_response=args.json_response)
    port = sock.getsockname()[1]
    (STATE / "port.tmp").write_text(str(port))
    os.replace(STATE / "port.tmp", STATE / "port")
    uvicorn.Server(uvicorn.Config(app, log_config=None, access_log=False, lifespan="on")).run(sockets=[sock])


if args.http:
    main_http()
else:
    anyio.run(main_stdio)
