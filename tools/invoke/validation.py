"""Input and output checked against the manifest's schemas, with compiled validators.

fastjsonschema turns a schema into a Python function once; checking a small
input then costs microseconds, which the 20,000 builtin calls/s target needs.
"""

from __future__ import annotations

from typing import Any

import fastjsonschema

from tools.catalog import ToolEntry
from tools.errors import ManifestError, ToolInputError, ToolOutputError
from tools.invoke.executable import StdoutText

#: how much of a tool's non-JSON stdout an error shows
NOT_JSON_SHOWN = 80


def _validator(entry: ToolEntry, which: str) -> Any:
    key = f"validator:{which}"
    if key not in entry.cache:
        schema = getattr(entry.manifest, which)
        if not schema:
            entry.cache[key] = None
        else:
            try:
                entry.cache[key] = fastjsonschema.compile(schema, use_default=(which == "input_schema"))
            except fastjsonschema.JsonSchemaDefinitionException as exc:
                if entry.manifest is not None and entry.manifest.type == "mcp":
                    entry.cache[key] = None  # a schema its server wrote and we cannot compile: the server checks its own
                    return None
                raise ManifestError(f"{entry.path}: field '{which}': invalid JSON Schema: {exc}", tool_id=entry.tool_id) from exc
    return entry.cache[key]


def check_input(entry: ToolEntry, data: Any) -> Any:
    """Validate (and fill defaults into) the input; returns what the tool will see."""
    validate = _validator(entry, "input_schema")
    if validate is None:
        return data
    if isinstance(data, dict):
        data = dict(data)
    try:
        return validate(data)
    except fastjsonschema.JsonSchemaValueException as exc:
        raise ToolInputError(
            f"{entry.tool_id}: bad input: {_unknown_fields(entry, data, exc) or _describe(exc, 'input')}",
            tool_id=entry.tool_id,
            version=entry.served_version,
        ) from exc


def _unknown_fields(entry: ToolEntry, data: Any, exc: Any) -> str | None:
    """`unknown field 'max_lenght' (known: file_path, max_length, ...)` for a field the schema does not allow."""
    if getattr(exc, "rule", None) != "additionalProperties" or not isinstance(data, dict) or entry.manifest is None:
        return None
    known = list((entry.manifest.input_schema or {}).get("properties") or {})
    unknown = sorted(str(k) for k in data if k not in known)
    if not unknown:
        return None
    names = ", ".join(repr(k) for k in unknown)
    return f"unknown field{'s' if len(unknown) > 1 else ''} {names} (known: {', '.join(known)})"


def check_output(entry: ToolEntry, data: Any) -> None:
    validate = _validator(entry, "output_schema")
    if validate is None:
        return
    try:
        validate(data)
    except fastjsonschema.JsonSchemaValueException as exc:
        if isinstance(data, StdoutText):  # stdout that did not parse: saying which field is wrong would mislead
            shown = data.strip()
            shown = shown if len(shown) <= NOT_JSON_SHOWN else shown[:NOT_JSON_SHOWN] + "..."
            raise ToolOutputError(f"{entry.tool_id}: output is not JSON: {shown!r}", tool_id=entry.tool_id,
                                  version=entry.served_version) from exc
        raise ToolOutputError(
            f"{entry.tool_id}: output violates output_schema: {_describe(exc, 'output')}",
            tool_id=entry.tool_id, version=entry.served_version,
        ) from exc


def _describe(exc: Any, what: str) -> str:
    """fastjsonschema's message with its `data` named as what it is (`input` or `output`)."""
    path = ".".join(str(p) for p in (exc.path or [])[1:])
    msg = str(exc.message).replace("data.", "").replace("data ", f"{what} ", 1)
    return f"field '{path}': {msg}" if path else msg
