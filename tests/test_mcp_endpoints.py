"""Named MCP endpoints (`[mcp.serve.endpoints.NAME]`, issue 21): each serves its own tools (ids, globs, tags, hide)
with its own descriptions, titles and argument defaults, at `/mcp/NAME` over HTTP and `mcp serve --endpoint NAME`
over stdio, and notifies its own clients of list changes. A client of one endpoint reaches no tool the endpoint
does not serve: not by a call, a listing, a "did you mean", a resilient call's hops, nor a buffer's pass-through.
Real servers in their own processes, driven by the SDK's clients."""

from __future__ import annotations

import json
import subprocess
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import pytest

from tests.buffer_helpers import sink_items, wait_for
from tests.mcp_helpers import REPO, HttpServer, Inbox, db_rows, make_workspace, sdk_stdio, serve_argv, server_env
from tests.test_mcp_changes import LIST_CHANGED, edit_description, until
from tests.test_mcp_typescript import ts_sdk_fixture  # noqa: F401 - the pinned TypeScript SDK (fixture ts_sdk)
from tools.errors import UsageError

#: `temps` serves the temperature tools (by tag) but the local converter, echo with its own text and a default,
#: the resilient call and the buffer; `wide` serves everything but the local converter.
ENDPOINTS = '''
[mcp.serve]
buffer_operations = ["write", "flush", "status", "configure", "dead_letters"]

[mcp.serve.endpoints.temps]
expose = ["tag:temperature", "echo", "resilient_tool_call", "buffer"]
hide = ["converter_local"]

[mcp.serve.endpoints.temps.tools.echo]
description = "Echo a reading back"
title = "Echo (temperature desk)"
defaults = { text = "no reading" }

[mcp.serve.endpoints.wide]
expose = ["*"]
hide = ["converter_local"]
'''


def settings_of(text: str) -> Any:
    import tomllib

    from tools.settings import Settings

    return Settings(tomllib.loads(text), Path("tooldeck.toml"))


# -- the configuration --------------------------------------------------------------------------------------------

def test_an_endpoint_inherits_the_top_level_keys_it_does_not_set() -> None:
    from tools.mcp.config import load_serve_config

    top_level = '[mcp.serve.tools.echo]\ntitle = "Echo (everyone)"\n[mcp.serve.endpoints.plain]\n'
    config, warnings = load_serve_config(settings_of(ENDPOINTS + top_level))
    assert warnings == []
    assert [e.name for e in config.endpoints] == ["temps", "wide", "plain"]
    plain, temps = config.endpoint("plain"), config.endpoint("temps")
    assert plain.expose == config.expose == ("*", "!evolve_tool")  # the defaults, through the top level
    assert plain.buffer_operations == temps.buffer_operations == config.buffer_operations
    assert plain.file_roots == ("specs",) and plain.path == "/mcp/plain" and config.path == "/mcp"
    assert temps.exposed("converter_remote", ["temperature"]) and not temps.exposed("converter_local", ["temperature"])
    assert temps.exposed("echo") and not temps.exposed("shout") and not temps.exposed("converter_remote")  # no tags: out
    override = temps.override("echo")
    assert override is not None and override.defaults == {"text": "no reading"} and override.title == "Echo (temperature desk)"
    assert config.endpoint(None) is config and config.endpoint("") is config
    inherited = plain.override("echo")  # the top level's overrides; temps set its own `tools`
    assert inherited is not None and inherited.title == "Echo (everyone)" and inherited.defaults == {}
    assert config.override("echo") == inherited and config.endpoint("wide").override("echo") == inherited


