"""`tooldeck mcp serve` over stdio, in a real process: the SDK's client, raw clients at earlier revisions,
is_error results, progress, cancellation, and a clean exit when stdin closes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import anyio
import pytest

from tests.buffer_helpers import sink_items, wait_for
from tests.helpers import alive
from tests.mcp_helpers import RawStdio, db_rows, make_workspace, sdk_stdio, server_env


async def list_all(session) -> list:
    import mcp_types as types

    tools, cursor = [], None
    while True:
        result = await session.list_tools(params=types.PaginatedRequestParams(cursor=cursor) if cursor else None)
        tools.extend(result.tools)
        cursor = result.next_cursor
        if cursor is None:
            return tools


async def test_the_sdk_client_lists_and_calls_over_stdio(workspace: Path) -> None:
    make_workspace(workspace, settings="[mcp.serve]\npage_size = 4\n")
    async with sdk_stdio(workspace, name="Test IDE") as (session, _inbox):
        first = await session.list_tools()
        assert len(first.tools) == 4 and first.next_cursor is not None  # paged by cursor
        tools = {t.name: t for t in await list_all(session)}
        assert {"echo", "shout", "broken", "buffer", "resilient_tool_call", "mark_tool_failure"} <= set(tools)
        assert "evolve_tool" not in tools  # not served by default
        echo = tools["echo"]
        assert echo.description == "Echo a text back with its length"
        assert echo.title == "echo 1.0.0" and echo.meta == {"tooldeck/version": "1.0.0"}
        assert echo.input_schema == {"type": "object", "properties": {"text": {"type": "string", "description": "What to echo"}},
                                     "required": ["text"]}  # the flat manifest form, converted
        assert echo.output_schema == {"type": "object", "required": ["echo"], "properties": {"echo": {"type": "string"}}}
        assert echo.annotations is not None and echo.annotations.read_only_hint and echo.annotations.idempotent_hint
        assert tools["shout"].input_schema == {"type": "object", "properties": {"input": {"type": "string"}}, "required": ["input"]}
        operations = tools["buffer"].input_schema["properties"]["operation"]["enum"]
        assert "write" in operations and "clear" not in operations and "replay" not in operations

        result = await session.call_tool("echo", {"text": "hello"})
        assert not result.is_error
        assert result.structured_content == {"echo": "hello", "length": 5}
        assert json.loads(result.content[0].text) == {"echo": "hello", "length": 5}

        result = await session.call_tool("shout", {"input": "hi"})
        assert (result.is_error, result.content[0].text, result.structured_content) == (False, "HI!", None)

        result = await session.call_tool("broken", {})
        assert result.is_error
        assert result.content[0].text == "broken: exited with code 3: boom: the disk is full"
        assert result.meta["tooldeck/error"]["error_class"] == "exit_code" and result.structured_content is None

        result = await session.call_tool("echo", {"text": 5})
        assert result.is_error and "field 'text'" in result.content[0].text

        result = await session.call_tool("buffer", {"operation": "clear", "buffer_id": "b"})
        assert result.is_error and "operation 'clear' is not served" in result.content[0].text

        from mcp.shared.exceptions import MCPError

        with pytest.raises(MCPError, match="'evolve_tool' is not served"):
            await session.call_tool("evolve_tool", {"tool_id": "echo"})
        with pytest.raises(MCPError, match="unknown tool 'no_such_tool'"):
            await session.call_tool("no_such_tool", {})

        live = db_rows(workspace, "SELECT session, label, serve FROM runtimes WHERE label LIKE 'mcp: %'")
        assert len(live) == 1 and live[0]["label"] == "mcp: Test IDE (stdio)" and live[0]["session"].startswith("test-ide-")
        client_session = live[0]["session"]
    wait_for(lambda: db_rows(workspace, "SELECT * FROM events WHERE kind='mcp.disconnected'"), timeout=60)
    calls = db_rows(workspace, "SELECT tool_id, session, outcome FROM calls WHERE tool_id IN ('echo', 'broken') ORDER BY id")
    assert calls == [{"tool_id": "echo", "session": client_session, "outcome": "ok"},
                     {"tool_id": "broken", "session": client_session, "outcome": "exit_code"},
                     {"tool_id": "echo", "session": client_session, "outcome": "bad_input"}]
    kinds = db_rows(workspace, "SELECT kind, session, payload FROM events WHERE kind LIKE 'mcp.%' ORDER BY id")
    assert kinds[0]["kind"] == "mcp.connected" and kinds[-1]["kind"] == "mcp.disconnected"
    summaries = [json.loads(k["payload"]) for k in kinds[1:-1]]
    assert summaries and all(k["kind"] == "mcp.calls" for k in kinds[1:-1])  # summaries, never one event per call
    assert sum(s["calls"] for s in summaries) == 5 and summaries[-1]["failed"] == 3  # echo, shout, broken, bad echo, clear
    assert all(k["session"] == client_session for k in kinds)
    assert json.loads(kinds[0]["payload"])["client"] == "Test IDE"
    assert db_rows(workspace, "SELECT session FROM events WHERE kind='tool.failure' AND tool_id='broken'") == [{"session": client_session}]
    # the client's row and the runtime's go with them (the SDK client gives the server 2 s, then signals it)
    wait_for(lambda: db_rows(workspace, "SELECT * FROM runtimes") == [], timeout=60)


@pytest.mark.parametrize("protocol", ["2025-03-26", "2025-06-18"])
def test_raw_clients_at_earlier_revisions_over_stdio(workspace: Path, protocol: str) -> None:
    make_workspace(workspace)
    client = RawStdio(workspace)
    try:
        reply = client.initialize(protocol)
        assert reply["result"]["protocolVersion"] == protocol
        assert reply["result"]["capabilities"]["tools"] == {"listChanged": True}
        listing = client.request("tools/list")["result"]["tools"]
        echo = next(t for t in listing if t["name"] == "echo")
        assert echo["inputSchema"]["required"] == ["text"]
        ok = client.request("tools/call", {"name": "echo", "arguments": {"text": "abc"}})["result"]
        assert json.loads(ok["content"][0]["text"]) == {"echo": "abc", "length": 3} and not ok.get("isError")
        if protocol >= "2025-06-18":
            assert ok["structuredContent"] == {"echo": "abc", "length": 3}
        failed = client.request("tools/call", {"name": "broken", "arguments": {}})["result"]
        assert failed["isError"] is True and "boom: the disk is full" in failed["content"][0]["text"]
        assert client.close() == 0, client.stderr_path.read_text()[-3000:]
    finally:
        client.kill()
    assert client.lines and all(json.loads(line) for line in client.lines)  # nothing but protocol on stdout



def test_a_line_that_is_no_message_is_answered_and_the_session_goes_on(workspace: Path) -> None:
    """The SDK only logs a line it cannot read as a message: a request nested deeper than its parser takes was never
    answered, and its client waited forever (over HTTP the same body is refused with -32700). Each is answered now:
    invalid JSON with PARSE_ERROR and id null, a request too deep with INVALID_REQUEST and its own id; a
    notification is not answered; the next request is answered as usual."""
    make_workspace(workspace)
    client = RawStdio(workspace)
    try:
        client.initialize("2025-06-18")
        assert client.proc.stdin is not None
        nested: object = "x"
        for _ in range(300):
            nested = [nested]
        client.send({"jsonrpc": "2.0", "id": 40, "method": "tools/call", "params": {"name": "echo", "arguments": {"text": nested}}})
        deep = client.response(40, timeout=30)
        assert deep["error"]["code"] == -32600 and "Invalid request" in deep["error"]["message"], deep
        client.notify("notifications/progress", {"deep": nested})  # a notification: no answer
        client.proc.stdin.write(b"garbage\n" + b"[" * 5000 + b"]" * 5000 + b"\n")
        client.proc.stdin.flush()
        for _ in range(2):
            parse = client.messages.get(timeout=30)
            assert parse["id"] is None and parse["error"]["code"] == -32700, parse
        ok = client.request("tools/call", {"name": "echo", "arguments": {"text": "still here"}})["result"]
        assert ok["structuredContent"] == {"echo": "still here", "length": 10}
        assert client.messages.empty() and client.close() == 0, client.stderr_path.read_text()[-3000:]
    finally:
        client.kill()


def test_closing_stdin_ends_the_server_cleanly_with_its_buffers_delivered(workspace: Path) -> None:
    make_workspace(workspace)
    client = RawStdio(workspace)
    try:
        client.initialize("2025-06-18")
        settings = {"buffer_id": "events", "pass_through_tool": "sink", "max_size": 1000, "flush_interval_seconds": 3600}
        for n in range(3):
            result = client.request("tools/call", {"name": "buffer", "arguments": {"operation": "write", "data": {"n": n}, **settings}})
            assert not result["result"].get("isError"), result
        status = client.request("tools/call", {"name": "buffer", "arguments": {"operation": "status", "buffer_id": "events"}})
        assert status["result"]["structuredContent"]["buffered"] == 3
        assert sink_items(workspace, "events") == []  # nothing delivered yet: an hour's interval, a batch of 1000
        assert client.close(timeout=60) == 0, client.stderr_path.read_text()[-3000:]
    finally:
        client.kill()
    assert sink_items(workspace, "events") == [{"n": 0}, {"n": 1}, {"n": 2}]
    assert all(json.loads(line) for line in client.lines)
    assert "Traceback" not in client.stderr_path.read_text()


async def test_cancelling_a_call_kills_the_tool_process(workspace: Path) -> None:
    make_workspace(workspace)
    pid_file = workspace / "sleepy.pid"
    async with sdk_stdio(workspace) as (session, _inbox):
        async with anyio.create_task_group() as tg:
            tg.start_soon(session.call_tool, "sleepy", {"seconds": 120})
            with anyio.fail_after(60):
                while not pid_file.exists():
                    await anyio.sleep(0.05)
            pid = int(pid_file.read_text())
            assert alive(pid)
            tg.cancel_scope.cancel()  # the SDK client sends notifications/cancelled for the abandoned request
        with anyio.fail_after(30):
            while alive(pid):
                await anyio.sleep(0.05)
        assert (await session.call_tool("echo", {"text": "still here"})).structured_content["echo"] == "still here"
    rows = wait_for(lambda: db_rows(workspace, "SELECT outcome FROM calls WHERE tool_id='sleepy'"), timeout=30)
    assert rows == [{"outcome": "cancelled"}]
    assert db_rows(workspace, "SELECT * FROM failures WHERE tool_id='sleepy'") == []


async def test_progress_every_second_and_one_per_hop_of_a_resilient_call(workspace: Path) -> None:
    make_workspace(workspace)
    ticks: list[tuple[float, str | None]] = []
    hops: list[tuple[float, str | None]] = []

    async def on_tick(progress: float, total: float | None, message: str | None) -> None:
        ticks.append((progress, message))

    async def on_hop(progress: float, total: float | None, message: str | None) -> None:
        hops.append((progress, message))

    async with sdk_stdio(workspace) as (session, _inbox):
        slept = await session.call_tool("sleepy", {"seconds": 3.5, "pid_file": "p.pid"}, progress_callback=on_tick)
        assert slept.structured_content == {"slept": 3.5}
        result = await session.call_tool("resilient_tool_call", {
            "scenario": "convert a temperature from fahrenheit to celsius", "input_data": {"fahrenheit": 212},
            "tags": ["temperature"], "max_attempts": 3}, progress_callback=on_hop)
    assert len(ticks) >= 2 and all(m and m.startswith("sleepy: running for") for _p, m in ticks)
    assert [p for p, _m in ticks] == sorted({p for p, _m in ticks})  # strictly increasing
    assert not result.is_error, result.content
    trace = result.structured_content
    assert trace["tool_id"] == "converter_local" and trace["result"] == {"celsius": 100.0}
    assert [(h["tool_id"], h["outcome"]) for h in trace["hops"]] == [("converter_remote", "exit_code"), ("converter_local", "ok")]
    hop_messages = [m for _p, m in hops if m and m.startswith("hop ")]
    assert len(hop_messages) == 2
    assert hop_messages[0].startswith("hop 1: converter_remote 1.0.0 exit_code") and "converter backend unavailable" in hop_messages[0]
    assert hop_messages[1].startswith("hop 2: converter_local 1.0.0 ok")


async def test_a_2026_client_and_a_pinned_session(workspace: Path) -> None:
    """The SDK's `Client` negotiates the newest revision (per-request envelopes, no handshake)."""
    import mcp_types as types
    from mcp import Client
    from mcp.client.stdio import StdioServerParameters

    from tests.mcp_helpers import REPO, serve_argv, server_env

    make_workspace(workspace)
    params = StdioServerParameters(command=serve_argv(workspace)[0], args=serve_argv(workspace, "--session", "pinned-1")[1:],
                                   cwd=str(REPO), env=server_env())
    async with Client(params, client_info=types.Implementation(name="agent-x", version="2")) as client:
        assert client.protocol_version == "2026-07-28"
        names = {t.name for t in (await client.list_tools()).tools}
        assert "echo" in names and "evolve_tool" not in names
        result = await client.call_tool("echo", {"text": "new"})
        assert result.structured_content == {"echo": "new", "length": 3}
        failed = await client.call_tool("broken", {})
        assert failed.is_error and "boom" in failed.content[0].text
        rows = db_rows(workspace, "SELECT session, label FROM runtimes WHERE session='pinned-1'")
        assert rows and rows[0]["label"] == "mcp: agent-x (stdio)"
    calls = db_rows(workspace, "SELECT DISTINCT session FROM calls WHERE tool_id IN ('echo', 'broken')")
    assert calls == [{"session": "pinned-1"}]


