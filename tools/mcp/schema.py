"""A manifest as an MCP tool: input and output JSON Schema, annotations, and results.

MCP passes arguments as a JSON object and wants `structured_content` to be one, while a
tool's input or output may be any JSON. The manifest loader has already turned the flat form
(`param: {type, required}`) into JSON Schema; a schema whose root is not an object is wrapped
here as the single property `input` (arguments) or `result` (output), and unwrapped again for
the call. Plain data in, plain data out: the server turns it into the SDK's types, and the
import side of MCP can use the same rules in reverse.
"""

from __future__ import annotations

import copy
import json
from typing import Any

from tools.catalog import Manifest

INPUT_KEY = "input"
RESULT_KEY = "result"
_OBJECT_KEYWORDS = ("properties", "required", "additionalProperties", "patternProperties")


def is_object_schema(schema: dict[str, Any]) -> bool:
    kind = schema.get("type")
    if kind is None:
        return any(key in schema for key in _OBJECT_KEYWORDS)
    return kind == "object"


def _as_object(schema: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(schema)
    out["type"] = "object"
    return out


def input_schema(manifest: Manifest) -> tuple[dict[str, Any], bool]:
    """(the schema MCP clients see, whether arguments wrap the tool's input as `input`)."""
    schema = manifest.input_schema
    if not schema:
        return {"type": "object"}, False
    if is_object_schema(schema):
        return _as_object(schema), False
    wrapped = {k: v for k, v in schema.items() if k != "$schema"}
    out: dict[str, Any] = {"type": "object", "properties": {INPUT_KEY: wrapped}, "required": [INPUT_KEY]}
    if "$schema" in schema:
        out["$schema"] = schema["$schema"]
    return out, True


def output_schema(manifest: Manifest) -> tuple[dict[str, Any] | None, bool]:
    """(the output schema MCP clients see or None, whether results are wrapped as `result`)."""
    schema = manifest.output_schema
    if not schema:
        return None, False
    if is_object_schema(schema):
        return _as_object(schema), False
    return {"type": "object", "properties": {RESULT_KEY: copy.deepcopy(schema)}, "required": [RESULT_KEY]}, True


def tool_annotations(manifest: Manifest, *, destructive: bool | None = None) -> dict[str, bool]:
    """MCP's hints from the manifest's optional `read_only`, `destructive`, `idempotent` (snake_case, as the SDK names them)."""
    hints: dict[str, bool] = {}
    if manifest.read_only is not None:
        hints["read_only_hint"] = manifest.read_only
    chosen = manifest.destructive if destructive is None else destructive
    if chosen is not None:
        hints["destructive_hint"] = chosen
    if manifest.idempotent is not None:
        hints["idempotent_hint"] = manifest.idempotent
    return hints


def restrict_operations(schema: dict[str, Any], operations: tuple[str, ...]) -> dict[str, Any]:
    """The schema with its `operation` property limited to `operations` (how `buffer` is served without clear/replay)."""
    out = copy.deepcopy(schema)
    props = out.setdefault("properties", {})
    prop = dict(props.get("operation") or {"type": "string"})
    prop["enum"] = list(operations)
    prop["description"] = " | ".join(operations)
    props["operation"] = prop
    required = out.setdefault("required", [])
    if "operation" not in required:
        required.append("operation")
    return out


def refused_defaults(schema: dict[str, Any], defaults: dict[str, Any]) -> dict[str, str]:
    """Argument -> why the tool's input schema refuses an endpoint's default for it: an argument the schema does not
    have, or a value its type does not take (such a default is not applied: a call would fail on a field the client
    never sent)."""
    import fastjsonschema

    props = schema.get("properties")
    out: dict[str, str] = {}
    for key, value in defaults.items():
        prop = props.get(key) if isinstance(props, dict) else None
        if isinstance(props, dict) and prop is None:
            out[key] = f"no argument {key!r} (known: {', '.join(map(str, props)) or 'none'})"
        elif isinstance(prop, dict):
            try:
                fastjsonschema.validate(prop, copy.deepcopy(value))
            except fastjsonschema.JsonSchemaValueException as exc:
                out[key] = f"{key}: {exc.message.replace('data', key, 1)}"
            except fastjsonschema.JsonSchemaDefinitionException:
                pass  # a schema that cannot be compiled: the call's own check says so
    return out


def with_defaults(schema: dict[str, Any], defaults: dict[str, Any]) -> dict[str, Any]:
    """The schema with each defaulted argument marked `default` and no longer `required` (an endpoint's
    `defaults`: the server fills them in when the client leaves them out)."""
    out = copy.deepcopy(schema)
    props = out.setdefault("properties", {})
    for key, value in defaults.items():
        prop = props.get(key)
        props[key] = {**(prop if isinstance(prop, dict) else {}), "default": value}
    required = out.get("required")
    if isinstance(required, list):
        out["required"] = [r for r in required if r not in defaults]
        if not out["required"]:
            del out["required"]
    return out


def tool_input(arguments: dict[str, Any] | None, wrapped: bool) -> Any:
    """What to hand Runtime.call for MCP `arguments` (which reads a string as JSON text, so a wrapped value goes as JSON)."""
    arguments = arguments or {}
    if wrapped:
        return json.dumps(arguments.get(INPUT_KEY))
    return arguments


def result_text(result: Any) -> str:
    """The output as text: a string as it is, anything else as JSON."""
    if isinstance(result, str):
        return result
    return json.dumps(result, ensure_ascii=False, default=str)


def structured(result: Any, *, wrapped: bool, has_schema: bool) -> dict[str, Any] | None:
    """`structured_content`: always an object; None for plain text from a tool that declares no output schema."""
    if wrapped:
        return {RESULT_KEY: result}
    if isinstance(result, dict):
        return result
    if isinstance(result, str) and not has_schema:
        return None
    return {RESULT_KEY: result}