@pytest.mark.parametrize(("extra", "words"), [
    ('[mcp.serve.endpoints.temps]\nexpsoe = ["*"]\n', ["unknown key 'expsoe'", "expose, hide, buffer_operations"]),
    ('[mcp.serve.endpoints.temps]\nallowed_hosts = ["x"]\n', ["'allowed_hosts'", "set it in [mcp.serve]"]),
    ('[mcp.serve.endpoints."a.b"]\n', ["[mcp.serve.endpoints.a.b]", "letters, digits"]),
    ('[mcp.serve.endpoints.".."]\n', ["letters, digits"]),
    ('[mcp.serve.endpoints.temps]\nhide = ["!echo"]\n', ["hide lists what to remove"]),
    ('[mcp.serve.endpoints.temps]\nexpose = ["tag:"]\n', ["names no tag"]),
    ('[mcp.serve.endpoints.temps.tools.echo]\ndefault = {}\n', ["[mcp.serve.endpoints.temps.tools.echo]",
                                                                 "unknown key 'default'", "description, title, defaults"]),
    ('[mcp.serve.endpoints.temps.tools.echo]\ntitle = 3\n', ["title must be a non-empty string"]),
    ('[mcp.serve.endpoints.temps]\nbuffer_operations = ["nuke"]\n', ["unknown operation 'nuke'"]),
])
def test_a_bad_endpoint_table_is_an_error_naming_what_is_known(extra: str, words: list[str]) -> None:
    from tools.mcp.config import load_serve_config

    with pytest.raises(UsageError) as caught:
        load_serve_config(settings_of(extra))
    for word in words:
        assert word in caught.value.message, caught.value.message


def test_an_override_holding_a_secret_is_refused_without_showing_it() -> None:
    from tools.mcp.config import load_serve_config

    key = "sk-ant-api03-" + "Qx7" * 12
    for table in (f'defaults = {{ text = "{key}" }}', 'defaults = { api_key = "plain-words-here" }', f'description = "use {key}"'):
        with pytest.raises(UsageError) as caught:
            load_serve_config(settings_of(f"[mcp.serve.endpoints.temps.tools.echo]\n{table}\n"))
        assert "holds a secret" in caught.value.message and key not in caught.value.message
        assert "plain-words-here" not in caught.value.message


def test_an_unknown_endpoint_names_those_that_exist(workspace: Path) -> None:
    make_workspace(workspace, settings=ENDPOINTS)
    done = subprocess.run(serve_argv(workspace, "--endpoint", "nope"), stdin=subprocess.DEVNULL, capture_output=True,
                          text=True, timeout=120, cwd=REPO, env=server_env())
    assert done.returncode == 2 and "unknown MCP endpoint 'nope' (endpoints: temps, wide)" in done.stderr, done.stderr[-2000:]
    assert "stopped" not in done.stderr  # it never started: the one line says why
    done = subprocess.run(serve_argv(workspace, "--endpoint", "temps", "--http", "127.0.0.1:0"), stdin=subprocess.DEVNULL,
                          capture_output=True, text=True, timeout=120, cwd=REPO, env=server_env())
    assert done.returncode == 2 and "--endpoint applies to stdio only" in done.stderr, done.stderr[-2000:]
    done = subprocess.run(serve_argv(workspace, "--endpoint", "../x"), stdin=subprocess.DEVNULL, capture_output=True,
                          text=True, timeout=120, cwd=REPO, env=server_env())
    assert done.returncode == 2 and "an endpoint name is" in done.stderr, done.stderr[-2000:]


