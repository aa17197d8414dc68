"""Tool search for MCP clients (issue 25): an endpoint with `tool_search = true` lists `search_tools`, its pinned
tools and what each client session found with it; a search ranks by the runtime's own selection, within what the
endpoint serves, and tells that session alone that its list changed. Real servers in their own processes, driven
by the SDK's clients over stdio and Streamable HTTP."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import anyio
import pytest

from tests.buffer_helpers import wait_for
from tests.helpers import python_tool
from tests.mcp_helpers import REPO, HttpServer, db_rows, make_workspace, sdk_stdio, server_env
from tests.test_mcp_changes import LIST_CHANGED, edit_description, until
from tests.test_mcp_endpoints import sdk_http, settings_of
from tests.test_mcp_typescript import ts_sdk_fixture  # noqa: F401 - the pinned TypeScript SDK (fixture ts_sdk)
from tools.errors import UsageError

#: `find` searches everything but the local converter (hidden), pins echo and describes shout its own way;
#: the default endpoint lists the whole catalog as before
SEARCH = '''
[mcp.serve.endpoints.find]
tool_search = true
expose = ["*"]
hide = ["converter_local", "evolve_tool"]
pinned = ["echo"]

[mcp.serve.endpoints.find.tools.shout]
description = "Shout a text in capital letters, loudly"
'''
TEMPERATURE = "convert a temperature from fahrenheit to celsius"


def found_names(result: Any) -> list[str]:
    assert not result.is_error, result.content[0].text
    return [t["name"] for t in result.structured_content["tools"]]


# -- the configuration --------------------------------------------------------------------------------------------

def test_tool_search_and_pinned_are_endpoint_keys_inherited_from_the_top_level() -> None:
    from tools.mcp.config import load_serve_config

    config, warnings = load_serve_config(settings_of('[mcp.serve]\ntool_search = true\npinned = ["echo", "echo"]\n'
                                                     '[mcp.serve.endpoints.plain]\n'
                                                     '[mcp.serve.endpoints.full]\ntool_search = false\npinned = []\n'))
    assert warnings == []
    assert config.tool_search and config.pinned == ("echo",)
    assert config.endpoint("plain").tool_search and config.endpoint("plain").pinned == ("echo",)
    assert not config.endpoint("full").tool_search and config.endpoint("full").pinned == ()
    default, _ = load_serve_config(settings_of(""))
    assert not default.tool_search and default.pinned == ()


@pytest.mark.parametrize(("text", "words"), [
    ('[mcp.serve.endpoints.find]\ntool_search = "yes"\n',
     ["tooldeck.toml: [mcp.serve.endpoints.find] tool_search must be true or false, got 'yes'"]),
    ('[mcp.serve]\ntool_search = 1\n', ["tooldeck.toml: [mcp.serve] tool_search must be true or false, got 1"]),
    ('[mcp.serve.endpoints.find]\npinned = ["echo*"]\n',
     ["tooldeck.toml: [mcp.serve.endpoints.find] pinned: 'echo*' is not a tool id"]),
    ('[mcp.serve.endpoints.find]\npinned = "echo"\n', ["[mcp.serve.endpoints.find] pinned must be a list of non-empty strings"]),
])
def test_a_bad_tool_search_setting_names_the_file_and_the_key(text: str, words: list[str]) -> None:
    from tools.mcp.config import load_serve_config

    with pytest.raises(UsageError) as caught:
        load_serve_config(settings_of(text))
    for word in words:
        assert word in caught.value.message, caught.value.message


def test_the_found_set_is_bounded_and_keeps_the_order_of_first_finding() -> None:
    from tools.mcp.sessions import FoundTools

    found = FoundTools(bound=3)
    assert found.add(["a", "b"]) and not found.add(["b", "a"])
    assert found.add(["c", "d"]) and found.ids() == ["b", "c", "d"] and len(found) == 3


# -- over stdio -----------------------------------------------------------------------------------------------------

async def test_a_search_endpoint_lists_what_the_session_found_and_tells_it(workspace: Path) -> None:
    from mcp.shared.exceptions import MCPError

    make_workspace(workspace, settings=SEARCH)
    async with sdk_stdio(workspace, extra=("--endpoint", "find")) as (session, inbox):
        listed = (await session.list_tools()).tools
        assert [t.name for t in listed] == ["echo", "search_tools"]
        search = listed[1]
        assert search.input_schema["required"] == ["query"] and search.output_schema is not None
        result = await session.call_tool("search_tools", {"query": TEMPERATURE, "limit": 3})
        names = found_names(result)
        assert "converter_remote" in names and "converter_local" not in names
        found = {t["name"]: t for t in result.structured_content["tools"]}
        assert found["converter_remote"]["input_schema"]["type"] == "object"
        assert json.loads(result.content[0].text) == result.structured_content
        await until(lambda: inbox.count(LIST_CHANGED) == 1, timeout=30, what="list_changed after the search")
        assert {t.name for t in (await session.list_tools()).tools} == {"search_tools", "echo", *names}
        # found again: the list did not grow, so no second notification
        assert "converter_remote" in found_names(await session.call_tool("search_tools", {"query": TEMPERATURE, "limit": 3}))
        # the endpoint's own description is the one searched and returned
        loud = await session.call_tool("search_tools", {"query": "shout capital letters loudly"})
        shout = next(t for t in loud.structured_content["tools"] if t["name"] == "shout")
        assert shout["description"] == "Shout a text in capital letters, loudly"
        await until(lambda: inbox.count(LIST_CHANGED) == 2, timeout=30, what="list_changed after the second find")
        # a runtime builtin is found too (a resilient call tries one only when a tag asks; a client chooses itself)
        assert "buffer" in found_names(await session.call_tool("search_tools", {"query": "buffer writes and flush them in batches"}))
        await until(lambda: inbox.count(LIST_CHANGED) == 3, timeout=30, what="list_changed after finding the buffer")
        await anyio.sleep(1.5)
        assert inbox.count(LIST_CHANGED) == 3
        # a tool served but not found is called all the same; a hidden one is refused
        assert "sleepy" not in {t.name for t in (await session.list_tools()).tools}
        called = await session.call_tool("broken", {})
        assert called.is_error and "boom: the disk is full" in called.content[0].text
        with pytest.raises(MCPError) as refused:
            await session.call_tool("converter_local", {"fahrenheit": 212})
        assert "is not served over MCP ([mcp.serve.endpoints.find] expose)" in str(refused.value)
    assert db_rows(workspace, "SELECT * FROM calls WHERE tool_id='converter_local'") == []


async def test_a_pinned_tool_the_endpoint_does_not_serve_is_a_warning_and_not_listed(workspace: Path) -> None:
    make_workspace(workspace, settings=SEARCH.replace('pinned = ["echo"]', 'pinned = ["echo", "converter_local", "nosuch"]'))
    async with sdk_stdio(workspace, extra=("--endpoint", "find")) as (session, _inbox):
        assert [t.name for t in (await session.list_tools()).tools] == ["echo", "search_tools"]

        def warnings() -> list[str]:
            rows = db_rows(workspace, "SELECT payload FROM events WHERE kind='runtime.warning'")
            return [r["payload"] for r in rows if "pinned" in r["payload"]]

        found = wait_for(lambda: len(warnings()) == 2 and warnings(), timeout=30)
    assert any("[mcp.serve.endpoints.find] pinned: converter_local is not served by this endpoint (expose / hide); "
               "it is not listed" in w for w in found), found
    assert any("[mcp.serve.endpoints.find] pinned: nosuch is no tool of the catalog; it is not listed" in w for w in found)


async def test_a_hidden_tool_is_never_returned_by_a_search(workspace: Path) -> None:
    make_workspace(workspace, settings=SEARCH)
    async with sdk_stdio(workspace, extra=("--endpoint", "find")) as (session, _inbox):
        for query in ("Convert temperatures from fahrenheit to celsius", "converter local", "temperature conversion"):
            result = await session.call_tool("search_tools", {"query": query, "limit": 50})
            assert not result.is_error, result.content[0].text
            assert "converter_local" not in json.dumps(result.model_dump(mode="json")), query
            assert "evolve_tool" not in found_names(result)
        assert "converter_local" not in {t.name for t in (await session.list_tools()).tools}


#: one tool the gateway serves among 60 it hides, all described alike: the hidden ones outrank it by both the
#: embedding and the words, past the selection's pool of 32
CROWD = '''[mcp.serve.endpoints.gateway]
tool_search = true
expose = ["tag:public", "resilient_tool_call"]
'''
CSV_QUERY = "parse csv text into rows of records"


def crowded_workspace(ws: Path) -> Path:
    tools = ws / "tools"
    python_tool(tools, "csv_reader", "def run(data):\n    return {'rows': [data['text'].split(',')]}\n",
                description="Read comma separated values and return a list of records", tags=["public"],
                input_schema={"text": {"type": "string", "required": True}})
    for n in range(60):
        python_tool(tools, f"internal_csv_{n:02d}", "def run(data):\n    return {'internal': True}\n",
                    description=f"Parse CSV text into rows of records (internal copy {n})", tags=["internal"],
                    input_schema={"text": {"type": "string", "required": True}})
    (ws / "tooldeck.toml").write_text(CROWD)
    return ws


async def test_a_served_tool_is_found_among_many_hidden_ones_described_alike(workspace: Path) -> None:
    """The selection took the catalog's best 32 hits, then dropped those the endpoint hides: 60 hidden tools
    described alike filled the pool, and a search for 5 found nothing (for 50, a pool of 200, it found the one
    served). Now a narrowed selection's queries answer from the tools the endpoint serves."""
    crowded_workspace(workspace)
    async with sdk_stdio(workspace, extra=("--endpoint", "gateway")) as (session, _inbox):
        for limit in (1, 5, 50):
            result = await session.call_tool("search_tools", {"query": CSV_QUERY, "limit": limit})
            assert found_names(result) == ["csv_reader"], limit
            assert "internal_csv" not in json.dumps(result.model_dump(mode="json"))
        assert {t.name for t in (await session.list_tools()).tools} == {"search_tools", "csv_reader"}