async def test_hidden_tools_stay_out_of_reach_through_resilient_calls_and_buffers(workspace: Path) -> None:
    make_workspace(workspace, settings='[mcp.serve]\nexpose = ["*", "!evolve_tool", "!converter_local", "!sink"]\n')
    async with sdk_stdio(workspace) as (session, _inbox):
        names = {t.name for t in (await session.list_tools()).tools}
        assert "converter_local" not in names and "sink" not in names and "converter_remote" in names
        result = await session.call_tool("resilient_tool_call", {
            "scenario": "convert a temperature from fahrenheit to celsius", "input_data": {"fahrenheit": 212},
            "tags": ["temperature"], "max_attempts": 3})
        assert result.is_error
        hops = {h["tool_id"]: h for h in result.meta["tooldeck/error"]["hops"]}
        assert hops["converter_remote"]["outcome"] == "exit_code"
        # the hidden one is not considered for this client: not tried, not skipped, not named anywhere
        assert "converter_local" not in hops and "converter_local" not in json.dumps(result.model_dump(mode="json"))
        write = await session.call_tool("buffer", {"operation": "write", "buffer_id": "b", "data": 1, "pass_through_tool": "sink"})
        assert write.is_error and "pass_through_tool 'sink' is not served over MCP" in write.content[0].text
    assert db_rows(workspace, "SELECT * FROM calls WHERE tool_id IN ('converter_local', 'sink')") == []