def test_an_endpoint_default_holding_a_served_secret_stops_the_server_without_showing_it(workspace: Path) -> None:
    """The value an imported MCP server's `${VAR}` reads is a secret of the process: an endpoint cannot hand it to
    its clients (in the input schema) nor to a tool, and the refusal does not repeat it."""
    token = "svc-" + "d41c8e" * 4
    make_workspace(workspace, settings=ENDPOINTS + '[mcp.servers.svc]\ncommand = "true"\nenv = { SVC_TOKEN = "${SVC_TOKEN}" }\n'
                   f'[mcp.serve.endpoints.temps.tools.shout]\ndefaults = {{ input = "{token}" }}\n')
    done = subprocess.run(serve_argv(workspace, "--endpoint", "temps"), stdin=subprocess.DEVNULL, capture_output=True,
                          text=True, timeout=120, cwd=REPO, env=server_env(SVC_TOKEN=token))
    assert done.returncode == 2, done.stderr[-2000:]
    assert "[mcp.serve.endpoints.temps.tools.shout]: holds a secret" in done.stderr and token not in done.stderr
    logs = "".join(p.read_text() for p in (workspace / ".tooldeck" / "logs").glob("*.log"))
    assert token not in logs and token not in (workspace / ".tooldeck" / "tooldeck.db").read_bytes().decode("latin-1")


# -- over stdio ---------------------------------------------------------------------------------------------------

async def test_a_stdio_endpoint_serves_its_tools_with_its_own_text_and_defaults(workspace: Path) -> None:
    from mcp.shared.exceptions import MCPError

    make_workspace(workspace, settings=ENDPOINTS)
    async with sdk_stdio(workspace, extra=("--endpoint", "temps")) as (session, _inbox):
        tools = {t.name: t for t in (await session.list_tools()).tools}
        assert set(tools) == {"converter_remote", "echo", "resilient_tool_call", "buffer"}
        labels = {r["label"] for r in db_rows(workspace, "SELECT label FROM runtimes")}
        assert {"mcp serve (stdio, endpoint temps)", "mcp: test-ide (stdio, endpoint temps)"} <= labels, labels
        echo = tools["echo"]
        assert echo.description == "Echo a reading back" and echo.title == "Echo (temperature desk)"
        assert echo.input_schema["properties"]["text"]["default"] == "no reading"
        assert "text" not in echo.input_schema.get("required", [])
        assert (await session.call_tool("echo", {})).structured_content == {"echo": "no reading", "length": 10}
        assert (await session.call_tool("echo", {"text": "21 C"})).structured_content == {"echo": "21 C", "length": 4}
        for name in ("shout", "converter_local", "evolve_tool"):
            with pytest.raises(MCPError) as refused:
                await session.call_tool(name, {"text": "x"})
            assert "is not served over MCP ([mcp.serve.endpoints.temps] expose)" in str(refused.value), name
        # the resilient call falls back from the failing remote converter; the local one is hidden here
        result = await session.call_tool("resilient_tool_call", {
            "scenario": "convert a temperature from fahrenheit to celsius", "input_data": {"fahrenheit": 212},
            "tags": ["temperature"], "max_attempts": 3})
        assert result.is_error
        hops = {h["tool_id"]: h for h in result.meta["tooldeck/error"]["hops"]}
        assert hops["converter_remote"]["outcome"] == "exit_code"
        # the hidden one is not considered for this client: not tried, not skipped, not named anywhere
        assert "converter_local" not in hops and "converter_local" not in json.dumps(result.model_dump(mode="json"))
        write = await session.call_tool("buffer", {"operation": "write", "buffer_id": "b", "data": 1,
                                                   "pass_through_tool": "sink"})
        assert write.is_error and "pass_through_tool 'sink' is not served" in write.content[0].text
    assert db_rows(workspace, "SELECT * FROM calls WHERE tool_id IN ('converter_local', 'sink', 'shout')") == []
    rows = db_rows(workspace, "SELECT label FROM runtimes")  # gone with the client; its label said the endpoint
    assert rows == []
    log = (workspace / ".tooldeck" / "logs" / "tooldeck.log").read_text()
    assert "stdio, endpoint temps)" in log


async def test_the_default_endpoint_is_unchanged_beside_named_ones(workspace: Path) -> None:
    make_workspace(workspace, settings=ENDPOINTS)
    async with sdk_stdio(workspace) as (session, _inbox):
        tools = {t.name: t for t in (await session.list_tools()).tools}
        assert {"shout", "converter_local", "sink", "echo"} <= set(tools) and "evolve_tool" not in tools
        assert tools["echo"].description == "Echo a text back with its length"
        assert tools["echo"].input_schema["required"] == ["text"]


