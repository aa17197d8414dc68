"""The `:` command line: the original CLI's slash syntax, parsed into actions.

Pure parsing (no Textual): `parse("/tool call json_parser {...}")` gives a
Command the app runs in a thread worker; anything else is a one-line error.
"""

from __future__ import annotations

import json
import shlex
from dataclasses import dataclass, field
from typing import Any

USAGE = {
    "/tool evolve": '/tool evolve TOOL "hint" [--error E]',
    "/tool call": "/tool call TOOL {json}",
    "/tool test": "/tool test TOOL",
    "/tool disable": "/tool disable TOOL",
    "/tool enable": "/tool enable TOOL",
    "/buffer flush": "/buffer flush BUFFER",
    "/buffer clear": "/buffer clear BUFFER",
    "/spec": "/spec PATH [--max-length N]",
    "/resilient": '/resilient "scenario" {json}',
}


class CommandError(ValueError):
    """A command line that cannot be run; the message is one line with the expected usage."""


@dataclass(frozen=True)
class Command:
    action: str  # tool.evolve | tool.call | tool.test | tool.disable | tool.enable | buffer.flush | buffer.clear | spec | resilient
    target: str = ""
    args: dict[str, Any] = field(default_factory=dict)


def _json_rest(text: str, usage: str) -> Any:
    text = text.strip()
    if not text:
        return {}
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise CommandError(f"not valid JSON ({exc.msg} at column {exc.colno}); usage: {usage}") from exc


def parse(line: str) -> Command:
    line = line.strip()
    if not line:
        raise CommandError("empty command; try /tool call TOOL {json}, /buffer flush ID, /spec PATH")
    if not line.startswith("/"):
        line = "/" + line
    head, _, rest = line.partition(" ")
    if head == "/tool":
        verb, _, rest = rest.strip().partition(" ")
        key = f"/tool {verb}"
        if key not in USAGE:
            raise CommandError(f"unknown /tool command {verb!r}; one of: evolve, call, test, disable, enable")
        tool, _, rest = rest.strip().partition(" ")
        if not tool:
            raise CommandError(f"missing tool id; usage: {USAGE[key]}")
        if verb == "call":
            return Command("tool.call", tool, {"input": _json_rest(rest, USAGE[key])})
        if verb == "evolve":
            try:
                words = shlex.split(rest)
            except ValueError as exc:
                raise CommandError(f"{exc}; usage: {USAGE[key]}") from exc
            error = ""
            if "--error" in words:
                i = words.index("--error")
                if i + 1 >= len(words):
                    raise CommandError(f"--error needs a value; usage: {USAGE[key]}")
                error = words[i + 1]
                del words[i:i + 2]
            if not words:
                raise CommandError(f"missing hint; usage: {USAGE[key]}")
            return Command("tool.evolve", tool, {"hint": " ".join(words), "error": error})
        if rest.strip():
            raise CommandError(f"unexpected {rest.strip()!r}; usage: {USAGE[key]}")
        return Command(f"tool.{verb}", tool)
    if head == "/buffer":
        verb, _, rest = rest.strip().partition(" ")
        key = f"/buffer {verb}"
        if key not in USAGE:
            raise CommandError(f"unknown /buffer command {verb!r}; one of: flush, clear")
        buffer_id = rest.strip()
        if not buffer_id or " " in buffer_id:
            raise CommandError(f"expected one buffer id; usage: {USAGE[key]}")
        return Command(f"buffer.{verb}", buffer_id)
    if head == "/spec":
        try:
            words = shlex.split(rest)
        except ValueError as exc:
            raise CommandError(f"{exc}; usage: {USAGE['/spec']}") from exc
        max_length = 10_000
        if "--max-length" in words:
            i = words.index("--max-length")
            try:
                max_length = int(words[i + 1])
            except (IndexError, ValueError) as exc:
                raise CommandError(f"--max-length needs a number; usage: {USAGE['/spec']}") from exc
            del words[i:i + 2]
        if len(words) != 1:
            raise CommandError(f"expected one path; usage: {USAGE['/spec']}")
        return Command("spec", words[0], {"max_length": max_length})
    if head == "/resilient":
        rest = rest.strip()
        if not rest.startswith('"'):
            raise CommandError(f"quote the scenario; usage: {USAGE['/resilient']}")
        end = rest.find('"', 1)
        if end < 0:
            raise CommandError(f"unterminated scenario quote; usage: {USAGE['/resilient']}")
        return Command("resilient", rest[1:end], {"input": _json_rest(rest[end + 1:], USAGE["/resilient"])})
    raise CommandError(f"unknown command {head!r}; try /tool, /buffer, /spec or /resilient")


def completions(prefix: str, tool_ids: list[str], buffer_ids: list[str]) -> list[str]:
    """Whole-line completions for the command line: verbs first, then ids."""
    words = prefix.split(" ")
    if len(words) == 1:
        return [v for v in ("/tool", "/buffer", "/spec", "/resilient") if v.startswith(prefix)]
    if len(words) == 2 and words[0] in ("/tool", "/buffer"):
        verbs = ["evolve", "call", "test", "disable", "enable"] if words[0] == "/tool" else ["flush", "clear"]
        return [f"{words[0]} {v}" for v in verbs if v.startswith(words[1])]
    if len(words) == 3 and words[0] in ("/tool", "/buffer"):
        ids = tool_ids if words[0] == "/tool" else buffer_ids
        return [f"{words[0]} {words[1]} {i}" for i in sorted(ids) if i.startswith(words[2])]
    return []