@pytest.mark.slow
def test_a_session_that_ends_at_once_still_exits_0(workspace: Path) -> None:
    """A serving runtime builds its semantic memory in a daemon thread (importing qdrant_client and grpc); a
    client that left within a second or two had the interpreter finalise in the middle of that, and the
    server died of SIGABRT now and then (~1 in 30). Once closed, the server now exits at once instead.

    A Qdrant "server" that accepts connections and never answers keeps the build in progress for its
    10 s request timeout, so every session below ends while it runs.
    """
    import socket
    import threading

    make_workspace(workspace)
    hole = socket.socket()
    hole.bind(("127.0.0.1", 0))
    hole.listen(16)
    held: list[socket.socket] = []
    threading.Thread(target=lambda: [held.append(hole.accept()[0]) for _ in range(16)], daemon=True).start()
    env = server_env(QDRANT_URL=f"http://127.0.0.1:{hole.getsockname()[1]}")
    try:
        for _ in range(3):
            client = RawStdio(workspace, env=env)
            try:
                client.initialize("2025-06-18")
                assert client.close() == 0, client.stderr_path.read_text()[-3000:]
            finally:
                client.kill()
    finally:
        hole.close()
        for conn in held:
            conn.close()
    log = (workspace / ".tooldeck" / "logs" / "tooldeck.log").read_text()
    assert log.count("exiting while the semantic memory build is still in progress") == 3


