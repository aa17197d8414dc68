"""A tool's free text as MCP clients get it: its description, title and schema texts with control, bidi and
invisible characters spelled out (`\\x1b`, `<U+202E>`), as the CLI and the dashboard show them; the data of its
schemas (`default`, `enum`, `const`, `examples`) exactly as written. `tooldeck tools --check` warns of such a
manifest. Real servers in their own processes, driven by the SDK's client over stdio."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.helpers import python_tool
from tests.mcp_helpers import REPO, sdk_stdio, server_env
from tools.catalog import map_schema_text, schema_hidden
from tools.visible import visible

#: what a manifest's author (or an imported MCP server) wrote: a screen clear, a window retitle, a bidi override,
#: a zero-width space, a carriage return before a newline
DESCRIPTION = "Add two numbers\x1b[2J\x1b]0;pwned\x07 safely\u202e evil\u200b\r\nSecond line\n\tindented"
SPELLED = "Add two numbers\\x1b[2J\\x1b]0;pwned\\x07 safely<U+202E> evil<U+200B>\\r\nSecond line\n\tindented"
SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "a": {"type": "integer", "description": "first\x1b[1G", "title": "A\u2066"},
        "mode": {"type": "string", "description": "how\u200b", "enum": ["plain", "rtl\u202e"], "default": "rtl\u202e",
                 "examples": ["x\x1b"]},
        "description": {"type": "string"},  # a property named "description": a schema, not a text
        "nested": {"type": "array", "items": {"anyOf": [{"type": "string", "description": "deep\u202e"}, {"const": "c\x07"}]}},
    },
    "required": ["a"],
}
CODE = "def run(data):\n    return {'sum': data['a'] + 1, 'mode': data.get('mode', 'plain')}\n"


def test_schema_texts_are_rewritten_at_every_depth_and_its_data_never() -> None:
    shown = map_schema_text(SCHEMA, visible)
    props = shown["properties"]
    assert props["a"] == {"type": "integer", "description": "first\\x1b[1G", "title": "A<U+2066>"}
    assert props["mode"]["description"] == "how<U+200B>"
    assert props["mode"]["enum"] == ["plain", "rtl\u202e"] and props["mode"]["default"] == "rtl\u202e"
    assert props["mode"]["examples"] == ["x\x1b"] and props["description"] == {"type": "string"}
    assert props["nested"]["items"]["anyOf"] == [{"type": "string", "description": "deep<U+202E>"}, {"const": "c\x07"}]
    assert SCHEMA["properties"]["a"]["description"] == "first\x1b[1G"  # the manifest's own schema is not changed
    clean = {"type": "object", "properties": {"b": {"type": "string", "description": "plain words"}}}
    assert map_schema_text(clean, visible) is clean
    assert schema_hidden(SCHEMA) == ["\\x1b", "<U+2066>", "<U+200B>", "<U+202E>"]


def weird_workspace(ws: Path) -> Path:
    tools = ws / "tools"
    python_tool(tools, "weird_add", CODE, description=DESCRIPTION, input_schema=SCHEMA, tags=["public"])
    python_tool(tools, "plain_add", CODE, description="Add two numbers, plainly", tags=["public"],
                input_schema={"a": {"type": "integer", "required": True}})
    (ws / "tooldeck.toml").write_text('[mcp.serve.endpoints.find]\ntool_search = true\nexpose = ["tag:public"]\n'
                                      '[mcp.serve.endpoints.find.tools.plain_add]\n'
                                      'description = "Add, said the operator\\u202E backwards"\ntitle = "Plain\\u200B add"\n')
    return ws


async def test_tools_list_and_search_serve_descriptions_spelled_out_and_schema_data_as_written(workspace: Path) -> None:
    weird_workspace(workspace)
    async with sdk_stdio(workspace) as (session, _inbox):
        listed = {t.name: t for t in (await session.list_tools()).tools}
        weird = listed["weird_add"]
        assert weird.description == SPELLED
        props = weird.input_schema["properties"]
        assert props["a"]["description"] == "first\\x1b[1G" and props["a"]["title"] == "A<U+2066>"
        assert props["mode"]["enum"] == ["plain", "rtl\u202e"] and props["mode"]["default"] == "rtl\u202e"
        assert listed["plain_add"].description == "Add two numbers, plainly"
        called = await session.call_tool("weird_add", {"a": 1, "mode": "rtl\u202e"})  # the data is still the data
        assert not called.is_error and called.structured_content == {"sum": 2, "mode": "rtl\u202e"}
    async with sdk_stdio(workspace, extra=("--endpoint", "find")) as (session, _inbox):
        result = await session.call_tool("search_tools", {"query": "add two numbers", "limit": 5})
        assert not result.is_error, result.content[0].text
        found = {t["name"]: t for t in result.structured_content["tools"]}
        assert found["weird_add"]["description"] == SPELLED
        assert found["weird_add"]["input_schema"]["properties"]["nested"]["items"]["anyOf"][0]["description"] == "deep<U+202E>"
        assert found["plain_add"]["description"] == "Add, said the operator<U+202E> backwards"  # the endpoint's override too
        assert found["plain_add"]["title"] == "Plain<U+200B> add"
        assert json.loads(result.content[0].text) == result.structured_content
        listed = {t.name: t for t in (await session.list_tools()).tools}
        assert listed["weird_add"].description == SPELLED and listed["plain_add"].title == "Plain<U+200B> add"
    log = (workspace / ".tooldeck" / "logs" / "tooldeck.log").read_text()
    assert ("[mcp.serve] weird_add: its description, title or schema texts hold \\x1b, \\x07, <U+202E>, <U+200B>, \\r, "
            "<U+2066>; MCP clients are served them spelled out") in log
    assert "[mcp.serve.endpoints.find] plain_add: its description, title or schema texts hold <U+202E>, <U+200B>" in log


def test_tools_check_warns_of_a_description_holding_hidden_characters_and_still_passes(workspace: Path) -> None:
    weird_workspace(workspace)
    argv = [sys.executable, "-m", "tools", "--workspace", str(workspace)]
    check = subprocess.run([*argv, "tools", "--check"], capture_output=True, text=True, timeout=120, cwd=REPO, env=server_env())
    assert check.returncode == 0, check.stderr
    warnings = [line for line in check.stderr.splitlines() if line.startswith("tooldeck: warning:")]
    assert len(warnings) == 1, check.stderr
    assert warnings[0].startswith("tooldeck: warning: weird_add 1.0.0: its description holds \\x1b, \\x07, <U+202E>, "
                                  "<U+200B>, \\r; its input schema's descriptions or titles hold \\x1b, <U+2066>, <U+200B>, "
                                  "<U+202E> (MCP clients are served them spelled out; ")
    assert not set(check.stderr) & {"\x1b", "\x07", "\u202e", "\u200b", "\r", "\u2066"}
    listing = subprocess.run([*argv, "--json", "tools"], capture_output=True, text=True, timeout=120, cwd=REPO, env=server_env())
    rows = {r["id"]: r for r in json.loads(listing.stdout)["tools"]}
    assert rows["weird_add"]["warning"].startswith("its description holds \\x1b")
    assert rows["weird_add"]["description"] == DESCRIPTION  # --json: the real text
    assert rows["plain_add"]["warning"] is None and rows["buffer"]["warning"] is None
