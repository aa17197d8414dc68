"""The prompt evolution sends: the tool as it is, what failed, and the rules of a valid answer.

Kept apart from the flow so the prompt can be read (and its sha256 recorded in
the lineage) without the machinery around it.
"""

from __future__ import annotations

import json
from typing import Any

import yaml

from state.redact import redact
from tools.catalog import Manifest

SYSTEM = """\
You write tools for tooldeck, a runtime that LLM-written workflows call with JSON input.
Answer only by calling write_tool_version with the complete code file, the complete YAML manifest
and a short explanation for the human reviewer who must approve your change before it runs.

Rules for the new version:
- {type_rule} The code file is saved as {code_name}; the runtime fixes the
  manifest's version, entry/args and lineage, so do not worry about those fields.
- type python: the manifest's `entry: {code_name}:<function>`; the function takes the input dict
  and returns JSON-serialisable data. type executable: the program reads one JSON object on stdin
  and prints its JSON result on stdout; exit non-zero with a one-line reason on stderr to fail.
- Use the Python standard library only. No network access, no files outside the working folder,
  no environment secrets: the candidate is validated in a sandbox that refuses all of these.
- {schema_rule}
- Keep every existing test that still describes wanted behaviour, and add tests (with `expect` or
  `expect_contains`) for the new behaviour and for the failure being fixed.
- Validation runs, in order: the manifest, compiling the code, the manifest's tests, the recorded
  failing inputs (which must now succeed), and recorded successful calls (which must not regress).
"""


def _block(title: str, body: str, lang: str = "") -> str:
    return f"## {title}\n```{lang}\n{body.rstrip()}\n```\n"


def build_prompt(*, tool_id: str, version: str, code_name: str, parent: Manifest | None, parent_raw: dict[str, Any] | None,
                 parent_code: str, failures: list[dict[str, Any]], error_message: str, mutation_hint: str,
                 dynamic_schema: bool, spec_text: str | None = None, memory: str = "") -> tuple[str, str]:
    """(system, user) for the model; deterministic for the same inputs, so its hash means something."""
    schema_rule = ("You may change output_schema: callers were told the output shape may change (dynamic_schema)."
                   if dynamic_schema or parent is None else
                   "Keep output_schema exactly as it is: callers depend on the output shape (outputs may add keys).")
    replacing = parent is not None and parent.type == "mcp"
    type_rule = ("Keep the tool's id; write it as type python (it replaces a tool of an MCP server)." if replacing
                 else "Keep the tool's id and type.")
    system = SYSTEM.format(code_name=code_name, schema_rule=schema_rule, type_rule=type_rule)
    parts: list[str] = []
    if replacing:
        assert parent is not None and parent.mcp is not None
        parts.append(f"# Replace the MCP tool `{tool_id}` with a local tool, version {version}\n")
        parts.append(f"`{tool_id}` is the tool {parent.mcp.tool!r} of the MCP server {parent.mcp.server!r}; its code is not "
                     "available. Write a local python tool that does what its description, schemas and recorded calls "
                     f"show, so calls to `{tool_id}` can run here once a person approves it.\n")
        manifest_text = yaml.safe_dump(parent_raw or {}, sort_keys=False, allow_unicode=True)
        parts.append(_block("The tool as the catalog knows it (keep name, input_schema and output_schema)", manifest_text, "yaml"))
        parts.append(_block("Recorded calls of the MCP tool (JSON lines, newest first)", spec_text or "(none recorded yet)", "json"))
    elif parent is not None:
        parts.append(f"# Evolve tool `{tool_id}` from version {parent.version} to {version}\n")
        manifest_text = yaml.safe_dump({k: v for k, v in (parent_raw or {}).items() if k != "lineage"}, sort_keys=False,
                                       allow_unicode=True)
        parts.append(_block("Current manifest", manifest_text, "yaml"))
        parts.append(_block("Current code", parent_code, "python"))
    else:
        parts.append(f"# Write a new tool `{tool_id}` (version {version}) from this specification\n")
        parts.append(_block("Specification", spec_text or "", "markdown"))
        parts.append("Choose type python unless the specification needs a separate program.\n")
    if error_message:
        parts.append(f"## Error to fix\n{error_message}\n")
    if mutation_hint:
        parts.append(f"## What to change\n{mutation_hint}\n")
    if failures:
        lines = []
        for f in failures[:10]:
            item = {k: f.get(k) for k in ("scenario", "error_class", "error", "input") if f.get(k) is not None}
            lines.append(json.dumps(item, ensure_ascii=False, default=str)[:1500])
        parts.append(_block("Recent failures of this version (newest first)", "\n".join(lines), "json"))
    if memory:
        parts.append(memory)
    parts.append(f"Write the complete new version now; the code file is {code_name}.\n")
    return system, "\n".join(parts)


FEEDBACK_LIMIT = 4000  # the whole message back to the model
CASE_LIMIT = 300  # each failing case: enough to say why, too little to carry a candidate's loot


def _cut(text: Any, limit: int) -> str:
    text = str(text)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def feedback_message(stages: list[dict[str, Any]]) -> str:
    """What failed, for the next round: the failing stage and its failing cases, truncated and redacted.

    What a candidate printed or returned comes back in here, so it is cut short and passes
    through the same redaction as everything else before the model sees it.
    """
    failed = next((s for s in stages if not s["passed"]), None)
    if failed is None:
        return "All validation stages passed."
    lines = [f"Validation failed at stage '{failed['name']}': {_cut(failed['detail'], 2 * CASE_LIMIT)}"]
    failing = [case for case in failed.get("cases") or [] if not case.get("passed")]
    for case in failing[:10]:
        label = case.get("name") or case.get("input")
        lines.append(f"- {_cut(label, 120)}: {_cut(case.get('detail'), CASE_LIMIT)}")
    if len(failing) > 10:
        lines.append(f"- ... and {len(failing) - 10} more failing cases")
    passed = [s["name"] for s in stages if s["passed"]]
    if passed:
        lines.append(f"Stages that passed: {', '.join(passed)}.")
    lines.append("Call write_tool_version again with the complete corrected code and manifest.")
    return _cut(redact("\n".join(lines)), FEEDBACK_LIMIT)