async def test_a_resilient_call_through_an_endpoint_finds_its_tool_among_many_hidden_ones(workspace: Path) -> None:
    """The same selection picks a resilient call's candidates: through the endpoint, the hidden copies filled its
    pool and the call found no candidate at all."""
    crowded_workspace(workspace)
    async with sdk_stdio(workspace, extra=("--endpoint", "gateway")) as (session, _inbox):
        resilient = await session.call_tool("resilient_tool_call", {"scenario": CSV_QUERY, "input_data": {"text": "a,b"}})
        assert not resilient.is_error, resilient.content[0].text
        trace = resilient.structured_content
        assert trace["tool_id"] == "csv_reader" and trace["result"] == {"rows": [["a", "b"]]}
        assert "internal_csv" not in json.dumps(resilient.model_dump(mode="json"))
    assert db_rows(workspace, "SELECT tool_id FROM calls WHERE tool_id LIKE 'internal_csv%'") == []


@pytest.mark.parametrize(("arguments", "words"), [
    ({"query": ""}, "query must be a non-empty string"),
    ({"query": "   "}, "query must be a non-empty string"),
    ({}, "query must be a non-empty string, got None"),
    ({"query": 42}, "query must be a non-empty string, got 42"),
    ({"query": "echo", "limit": 0}, "limit must be an integer from 1 to 50, got 0"),
    ({"query": "echo", "limit": 1000}, "limit must be an integer from 1 to 50, got 1000"),
    ({"query": "echo", "limit": "5"}, "limit must be an integer from 1 to 50, got '5'"),
    ({"query": "echo", "limt": 5}, "unknown argument 'limt' (arguments: query, limit)"),
])
def test_bad_search_arguments_are_an_error_result(arguments: dict[str, Any], words: str) -> None:
    from tools.mcp.search import check_arguments

    with pytest.raises(UsageError) as caught:
        check_arguments(arguments)
    assert f"search_tools: {words}" in caught.value.message


