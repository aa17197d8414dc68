"""`notifications/tools/list_changed` from a real `tooldeck mcp serve`: a hot reload, a circuit opening, a session-scoped
promotion and its rollback (seen only by that client), the 2026 listen stream, and the debounce."""

from __future__ import annotations

import os
from pathlib import Path

import anyio
import yaml

from tests.evolution_helpers import greet_answer, greet_tool, settings
from tests.helpers import python_tool
from tests.mcp_helpers import REPO, db_rows, make_workspace, sdk_stdio, serve_argv, server_env
from tests.messages_server import MessagesServer, anthropic_server_fixture, messages_server_fixture  # noqa: F401
from tools.mcp.changes import Debounce

LIST_CHANGED = "notifications/tools/list_changed"


async def until(condition, timeout: float = 60.0, what: str = "condition") -> None:
    with anyio.fail_after(timeout):
        while not condition():
            await anyio.sleep(0.05)


def edit_description(path: Path, description: str) -> None:
    data = yaml.safe_load(path.read_text())
    data["description"] = description
    tmp = path.with_name("." + path.name + ".tmp")
    tmp.write_text(yaml.safe_dump(data, sort_keys=False))
    tmp.replace(path)


async def tools_of(session) -> dict:
    return {t.name: t for t in (await session.list_tools()).tools}


async def test_a_hot_reload_an_added_and_a_removed_tool_are_announced_and_listed(workspace: Path) -> None:
    make_workspace(workspace)
    async with sdk_stdio(workspace) as (session, inbox):
        assert (await tools_of(session))["echo"].description == "Echo a text back with its length"
        assert inbox.count(LIST_CHANGED) == 0  # the catalog loading at start is not a change to announce
        edit_description(workspace / "tools" / "echo.yaml", "Echo, now reloaded")
        await until(lambda: inbox.count(LIST_CHANGED) > 0, what="list_changed after the edit")
        assert (await tools_of(session))["echo"].description == "Echo, now reloaded"
        before = inbox.count(LIST_CHANGED)
        python_tool(workspace / "tools", "added_later", "def run(data):\n    return {'added': True}\n")
        await until(lambda: inbox.count(LIST_CHANGED) > before, what="list_changed after a tool was added")
        assert "added_later" in await tools_of(session)
        assert (await session.call_tool("added_later", {})).structured_content == {"added": True}
        before = inbox.count(LIST_CHANGED)
        (workspace / "tools" / "added_later.yaml").unlink()
        await until(lambda: inbox.count(LIST_CHANGED) > before, what="list_changed after a tool was removed")
        assert "added_later" not in await tools_of(session)


async def test_an_opening_circuit_takes_the_tool_off_the_list(workspace: Path) -> None:
    make_workspace(workspace, settings="[circuit]\nconsecutive_failures = 2\ncooldown_seconds = 3600\n")
    async with sdk_stdio(workspace) as (session, inbox):
        assert "broken" in await tools_of(session)
        before = inbox.count(LIST_CHANGED)
        for _ in range(2):
            assert (await session.call_tool("broken", {})).is_error
        await until(lambda: inbox.count(LIST_CHANGED) > before, what="list_changed after the circuit opened")
        assert "broken" not in await tools_of(session)
        refused = await session.call_tool("broken", {})  # a client with a stale list gets the reason
        assert refused.is_error and "circuit open" in refused.content[0].text


