"""`llm` tools: the manifest's prompt, filled with the input, sent to the configured model.

Placeholders are `{name}` or `{{ name }}` for a top-level input field, and
`{input}` for the whole input as JSON. A placeholder with no matching field is a
bad input, named. The answer is returned as text, or parsed as JSON when the
manifest's `output_schema` asks for something other than a string.
"""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING, Any

from tools.catalog import ToolEntry
from tools.errors import ToolError, ToolInputError, ToolOutputError

if TYPE_CHECKING:
    from tools.host import RuntimeHost

PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}|\{([A-Za-z_][A-Za-z0-9_]*)\}")


def render_prompt(entry: ToolEntry, data: Any) -> str:
    assert entry.manifest is not None and entry.manifest.prompt is not None
    fields = data if isinstance(data, dict) else {}

    def fill(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2)
        if name == "input" and "input" not in fields:
            return json.dumps(data, ensure_ascii=False)
        if name not in fields:
            raise ToolInputError(f"{entry.tool_id}: the prompt uses {{{name}}} but the input has no field {name!r}",
                                 tool_id=entry.tool_id, version=entry.served_version)
        value = fields[name]
        return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)

    return PLACEHOLDER.sub(fill, entry.manifest.prompt)


def _wants_json(entry: ToolEntry) -> bool:
    schema = entry.manifest.output_schema if entry.manifest else None
    return schema is not None and bool(schema) and schema.get("type") != "string"


def run_llm_tool(runtime: RuntimeHost, entry: ToolEntry, data: Any, timeout: float) -> Any:
    """One model request per call; without a configured model, say how to configure one."""
    from tools.invoke.llm import HOW_TO_CONFIGURE, Request, get_provider

    manifest = entry.manifest
    assert manifest is not None
    prompt = render_prompt(entry, data)
    try:
        provider = get_provider(runtime)
    except ToolError as exc:
        exc.tool_id = entry.tool_id
        if HOW_TO_CONFIGURE in exc.message and not exc.message.startswith(entry.tool_id):
            exc.message = f"{entry.tool_id} is an llm tool and {exc.message}"
            exc.args = (exc.message,)
        raise
    cfg = runtime.settings.section("model")
    request = Request(
        system="", messages=[{"role": "user", "content": prompt}], max_tokens=int(cfg["max_tokens"]),
        timeout=min(float(timeout), float(cfg["timeout_seconds"])), purpose=f"tool {entry.tool_id}",
        model=manifest.model, context={"tool_id": entry.tool_id, "input": json.dumps(data, ensure_ascii=False)},
    )
    completion = provider.complete(request)
    text = completion.text.strip()
    if not _wants_json(entry):
        return completion.text
    body = text
    if body.startswith("```"):
        body = body.split("\n", 1)[1] if "\n" in body else ""
        body = body.rsplit("```", 1)[0]
    try:
        return json.loads(body)
    except (json.JSONDecodeError, RecursionError) as exc:
        reason = exc.msg if isinstance(exc, json.JSONDecodeError) else "nested too deeply"
        raise ToolOutputError(f"{entry.tool_id}: the model's answer is not the JSON the output_schema asks for: {reason}",
                              tool_id=entry.tool_id, version=entry.served_version) from exc
