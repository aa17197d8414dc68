"""A manifest's free text: what a person reads wherever the tool is shown, and what in it is hidden.

Its description, and the `description` and `title` of its input and output schemas and of every
schema inside them, are written by whoever wrote the manifest, or by the MCP server it was imported
from. An MCP client shows them to a person and hands them to a model; `tooldeck tools` shows them
too. Control, bidi and invisible characters in them (tools/visible.py) are served spelled out
(tools/mcp/listing.py) and make `tooldeck tools` warn. Data in a schema (`default`, `enum`,
`const`, `examples`) is never touched: a client validates and fills arguments with it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tools.visible import hidden_in

#: the keywords whose value is a map of schemas, one schema, or a list of schemas (JSON Schema 2020-12 and draft 7)
_SCHEMA_MAPS = ("properties", "patternProperties", "$defs", "definitions", "dependentSchemas")
_SCHEMA_ONE = ("items", "additionalItems", "additionalProperties", "unevaluatedItems", "unevaluatedProperties",
               "contains", "propertyNames", "not", "if", "then", "else")
_SCHEMA_LISTS = ("items", "prefixItems", "allOf", "anyOf", "oneOf")
_TEXT_KEYS = ("description", "title")


def map_schema_text(schema: Any, change: Callable[[str], str]) -> Any:
    """`schema` with `change` applied to the `description` and `title` of it and of every schema inside it; the
    schema itself when `change` changed nothing, else a copy of the parts that did (the rest shared)."""
    if not isinstance(schema, dict):
        return schema
    out: dict[str, Any] | None = None

    def put(key: str, value: Any) -> None:
        nonlocal out
        if value is not schema[key]:
            if out is None:
                out = dict(schema)
            out[key] = value

    for key in _TEXT_KEYS:
        text = schema.get(key)
        if isinstance(text, str) and (new := change(text)) != text:
            put(key, new)
    for key in _SCHEMA_MAPS:
        value = schema.get(key)
        if isinstance(value, dict):
            changed = {name: map_schema_text(sub, change) for name, sub in value.items()}
            if any(changed[name] is not sub for name, sub in value.items()):
                put(key, changed)
    for key in dict.fromkeys(_SCHEMA_ONE + _SCHEMA_LISTS):
        value = schema.get(key)
        if isinstance(value, dict):
            put(key, map_schema_text(value, change))
        elif isinstance(value, list) and key in _SCHEMA_LISTS:
            items = [map_schema_text(sub, change) for sub in value]
            if any(new is not old for new, old in zip(items, value, strict=True)):
                put(key, items)
    return schema if out is None else out


def schema_hidden(schema: Any) -> list[str]:
    """The characters tools.visible spells out in the texts of `schema` (`map_schema_text`'s), each once, as spelled."""
    held: dict[str, None] = {}

    def collect(text: str) -> str:
        held.update(dict.fromkeys(hidden_in(text)))
        return text

    map_schema_text(schema, collect)
    return list(held)


def hidden_text(manifest: Any) -> str | None:
    """Where `manifest`'s free text holds characters tools.visible spells out, and which (each once), or None;
    e.g. "its description holds \\x1b, <U+202E>; its input schema's descriptions or titles hold <U+200B>"."""
    parts = []
    found = hidden_in(str(manifest.description or ""))
    if found:
        parts.append(f"its description holds {', '.join(found)}")
    for name, schema in (("input", manifest.input_schema), ("output", manifest.output_schema)):
        held = schema_hidden(schema)
        if held:
            parts.append(f"its {name} schema's descriptions or titles hold {', '.join(held)}")
    return "; ".join(parts) or None