async def test_an_override_of_a_tool_the_endpoint_does_not_serve_is_a_warning(workspace: Path) -> None:
    make_workspace(workspace, settings=ENDPOINTS + '[mcp.serve.endpoints.temps.tools.shout]\ntitle = "Loud"\n'
                   '[mcp.serve.endpoints.temps.tools.nosuch]\ntitle = "Ghost"\n')
    async with sdk_stdio(workspace, extra=("--endpoint", "temps")) as (session, _inbox):
        assert "shout" not in {t.name for t in (await session.list_tools()).tools}

        def warnings() -> list[str]:
            rows = db_rows(workspace, "SELECT payload FROM events WHERE kind='runtime.warning'")
            return [r["payload"] for r in rows if "tools." in r["payload"]]

        found = wait_for(lambda: len(warnings()) == 2 and warnings(), timeout=30)
    assert any("[mcp.serve.endpoints.temps.tools.shout]: shout is not served by this endpoint" in w for w in found)
    assert any("[mcp.serve.endpoints.temps.tools.nosuch]: nosuch is no tool of the catalog" in w for w in found)


async def test_a_default_the_tools_schema_refuses_is_a_warning_and_not_applied(workspace: Path) -> None:
    """`defaults = { text = 5 }` for a string argument would fail every call on a field the client never sent."""
    make_workspace(workspace, settings=ENDPOINTS.replace('defaults = { text = "no reading" }', 'defaults = { text = 5, nosuch = 1 }'))
    async with sdk_stdio(workspace, extra=("--endpoint", "temps")) as (session, _inbox):
        echo = {t.name: t for t in (await session.list_tools()).tools}["echo"]
        assert "default" not in echo.input_schema["properties"]["text"] and echo.input_schema["required"] == ["text"]
        assert "nosuch" not in echo.input_schema["properties"]
        assert (await session.call_tool("echo", {"text": "21 C"})).structured_content == {"echo": "21 C", "length": 4}

        def warnings() -> list[str]:
            rows = db_rows(workspace, "SELECT payload FROM events WHERE kind='runtime.warning'")
            return [r["payload"] for r in rows if "defaults" in r["payload"]]

        found = wait_for(lambda: len(warnings()) == 2 and warnings(), timeout=30)
    assert any("[mcp.serve.endpoints.temps.tools.echo] defaults: text: text must be string; this default is not applied"
               in w for w in found), found
    assert any("defaults: no argument 'nosuch' (known: text)" in w for w in found), found


# -- over HTTP: every endpoint from one process -------------------------------------------------------------------

@asynccontextmanager
async def sdk_http(url: str, name: str) -> AsyncIterator[tuple[Any, Inbox]]:
    import httpx2
    import mcp_types as types
    from mcp.client.session import ClientSession
    from mcp.client.streamable_http import streamable_http_client

    inbox = Inbox()
    async with httpx2.AsyncClient(timeout=60) as http, streamable_http_client(url, http_client=http) as (read, write), \
            ClientSession(read, write, client_info=types.Implementation(name=name, version="1"),
                          message_handler=inbox) as session:
        await session.initialize()
        yield session, inbox


@pytest.fixture
def endpoints_server(workspace: Path):
    make_workspace(workspace, settings=ENDPOINTS)
    server = HttpServer(workspace)
    try:
        server.wait_listening()
        yield server
    finally:
        assert server.stop() == 0, "".join(server.stderr)[-2000:]


