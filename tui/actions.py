"""What the command line and the panel keys do, as plain functions of the runtime.

They run in thread workers; each returns a dict with a `status` line and,
when there is something to read, a rich renderable under `screen`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from rich.syntax import Syntax

from tools.errors import ToolError, UsageError
from tools.ids import inside
from tui.commands import Command


def _json_view(value: Any) -> Syntax:
    return Syntax(json.dumps(value, indent=2, ensure_ascii=False, default=str), "json", word_wrap=True)


def run_command(runtime: Any, command: Command) -> dict[str, Any]:
    action = command.action
    if action == "tool.call":
        served = runtime.resolution(command.target)  # the version that answers: session, then global promotion, then base
        entry = served.entry
        result = runtime.call_entry(entry, command.args.get("input", {}))
        answered = f"{command.target} {entry.served_version}" + (f" (promoted for {served.scope})" if served.promoted else "")
        return {"status": f"{answered} answered", "title": f"{answered} answered", "screen": _json_view(result),
                "copy": json.dumps(result, indent=2, ensure_ascii=False, default=str)}
    if action == "tool.test":
        results = runtime.run_tests(command.target)
        if not results:  # said in words, as `tooldeck test` says it (an empty list, `[]`, said nothing)
            entry = runtime.resolve(command.target)
            return {"status": "the manifest has no tests", "title": f"tests of {command.target}",
                    "screen": f"{command.target} {entry.served_version}: the manifest has no tests, so there is nothing to run"
                              f" (manifest: {entry.path})"}
        failed = [r for r in results if not r["passed"]]
        return {"status": f"{len(results) - len(failed)} passed, {len(failed)} failed", "title": f"tests of {command.target}",
                "screen": _json_view(results)}
    if action in ("tool.disable", "tool.enable"):
        from tools.recovery import set_disabled

        set_disabled(runtime, command.target, action == "tool.disable", actor="dashboard")
        return {"status": f"{command.target} {action.split('.')[1]}d"}
    if action == "tool.evolve":
        from tools.evolution import evolve_tool

        proposal = evolve_tool(runtime, command.target, command.args.get("error", ""), command.args["hint"])
        return {"status": f"proposal #{proposal.get('id')} {proposal.get('status')}"}
    if action == "buffer.flush":
        result = buffers(runtime).flush(command.target)
        return {"status": _short(result)}
    if action == "buffer.clear":
        return {"status": buffers(runtime).clear(command.target).text()}
    if action == "spec":
        return spec(runtime, command.target, command.args.get("max_length", 10_000))
    if action == "resilient":
        from tools.recovery import call_tool_resilient

        result = call_tool_resilient(runtime, command.target, command.args.get("input", {}))
        return {"status": "resilient call succeeded", "title": f"resilient: {command.target}", "screen": _json_view(result)}
    raise UsageError(f"unknown action {action}")


def question_for(runtime: Any, command: Command) -> str:
    """The confirmation of a destructive or broad action, with what it affects counted (read off the event loop)."""
    if command.action == "buffer.clear":
        status = next(iter(buffers(runtime).status(command.target)), None)
        if status is None:
            raise UsageError(f"unknown buffer {command.target!r}")
        pending = status.pending - status.delivering  # a batch being delivered is left to its delivery
        busy = (f" {status.delivering} item{'s' if status.delivering != 1 else ''} being delivered now"
                " will be left to their delivery.") if status.delivering else ""
        return (f"Clear buffer {command.target}? This deletes {pending} pending item{'s' if pending != 1 else ''}"
                f" and {status.dead_letter_items} dead-letter item{'s' if status.dead_letter_items != 1 else ''};"
                f" none is delivered.{busy}")
    if command.action == "tool.disable":
        return disable_question(runtime, command.target, None)
    raise UsageError(f"{command.action} needs no confirmation")


def disable_question(runtime: Any, tool_id: str, version: str | None) -> str:
    """Disabling a live tool refuses its callers and stops the buffers it is the sink of: say how many."""
    import time

    from state.history import call_outcomes

    runtime.get_tool(tool_id)  # an unknown tool is a clear error before any question
    calls = sum(n for _, n, _ in call_outcomes(runtime.store, tool_id, version, time.time() - 60, 60.0))
    engine = runtime.extensions.get("buffers")
    sinks = [b.buffer_id for b in engine.status() if b.pass_through_tool == tool_id] if engine is not None else []
    what = f"Disable {tool_id} {version}?" if version else f"Disable {tool_id} (every version)?"
    bits = [f"{calls} call{'s' if calls != 1 else ''} in the last minute will be refused"]
    if sinks:
        bits.append(f"it is the pass-through tool of {len(sinks)} buffer{'s' if len(sinks) != 1 else ''} ({', '.join(sinks)}),"
                    " whose flushes will fail and retry")
    return f"{what} {'; '.join(bits)}."


def buffers(runtime: Any) -> Any:
    engine = runtime.extensions.get("buffers")
    if engine is None:
        raise ToolError("the buffer engine is not loaded in this runtime")
    return engine


def spec(runtime: Any, path_text: str, max_length: int) -> dict[str, Any]:
    from rich.console import Group
    from rich.markdown import Markdown
    from rich.text import Text

    from tools.spec import extract_spec_from_file, refuse_private
    from tools.visible import visible

    path = Path(path_text)
    target = path.resolve() if path.is_absolute() else inside(runtime.workspace, path)
    refuse_private(path_text, target, Path(runtime.workspace).resolve())  # `.env` is refused here as by the CLI and the builtin
    result = extract_spec_from_file(target, max_length=max_length)
    stats = result["stats"]
    header = Text(f"{len(result['sections'])} sections · summary {len(result['summary']):,}/{max_length:,} characters", style="bold")
    return {"status": f"{len(result['sections'])} sections", "title": f"spec {path_text}",
            "screen": Group(header, Markdown(visible(result["summary"])), Text(json.dumps(stats, default=str), style="dim"))}


def _short(result: Any) -> str:
    if isinstance(result, dict):
        return ", ".join(f"{k}={v}" for k, v in result.items() if isinstance(v, (int, float, str, bool)))[:200]
    return str(result)[:200]
