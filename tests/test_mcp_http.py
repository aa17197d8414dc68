"""`tooldeck mcp serve --http`, in a real process: the SDK's client, raw clients at earlier revisions, and the guard
(a non-loopback bind refused without a token, requests without the token, foreign Origins and Hosts refused)."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import anyio
import pytest

from tests.buffer_helpers import wait_for
from tests.mcp_helpers import REPO, TOKEN, HttpServer, RawHttp, db_rows, make_workspace, serve_argv, server_env
from tests.test_mcp_changes import LIST_CHANGED, edit_description, until


@pytest.fixture
def http_server(workspace: Path):
    make_workspace(workspace)
    servers: list[HttpServer] = []

    def start(bind: str = "127.0.0.1:0", *extra: str, env: dict[str, str] | None = None) -> HttpServer:
        server = HttpServer(workspace, bind, *extra, env=env)
        servers.append(server)
        server.wait_listening()
        return server

    yield start
    for server in servers:
        assert server.stop() == 0, "".join(server.stderr)[-2000:]


async def test_the_sdk_client_over_streamable_http(workspace: Path, http_server) -> None:
    import httpx2
    import mcp_types as types
    from mcp.client.session import ClientSession
    from mcp.client.streamable_http import streamable_http_client

    from tests.mcp_helpers import Inbox

    server = http_server("0.0.0.0:0", env=server_env(TOOLDECK_MCP_TOKEN=TOKEN))
    url = server.url.replace("0.0.0.0", "127.0.0.1")
    inbox = Inbox()
    async with httpx2.AsyncClient(headers={"Authorization": f"Bearer {TOKEN}"}, timeout=60) as http, \
            streamable_http_client(url, http_client=http) as (read, write), \
            ClientSession(read, write, client_info=types.Implementation(name="remote-ide", version="3"),
                          message_handler=inbox) as session:
        init = await session.initialize()
        assert init.capabilities.tools is not None and init.capabilities.tools.list_changed is True  # as over stdio
        tools = {t.name: t for t in (await session.list_tools()).tools}
        assert "echo" in tools and "evolve_tool" not in tools
        result = await session.call_tool("echo", {"text": "over http"})
        assert result.structured_content == {"echo": "over http", "length": 9}
        failed = await session.call_tool("broken", {})
        assert failed.is_error and "boom: the disk is full" in failed.content[0].text
        rows = db_rows(workspace, "SELECT session FROM runtimes WHERE label='mcp: remote-ide (http)'")
        assert len(rows) == 1 and rows[0]["session"].startswith("remote-ide-")
        edit_description(workspace / "tools" / "echo.yaml", "Echo over HTTP")
        await until(lambda: inbox.count(LIST_CHANGED) > 0, what="list_changed on the standalone stream")
        assert {t.name: t for t in (await session.list_tools()).tools}["echo"].description == "Echo over HTTP"
    calls = wait_for(lambda: db_rows(workspace, "SELECT session, outcome FROM calls WHERE tool_id='echo'"), timeout=30)  # batched
    assert calls == [{"session": rows[0]["session"], "outcome": "ok"}]
    assert TOKEN not in (workspace / ".tooldeck" / "tooldeck.db").read_bytes().decode("latin-1")


@pytest.mark.parametrize("protocol", ["2025-03-26", "2025-06-18"])
def test_raw_clients_at_earlier_revisions_over_http(http_server, protocol: str) -> None:
    server = http_server()
    client = RawHttp(server.url)
    reply = client.initialize(protocol)
    assert reply["result"]["protocolVersion"] == protocol
    status, listing, _ = client.request("tools/list")
    assert status == 200 and "echo" in {t["name"] for t in listing["result"]["tools"]}
    status, ok, _ = client.request("tools/call", {"name": "echo", "arguments": {"text": "abc"}})
    assert status == 200 and json.loads(ok["result"]["content"][0]["text"]) == {"echo": "abc", "length": 3}
    status, failed, _ = client.request("tools/call", {"name": "broken", "arguments": {}})
    assert status == 200 and failed["result"]["isError"] is True


def test_a_request_is_answered_as_json_unless_it_asks_for_progress(http_server) -> None:
    """One JSON body per request (an event stream costs the server ~0.4 ms of CPU a call); a request with a
    progressToken gets the stream its progress notifications travel on."""
    client = RawHttp(http_server().url)
    client.initialize("2025-06-18")
    status, answer, _ = client.request("tools/call", {"name": "echo", "arguments": {"text": "abc"}})
    assert status == 200 and json.loads(answer["result"]["content"][0]["text"]) == {"echo": "abc", "length": 3}
    client._next += 1
    status, messages, reply = client.post({"jsonrpc": "2.0", "id": client._next, "method": "tools/list"})
    assert reply.headers["content-type"].startswith("application/json") and messages[0]["result"]["tools"]
    client._next += 1
    status, messages, reply = client.post({"jsonrpc": "2.0", "id": client._next, "method": "tools/call", "params": {
        "name": "sleepy", "arguments": {"seconds": 1.6}, "_meta": {"progressToken": "tick"}}})
    assert status == 200 and reply.headers["content-type"].startswith("text/event-stream")
    progress = [m for m in messages if m.get("method") == "notifications/progress"]
    assert progress and progress[0]["params"]["progressToken"] == "tick"
    assert messages[-1]["id"] == client._next and messages[-1]["result"]["isError"] is False


async def test_what_belongs_to_a_json_answered_request_never_stands_in_for_its_response() -> None:
    import mcp_types as types
    from mcp.server.streamable_http import EventMessage

    from tools.mcp.http_transport import _ResponseOnly, streams

    send, receive = anyio.create_memory_object_stream[EventMessage](4)
    note = types.JSONRPCNotification(jsonrpc="2.0", method="notifications/progress", params={"progressToken": 1, "progress": 1})
    answer = types.JSONRPCResponse(jsonrpc="2.0", id=7, result={})
    await send.send(EventMessage(note))
    await send.send(EventMessage(answer))
    assert (await _ResponseOnly(receive).receive()).message is answer
    assert not streams(b'{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"x"}}')
    assert streams(b'{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"_meta":{"progressToken":0}}}')
    assert streams(b"{not json") and streams(b"[1]")  # left to the SDK, which says what is wrong


def test_the_listening_socket_sends_without_delay() -> None:
    """Nagle's algorithm held a response's body until the client acknowledged its headers: ~40 ms a request."""
    import socket

    from tools.mcp.http import Bind, listen_socket

    sock = listen_socket(Bind("127.0.0.1", 0))
    try:
        assert sock.proto == socket.IPPROTO_TCP  # what asyncio looks for before it sets TCP_NODELAY itself
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
    finally:
        sock.close()


def test_a_non_loopback_bind_without_a_token_is_refused(workspace: Path) -> None:
    make_workspace(workspace)
    result = subprocess.run(serve_argv(workspace, "--http", "0.0.0.0:0"), capture_output=True, text=True, cwd=REPO,
                            env=server_env(), timeout=120)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1] == (
        "tooldeck: --http 0.0.0.0:0: serving beyond loopback needs a bearer token; set TOOLDECK_MCP_TOKEN or pass "
        "--token-file (never on the command line)")
    # and there is no way to pass the token on the command line
    argv = serve_argv(workspace, "--http", "0.0.0.0:0", "--token", TOKEN)
    result = subprocess.run(argv, capture_output=True, text=True, cwd=REPO, env=server_env(), timeout=120)
    assert result.returncode == 2 and "unrecognized arguments: --token" in result.stderr
    short = workspace / "short.token"
    short.write_text("abc\n")
    result = subprocess.run(serve_argv(workspace, "--http", "0.0.0.0:0", "--token-file", str(short)), capture_output=True,
                            text=True, cwd=REPO, env=server_env(), timeout=120)
    assert result.returncode == 2 and "at least 16 characters" in result.stderr
    assert not (workspace / ".tooldeck").exists() or not db_rows(workspace, "SELECT * FROM runtimes")


def test_every_request_needs_the_token_and_an_allowed_origin_and_host(workspace: Path, http_server) -> None:
    token_file = workspace / "mcp.token"
    token_file.write_text(TOKEN + "\n")
    os.chmod(token_file, 0o600)
    server = http_server("0.0.0.0:0", "--token-file", str(token_file))
    url = server.url.replace("0.0.0.0", "127.0.0.1")
    port = url.split(":")[2].split("/")[0]

    status, messages, reply = RawHttp(url).post({"jsonrpc": "2.0", "id": 1, "method": "ping"})
    assert status == 401 and "missing bearer token" in messages[0]["error"]["message"]
    assert reply.headers["www-authenticate"].startswith("Bearer")
    status, messages, _ = RawHttp(url, token="x" * 20).post({"jsonrpc": "2.0", "id": 1, "method": "ping"})
    assert status == 401 and messages[0]["error"]["message"] == "invalid bearer token"

    client = RawHttp(url, token=TOKEN)
    client.initialize("2025-06-18")
    status, ok, _ = client.request("tools/call", {"name": "echo", "arguments": {"text": "authorised"}})
    assert status == 200 and not ok["result"].get("isError")
    # the token is checked on every request, not only when a session starts
    del client.headers["Authorization"]
    status, _ok, _ = client.request("tools/list")
    assert status == 401

    evil = RawHttp(url, token=TOKEN, origin="http://evil.example")
    status, messages, _ = evil.post({"jsonrpc": "2.0", "id": 1, "method": "ping"})
    assert status == 403 and "Origin 'http://evil.example' is not allowed" in messages[0]["error"]["message"]
    friendly = RawHttp(url, token=TOKEN, origin=f"http://localhost:{port}")
    assert friendly.initialize("2025-06-18")["result"]["protocolVersion"] == "2025-06-18"

    events = wait_for(lambda: db_rows(workspace, "SELECT payload FROM events WHERE kind='mcp.http_refused'"), timeout=30)
    assert json.loads(events[0]["payload"])["refused"] >= 1
    assert TOKEN not in (workspace / ".tooldeck" / "tooldeck.db").read_bytes().decode("latin-1")
    logs = (workspace / ".tooldeck" / "logs" / "tooldeck.log").read_text()
    assert TOKEN not in logs and "refused POST /mcp" in logs


def test_a_loopback_server_refuses_a_rebound_host_name(http_server) -> None:
    server = http_server()
    port = server.url.split(":")[2].split("/")[0]
    status, messages, _ = RawHttp(server.url, host=f"attacker.example:{port}").post({"jsonrpc": "2.0", "id": 1, "method": "ping"})
    assert status == 421 and "Host 'attacker.example:" in messages[0]["error"]["message"]
    status, messages, _ = RawHttp(server.url, origin="https://evil.example").post({"jsonrpc": "2.0", "id": 1, "method": "ping"})
    assert status == 403
    assert RawHttp(server.url, host=f"localhost:{port}").initialize("2025-03-26")["result"]["protocolVersion"] == "2025-03-26"


async def test_http_call_cancellation_kills_the_process(workspace: Path, http_server) -> None:
    import mcp_types as types
    from mcp.client.session import ClientSession
    from mcp.client.streamable_http import streamable_http_client

    from tests.helpers import alive

    server = http_server()
    pid_file = workspace / "sleepy.pid"
    async with streamable_http_client(server.url) as (read, write), \
            ClientSession(read, write, client_info=types.Implementation(name="canceller", version="1")) as session:
        await session.initialize()
        async with anyio.create_task_group() as tg:
            tg.start_soon(session.call_tool, "sleepy", {"seconds": 120})
            with anyio.fail_after(60):
                while not pid_file.exists():
                    await anyio.sleep(0.05)
            pid = int(pid_file.read_text())
            tg.cancel_scope.cancel()
        with anyio.fail_after(30):
            while alive(pid):
                await anyio.sleep(0.05)


def test_a_port_in_use_is_refused_before_the_runtime_starts(workspace: Path) -> None:
    import socket

    make_workspace(workspace)
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen(1)
    try:
        port = taken.getsockname()[1]
        result = subprocess.run(serve_argv(workspace, "--http", f"127.0.0.1:{port}"), capture_output=True, text=True,
                                cwd=REPO, env=server_env(), timeout=120)
    finally:
        taken.close()
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1].startswith(f"tooldeck: --http 127.0.0.1:{port}: cannot listen: ")
    assert not (workspace / ".tooldeck").exists()  # refused before a runtime (or its database) existed


def test_the_serving_runtime_is_listed_with_the_port_it_got(http_server, workspace: Path) -> None:
    server = http_server()
    port = server.url.split(":")[2].split("/")[0]
    rows = wait_for(lambda: db_rows(workspace, "SELECT label FROM runtimes WHERE label LIKE 'mcp serve%'"), timeout=60)
    assert rows == [{"label": f"mcp serve http://127.0.0.1:{port}/mcp"}]


def test_http_serving_starts_beside_an_imported_server(workspace: Path, tmp_path: Path) -> None:
    """`mcp serve --http` in a workspace with an `[mcp.servers]` entry: the runtime's hub thread imports
    `mcp` while serving imports `mcp.server.*`; the SDK's import cycle made the two collide at start
    (4 of 4 runs). Started several times, it listens and answers every time."""
    from tests.mcp_import_helpers import stdio_section, write_settings

    make_workspace(workspace)
    write_settings(workspace, stdio_section("imp", tmp_path / "imp-state"))
    for _ in range(4):
        server = HttpServer(workspace)
        try:
            client = RawHttp(server.wait_listening())
            status, answer, _ = client.request("initialize", {"protocolVersion": "2025-06-18", "capabilities": {},
                                                              "clientInfo": {"name": "t", "version": "1"}})
            assert status == 200 and answer is not None and "result" in answer, answer
            assert not any("partially initialized" in line for line in server.stderr), "".join(server.stderr)[-2000:]
        finally:
            assert server.stop() == 0, "".join(server.stderr)[-2000:]


def test_a_body_nested_past_the_parsers_depth_is_refused_and_the_server_goes_on(http_server) -> None:
    """Python's parser raises RecursionError on deep nesting: the body peeks before the SDK treat it as malformed JSON."""
    server = http_server()
    client = RawHttp(server.url)
    client.initialize("2025-06-18")
    deep = b'{"jsonrpc": "2.0", "id": 99, "method": "tools/call", "params": {"name": "echo", "arguments": {"text": ' \
        + b"[" * 5000 + b"]" * 5000 + b"}}}"
    reply = client.client.post(server.url, content=deep, headers=client.headers)
    assert reply.status_code in (200, 400), reply.text
    assert "RecursionError" not in "".join(server.stderr)
    status, ok, _ = client.request("tools/call", {"name": "echo", "arguments": {"text": "still"}})
    assert status == 200 and json.loads(ok["result"]["content"][0]["text"]) == {"echo": "still", "length": 5}