def test_an_unknown_endpoint_path_is_a_404_naming_the_endpoints(endpoints_server: HttpServer) -> None:
    import httpx

    assert any("endpoint temps at " + endpoints_server.url + "/temps" in line for line in endpoints_server.stderr)
    reply = httpx.post(endpoints_server.url + "/nope", json={"jsonrpc": "2.0", "id": 1, "method": "ping"},
                       headers={"Accept": "application/json, text/event-stream"}, timeout=30)
    assert reply.status_code == 404
    message = reply.json()["error"]["message"]
    assert "'/mcp/nope'" in message and "/mcp, /mcp/temps, /mcp/wide" in message


async def test_each_endpoint_over_http_lists_calls_and_suggests_only_its_own(workspace: Path, endpoints_server) -> None:
    from mcp.shared.exceptions import MCPError

    base = endpoints_server.url
    async with sdk_http(base + "/temps", "temps-ide") as (temps, _), sdk_http(base, "default-ide") as (default, _), \
            sdk_http(base + "/wide", "wide-ide") as (wide, _):
        assert {t.name for t in (await temps.list_tools()).tools} == {"converter_remote", "echo", "resilient_tool_call",
                                                                      "buffer"}
        assert "converter_local" in {t.name for t in (await default.list_tools()).tools}
        assert (await temps.call_tool("echo", {})).structured_content == {"echo": "no reading", "length": 10}
        with pytest.raises(MCPError, match="is not served over MCP"):
            await temps.call_tool("shout", {"text": "x"})
        # a near miss: the default endpoint suggests the local converter, `wide` (which hides it) never does
        with pytest.raises(MCPError, match="did you mean converter_local"):
            await default.call_tool("converter_locl", {})
        with pytest.raises(MCPError) as near:
            await wide.call_tool("converter_locl", {})
        assert "unknown tool 'converter_locl'" in str(near.value) and "converter_local" not in str(near.value).replace(
            "'converter_locl'", "")
        labels = {r["label"] for r in db_rows(workspace, "SELECT label FROM runtimes")}
        assert {"mcp: temps-ide (http, endpoint temps)", "mcp: default-ide (http)", "mcp: wide-ide (http, endpoint wide)"} \
            <= labels, labels
    log = (workspace / ".tooldeck" / "logs" / "tooldeck.log").read_text()
    assert "temps-ide 1 connected" in log and "http, endpoint temps)" in log


async def test_a_buffer_delivering_to_another_endpoints_tool_is_out_of_reach(workspace: Path, endpoints_server) -> None:
    base = endpoints_server.url
    async with sdk_http(base, "default-ide") as (default, _), sdk_http(base + "/temps", "temps-ide") as (temps, _):
        made = await default.call_tool("buffer", {"operation": "write", "buffer_id": "readings", "data": {"c": 21},
                                                  "pass_through_tool": "sink", "flush_strategy": "manual"})
        assert not made.is_error, made.content[0].text
        for args in ({"operation": "flush"}, {"operation": "write", "data": {"c": 22}}, {"operation": "status"},
                     {"operation": "dead_letters"}, {"operation": "configure", "max_size": 5},
                     # re-pointed at a tool this client serves, the buffered items would come to it
                     {"operation": "write", "data": {"c": 23}, "pass_through_tool": "echo"},
                     {"operation": "configure", "pass_through_tool": "echo"}):
            refused = await temps.call_tool("buffer", {"buffer_id": "readings", **args})
            assert refused.is_error, args
            assert "buffer 'readings' delivers to a tool that is not served over MCP ([mcp.serve.endpoints.temps] " \
                   "expose)" in refused.content[0].text, args
        listed = await temps.call_tool("buffer", {"operation": "status"})
        assert not listed.is_error and "readings" not in listed.content[0].text and "sink" not in listed.content[0].text
        assert "readings" in (await default.call_tool("buffer", {"operation": "status"})).content[0].text
        assert db_rows(workspace, "SELECT * FROM calls WHERE tool_id='sink'") == []
        # where the tool is served, the same buffer delivers
        flushed = await default.call_tool("buffer", {"operation": "flush", "buffer_id": "readings"})
        assert not flushed.is_error, flushed.content[0].text
    assert sink_items(workspace, "readings") == [{"c": 21}]