async def test_bad_search_arguments_over_mcp_answer_is_error_and_list_nothing(workspace: Path) -> None:
    make_workspace(workspace, settings=SEARCH)
    async with sdk_stdio(workspace, extra=("--endpoint", "find")) as (session, inbox):
        for arguments, words in (({"query": ""}, "query must be a non-empty string"),
                                 ({"query": "echo", "limit": 0}, "limit must be an integer from 1 to 50"),
                                 ({"query": "echo", "limit": 1000}, "limit must be an integer from 1 to 50"),
                                 ({"query": ["echo"]}, "query must be a non-empty string")):
            result = await session.call_tool("search_tools", arguments)
            assert result.is_error and words in result.content[0].text, (arguments, result)
            assert result.structured_content is None
        assert [t.name for t in (await session.list_tools()).tools] == ["echo", "search_tools"]
        assert inbox.count(LIST_CHANGED) == 0


async def test_the_default_endpoint_lists_every_tool_and_has_no_search(workspace: Path) -> None:
    from mcp.shared.exceptions import MCPError

    make_workspace(workspace, settings=SEARCH)
    async with sdk_stdio(workspace) as (session, _inbox):
        names = {t.name for t in (await session.list_tools()).tools}
        assert {"echo", "shout", "converter_local"} <= names and "search_tools" not in names
        with pytest.raises(MCPError, match="unknown tool 'search_tools'"):
            await session.call_tool("search_tools", {"query": "echo"})


# -- over HTTP: two sessions of one endpoint --------------------------------------------------------------------------

