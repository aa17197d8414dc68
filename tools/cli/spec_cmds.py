"""`tooldeck spec FILE`: a large document as sections and a budgeted summary."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from tools.cli.output import console, emit_json, plural, positive_number, print_table
from tools.visible import visible


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("spec", help="split a specification into sections and a summary within a budget")
    p.add_argument("file", help="a Markdown, reStructuredText or plain-text document (not a dotfile, a file in a dot-folder "
                                "or tooldeck.toml: the workspace's secrets and settings live there)")
    p.add_argument("--max-length", type=positive_number("characters", integer=True), default=10_000,
                   help="summary budget in characters (default 10,000)")
    p.add_argument("--section", help="print this section whole (an id from the section list)")
    p.add_argument("--llm", action="store_true", help="ask the configured model for an abstractive summary under the same budget")
    p.set_defaults(func=cmd_spec)


def cmd_spec(args: argparse.Namespace) -> int:
    from tools.ids import resolve_workspace
    from tools.spec import extract_spec, read_spec_file, refuse_private, section_text

    refuse_private(args.file, _resolved(args.file), resolve_workspace(args.workspace))  # as the builtin refuses them
    text, warnings = read_spec_file(Path(args.file), display=args.file)
    for warning in warnings:
        sys.stderr.write(f"tooldeck: warning: {visible(warning)}\n")
    if args.section:
        body = section_text(text, args.section)
        if args.json_out:
            emit_json({"file": args.file, "section_id": args.section, "text": body})
        else:
            body = visible(body)  # the document's text, shown: --json gives the exact characters
            sys.stdout.write(body if body.endswith("\n") else body + "\n")
        return 0
    from tools.errors import UsageError
    from tools.spec import MIN_MAX_LENGTH

    if args.max_length < MIN_MAX_LENGTH:
        raise UsageError(f"--max-length must be at least {MIN_MAX_LENGTH} characters, got {args.max_length}")
    result = extract_spec(text, max_length=args.max_length, source=args.file)
    result["warnings"] = warnings + [w for w in result.get("warnings", []) if w not in warnings]
    if args.llm:
        from tools.cli.output import runtime_for
        from tools.spec import abstractive_summary

        runtime = runtime_for(args)
        try:
            result = abstractive_summary(runtime, text, result, args.max_length)
        finally:
            runtime.close()
        if not args.json_out:
            sys.stderr.write(f"tooldeck: {visible(result['note'])}\n")
    if args.json_out:
        emit_json(result)
        return 0
    _render(args.file, result)
    return 0


def _resolved(file: str) -> Path:
    """Where `file` leads; a symlink loop stays as given, for read_spec_file to name what is wrong with it."""
    try:
        return Path(file).resolve()
    except (OSError, RuntimeError):
        return Path(file).absolute()


def _render(name: str, result: dict[str, Any]) -> None:
    out = console()
    stats = result["stats"]
    print_table(f"{name}: {plural(len(result['sections']), 'section')}", ("id", "kind", "lines", "chars", "MUST"),
                [("  " * max(0, len(sec.get("path", [])) - 1) + sec["id"] if out.is_terminal else sec["id"], sec["kind"],
                  f"{sec['line_start']}-{sec['line_end']}", sec["chars"], sec.get("must_count", 0) or "")
                 for sec in result["sections"].values()], keys=("id", "kind", "lines"))
    kind = result.get("summary_kind", "extractive")
    title = f"{kind} summary: {len(result['summary']):,} of {stats.get('max_length', '?'):,} characters"
    if out.is_terminal:
        from rich.markdown import Markdown
        from rich.panel import Panel

        out.print(Panel(Markdown(visible(result["summary"])), title_align="left", title=title))
    else:
        sys.stdout.write(f"\n# {title}\n\n{visible(result['summary'])}\n")
    shown = ", ".join(f"{k}={v}" for k, v in stats.items() if isinstance(v, (int, float, str)) and k != "max_length")
    sys.stderr.write(f"{shown}\n{stats.get('top_level_represented', '?')}/{stats.get('top_level', '?')} top-level sections "
                     f"represented; `tooldeck spec {name} --section ID` prints one whole\n")