async def test_a_builtin_acting_on_a_named_tool_cannot_reach_one_the_endpoint_hides(workspace: Path, endpoints_server) -> None:
    """`mark_tool_failure` names its tool: a hidden one is answered as one that does not exist (no failure recorded,
    no circuit opened for the clients that do serve it, and nothing told apart)."""
    base = endpoints_server.url
    async with sdk_http(base + "/wide", "wide-ide") as (wide, _):
        failure = {"scenario": "x", "error_message": "bad", "severity": "critical"}
        hidden = await wide.call_tool("mark_tool_failure", {"tool_id": "converter_local", **failure})
        missing = await wide.call_tool("mark_tool_failure", {"tool_id": "converter_nosuch", **failure})
        near = await wide.call_tool("mark_tool_failure", {"tool_id": "converter_locl", **failure})
        assert hidden.is_error and missing.is_error and near.is_error
        assert hidden.content[0].text.replace("converter_local", "X") == missing.content[0].text.replace("converter_nosuch", "X")
        assert "unknown tool 'converter_local'" in hidden.content[0].text
        assert "converter_local" not in near.content[0].text.replace("'converter_locl'", "")
        served = await wide.call_tool("mark_tool_failure", {"tool_id": "shout", **failure})
        assert not served.is_error, served.content[0].text
    failed = {r["tool_id"] for r in db_rows(workspace, "SELECT tool_id FROM failures")}
    assert "shout" in failed and "converter_local" not in failed, failed


async def test_a_change_only_one_endpoint_serves_notifies_only_its_clients(workspace: Path, endpoints_server) -> None:
    base = endpoints_server.url
    async with sdk_http(base, "default-ide") as (default, default_inbox), \
            sdk_http(base + "/temps", "temps-ide") as (temps, temps_inbox):
        await default.list_tools()
        await temps.list_tools()
        edit_description(workspace / "tools" / "shout.yaml", "Shout, reloaded")  # served by /mcp, not by /mcp/temps
        await until(lambda: default_inbox.count(LIST_CHANGED) > 0, what="list_changed at /mcp")
        await anyio.sleep(2.5)  # the watcher rechecks every second, and debounces a second
        assert temps_inbox.count(LIST_CHANGED) == 0
        edit_description(workspace / "tools" / "converter_remote.yaml", "Convert, reloaded")  # served by both
        await until(lambda: temps_inbox.count(LIST_CHANGED) > 0, what="list_changed at /mcp/temps")
        assert {t.name: t for t in (await temps.list_tools()).tools}["converter_remote"].description == "Convert, reloaded"


@pytest.mark.slow
def test_the_typescript_client_at_a_named_endpoint(ts_sdk: Path, endpoints_server: HttpServer) -> None:
    import json

    done = subprocess.run(["node", str(REPO / "tests" / "mcp_ts" / "endpoint_client.mjs"), str(ts_sdk),
                           endpoints_server.url + "/temps"], capture_output=True, text=True, timeout=240, cwd=REPO,
                          env=server_env())
    steps = {row.pop("step"): row for row in map(json.loads, (x for x in done.stdout.splitlines() if x.startswith("{")))}
    assert done.returncode == 0 and "closed" in steps, (done.stdout[-3000:], done.stderr[-3000:])
    assert steps["list"] == {"names": ["buffer", "converter_remote", "echo", "resilient_tool_call"],
                             "echoTitle": "Echo (temperature desk)", "echoRequired": []}
    assert steps["defaulted"] == {"ok": True, "isError": False, "structured": {"echo": "no reading", "length": 10}}
    hidden = steps["hidden"]
    assert not hidden["ok"] and hidden["code"] == -32602 and "[mcp.serve.endpoints.temps] expose" in hidden["message"]
