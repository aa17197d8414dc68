"""`tooldeck evolve`, `tooldeck review ...`, `tooldeck rollback`, `tooldeck generate`."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from tools.cli.output import console, emit_json, err_console, plural, print_table, runtime_for, shown
from tools.errors import UsageError
from tools.visible import marked_lines, visible

if TYPE_CHECKING:
    from tools.host import RuntimeHost


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("evolve", help="ask the model for a new version of a tool, validate it in the sandbox, queue it for review")
    p.add_argument("tool", help="the tool id to evolve (python and executable tools)")
    p.add_argument("hint", help="what to change, e.g. \"Support JSON and CSV\"")
    p.add_argument("--error", default="", help="the error message to fix")
    p.add_argument("--dynamic-schema", action="store_true", help="allow the new version to change its output schema")
    p.set_defaults(func=cmd_evolve)

    review = sub.add_parser("review", help="list, show, approve, reject or cancel evolution proposals")
    rsub = review.add_subparsers(dest="review_command", metavar="ACTION", parser_class=type(review))
    rsub.required = True
    p = rsub.add_parser("list", help="proposals, newest first")
    p.add_argument("--status", help="only this status (awaiting_review, approved, ...)")
    p.add_argument("--tool", help="only proposals for this tool id")
    p.set_defaults(func=cmd_review_list)
    p = rsub.add_parser("show", help="a proposal's diff, every stage's result, and the diff's sha256")
    p.add_argument("id", help="the proposal id (from review list)")
    p.set_defaults(func=cmd_review_show)
    p = rsub.add_parser("approve", help="promote a proposal (needs the sha256 of the diff you reviewed)")
    p.add_argument("id", help="the proposal id (from review list)")
    p.add_argument("--diff", required=True, dest="diff_sha256", help="sha256 of the reviewed diff (from review show)")
    p.add_argument("--scope", required=True,
                   help="who gets the new version: a live session id (see the error without it), or global (everyone)")
    p.add_argument("--reviewer", default=None, help="who approves (default: $USER)")
    p.set_defaults(func=cmd_review_approve)
    p = rsub.add_parser("reject", help="refuse a proposal")
    p.add_argument("id", help="the proposal id (from review list)")
    p.add_argument("--reason", required=True, help="why, for the record and the next evolution")
    p.add_argument("--reviewer", default=None, help="who rejects (default: $USER)")
    p.set_defaults(func=cmd_review_reject)
    p = rsub.add_parser("revalidate", help="validate a proposal again, in the sandbox, with the failures recorded since")
    p.add_argument("id", help="the proposal id (from review list)")
    p.set_defaults(func=cmd_review_revalidate)
    p = rsub.add_parser("stats", help="approval rate, rounds, where validation fails and tokens, by model, hint, tool and stage")
    p.set_defaults(func=cmd_review_stats)
    p = rsub.add_parser("cancel", help="stop a running evolution")
    p.add_argument("id", help="the proposal id (from review list)")
    p.set_defaults(func=cmd_review_cancel)

    p = sub.add_parser("rollback", help="serve an earlier version of a tool again (the base, or one that was approved)")
    p.add_argument("tool", help="the tool id")
    p.add_argument("version", help="the version to serve again (the base version, or one approved before)")
    p.add_argument("--scope", default="global", help="global (default: everyone) or a session id")
    p.set_defaults(func=cmd_rollback)

    p = sub.add_parser("generate", help="ask the model for a new tool from a spec document, or for a local replacement of an "
                                         "MCP tool; validated and queued for review")
    p.add_argument("file", nargs="?", help="the spec document (inside the workspace)")
    p.add_argument("--tool", dest="tool_name", help="the new tool's id (with a spec document)")
    p.add_argument("--from-tool", metavar="ID", dest="from_tool",
                   help="an MCP tool's id: write a local tool of the same id from its description, schemas and recorded "
                        "calls (the next version; it serves once approved)")
    p.set_defaults(func=cmd_generate)


def _reviewer(value: str | None) -> str:
    import getpass

    if value:
        return value
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "operator"


def _progress_printer(json_out: bool) -> Any:
    from rich.text import Text

    err = err_console()

    def show(event: dict[str, Any]) -> None:
        if not json_out:
            err.print(Text.assemble((f"proposal {event['proposal_id']}", "dim"), f" {visible(event['stage'])}: ",
                                    shown(event["message"])), soft_wrap=True)  # one line a step, whatever the width (a log)

    return show


def _with_runtime(args: argparse.Namespace, fn: Callable[[RuntimeHost], int]) -> int:
    runtime = runtime_for(args)
    try:
        return fn(runtime)
    finally:
        runtime.close()


def cmd_evolve(args: argparse.Namespace) -> int:
    from tools.evolution import evolve_tool

    def run(runtime: RuntimeHost) -> int:
        show = _progress_printer(args.json_out)
        if args.json_out or not sys.stderr.isatty():
            proposal = evolve_tool(runtime, args.tool, args.error, args.hint, args.dynamic_schema, progress=show)
        else:
            with err_console().status(f"evolving {args.tool}: waiting for the model..."):
                proposal = evolve_tool(runtime, args.tool, args.error, args.hint, args.dynamic_schema, progress=show)
        return _report(args, proposal)

    return _with_runtime(args, run)


def cmd_review_revalidate(args: argparse.Namespace) -> int:
    from tools.evolution import revalidate

    def run(runtime: RuntimeHost) -> int:
        return _report(args, revalidate(runtime, args.id, progress=_progress_printer(args.json_out)))

    return _with_runtime(args, run)


def _report(args: argparse.Namespace, proposal: dict[str, Any]) -> int:
    """Print a new proposal (JSON or readable); exit 0 when it awaits review or was auto-approved."""
    from tools.evolution import summarize

    if args.json_out:
        emit_json(summarize(proposal))
    else:
        _print_proposal(proposal, diff=False)
    return 0 if proposal["status"] in ("awaiting_review", "approved") else 1


def cmd_generate(args: argparse.Namespace) -> int:
    from tools.evolution import generate_replacement, generate_tool_from_spec

    if args.from_tool is not None and (args.file or args.tool_name):
        raise UsageError("generate: give either --from-tool ID, or a spec FILE with --tool NAME, not both")
    if args.from_tool is None and not (args.file and args.tool_name):
        raise UsageError("generate: give a spec FILE and --tool NAME, or --from-tool ID (an MCP tool to replace)")

    def run(runtime: RuntimeHost) -> int:
        if args.from_tool is not None:
            proposal = generate_replacement(runtime, args.from_tool, progress=_progress_printer(args.json_out))
        else:
            proposal = generate_tool_from_spec(runtime, args.file, args.tool_name, progress=_progress_printer(args.json_out))
        return _report(args, proposal)

    return _with_runtime(args, run)


def cmd_review_list(args: argparse.Namespace) -> int:
    from tools.evolution import list_proposals

    def run(runtime: RuntimeHost) -> int:
        rows = list_proposals(runtime, args.status, tool_id=args.tool, check_files=True)
        if args.json_out:
            emit_json([{k: r.get(k) for k in ("id", "tool_id", "version", "parent_version", "status", "provider", "model",
                                              "mutation_hint", "diff_sha256", "created", "scope", "changed_on_disk", "tampered")}
                       for r in rows])
            return 0
        table = []
        for r in rows:
            model = f"{r['model']} (replay)" if r.get("replay") and r.get("model") != "replay" else (r.get("model") or "")
            table.append((r["id"], r["tool_id"], r["version"], r.get("parent_version") or "-", _status(r), model,
                          r.get("mutation_hint") or ""))
        print_table(plural(len(rows), "proposal"), ("id", "tool", "version", "from", "status", "model", "hint"), table,
                    keys=("id", "tool", "version", "from", "status"))
        return 0

    return _with_runtime(args, run)


def _status(p: dict[str, Any]) -> str:
    """The status, and what the files on disk say against it (`review list`: the detail is in `review show`)."""
    if p.get("tampered"):
        return f"{p['status']} (tampered: not served)"
    if p.get("changed_on_disk"):
        return f"{p['status']} (changed on disk since {'approval' if p['status'] in ('approved', 'rolled_back') else 'validation'})"
    return str(p["status"])


def _tampered(reason: str) -> str:
    """`tampered: X changed after approval` (the pins' wording, as the catalog records it) without the word the
    TAMPERED label already says."""
    return reason.removeprefix("tampered: ")


def _print_proposal(p: dict[str, Any], *, diff: bool) -> None:
    """A proposal for a person. Everything the model, the candidate or the sandbox wrote (hint, error, stage
    details, explanation, failure, diff) goes through `shown`/`visible` (tools/visible.py): made visible, never markup."""
    from rich.text import Text

    from tools.evolution import repeats_warning

    out = console()
    head = Text.assemble((f"proposal {p['id']}", "bold"), f": {p['tool_id']} {p.get('parent_version') or '(new)'} -> {p['version']}  ",
                         (str(p["status"]), "bold"))
    out.print(head)
    model = Text(f"model: {visible(p.get('provider'))} / {visible(p.get('model'))}")
    if p.get("replay"):
        model.append(" (replay: a recorded answer, not a live model)", style="yellow")
    model.append(f"; tokens in {p['tokens']['input']}, out {p['tokens']['output']}; rounds {p.get('rounds')}")
    out.print(model)
    if p.get("reviewer") or p.get("review_reason"):  # the decision: who, for which scope, and why
        review = Text(f"review: {p['status']} by {visible(p.get('reviewer') or 'someone')}"
                      + (f" for {visible(p['scope'])}" if p.get("scope") and p["status"] == "approved" else ""))
        if p.get("review_reason"):
            review.append(": ").append_text(shown(p["review_reason"]))
        out.print(review)
    if p.get("tampered"):
        out.print(Text.assemble(("TAMPERED", "bold red"), ": ", shown(_tampered(p["tampered"])), " (not served)"))
    elif p.get("changed_on_disk"):  # the stages and any approval below are for an earlier diff than the one shown
        out.print(Text.assemble(("CHANGED ON DISK", "bold red"), ": ", shown(p["changed_on_disk"])))
    for problem in p.get("problems") or []:  # a file that would not run or load as the diff shows it
        out.print(Text.assemble(("NOT AS SHOWN", "bold red"), ": ", shown(problem), " (it cannot be approved)"))
    for edit in p.get("edited") or []:
        files = ", ".join(edit.get("files") or []) or "the candidate (or its parent)"
        out.print(Text.assemble(("EDITED", "bold yellow"), ": ", shown(files),
                                f" edited on disk by an operator after validation, not by the model (diff "
                                f"{str(edit.get('validated_diff_sha256'))[:12]}... -> {str(edit.get('diff_sha256'))[:12]}...)"))
    if p.get("mutation_hint"):
        out.print(Text("hint: ").append_text(shown(p["mutation_hint"])))
    if p.get("error_message"):
        out.print(Text("error: ").append_text(shown(p["error_message"])))
    if p.get("explanation"):
        out.print(Text("explanation: ").append_text(shown(p["explanation"])))
    if p.get("changed_on_disk") and p.get("stages") and not p.get("tampered"):
        out.print(f"stages, for the earlier diff (sha256 {p.get('diff_sha256')}), not the one shown below:")
    for stage in p.get("stages") or []:
        mark = ("SKIP", "dim") if stage.get("skipped") else (("PASS", "green") if stage["passed"] else ("FAIL", "red"))
        out.print(Text.assemble("  ", mark, f" {visible(stage['name']):<17} {stage['ms']:>8.1f} ms  ", shown(stage["detail"])))
    if p.get("protections"):
        held = ", ".join(f"{k}={v}" for k, v in p["protections"].items())
        out.print(shown(f"sandbox: {held}"))
    if p.get("failure"):
        out.print(Text(visible(p["failure"]), style="red"))
    warning = repeats_warning(p)
    if warning:  # evolution's memory: this candidate repeats an approach a reviewer turned down
        line = shown(warning)
        line.stylize("bold yellow", 0, len("REPEATS"))
        out.print(line)
    offered = (p.get("memory") or {}).get("fixes") or []
    if offered:
        out.print(f"offered past fixes: {', '.join('proposal ' + str(f['proposal_id']) for f in offered)}")
    if diff and p.get("diff"):
        out.print(diff_text(p["diff"]))
    sha = p.get("current_diff_sha256") or p.get("diff_sha256")
    if sha:
        out.print(f"diff sha256: {sha}" + (f" (validated: {p['diff_sha256']})" if p.get("changed_on_disk") else ""))
    if p["status"] == "awaiting_review":
        if p.get("changed_on_disk"):  # an approval would be refused: validate what is on disk now first
            out.print(f"revalidate: tooldeck review revalidate {p['id']}")
        elif not p.get("problems"):
            out.print(f"approve: tooldeck review approve {p['id']} --diff {sha} --scope global|SESSION")
        out.print(f"reject:  tooldeck review reject {p['id']} --reason ...")


DIFF_STYLES = {"meta": "bold", "hunk": "cyan", "del": "red", "add": "green", "ctx": ""}
MARK = "!"


def diff_text(diff: str) -> Any:
    """A unified diff for the terminal, one line per line of the diff, its characters made visible. When a line
    held a control, bidi or invisible character, every line gets a two-column gutter and that line is marked `!`
    (the hash still binds the real bytes; this is only how they are shown)."""
    from rich.text import Text

    lines = marked_lines(diff)
    gutter = any(marked for _, marked in lines)
    out = Text(no_wrap=False)
    for i, (line, marked) in enumerate(lines):
        if i:
            out.append("\n")
        if gutter:
            out.append(f"{MARK} " if marked else "  ", style="bold black on yellow" if marked else "")
        kind = ("meta" if line.startswith(("---", "+++")) else "hunk" if line.startswith("@@")
                else "del" if line.startswith("-") else "add" if line.startswith("+") else "ctx")
        out.append(line, style=DIFF_STYLES[kind])
    if gutter:
        out.append(f"\n{MARK} marks a line holding control, bidi or invisible characters, shown as \\x1b or <U+202E>",
                   style="bold yellow")
    return out


def cmd_review_show(args: argparse.Namespace) -> int:
    from tools.evolution import get_proposal

    def run(runtime: RuntimeHost) -> int:
        p = get_proposal(runtime, args.id)
        if args.json_out:
            emit_json(p)
        else:
            _print_proposal(p, diff=True)
        return 0

    return _with_runtime(args, run)


def cmd_review_approve(args: argparse.Namespace) -> int:
    from tools.evolution import approve, check_scope

    def run(runtime: RuntimeHost) -> int:
        check_scope(runtime, args.scope)
        p = approve(runtime, args.id, args.scope, _reviewer(args.reviewer), args.diff_sha256)
        if args.json_out:
            emit_json({k: p.get(k) for k in ("id", "tool_id", "version", "status", "scope", "reviewer", "unchanged")})
        elif p.get("unchanged"):  # as a rollback to what already serves: the first approval's record is kept
            console().print(f"proposal {p['id']}: scope {p['scope']} already serves {p['tool_id']} {p['version']}; nothing changed")
        else:
            console().print(f"approved proposal {p['id']}: {p['tool_id']} {p['version']} now serves scope {p['scope']}")
        return 0

    return _with_runtime(args, run)


def cmd_review_reject(args: argparse.Namespace) -> int:
    from tools.evolution import reject

    def run(runtime: RuntimeHost) -> int:
        p = reject(runtime, args.id, args.reason, _reviewer(args.reviewer))
        if args.json_out:
            emit_json({k: p.get(k) for k in ("id", "tool_id", "version", "status", "review_reason")})
        else:
            console().print(f"rejected proposal {p['id']}: {p['tool_id']} {p['version']}")
        return 0

    return _with_runtime(args, run)


def cmd_review_cancel(args: argparse.Namespace) -> int:
    from tools.evolution import cancel

    def run(runtime: RuntimeHost) -> int:
        p = cancel(runtime, args.id)
        if args.json_out:
            emit_json({k: p.get(k) for k in ("id", "tool_id", "version", "status")})
        else:
            console().print(f"cancelled proposal {p['id']}: {p['tool_id']} {p['version']}")
        return 0

    return _with_runtime(args, run)


def cmd_rollback(args: argparse.Namespace) -> int:
    from tools.evolution import rollback

    def run(runtime: RuntimeHost) -> int:
        result = rollback(runtime, args.tool, args.version, args.scope, actor=_reviewer(None))
        if args.json_out:
            emit_json(result)
        elif result.get("unchanged"):
            console().print(f"{result['tool_id']}: scope {result['scope']} already serves {result['version']}; nothing changed")
        else:
            was = result["previous_version"] or "the base version"
            console().print(f"{result['tool_id']}: scope {result['scope']} serves {result['version']} again (was {was})")
        return 0

    return _with_runtime(args, run)


def cmd_review_stats(args: argparse.Namespace) -> int:
    from tools.evolution import STATS_COLUMNS, STATS_TITLE, StatsView, evolution_stats, stats_rows

    def run(runtime: RuntimeHost) -> int:
        stats = evolution_stats(runtime.store)
        if args.json_out:
            emit_json(stats)
            return 0
        out = console()
        if out.is_terminal:  # as the dashboard shows it: a table where it fits, else one block a row
            out.print(StatsView(stats))
        else:  # piped: tab-separated, one row a line, as every table
            print_table(STATS_TITLE, STATS_COLUMNS, stats_rows(stats), keys=("group", "key"))
        return 0

    return _with_runtime(args, run)

