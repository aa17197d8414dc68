"""`evolve` on an imported MCP tool exits pointing to `generate --from-tool`, which asks the model for a local
replacement from the tool's description, schema and recorded calls; validated against those calls, reviewed,
approved, and then serving the tool's id until a rollback serves the MCP tool again."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from tests.evolution_helpers import settings as model_settings
from tests.mcp_import_helpers import TOKEN, stdio_section, write_settings
from tests.messages_server import MessagesServer, anthropic_server_fixture, messages_server_fixture  # noqa: F401
from tools.errors import ToolUnavailableError, UsageError

CODE = '''
def run(data):
    return {"echo": data["text"], "length": len(data["text"])}
'''


def replacement_answer() -> dict:
    manifest = {"name": "srv_echo", "type": "python", "description": "Echo a text back with its length",
                "entry": "srv_echo_v1_1_0.py:run", "input_schema": {"type": "object", "properties": {"text": {"type": "string"}},
                                                                     "required": ["text"]},
                "tests": [{"name": "hi", "input": {"text": "hi"}, "expect": {"echo": "hi", "length": 2}}]}
    return {"code": CODE, "manifest_yaml": yaml.safe_dump(manifest), "explanation": "echoes locally"}


def test_evolve_refuses_an_mcp_tool_and_generate_from_tool_writes_a_local_replacement(
        workspace: Path, make_runtime, tmp_path: Path, anthropic_server: MessagesServer, monkeypatch: pytest.MonkeyPatch) -> None:
    from tools.evolution import approve, evolve_tool, generate_replacement, rollback

    model_settings(workspace)
    text = (workspace / "tooldeck.toml").read_text()
    monkeypatch.setenv("IMPORT_GEN_TOKEN", TOKEN)
    write_settings(workspace, stdio_section("srv", tmp_path / "state", env={"API_TOKEN": "${IMPORT_GEN_TOKEN}"}), extra=text)
    rt = make_runtime()
    for word in ("alpha", "beta gamma", TOKEN):  # the server's secret, sent and echoed: recorded masked
        rt.call("srv_echo", {"text": word})
    rt.calls.flush()
    with pytest.raises(ToolUnavailableError, match=r"tooldeck generate --from-tool srv_echo"):
        evolve_tool(rt, "srv_echo", mutation_hint="make it faster")
    with pytest.raises(UsageError, match="not one imported from an MCP server"):
        generate_replacement(rt, "buffer")
    assert anthropic_server.requests == []

    anthropic_server.reply_tool_use("write_tool_version", replacement_answer())
    proposal = generate_replacement(rt, "srv_echo")
    assert proposal["status"] == "awaiting_review", proposal.get("failure")
    assert (proposal["tool_id"], proposal["version"], proposal["parent_version"]) == ("srv_echo", "1.1.0", "1.0.0")
    stages = {s["name"]: s for s in proposal["stages"]}
    assert stages["regression"]["passed"] and "3/3 recorded calls of the parent still succeed" in stages["regression"]["detail"]
    prompt = anthropic_server.requests[0].user_text
    assert TOKEN not in json.dumps(anthropic_server.requests[0].body) and '"input": {"text": "***"}' in prompt
    assert "Replace the MCP tool `srv_echo`" in prompt and "Echo a text back with its length" in prompt
    assert '"input": {"text": "beta gamma"}, "output": {"echo": "beta gamma", "length": 10}' in prompt
    assert "type python" in anthropic_server.requests[0].body["system"]

    approve(rt, proposal["id"], "global", "tester", proposal["diff_sha256"])
    rt.invalidate_promotions()
    assert rt.resolve("srv_echo").manifest.type == "python"  # served by the local replacement now
    assert rt.call("srv_echo", {"text": "local"}) == {"echo": "local", "length": 5}
    rollback(rt, "srv_echo", "1.0.0", "global")
    rt.invalidate_promotions()
    assert rt.resolve("srv_echo").manifest.type == "mcp"
