"""Secrets never at rest, never in a prompt: one redaction function, tested at every boundary.

Every test runs with both keys set (ANTHROPIC_API_KEY and QDRANT_API_KEY), as the issue found them.
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml

from tests.evolution_helpers import greet_answer, greet_tool, settings
from tests.helpers import exec_tool, python_tool, write_tool
from tests.messages_server import FAKE_KEY, MessagesServer, anthropic_server_fixture, messages_server_fixture  # noqa: F401
from tools.errors import ToolError
from tools.evolution.evolve import evolve_tool
from tools.evolution.prompt import FEEDBACK_LIMIT
from tools.evolution.review import get_proposal

QKEY = "qdrant-secret-value-0042"
PASSWORD = "hunter2-manifest-password"
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def keys(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", FAKE_KEY)
    monkeypatch.setenv("QDRANT_API_KEY", QKEY)


def at_rest(home: Path) -> bytes:
    """Every byte the runtime wrote under .tooldeck/ (database, WAL, logs, evolved versions)."""
    return b"".join(p.read_bytes() for p in sorted(home.rglob("*")) if p.is_file())


def assert_no_secret(blob: bytes | str, *extra: str) -> None:
    text = blob.decode("utf-8", "replace") if isinstance(blob, bytes) else blob
    for value in (FAKE_KEY, QKEY, *extra):
        assert value not in text, f"{value[:8]}... found"


def test_the_manifest_cache_holds_no_secret(workspace, make_runtime, keys):
    exec_tool(workspace / "tools", "envy", "import json, os, sys\nsys.stdin.read()\njson.dump(sorted(os.environ), sys.stdout)\n",
              executable={"environment": {"ANTHROPIC_API_KEY": FAKE_KEY, "QDRANT_API_KEY": QKEY, "DB_PASSWORD": PASSWORD,
                                          "PLAIN": "1"}})
    exec_tool(workspace / "tools", "plain", "import sys\nsys.stdin.read()\nprint('{}')\n")
    rt = make_runtime()
    assert rt.wait_ready(30)
    assert "PLAIN" in rt.call("envy", {})
    rt.close()
    assert_no_secret(at_rest(rt.home), PASSWORD)
    again = make_runtime()
    assert again.wait_ready(30)
    assert again.catalog.cache_hits >= 1  # a manifest without a secret is still cached
    assert "DB_PASSWORD" not in again.call("envy", {})
    again.close()
    assert_no_secret(at_rest(again.home), PASSWORD)


@pytest.mark.parametrize("data", [
    {"name": "plain", "description": "Parses CSV text", "tags": ["csv"]},
    {"environment": {"DB_PASSWORD": "x1"}},  # a secret-named key
    {"environment": {"TOOLDECK_DATABASE_URL": "sqlite:///x"}},  # always secret, whatever its value
    {"description": "calls with sk-ant-abcdefgh12345678"},  # a key shape in any value
    {"url": "postgresql://app:pw-123456@db/x"},  # a URL's password
    {"url": "http://x", "contact": "ops@example.com"},  # a URL and an @ in another field: not a password
    {"note": f"uses {QKEY} inline"},  # a known secret's value
    {QKEY: "under a key"},  # a value in a key: never masked, so never a secret to the walk
    {"description": "splits a token stream"},  # a secret-like word: the walk decides
    {"deep": [[{"list": ["é", "ü", f"x{QKEY}"]}]]},
])
def test_the_manifest_caches_secret_check_reads_the_json_text_as_the_walk_reads_the_data(keys, data):
    """The loader checks a manifest's JSON text for secrets instead of walking its data (~10% of a
    cold load): it says True whenever the walk does, and False only when the walk does."""
    from state.redact import holds_secret, json_holds_secret, register_secret
    from state.store import dumps

    register_secret("QDRANT_API_KEY", QKEY)
    walk, text = holds_secret(data), json_holds_secret(dumps(data), data)
    assert text == walk or (text and QKEY in json.dumps(list(data)))  # only a value in a key may differ, towards True


def test_a_secret_json_escapes_is_found_by_the_walk(monkeypatch):
    from state.redact import json_holds_secret
    from state.store import dumps

    monkeypatch.setenv("SERVICE_TOKEN", 'quote"inside-1234')
    data = {"environment": {"SAFE": 'quote"inside-1234'}}
    assert json_holds_secret(dumps(data), data)


def test_a_secret_under_an_innocent_name_never_reaches_a_tool(workspace, make_runtime, keys):
    exec_tool(workspace / "tools", "envy", "import json, os, sys\nsys.stdin.read()\njson.dump(dict(os.environ), sys.stdout)\n",
              executable={"environment": {"UPSTREAM": FAKE_KEY, "PLAIN": "1"}})
    env = make_runtime().call("envy", {})
    assert env["PLAIN"] == "1" and "UPSTREAM" not in env
    assert_no_secret(json.dumps(env))


def test_an_evolve_error_reaches_neither_the_store_nor_the_prompt_nor_the_lineage(workspace, make_runtime, keys,
                                                                                anthropic_server: MessagesServer):
    settings(workspace)
    greet_tool(workspace)
    rt = make_runtime()
    anthropic_server.reply_tool_use("write_tool_version", greet_answer())
    error = f"401 from upstream: key {FAKE_KEY} rejected, qdrant said {QKEY}"
    proposal = evolve_tool(rt, "greet", error, f"rotate {QKEY}")
    assert proposal["status"] == "awaiting_review", proposal.get("failure")
    row = get_proposal(rt, proposal["id"], with_diff=False)
    assert_no_secret(json.dumps(row, default=str))
    assert "***" in row["error_message"] and "***" in row["mutation_hint"]
    sent = anthropic_server.requests[0].body
    assert_no_secret(json.dumps(sent))
    assert "401 from upstream: key ***" in anthropic_server.requests[0].user_text
    manifest = (rt.home / "evolved" / "greet" / "1.1.0" / "greet.yaml").read_text()
    assert_no_secret(manifest)
    assert yaml.safe_load(manifest)["lineage"]["error"].startswith("401 from upstream: key ***")
    rt.close()
    assert_no_secret(at_rest(rt.home))


def test_a_python_tool_error_is_masked_like_executable_stderr(workspace, make_runtime, keys):
    python_tool(workspace / "tools", "checker",
                "def run(data):\n    raise ValueError('upstream refused token ' + data['token'])\n")
    rt = make_runtime()
    with pytest.raises(ToolError) as info:
        rt.call("checker", {"token": FAKE_KEY})
    assert "upstream refused token ***" in info.value.message
    assert_no_secret(info.value.message)
    assert_no_secret(json.dumps(info.value.to_dict()))
    rt.calls.flush()
    rt.close()
    assert_no_secret(at_rest(rt.home))


def test_the_log_masks_secrets_in_messages_and_tracebacks(tmp_path, keys):
    from tools.logs import setup_logging

    setup_logging(tmp_path / "logs")
    log = logging.getLogger("tooldeck.test_secrets")
    try:
        raise RuntimeError(f"connect failed with {QKEY}")
    except RuntimeError:
        log.exception("calling qdrant with %s", FAKE_KEY)
    for handler in logging.getLogger("tooldeck").handlers:
        handler.flush()
    text = (tmp_path / "logs" / "tooldeck.log").read_text()
    assert "calling qdrant with ***" in text and "RuntimeError: connect failed with ***" in text
    assert_no_secret(text)


def test_an_llm_tool_prompt_is_redacted_before_it_leaves(workspace, make_runtime, keys, anthropic_server: MessagesServer):
    settings(workspace)
    write_tool(workspace / "tools", "summarise", {"name": "summarise", "type": "llm", "prompt": "Summarise: {text}",
                                                  "input_schema": {"text": {"type": "string", "required": True}}})
    anthropic_server.reply_text("a summary")
    rt = make_runtime()
    assert rt.call("summarise", {"text": f"the config says QDRANT_API_KEY={QKEY}"}) == "a summary"
    assert "QDRANT_API_KEY=***" in anthropic_server.requests[0].user_text
    assert_no_secret(json.dumps(anthropic_server.requests[0].body))


def test_round_two_feedback_is_truncated_and_redacted(workspace, make_runtime, keys, anthropic_server: MessagesServer):
    """What a candidate returns goes back to the model only cut short and through the same redaction."""
    settings(workspace)
    greet_tool(workspace)
    rt = make_runtime()
    loot = textwrap.dedent(f'''
        def run(data):
            return {{"greeting": "{QKEY} {FAKE_KEY} " + "x" * 50000}}
    ''')
    anthropic_server.reply_tool_use("write_tool_version", greet_answer(loot, tests=[
        {"name": f"case {i}", "input": {"name": "ada"}, "expect": {"greeting": "hello ada"}} for i in range(30)]))
    anthropic_server.reply_tool_use("write_tool_version", greet_answer())
    proposal = evolve_tool(rt, "greet", "", "Allow spaces in names")
    assert proposal["status"] == "awaiting_review", proposal.get("failure")
    second = anthropic_server.requests[1].body["messages"]
    feedback = second[2]["content"][0]["content"]
    assert "Validation failed at stage 'tests'" in feedback and len(feedback) <= FEEDBACK_LIMIT
    assert "and 20 more failing cases" in feedback
    assert_no_secret(feedback)
    assert_no_secret(json.dumps(anthropic_server.requests[1].body["messages"][2]))


PEEK = '''
import os
def run(data):
    raw = open(f"/proc/{os.getppid()}/environ", "rb").read().decode("latin-1")
    return {"anthropic": data["a"] in raw, "qdrant": data["q"] in raw, "path": "PATH=" in raw}
'''

EXEC_PEEK = '''
import json, os, sys
data = json.load(sys.stdin)
raw = open(f"/proc/{os.getppid()}/environ", "rb").read().decode("latin-1")
print(json.dumps({"anthropic": data["a"] in raw, "qdrant": data["q"] in raw, "path": "PATH=" in raw}))
'''

DRIVER = '''
import json, os, sys
from tools import Runtime
from tools.secrets import redact, secret
with Runtime(sys.argv[1]) as rt:
    data = {"a": sys.argv[2], "q": sys.argv[3]}
    out = {"python": rt.call("peek", data), "executable": rt.call("xpeek", data),
           "own_env": os.environ.get("ANTHROPIC_API_KEY") == sys.argv[2], "secret": secret("QDRANT_API_KEY") == sys.argv[3],
           "masked": redact("k=" + sys.argv[2] + " q=" + sys.argv[3])}
print(json.dumps(out))
'''


def test_a_tool_cannot_read_the_runtimes_environment(workspace):
    """/proc/<runtime pid>/environ is readable by the runtime's own tools; the secrets must not be in it."""
    python_tool(workspace / "tools", "peek", PEEK)
    exec_tool(workspace / "tools", "xpeek", EXEC_PEEK)
    env = {"PATH": "/usr/bin:/bin", "ANTHROPIC_API_KEY": FAKE_KEY, "QDRANT_API_KEY": QKEY, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-c", DRIVER, str(workspace), FAKE_KEY, QKEY], capture_output=True, text=True,
                          timeout=120, env=env, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout.strip().splitlines()[-1])
    for kind in ("python", "executable"):
        assert out[kind] == {"anthropic": False, "qdrant": False, "path": True}, out
    # the runtime itself still has them: the SDK, `${VAR}` references and redaction keep working
    assert out["own_env"] is True and out["secret"] is True and out["masked"] == "k=*** q=***"