async def test_one_sessions_search_changes_its_list_only(workspace: Path) -> None:
    make_workspace(workspace, settings=SEARCH)
    server = HttpServer(workspace)
    try:
        base = server.wait_listening() + "/find"
        async with sdk_http(base, "finder") as (finder, finder_inbox), sdk_http(base, "bystander") as (other, other_inbox):
            assert [t.name for t in (await other.list_tools()).tools] == ["echo", "search_tools"]
            names = found_names(await finder.call_tool("search_tools", {"query": TEMPERATURE}))
            assert "converter_remote" in names
            await until(lambda: finder_inbox.count(LIST_CHANGED) == 1, timeout=30, what="list_changed to the finder")
            assert "converter_remote" in {t.name for t in (await finder.list_tools()).tools}
            await anyio.sleep(2.5)  # the change watcher's recheck and debounce: nothing for the other session
            assert other_inbox.count(LIST_CHANGED) == 0
            assert [t.name for t in (await other.list_tools()).tools] == ["echo", "search_tools"]
            # a reload of a tool nobody found is no change to these lists; of a found one, it is
            edit_description(workspace / "tools" / "shout.yaml", "Shout, reloaded")
            await anyio.sleep(3.0)
            assert finder_inbox.count(LIST_CHANGED) == 1 and other_inbox.count(LIST_CHANGED) == 0
            edit_description(workspace / "tools" / "converter_remote.yaml", "Convert, reloaded")
            await until(lambda: finder_inbox.count(LIST_CHANGED) == 2, timeout=30, what="list_changed for a found tool")
            assert {t.name: t for t in (await finder.list_tools()).tools}["converter_remote"].description == "Convert, reloaded"
    finally:
        assert server.stop() == 0, "".join(server.stderr)[-2000:]


@pytest.mark.slow
def test_the_typescript_client_searches_and_hears_its_list_change(ts_sdk: Path, workspace: Path) -> None:
    """The official TypeScript SDK client checks structured content against the tool's output schema: the search's
    answer must match the one `search_tools` declares."""
    make_workspace(workspace, settings=SEARCH)
    server = HttpServer(workspace)
    try:
        url = server.wait_listening() + "/find"
        done = subprocess.run(["node", str(REPO / "tests" / "mcp_ts" / "search_client.mjs"), str(ts_sdk), url, TEMPERATURE],
                              capture_output=True, text=True, timeout=240, cwd=REPO, env=server_env())
    finally:
        assert server.stop() == 0, "".join(server.stderr)[-2000:]
    steps = {row.pop("step"): row for row in map(json.loads, (x for x in done.stdout.splitlines() if x.startswith("{")))}
    assert done.returncode == 0 and "closed" in steps, (done.stdout[-3000:], done.stderr[-3000:])
    assert steps["list"] == {"names": ["echo", "search_tools"]}
    search = steps["search"]
    assert search["ok"] and not search["isError"] and "converter_remote" in search["found"], search
    assert "converter_local" not in search["text"]
    changed = steps["list_changed"]
    assert changed["notified"] == 1 and changed["names"] == sorted(["search_tools", "echo", *search["found"]]), changed
    bad = steps["bad_limit"]
    assert bad["ok"] and bad["isError"] and "limit must be an integer from 1 to 50, got 0" in bad["text"], bad


# -- at catalog scale: the change watcher walks the catalog only when a list could have changed ----------------------

def test_a_recheck_walks_the_catalog_only_when_a_list_could_have_change(workspace: Path, make_runtime) -> None:
    """A served list's signature walks every tool (about 1 s at 100,000), and the watcher rechecked it every second
    with nothing said. Now a recheck compares the cheap fingerprint first; an open circuit turning half-open when its
    cooldown ends (which no event says) still moves it."""
    import time

    from tools.errors import ToolError
    from tools.mcp import load_serve_config
    from tools.mcp.changes import RECHECK_SECONDS, ChangeWatcher
    from tools.mcp.endpoints import Endpoints
    from tools.mcp.listing import served_tools, signature

    make_workspace(workspace, settings="[circuit]\nconsecutive_failures = 2\ncooldown_seconds = 2\n")
    runtime = make_runtime(serve=True)
    assert runtime.catalog.finished.wait(60)
    config, _ = load_serve_config(runtime.settings)
    endpoints = Endpoints(runtime, config, (config,), transport="memory", pinned=None)
    try:
        watcher = ChangeWatcher(runtime, {"": lambda: signature(runtime, config, runtime.own_session)}, endpoints.fingerprint)
        watcher.prime()

        def recheck() -> set[str]:
            watcher.checked -= RECHECK_SECONDS  # a recheck is due
            return watcher.poll()

        walks = watcher.walks
        for _ in range(3):
            assert recheck() == set()
        assert watcher.walks == walks  # nothing moved: the catalog was not walked
        for _ in range(2):
            with pytest.raises(ToolError):
                runtime.call("broken", {})
        assert wait_for(lambda: recheck() == {""}, timeout=30)  # the circuit opened (an event says so)
        assert "broken" not in {t.tool_id for t in served_tools(runtime, config, runtime.own_session)}
        watcher.after = runtime.events.last_id()  # from here on, no event: only the cooldown ends
        time.sleep(2.2)
        walks = watcher.walks
        assert recheck() == {""} and watcher.walks == walks + 1  # half-open: listed again, no event needed
        assert "broken" in {t.tool_id for t in served_tools(runtime, config, runtime.own_session)}
    finally:
        endpoints.close("test over")
