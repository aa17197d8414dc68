"""What MCP clients are offered: schemas and hints from manifests, `[mcp.serve]`, the served list, paging, session names."""

from __future__ import annotations

import re
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from tests.helpers import python_tool, write_tool
from tests.mcp_helpers import make_workspace
from tools.catalog import Manifest
from tools.errors import UsageError
from tools.mcp import ServeConfig, input_schema, load_serve_config, output_schema, tool_annotations
from tools.mcp.listing import decode_cursor, encode_cursor, page, served_tools
from tools.mcp.schema import structured, tool_input
from tools.mcp.sessions import session_name
from tools.recovery import force_circuit, set_disabled
from tools.settings import Settings


def manifest(**fields) -> Manifest:
    return Manifest.model_validate({"name": "t", "type": "python", "entry": "t.py:run", **fields})


def test_the_flat_manifest_form_becomes_an_object_schema() -> None:
    m = manifest(input_schema={"text": {"type": "str", "required": True, "description": "what"},
                               "count": {"type": "int", "default": 2}})
    schema, wrapped = input_schema(m)
    assert not wrapped
    assert schema == {"type": "object", "properties": {"text": {"type": "string", "description": "what"},
                                                       "count": {"type": "integer", "default": 2}}, "required": ["text"]}


def test_a_json_schema_is_passed_through_and_a_non_object_input_is_wrapped() -> None:
    given = {"$schema": "https://json-schema.org/draft/2020-12/schema", "type": "object",
             "properties": {"a": {"oneOf": [{"type": "string"}, {"type": "integer"}]}}, "additionalProperties": False}
    schema, wrapped = input_schema(manifest(input_schema=given))
    assert schema == given and not wrapped
    schema, wrapped = input_schema(manifest(input_schema={"type": "string", "minLength": 1}))
    assert wrapped and schema == {"type": "object", "properties": {"input": {"type": "string", "minLength": 1}}, "required": ["input"]}
    assert tool_input({"input": "hi"}, wrapped=True) == '"hi"'  # JSON text: Runtime.call parses a string as JSON
    assert input_schema(manifest())[0] == {"type": "object"}


def test_output_schema_results_and_hints() -> None:
    assert output_schema(manifest()) == (None, False)
    assert output_schema(manifest(output_schema={"type": "object", "required": ["x"]})) == ({"type": "object", "required": ["x"]}, False)
    wrapped, is_wrapped = output_schema(manifest(output_schema={"type": "array"}))
    assert is_wrapped and wrapped == {"type": "object", "properties": {"result": {"type": "array"}}, "required": ["result"]}
    assert structured({"a": 1}, wrapped=False, has_schema=False) == {"a": 1}
    assert structured([1, 2], wrapped=False, has_schema=False) == {"result": [1, 2]}
    assert structured("plain text", wrapped=False, has_schema=False) is None
    assert structured([1], wrapped=True, has_schema=True) == {"result": [1]}
    assert tool_annotations(manifest()) == {}
    assert tool_annotations(manifest(read_only=True, destructive=False, idempotent=True)) == {
        "read_only_hint": True, "destructive_hint": False, "idempotent_hint": True}


def test_serve_settings_defaults_patterns_and_one_line_errors(tmp_path: Path) -> None:
    config, warnings = load_serve_config(Settings({}))
    assert warnings == []
    assert config.exposed("buffer") and not config.exposed("evolve_tool")
    assert "clear" not in config.buffer_operations and "replay" not in config.buffer_operations
    assert {"write", "status", "flush"} <= set(config.buffer_operations)
    assert config.hidden_buffer_operations == ("clear", "replay")
    # the default list in tools.settings is every buffer operation but the destructive ones (a new one must be placed)
    from tools.buffers import OPERATIONS

    assert set(config.buffer_operations) == set(OPERATIONS) - {"clear", "replay"}
    assert ServeConfig(expose=("csv_*", "!csv_legacy")).exposed("csv_parser")
    assert not ServeConfig(expose=("csv_*", "!csv_legacy")).exposed("csv_legacy")
    assert not ServeConfig(expose=("csv_*",)).exposed("json_parser")
    assert ServeConfig(expose=("*", "!evolve_tool", "evolve_tool")).exposed("evolve_tool")  # the last match wins
    config, warnings = load_serve_config(Settings({"mcp": {"serve": {"expose": ["*"], "buffer_operations": ["status", "clear"],
                                                                     "pagesize": 5}}}))
    assert config.exposed("evolve_tool") and config.buffer_operations == ("status", "clear")
    assert len(warnings) == 1 and "'pagesize'" in warnings[0]
    with pytest.raises(UsageError, match=r"\[mcp.serve\] buffer_operations: unknown operation 'explode'"):
        load_serve_config(Settings({"mcp": {"serve": {"buffer_operations": ["explode"]}}}))
    with pytest.raises(UsageError, match=r"\[mcp.serve\] page_size must be an integer"):
        load_serve_config(Settings({"mcp": {"serve": {"page_size": 0}}}))
    with pytest.raises(UsageError, match=r"\[mcp.serve\] expose must be a list"):
        load_serve_config(Settings({"mcp": {"serve": {"expose": "*"}}}))


