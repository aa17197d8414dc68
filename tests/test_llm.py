"""LLM providers and the `llm` tool kind, driven through the real anthropic SDK on loopback."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.helpers import write_tool
from tests.messages_server import FAKE_KEY, MessagesServer, anthropic_server_fixture, messages_server_fixture  # noqa: F401
from tools.errors import ToolError, ToolInputError, ToolTimeoutError, ToolUnavailableError, UsageError
from tools.invoke.llm import HOW_TO_CONFIGURE, ModelError, Request, get_provider


def settings(ws: Path, model: str = "", evolution: str = "") -> None:
    ws.joinpath("tooldeck.toml").write_text(
        f"[model]\nmax_retries = 0\ntimeout_seconds = 5\n{model}\n[evolution]\nsandbox_timeout_seconds = 3\n{evolution}\n")


def translator(ws: Path, **extra: object) -> None:
    manifest = {"name": "translator_llm", "type": "llm", "description": "translate with a model",
                "prompt": "Translate {text} into {{ target }}. Whole input: {input}",
                "input_schema": {"text": {"type": "string", "required": True}, "target": {"type": "string", "default": "fr"}},
                **extra}
    write_tool(ws / "tools", "translator_llm", manifest)


def test_auto_without_a_key_says_how_to_configure(workspace, make_runtime):
    settings(workspace)
    translator(workspace)
    rt = make_runtime()
    with pytest.raises(ToolUnavailableError) as err:
        get_provider(rt)
    assert "ANTHROPIC_API_KEY" in err.value.message
    with pytest.raises(ToolError) as err:
        rt.call("translator_llm", {"text": "hello"})
    assert err.value.message.startswith("translator_llm is an llm tool and")
    assert HOW_TO_CONFIGURE in err.value.message


def test_unknown_provider_is_bad_usage(workspace, make_runtime):
    settings(workspace, 'provider = "gpt"')
    rt = make_runtime()
    with pytest.raises(UsageError, match="provider = 'gpt'"):
        get_provider(rt)


def test_explicit_anthropic_without_key_is_refused(workspace, make_runtime):
    settings(workspace, 'provider = "anthropic"')
    rt = make_runtime()
    with pytest.raises(ToolUnavailableError, match="ANTHROPIC_API_KEY is not set"):
        get_provider(rt)


def test_llm_tool_plain_text_through_the_sdk(workspace, make_runtime, anthropic_server: MessagesServer):
    settings(workspace)
    translator(workspace)
    anthropic_server.reply_text("bonjour", input_tokens=30, output_tokens=4)
    rt = make_runtime()
    assert rt.call("translator_llm", {"text": "hello"}) == "bonjour"
    seen = anthropic_server.requests[-1]
    assert seen.api_key == FAKE_KEY
    prompt = seen.body["messages"][0]["content"]
    assert prompt.startswith("Translate hello into fr.")
    assert json.loads(prompt.split("Whole input: ", 1)[1]) == {"text": "hello", "target": "fr"}
    used = rt.store.query_one("SELECT provider, model, input_tokens, output_tokens FROM llm_usage")
    assert tuple(used) == ("anthropic", "claude-test-model", 30, 4)


def test_llm_tool_json_output_is_parsed(workspace, make_runtime, anthropic_server: MessagesServer):
    settings(workspace)
    translator(workspace, output_schema={"type": "object", "required": ["text"]})
    anthropic_server.reply_text('```json\n{"text": "hola"}\n```')
    rt = make_runtime()
    assert rt.call("translator_llm", {"text": "hello", "target": "es"}) == {"text": "hola"}
    anthropic_server.reply_text("not json at all")
    with pytest.raises(ToolError, match="not the JSON"):
        rt.call("translator_llm", {"text": "hello"})


def test_missing_placeholder_is_a_named_bad_input(workspace, make_runtime, anthropic_server: MessagesServer):
    settings(workspace)
    write_tool(workspace / "tools", "needs_field", {"name": "needs_field", "type": "llm", "prompt": "Say {word}"})
    rt = make_runtime()
    with pytest.raises(ToolInputError, match="no field 'word'"):
        rt.call("needs_field", {"other": 1})
    assert anthropic_server.requests == []


def test_error_status_becomes_a_model_error(workspace, make_runtime, anthropic_server: MessagesServer):
    settings(workspace)
    rt = make_runtime()
    anthropic_server.reply_error(529, "Overloaded", error_type="overloaded_error")
    provider = get_provider(rt)
    with pytest.raises(ModelError) as err:
        provider.complete(Request(system="s", messages=[{"role": "user", "content": "hi"}], timeout=5))
    assert "HTTP 529" in err.value.message and "Overloaded" in err.value.message
    assert FAKE_KEY not in err.value.message


def test_timeout_becomes_a_timeout_error(workspace, make_runtime, anthropic_server: MessagesServer):
    settings(workspace)
    rt = make_runtime()
    anthropic_server.reply_text("too late", delay=1.5)
    provider = get_provider(rt)
    with pytest.raises(ToolTimeoutError, match="within 0.3 s"):
        provider.complete(Request(system="", messages=[{"role": "user", "content": "hi"}], timeout=0.3))


def test_tool_use_answer_is_returned_structured(workspace, make_runtime, anthropic_server: MessagesServer):
    from tools.invoke.llm import WRITE_TOOL

    settings(workspace)
    rt = make_runtime()
    anthropic_server.reply_tool_use("write_tool_version", {"code": "x = 1\n", "manifest_yaml": "name: a\n", "explanation": "e"})
    done = get_provider(rt).complete(Request(system="s", messages=[{"role": "user", "content": "go"}], tool=WRITE_TOOL))
    assert done.tool_input == {"code": "x = 1\n", "manifest_yaml": "name: a\n", "explanation": "e"}
    assert done.tool_use_id and done.tool_use_id.startswith("toolu_test_")
    sent = anthropic_server.requests[-1].body
    assert sent["tool_choice"] == {"type": "tool", "name": "write_tool_version"}
    assert sent["tools"][0]["name"] == "write_tool_version"


def test_daily_token_budget_refuses_once_spent(workspace, make_runtime, anthropic_server: MessagesServer):
    settings(workspace, "daily_token_budget = 50")
    translator(workspace)
    rt = make_runtime()
    anthropic_server.reply_text("one", input_tokens=40, output_tokens=20)
    assert rt.call("translator_llm", {"text": "a"}) == "one"
    with pytest.raises(ToolUnavailableError, match="daily token budget of 50 is spent"):
        rt.call("translator_llm", {"text": "b"})
    assert len(anthropic_server.requests) == 1


def test_streaming_reply_from_the_test_server(anthropic_server: MessagesServer):
    """The server's SSE path works with the SDK (other suites stream through it)."""
    import anthropic

    anthropic_server.reply_text("streamed words", output_tokens=3)
    client = anthropic.Anthropic(max_retries=0, timeout=5)
    with client.messages.stream(model="m", max_tokens=10, messages=[{"role": "user", "content": "hi"}]) as stream:
        text = "".join(stream.text_stream)
    assert text == "streamed words"


def test_replay_provider_labels_its_output(workspace, make_runtime, tmp_path):
    folder = tmp_path / "replays"
    folder.mkdir()
    (folder / "translator_llm.json").write_text(json.dumps({"recorded_from": "a model", "responses": [{"text": "salut"}]}))
    settings(workspace, f'provider = "replay"\nreplay_dir = "{folder}"')
    translator(workspace)
    rt = make_runtime()
    provider = get_provider(rt)
    assert (provider.name, provider.model) == ("replay", "replay")
    assert rt.call("translator_llm", {"text": "hi"}) == "salut"
    done = provider.complete(Request(system="", messages=[], context={"tool_id": "translator_llm"}))
    assert done.model == "replay" and "replay of a recorded answer" in done.note
    with pytest.raises(ModelError, match="no recorded answers for 'other'"):
        provider.complete(Request(system="", messages=[], context={"tool_id": "other"}))


def test_replay_dir_that_is_not_a_folder_is_named(workspace, make_runtime):
    settings(workspace, 'provider = "replay"\nreplay_dir = "nope/here"')
    rt = make_runtime()
    with pytest.raises(UsageError, match="replay_dir = 'nope/here'"):
        get_provider(rt)
