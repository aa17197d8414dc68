"""Model providers for evolution and `llm` tools: `anthropic`, `replay`, or none.

The anthropic SDK is imported only inside `AnthropicProvider.complete` (it costs
~1.3 s). The API key is read from the environment at call time and handed to
the SDK client only: it is never stored, logged, put in an event or passed to a
tool. `replay` serves recorded answers from JSON files and labels everything it
produces as replay (model name "replay").
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from state.redact import redact
from tools.errors import ToolError, ToolTimeoutError, ToolUnavailableError, UsageError
from tools.ids import check_tool_id

if TYPE_CHECKING:
    from tools.host import RuntimeHost

PACKAGED_REPLAY_DIR = Path(__file__).resolve().parents[1] / "demo" / "replay"
REPLAY_MODEL = "replay"

HOW_TO_CONFIGURE = (
    "no model is configured: export ANTHROPIC_API_KEY (and ANTHROPIC_BASE_URL for a compatible endpoint) "
    "or set [model] provider = \"anthropic\" | \"replay\" in tooldeck.toml"
)

#: The structured answer evolution asks for, instead of scraping code out of prose.
WRITE_TOOL: dict[str, Any] = {
    "name": "write_tool_version",
    "description": "Write the new version of the tool: its complete code file and its complete YAML manifest.",
    "input_schema": {
        "type": "object",
        "properties": {
            "code": {"type": "string", "description": "The complete source of the new code file."},
            "manifest_yaml": {"type": "string", "description": "The complete YAML manifest of the new version."},
            "explanation": {"type": "string", "description": "What changed and why, for the reviewer."},
        },
        "required": ["code", "manifest_yaml", "explanation"],
    },
}


class ModelError(ToolError):
    """The model endpoint refused, failed or answered with something unusable."""

    error_class = "model_error"


@dataclass(frozen=True)
class Completion:
    provider: str
    model: str
    text: str
    tool_input: dict[str, Any] | None
    input_tokens: int = 0
    output_tokens: int = 0
    stop_reason: str | None = None
    note: str = ""
    tool_use_id: str | None = None


@dataclass
class Request:
    """One model request. `context` helps the replay provider pick a recording."""

    system: str
    messages: list[dict[str, Any]]
    tool: dict[str, Any] | None = None
    max_tokens: int = 4096
    timeout: float = 120.0
    purpose: str = ""
    model: str | None = None
    context: dict[str, Any] = field(default_factory=dict)


class Provider(Protocol):
    name: str
    model: str

    def complete(self, request: Request) -> Completion: ...


# -- daily token budget ------------------------------------------------------------


def _today() -> str:
    return _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%d")


def tokens_used_today(store: Any) -> int:
    row = store.query_one("SELECT COALESCE(SUM(input_tokens + output_tokens), 0) FROM llm_usage WHERE day=?", (_today(),))
    return int(row[0]) if row else 0


def check_budget(store: Any, budget: int) -> None:
    used = tokens_used_today(store)
    if budget > 0 and used >= budget:
        raise ToolUnavailableError(
            f"model: the daily token budget of {budget} is spent ({used} tokens used today, UTC); "
            "raise [model] daily_token_budget in tooldeck.toml or wait until tomorrow"
        )


def record_usage(store: Any, completion: Completion, purpose: str) -> None:
    if completion.provider == "replay":
        return  # recorded answers spend nothing
    with store.tx() as con:
        con.execute(
            "INSERT INTO llm_usage(ts, day, provider, model, purpose, input_tokens, output_tokens) VALUES (?,?,?,?,?,?,?)",
            (time.time(), _today(), completion.provider, completion.model, purpose[:200],
             completion.input_tokens, completion.output_tokens),
        )


# -- providers -----------------------------------------------------------------------


class AnthropicProvider:
    """The Messages API through the official SDK (honours ANTHROPIC_BASE_URL)."""

    name = "anthropic"

    def __init__(self, model: str, *, base_url: str | None, max_retries: int, store: Any = None, budget: int = 0) -> None:
        self.model = model
        self.base_url = base_url or os.environ.get("ANTHROPIC_BASE_URL") or None
        self.max_retries = max_retries
        self.store = store
        self.budget = budget

    def complete(self, request: Request) -> Completion:
        key = os.environ.get("ANTHROPIC_API_KEY", "")
        if not key:
            raise ToolUnavailableError(f"model provider anthropic: ANTHROPIC_API_KEY is not set; {HOW_TO_CONFIGURE}")
        if self.store is not None:
            check_budget(self.store, self.budget)
        import anthropic

        model = request.model or self.model
        client = anthropic.Anthropic(api_key=key, base_url=self.base_url, max_retries=self.max_retries,
                                     timeout=request.timeout)
        # the boundary to the model: whatever a prompt carries, no secret leaves the process
        kwargs: dict[str, Any] = {"model": model, "max_tokens": request.max_tokens, "messages": redact(request.messages)}
        if request.system:
            kwargs["system"] = redact(request.system)
        if request.tool is not None:
            kwargs["tools"] = [request.tool]
            kwargs["tool_choice"] = {"type": "tool", "name": request.tool["name"]}
        where = self.base_url or "api.anthropic.com"
        try:
            message = client.messages.create(**kwargs)
        except anthropic.APITimeoutError as exc:
            raise ToolTimeoutError(f"model {model}: no answer from {where} within {request.timeout:g} s") from exc
        except anthropic.APIStatusError as exc:
            detail = _status_detail(exc)
            raise ModelError(f"model {model}: {where} answered HTTP {exc.status_code}: {detail}") from exc
        except anthropic.APIConnectionError as exc:
            raise ModelError(f"model {model}: cannot reach {where}: {redact(str(exc))[:200]}") from exc
        finally:
            client.close()
        text = "".join(getattr(b, "text", "") for b in message.content if getattr(b, "type", "") == "text")
        tool_input = None
        tool_use_id = None
        if request.tool is not None:
            for block in message.content:
                if getattr(block, "type", "") == "tool_use" and getattr(block, "name", "") == request.tool["name"]:
                    tool_input = dict(block.input) if isinstance(block.input, dict) else None
                    tool_use_id = str(getattr(block, "id", "") or "") or None
                    break
        usage = getattr(message, "usage", None)
        completion = Completion(
            "anthropic", str(getattr(message, "model", model) or model), text, tool_input,
            int(getattr(usage, "input_tokens", 0) or 0), int(getattr(usage, "output_tokens", 0) or 0),
            getattr(message, "stop_reason", None), tool_use_id=tool_use_id,
        )
        if self.store is not None:
            record_usage(self.store, completion, request.purpose)
        return completion


def _status_detail(exc: Any) -> str:
    body = getattr(exc, "body", None)
    detail = ""
    if isinstance(body, dict):
        err = body.get("error")
        detail = err.get("message", "") if isinstance(err, dict) else str(err or "")
    return redact(detail or str(getattr(exc, "message", "")) or "error")[:300]


class ReplayProvider:
    """Recorded answers, `<replay_dir>/<tool_id>.json`; everything it returns says `replay`.

    File format: {"recorded_from": "...", "responses": [{"match": ["json"], "text": "...",
    "tool_input": {...}}, ...]}. A response is chosen when every word of its `match` occurs in the
    request's hint and error (case-insensitive); responses without `match` are the fallback.
    Round N of a conversation takes the N-th matching response (the last one repeats).
    """

    name = "replay"
    model = REPLAY_MODEL

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def complete(self, request: Request) -> Completion:
        tool_id = check_tool_id(request.context.get("tool_id", ""), "replay tool id")
        path = self.folder / f"{tool_id}.json"
        if not path.is_file():
            raise ModelError(f"replay: no recorded answers for {tool_id!r} in {self.folder} (expected {path.name})")
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise ModelError(f"replay: {path}: not a readable JSON recording: {exc}") from exc
        responses = data.get("responses") if isinstance(data, dict) else None
        if not isinstance(responses, list) or not responses:
            raise ModelError(f"replay: {path}: field 'responses' must be a non-empty list")
        haystack = " ".join(str(request.context.get(k) or "") for k in ("hint", "error", "input")).lower()
        matched = [r for r in responses if isinstance(r, dict) and r.get("match")
                   and all(str(w).lower() in haystack for w in _as_list(r["match"]))]
        pool = matched or [r for r in responses if isinstance(r, dict) and not r.get("match")]
        if not pool:
            raise ModelError(f"replay: {path}: no recorded answer matches this request and there is no fallback")
        wants_tool = request.tool is not None
        pool = [r for r in pool if ("tool_input" in r) == wants_tool] or pool
        chosen = pool[min(max(int(request.context.get("round", 1)) - 1, 0), len(pool) - 1)]
        tool_input = chosen.get("tool_input") if wants_tool else None
        if tool_input is not None and not isinstance(tool_input, dict):
            raise ModelError(f"replay: {path}: field 'tool_input' must be an object")
        source = data.get("recorded_from", "unknown model")
        return Completion("replay", REPLAY_MODEL, str(chosen.get("text", "")), tool_input, 0, 0, "end_turn",
                          note=f"replay of a recorded answer ({path.name}, recorded from {source})",
                          tool_use_id=f"replay-{request.context.get('round', 1)}" if tool_input is not None else None)


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def provider_name(settings: Any) -> str:
    """The provider `[model] provider` selects (`auto`: anthropic with a key, else none)."""
    choice = str(settings.get("model", "provider", "auto") or "auto").strip().lower()
    if choice == "auto":
        return "anthropic" if os.environ.get("ANTHROPIC_API_KEY") else "none"
    if choice not in ("anthropic", "replay", "none"):
        raise UsageError(f"tooldeck.toml: [model] provider = {choice!r}: use auto, anthropic, replay or none")
    return choice


def get_provider(runtime: RuntimeHost) -> Provider:
    """The configured provider, or a ToolUnavailableError saying how to configure one."""
    cfg = runtime.settings.section("model")
    name = provider_name(runtime.settings)
    if name == "anthropic":
        if not os.environ.get("ANTHROPIC_API_KEY"):
            raise ToolUnavailableError(f"[model] provider = \"anthropic\" but ANTHROPIC_API_KEY is not set; {HOW_TO_CONFIGURE}")
        return AnthropicProvider(str(cfg["name"]), base_url=str(cfg.get("base_url") or "") or None,
                                 max_retries=int(cfg.get("max_retries", 2)), store=runtime.store,
                                 budget=int(cfg.get("daily_token_budget", 0) or 0))
    if name == "replay":
        raw = str(cfg.get("replay_dir") or "")
        folder = PACKAGED_REPLAY_DIR if not raw else (runtime.workspace / Path(raw).expanduser())
        if not folder.is_dir():
            raise UsageError(f"tooldeck.toml: [model] replay_dir = {raw!r}: {folder} is not a folder")
        return ReplayProvider(folder)
    raise ToolUnavailableError(HOW_TO_CONFIGURE)