def test_sigterm_as_soon_as_the_server_says_hello_still_closes_it_cleanly(workspace: Path) -> None:
    import signal

    make_workspace(workspace)
    client = RawStdio(workspace)
    try:
        wait_for(lambda: "tooldeck mcp serve: workspace" in client.stderr_path.read_text(), timeout=60)
        client.proc.send_signal(signal.SIGTERM)
        assert client.proc.wait(60) == 0, client.stderr_path.read_text()[-3000:]
    finally:
        client.kill()
    assert client.stderr_path.read_text().rstrip().endswith("tooldeck mcp serve: stopped")
    assert db_rows(workspace, "SELECT * FROM runtimes") == []


async def test_a_successful_result_reaches_the_client_through_the_one_redaction(workspace: Path) -> None:
    """A key a tool returned is masked for the client, as it always was in an error (issue 20)."""
    make_workspace(workspace)
    secret = "sk-ant-api03-" + "Zq8" * 12
    async with sdk_stdio(workspace) as (session, _inbox):
        leaked = await session.call_tool("echo", {"text": f"key={secret}"})
    assert not leaked.is_error and secret not in leaked.content[0].text
    assert leaked.structured_content["echo"] == "key=***"


async def test_an_unknown_tool_suggests_only_what_this_client_can_call(workspace: Path) -> None:
    """`evolve_tool` is not served (the default expose): a near miss must not name it, but a served tool."""
    from mcp.shared.exceptions import MCPError

    make_workspace(workspace)
    async with sdk_stdio(workspace) as (session, _inbox):
        with pytest.raises(MCPError) as hidden:
            await session.call_tool("evolve_tol", {})
        with pytest.raises(MCPError) as served:
            await session.call_tool("ecoh", {})
    assert "unknown tool 'evolve_tol'" in str(hidden.value) and "evolve_tool" not in str(hidden.value)
    assert "did you mean echo" in str(served.value)


