"""`tooldeck spec FILE`: a large document as sections and a budgeted summary."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from tools.cli.output import console, emit_json
from tools.errors import UsageError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("spec", help="split a specification into sections and a summary within a budget")
    p.add_argument("file", help="a Markdown, reStructuredText or plain-text document")
    p.add_argument("--max-length", type=int, default=10_000, help="summary budget in characters (default 10,000)")
    p.add_argument("--section", help="print this section whole (an id from the section list)")
    p.add_argument("--llm", action="store_true", help="ask the configured model for an abstractive summary under the same budget")
    p.add_argument("--json", action="store_true", dest="json_out")
    p.set_defaults(func=cmd_spec)


def cmd_spec(args: argparse.Namespace) -> int:
    from tools.spec import extract_spec, read_spec_file, section_text

    if args.max_length < 1:
        raise UsageError("--max-length must be a positive number of characters")
    text, warnings = read_spec_file(Path(args.file), display=args.file)
    for warning in warnings:
        sys.stderr.write(f"tooldeck: warning: {warning}\n")
    if args.section:
        body = section_text(text, args.section)
        if args.json_out:
            emit_json({"file": args.file, "section_id": args.section, "text": body})
        else:
            sys.stdout.write(body if body.endswith("\n") else body + "\n")
        return 0
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
            sys.stderr.write(f"tooldeck: {result['note']}\n")
    if args.json_out:
        emit_json(result)
        return 0
    _render(args.file, result)
    return 0


def _render(name: str, result: dict) -> None:
    from rich.markdown import Markdown
    from rich.panel import Panel
    from rich.table import Table

    out = console()
    stats = result["stats"]
    table = Table(title=f"{name}: {len(result['sections'])} sections", title_justify="left")
    for col in ("id", "kind", "lines", "chars", "MUST"):
        table.add_column(col, overflow="fold")
    for section in result["sections"].values():
        depth = max(0, len(section.get("path", [])) - 1)
        table.add_row("  " * depth + section["id"], section["kind"], f"{section['line_start']}-{section['line_end']}",
                      str(section["chars"]), str(section.get("must_count", 0) or ""))
    out.print(table)
    kind = result.get("summary_kind", "extractive")
    out.print(Panel(Markdown(result["summary"]), title_align="left",
                    title=f"{kind} summary: {len(result['summary']):,} of {stats.get('max_length', '?')} characters"))
    shown = ", ".join(f"{k}={v}" for k, v in stats.items() if isinstance(v, (int, float, str)) and k != "max_length")
    out.print(f"[dim]{shown}[/]")
    out.print(f"[dim]{stats.get('top_level_represented', '?')}/{stats.get('top_level', '?')} top-level sections represented;"
              f" `tooldeck spec {name} --section ID` prints one whole[/]")