def test_cursor_paging() -> None:
    tools = [SimpleNamespace(tool_id=f"t{n}") for n in range(7)]
    first, cursor = page(tools, None, 3)  # type: ignore[arg-type]
    second, cursor2 = page(tools, cursor, 3)  # type: ignore[arg-type]
    third, cursor3 = page(tools, cursor2, 3)  # type: ignore[arg-type]
    assert [[t.tool_id for t in p] for p in (first, second, third)] == [["t0", "t1", "t2"], ["t3", "t4", "t5"], ["t6"]]
    assert cursor3 is None
    assert decode_cursor(encode_cursor("t9")) == "t9" and decode_cursor(None) is None
    for bad in ("nope", "eyJ4IjogMX0=", "WzFd", "eyJhIjogMX0="):  # not base64 JSON, {"x": 1}, [1], {"a": 1}
        with pytest.raises(UsageError, match="invalid tools/list cursor"):
            decode_cursor(bad)


def test_a_change_between_pages_neither_repeats_nor_skips_a_tool() -> None:
    """A tool added before the cursor, or the last one served gone: the next page starts past what was served."""
    def ids(chunk: list[Any]) -> list[str]:
        return [t.tool_id for t in chunk]

    tools = [SimpleNamespace(tool_id=f"t{n}") for n in range(7)]
    _first, cursor = page(tools, None, 3)  # type: ignore[arg-type]
    added = [SimpleNamespace(tool_id="a_new"), *tools]
    assert ids(page(added, cursor, 3)[0]) == ["t3", "t4", "t5"]  # type: ignore[arg-type]
    gone = [t for t in tools if t.tool_id not in ("t1", "t2")]
    assert ids(page(gone, cursor, 3)[0]) == ["t3", "t4", "t5"]  # type: ignore[arg-type]


def test_session_names_follow_the_scope_rule() -> None:
    for client in ("Claude Desktop", "../../etc", "", None, "ÉDITEUR 3000 ✨", "x" * 300):
        name = session_name(client)
        assert re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,127}", name), name
    assert session_name("Claude Desktop").startswith("claude-desktop-")
    assert session_name("Claude Desktop") != session_name("Claude Desktop")


def test_the_served_list_follows_exposure_load_status_controls_and_circuits(workspace: Path, make_runtime) -> None:
    make_workspace(workspace)
    write_tool(workspace / "tools", "bad_yaml", "name: bad_yaml\ntype: [unclosed\n")
    python_tool(workspace / "tools", "plain", "def run(data):\n    return data\n")
    rt = make_runtime()
    rt.wait_ready(60)
    config, _ = load_serve_config(rt.settings)
    rt.extension("failures")

    def ids() -> set[str]:
        return {t.tool_id for t in served_tools(rt, config, rt.session)}

    served = {t.tool_id: t for t in served_tools(rt, config, rt.session)}
    assert {"echo", "plain", "buffer", "resilient_tool_call", "mark_tool_failure"} <= set(served)
    assert "evolve_tool" not in served and "bad_yaml" not in served
    buffer = served["buffer"]
    assert "clear" not in buffer.input_schema["properties"]["operation"]["enum"]
    assert buffer.refused_operation({"operation": "clear", "buffer_id": "x"}) is not None
    assert buffer.refused_operation({"operation": "status"}) is None
    assert buffer.annotations == {"destructive_hint": False}  # what is served of it adds, never drops
    assert served["echo"].annotations == {"read_only_hint": True, "idempotent_hint": True}
    assert served["echo"].version == "1.0.0"
    set_disabled(rt, "plain", True, actor="tester", reason="maintenance")
    force_circuit(rt, "echo", "open", actor="tester")
    assert "plain" not in ids() and "echo" not in ids()
    set_disabled(rt, "plain", False, actor="tester")
    force_circuit(rt, "echo", "closed", actor="tester")
    assert {"plain", "echo"} <= ids()


def test_the_cli_and_the_mcp_room_do_not_import_the_sdk_until_a_server_starts() -> None:
    import json
    import subprocess
    import sys

    code = ("import sys, json, tools.mcp, tools.mcp.listing, tools.mcp.sessions, tools.mcp.changes\n"
            "from tools.cli import build_parser\n"
            "build_parser()\n"
            "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in ('mcp', 'mcp_types', 'uvicorn', 'starlette'))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == []
