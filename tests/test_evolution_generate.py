"""`tooldeck generate`: a new tool from a spec, through the proposal path with no parent."""

from __future__ import annotations

import pytest
import yaml

from tests.evolution_helpers import greet_tool, settings
from tests.messages_server import MessagesServer, anthropic_server_fixture, messages_server_fixture  # noqa: F401
from tools.errors import UsageError
from tools.evolution.generate import generate_tool_from_spec
from tools.evolution.review import approve

CODE = "def run(data):\n    return {'count': len(data['text'].split())}\n"
MANIFEST = {"name": "word_count", "type": "python", "description": "count words", "entry": "word_count.py:run",
            "input_schema": {"text": {"type": "string", "required": True}},
            "output_schema": {"type": "object", "required": ["count"]},
            "tests": [{"input": {"text": "a b c"}, "expect": {"count": 3}}]}


def test_generate_a_new_tool_from_a_spec(workspace, make_runtime, anthropic_server: MessagesServer):
    settings(workspace)
    (workspace / "specs").mkdir()
    (workspace / "specs" / "wc.md").write_text("# Word count\n\n## Requirements\n\nThe tool MUST count words.\n")
    rt = make_runtime()
    anthropic_server.reply_tool_use("write_tool_version", {"code": CODE, "manifest_yaml": yaml.safe_dump(MANIFEST),
                                                           "explanation": "counts words"})
    proposal = generate_tool_from_spec(rt, "specs/wc.md", "word_count")
    assert proposal["status"] == "awaiting_review" and proposal["parent_version"] is None
    assert proposal["version"] == "1.0.0"
    stages = {s["name"]: s for s in proposal["stages"]}
    assert stages["regression"]["skipped"] and "no parent version" in stages["regression"]["detail"]
    assert "The tool MUST count words." in anthropic_server.requests[0].user_text
    assert "--- a/word_count.yaml (none)" in proposal["diff"] and "+++ b/word_count_v1_0_0.py (1.0.0)" in proposal["diff"]
    approve(rt, proposal["id"], "global", "tester", proposal["diff_sha256"])
    assert rt.call("word_count", {"text": "one two"}) == {"count": 2}


def test_generate_refuses_existing_tools_and_files_outside_the_workspace(workspace, make_runtime, anthropic_server):
    settings(workspace)
    greet_tool(workspace)
    rt = make_runtime()
    with pytest.raises(UsageError, match="already exists"):
        generate_tool_from_spec(rt, "specs/x.md", "greet")
    with pytest.raises(UsageError, match="outside the workspace"):
        generate_tool_from_spec(rt, "../../etc/passwd", "new_tool")
    with pytest.raises(UsageError, match="no such file"):
        generate_tool_from_spec(rt, "specs/missing.md", "new_tool")
    assert anthropic_server.requests == []


def test_a_model_failure_while_generating_says_generate(workspace, make_runtime, anthropic_server: MessagesServer):
    from tools.errors import ToolError

    settings(workspace)
    (workspace / "specs").mkdir()
    (workspace / "specs" / "wc.md").write_text("# Word count\n\nCount the words of `text`.\n")
    rt = make_runtime()
    anthropic_server.reply_error(500, "internal trouble")
    with pytest.raises(ToolError) as err:
        generate_tool_from_spec(rt, "specs/wc.md", "word_count")
    assert err.value.message.startswith("generate word_count (proposal 1): ") and "HTTP 500" in err.value.message