async def test_a_session_promotion_reaches_that_client_only_and_never_before_approval(
        workspace: Path, make_runtime, anthropic_server: MessagesServer) -> None:
    from tools.evolution.evolve import evolve_tool
    from tools.evolution.review import approve, rollback

    settings(workspace)
    greet_tool(workspace)
    spaced = {"name": "ada lovelace"}
    async with sdk_stdio(workspace, name="ide-a") as (a, inbox_a), sdk_stdio(workspace, name="ide-b") as (b, inbox_b):
        assert (await tools_of(a))["greet"].meta == {"tooldeck/version": "1.0.0"}
        rows = db_rows(workspace, "SELECT session FROM runtimes WHERE label='mcp: ide-a (stdio)'")
        session_a = rows[0]["session"]
        rt = make_runtime()
        anthropic_server.reply_tool_use("write_tool_version", greet_answer())
        proposal = await anyio.to_thread.run_sync(lambda: evolve_tool(rt, "greet", "name must be letters only", "Allow spaces"))
        assert proposal["status"] == "awaiting_review", proposal.get("failure")
        # wait until a server has loaded the new version (its catalog writes tool_status): still not served
        await until(lambda: db_rows(workspace, "SELECT 1 FROM tool_status WHERE tool_id='greet' AND version='1.1.0'"
                                               " AND status='ready' AND pid != ?", (os.getpid(),)), what="1.1.0 loaded")
        assert (await tools_of(a))["greet"].meta == {"tooldeck/version": "1.0.0"}
        assert (await a.call_tool("greet", spaced)).is_error

        before_a, before_b = inbox_a.count(LIST_CHANGED), inbox_b.count(LIST_CHANGED)
        approve(rt, proposal["id"], session_a, "tester", proposal["diff_sha256"])
        await until(lambda: inbox_a.count(LIST_CHANGED) > before_a, what="list_changed after the promotion")
        assert (await tools_of(a))["greet"].meta == {"tooldeck/version": "1.1.0"}
        assert (await a.call_tool("greet", spaced)).structured_content == {"greeting": "hello ada lovelace"}
        await until(lambda: inbox_b.count(LIST_CHANGED) > before_b, what="b is told too (a promotion changed)")
        assert (await tools_of(b))["greet"].meta == {"tooldeck/version": "1.0.0"}  # scoped to a's session
        assert (await b.call_tool("greet", spaced)).is_error

        before_a = inbox_a.count(LIST_CHANGED)
        rollback(rt, "greet", "1.0.0", session_a, "tester")
        await until(lambda: inbox_a.count(LIST_CHANGED) > before_a, what="list_changed after the rollback")
        assert (await tools_of(a))["greet"].meta == {"tooldeck/version": "1.0.0"}


async def test_a_2026_client_hears_of_changes_on_its_listen_stream(workspace: Path) -> None:
    import mcp_types as types
    from mcp import Client
    from mcp.client.stdio import StdioServerParameters
    from mcp.shared.subscriptions import ToolsListChanged

    make_workspace(workspace)
    params = StdioServerParameters(command=serve_argv(workspace)[0], args=serve_argv(workspace)[1:], cwd=str(REPO), env=server_env())
    async with Client(params, client_info=types.Implementation(name="agent-y", version="1")) as client:
        assert "echo" in {t.name for t in (await client.list_tools()).tools}
        async with client.listen(tools_list_changed=True) as subscription:
            edit_description(workspace / "tools" / "echo.yaml", "Echo for 2026")
            with anyio.fail_after(60):
                event = await subscription.__anext__()
        assert isinstance(event, ToolsListChanged)
        echo = next(t for t in (await client.list_tools()).tools if t.name == "echo")
        assert echo.description == "Echo for 2026"


async def test_a_burst_of_reloads_is_announced_a_few_times_not_once_per_edit(workspace: Path) -> None:
    make_workspace(workspace)
    async with sdk_stdio(workspace) as (session, inbox):
        await session.list_tools()
        for n in range(12):
            edit_description(workspace / "tools" / "echo.yaml", f"edit {n}")
            await anyio.sleep(0.03)  # twelve separate saves, as an editor makes them
        described: list[str] = []

        async def refresh() -> None:
            described.append((await tools_of(session))["echo"].description)

        with anyio.fail_after(60):
            while not (described and described[-1] == "edit 11" and inbox.count(LIST_CHANGED) > 0):
                await refresh()
                await anyio.sleep(0.1)
        assert 1 <= inbox.count(LIST_CHANGED) < 12


def test_the_debounce_sends_at_most_once_a_second_and_never_drops_the_last_change() -> None:
    d = Debounce(1.0)
    assert not d.due(0.0)
    d.changed()
    assert d.due(0.0)  # the first change goes at once
    d.changed()
    assert not d.due(0.4) and not d.due(0.99)
    d.changed()
    assert d.due(1.0)  # the changes inside the second become one, sent when it ends
    assert not d.due(5.0)  # nothing new: nothing sent
    assert d.sent == 2
