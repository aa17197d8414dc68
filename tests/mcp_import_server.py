"""A small MCP server written with the SDK's low-level Server, for the import tests and benchmarks (run as a script).

    python tests/mcp_import_server.py --state DIR [--page-size N] [--extra N] [--http] [--token-env NAME]

Everything it does that a test wants to see goes to files in DIR: `pid` (and `pids.log`, one line per
start), `cancelled.log` (a call cancelled by the client), `slow.started` (the slow tool is running),
`batches.jsonl` (what `store_batch` received, once per batch id), `list.log` (when each tools/list
page was answered, epoch seconds), `port` (with --http). `converter_down` in DIR makes the converter fail.

Tools: echo (structured output), fail (is_error), slow (sleeps; records its cancellation), add_tool
(changes the list and sends notifications/tools/list_changed), store_batch (a buffer's sink),
fahrenheit_to_celsius, env_report (what its environment holds), leak (prints and returns API_TOKEN),
"Weird Name.v2" (a name the id rule must normalise), --extra N generated ones (gen_0 ...) and --alias NAME ones;
--bare serves only the generated ones.
tools/list is paged (--page-size).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import time
from pathlib import Path

import anyio
import mcp_types as types
from mcp.server.lowlevel import Server
from mcp.server.lowlevel.server import NotificationOptions

parser = argparse.ArgumentParser()
parser.add_argument("--state", required=True)
parser.add_argument("--page-size", type=int, default=3)
parser.add_argument("--extra", type=int, default=0)
parser.add_argument("--http", action="store_true")
parser.add_argument("--token-env", default=None)
parser.add_argument("--alias", action="append", default=[], help="one more tool of this name (answers like a generated one)")
parser.add_argument("--bare", action="store_true", help="only the --extra generated tools")
args = parser.parse_args()
STATE = Path(args.state)
STATE.mkdir(parents=True, exist_ok=True)
(STATE / "pid").write_text(str(os.getpid()))
with open(STATE / "pids.log", "a") as fh:
    fh.write(f"{os.getpid()}\n")

OBJ = {"type": "object"}
TOOLS = [
    types.Tool(name="echo", description="Echo a text back with its length",
               input_schema={"type": "object", "properties": {"text": {"type": "string"}}, "required": ["text"]},
               output_schema={"type": "object", "properties": {"echo": {"type": "string"}, "length": {"type": "integer"}},
                              "required": ["echo", "length"]},
               annotations=types.ToolAnnotations(read_only_hint=True, idempotent_hint=True)),
    types.Tool(name="fail", description="A tool whose backend is always down", input_schema=OBJ),
    types.Tool(name="slow", description="Sleep for a number of seconds",
               input_schema={"type": "object", "properties": {"seconds": {"type": "number"}}, "required": ["seconds"]}),
    types.Tool(name="add_tool", description="Add a tool to this server's list",
               input_schema={"type": "object", "properties": {"name": {"type": "string"}}, "required": ["name"]}),
    types.Tool(name="store_batch", description="Store a batch of buffered items",
               input_schema={"type": "object", "properties": {"buffered_items": {"type": "array"},
                                                              "buffer_metadata": {"type": "object"}},
                             "required": ["buffered_items", "buffer_metadata"]}),
    types.Tool(name="fahrenheit_to_celsius", description="Convert a temperature from fahrenheit to celsius",
               input_schema={"type": "object", "properties": {"fahrenheit": {"type": "number"}}, "required": ["fahrenheit"]}),
    types.Tool(name="env_report", description="Report the environment this server runs with", input_schema=OBJ),
    types.Tool(name="leak", description="Print and return the API token", input_schema=OBJ),
    types.Tool(name="Weird Name.v2", description="A tool with a name outside the id rule", input_schema=OBJ),
] + [types.Tool(name=f"gen_{i}", description=f"generated tool number {i} for the benchmark",
                input_schema={"type": "object", "properties": {"n": {"type": "integer"}}}) for i in range(args.extra)] + [
    types.Tool(name=alias, description=f"an alias tool {alias}", input_schema=OBJ) for alias in args.alias]
if args.bare:
    TOOLS = [t for t in TOOLS if t.name.startswith("gen_")]


def text(value: object, *, error: bool = False) -> types.CallToolResult:
    body = value if isinstance(value, str) else json.dumps(value)
    return types.CallToolResult(content=[types.TextContent(text=body)], is_error=error,
                                structured_content=value if isinstance(value, dict) and not error else None)


async def list_tools(ctx: object, params: types.PaginatedRequestParams | None) -> types.ListToolsResult:
    start = int((params.cursor if params is not None and params.cursor else None) or 0)
    page = TOOLS[start:start + args.page_size]
    nxt = str(start + args.page_size) if start + args.page_size < len(TOOLS) else None
    with open(STATE / "list.log", "a") as fh:
        fh.write(f"{time.time()} {start}\n")
    return types.ListToolsResult(tools=page, next_cursor=nxt)


async def call_tool(ctx: object, params: types.CallToolRequestParams) -> types.CallToolResult:
    name, data = params.name, params.arguments or {}
    if name == "echo":
        return text({"echo": data["text"], "length": len(data["text"])})
    if name == "fail":
        return text("boom: the backend is down", error=True)
    if name == "slow":
        (STATE / "slow.started").write_text(str(time.time()))
        try:
            await anyio.sleep(float(data["seconds"]))
        except anyio.get_cancelled_exc_class():
            with open(STATE / "cancelled.log", "a") as fh:
                fh.write(f"slow {data['seconds']}\n")
            raise
        return text({"slept": data["seconds"]})
    if name == "add_tool":
        TOOLS.append(types.Tool(name=data["name"], description=f"added at run time: {data['name']}", input_schema=OBJ))
        await ctx.session.send_tool_list_changed()  # type: ignore[attr-defined]
        return text({"added": data["name"]})
    if name == "store_batch":
        meta = data["buffer_metadata"]
        seen = set()
        path = STATE / "batches.jsonl"
        if path.exists():
            seen = {json.loads(line)["batch_id"] for line in path.read_text().splitlines() if line}
        if meta["batch_id"] not in seen:
            with open(path, "a") as fh:
                fh.write(json.dumps({"batch_id": meta["batch_id"], "buffer_id": meta["buffer_id"],
                                     "items": data["buffered_items"]}) + "\n")
        return text({"stored": len(data["buffered_items"])})
    if name == "fahrenheit_to_celsius":
        if (STATE / "converter_down").exists():
            return text("converter backend unavailable", error=True)
        return text({"celsius": round((float(data["fahrenheit"]) - 32) * 5 / 9, 2)})
    if name == "env_report":
        token = os.environ.get("API_TOKEN")
        return text({"keys": sorted(os.environ), "token_sha256": hashlib.sha256(token.encode()).hexdigest() if token else None})
    if name == "leak":
        token = os.environ.get("API_TOKEN", "")
        sys.stderr.write(f"leaking the token: {token}\n")
        sys.stderr.flush()
        return text({"token": token})
    if name == "Weird Name.v2" or name.startswith("gen_") or any(t.name == name for t in TOOLS):
        return text({"tool": name, "arguments": data})
    return text(f"unknown tool {name!r}", error=True)


server = Server("import-test-server", version="1.0", on_list_tools=list_tools, on_call_tool=call_tool)


async def main_stdio() -> None:
    from mcp.server.stdio import stdio_server

    async with stdio_server() as (read, write):
        await server.run(read, write, server.create_initialization_options(NotificationOptions(tools_changed=True)))


def main_http() -> None:
    import socket

    import uvicorn

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    app = server.streamable_http_app(streamable_http_path="/mcp", host="127.0.0.1")
    expected = os.environ.get(args.token_env) if args.token_env else None

    async def guarded(scope: dict, receive: object, send: object) -> None:
        if scope["type"] == "http" and expected is not None:
            headers = {k.decode().lower(): v.decode() for k, v in scope.get("headers", [])}
            if headers.get("authorization") != f"Bearer {expected}":
                await send({"type": "http.response.start", "status": 401, "headers": [(b"content-type", b"text/plain")]})
                await send({"type": "http.response.body", "body": b"missing or wrong bearer token"})
                return
        await app(scope, receive, send)

    port = sock.getsockname()[1]
    (STATE / "port.tmp").write_text(str(port))
    os.replace(STATE / "port.tmp", STATE / "port")
    uvicorn.Server(uvicorn.Config(guarded, log_config=None, access_log=False, lifespan="on")).run(sockets=[sock])


if args.http:
    main_http()
else:
    anyio.run(main_stdio)