async def test_served_builtins_read_only_inside_file_roots_and_never_secrets(workspace: Path) -> None:
    """An MCP client (loopback, no token needed) read the whole .env through extract_spec_from_file: builtins
    now refuse dotfiles, dot-folders and tooldeck.toml everywhere, and read only `[mcp.serve] file_roots`
    (default specs/) for MCP clients (issue 20)."""
    make_workspace(workspace)
    (workspace / ".env").write_text("PGPASSWORD=hunter22-secret\nANTHROPIC_API_KEY=sk-ant-api03-xyz\n")
    (workspace / ".tooldeck" / "logs").mkdir(parents=True, exist_ok=True)
    (workspace / ".tooldeck" / "logs" / "tooldeck.log").write_text("a log line\n")
    (workspace / "specs").mkdir()
    (workspace / "specs" / "api.md").write_text("# API\n\nThe service returns JSON.\n")
    async with sdk_stdio(workspace) as (session, _inbox):
        async def read(path: str) -> Any:
            return await session.call_tool("extract_spec_from_file", {"file_path": path})

        for path in (".env", "specs/../.env", ".tooldeck/logs/tooldeck.log", "tooldeck.toml"):
            refused = await read(path)
            assert refused.is_error and "hunter22" not in refused.content[0].text, path
            assert "are not read by tools" in refused.content[0].text, (path, refused.content[0].text)
        outside = await read("tools/echo.py")
        assert outside.is_error and "only in [mcp.serve] file_roots (specs/)" in outside.content[0].text
        ok = await read("specs/api.md")
        assert not ok.is_error and "The service returns JSON." in json.dumps(ok.structured_content)


def test_builtins_refuse_secrets_for_every_caller(workspace: Path) -> None:
    from tools.errors import ToolInputError
    from tools.spec import resolve_in_workspace

    (workspace / ".env").write_text("X=1\n")
    (workspace / "notes.md").write_text("# n\n")
    for path in (".env", "sub/../.env", ".tooldeck/tooldeck.db", "tooldeck.toml"):
        with pytest.raises(ToolInputError, match="are not read by tools"):
            resolve_in_workspace(workspace, path)
    assert resolve_in_workspace(workspace, "notes.md") == (workspace / "notes.md").resolve()
