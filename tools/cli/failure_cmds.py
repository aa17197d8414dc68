"""Failure tracking from the command line: fail, failures, resilient, scores, control."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from tools.cli.output import console, emit_json, plural, positive_number, print_table, read_json_arg, runtime_for, shown
from tools.errors import UsageError
from tools.ids import check_tool_id
from tools.visible import dumps_visible, visible


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("fail", help="record a failure of a tool (demotes its score, may tag it and open its circuit)")
    p.add_argument("tool", help="the tool id that failed")
    p.add_argument("--scenario", required=True, help="what the caller was trying to do")
    p.add_argument("--error", required=True, help="the error the caller saw")
    p.add_argument("--severity", default="medium", help="low | medium | high | critical (default medium)")
    p.add_argument("--class", dest="error_class", help="failure class (default: reported)")
    p.add_argument("--version", help="version that failed (default: the one calls resolve to)")
    p.set_defaults(func=cmd_fail)

    p = sub.add_parser("failures", help="recent failures, newest first")
    p.add_argument("tool", nargs="?", help="only this tool id (default: every tool)")
    p.add_argument("--version", help="only this version of the tool")
    p.add_argument("--limit", type=positive_number("failures", integer=True), default=30, help="how many (default 30)")
    p.set_defaults(func=cmd_failures)

    p = sub.add_parser("resilient", help="call the best tools for a scenario until one succeeds; prints the trace")
    p.add_argument("scenario", help="what to do, in words: candidates are chosen by similarity to it")
    p.add_argument("input", nargs="?", help="JSON input given to each candidate, or - for stdin; left out: {} (empty is bad input)")
    p.add_argument("--tags", help="comma-separated: only tools with one of these tags")
    p.add_argument("--max-attempts", type=positive_number("attempts", integer=True), default=5,
                   help="tools to try at most (default 5)")
    p.add_argument("--no-mark", action="store_true", help="do not attach the scenario to failures (no tags, no failure memory)")
    p.set_defaults(func=cmd_resilient)

    p = sub.add_parser("scores", help="score, negative tags, circuit and failures per tool version")
    p.set_defaults(func=cmd_scores)

    p = sub.add_parser("control", help="operator controls: reset-score, remove-tag, circuit, disable, enable")
    csub = p.add_subparsers(dest="action", metavar="ACTION", required=True, parser_class=type(p))
    for name, help_text in (("reset-score", "put the score back to the manifest's quality_score"),
                            ("remove-tag", "remove a negative tag"),
                            ("circuit", "force a circuit open (held until closed) or closed (reset)"),
                            ("disable", "refuse calls of a tool (all versions unless --version)"),
                            ("enable", "allow calls again")):
        c = csub.add_parser(name, help=help_text)
        c.add_argument("tool", help="the tool id")
        if name == "remove-tag":
            c.add_argument("tag", help="e.g. not-for-json")
        if name == "circuit":
            c.add_argument("state", choices=["open", "closed"], help="open: refuse calls until closed; closed: reset it")
        c.add_argument("--version", help="only this version (default: the one calls resolve to"
                       + ("; disable/enable: every version)" if name in ("disable", "enable") else ")"))
        c.add_argument("--actor", help="who is doing this (default: the OS user)")
        if name in ("circuit", "disable", "enable"):
            c.add_argument("--reason", help="why, for the record (shown in the dashboard and the event log)")
        c.set_defaults(func=cmd_control)


def cmd_fail(args: argparse.Namespace) -> int:
    from tools.recovery import mark_tool_failure

    runtime = runtime_for(args)
    try:
        record = mark_tool_failure(runtime, args.tool, args.scenario, args.error, args.severity, args.error_class,
                                   version=args.version)
    finally:
        runtime.close()
    if args.json_out:
        emit_json(record)
    else:
        tags = f"; tagged {', '.join(record['tags_added'])}" if record["tags_added"] else ""
        console().print(shown(f"failure #{record['failure_id']} recorded for {record['tool_id']} {record['version']}: "
                              f"{record['severity']}, score -{record['delta']:.2f} -> {record['score']:.2f}{tags}; "
                              f"circuit {record['circuit']}"), soft_wrap=True)
    return 0


def cmd_failures(args: argparse.Namespace) -> int:
    from tools.recovery import tracker_for

    if args.tool is not None:
        check_tool_id(args.tool)
    runtime = runtime_for(args)
    try:
        rows = tracker_for(runtime).recent_failures(args.tool, args.version, args.limit)
        if args.tool is not None and not rows and runtime.catalog.find(args.tool) is None:
            runtime.catalog.get(args.tool, timeout=30)  # an id that names nothing: say so, with the closest ids
    finally:
        runtime.close()
    if args.json_out:
        emit_json(rows)
        return 0
    from datetime import datetime

    print_table(plural(len(rows), "recent failure"),
                ("#", "when", "tool", "version", "severity", "class", "origin", "delta", "scenario", "error"),
                [(r["id"], datetime.fromtimestamp(r["ts"]).strftime("%H:%M:%S"), r["tool_id"], r["version"], r["severity"],
                  r["error_class"], r["origin"], f"{r['delta']:.2f}", r["scenario"], r["error"]) for r in rows],
                keys=("#", "tool", "version", "severity", "class"))
    return 0


def _print_trace(title: str, hops: list[dict[str, Any]], skipped: list[dict[str, Any]]) -> None:
    """Each hop of a resilient call, then each skipped tool, as every table: rich on a terminal (ids never
    wrapped), tab-separated piped; errors are the tools' own text, shown visible by print_table."""
    rows: list[tuple[Any, ...]] = []
    for h in hops:
        detail = h["why"] + (f" | {h['error']}" if h["outcome"] != "ok" and h.get("error") else "")
        rows.append((h["hop"], h["tool_id"], h["version"], f"{h['similarity']:.2f}", f"{h['score']:.2f}", f"{h['penalty']:.2f}",
                     h["outcome"], f"{h['ms']:.1f}", detail))
    for s in skipped:
        rows.append(("-", s["tool_id"], s["version"], f"{s['similarity']:.2f}", "", "", "skipped", "", s["reason"]))
    colours = {"ok": "green", "skipped": "yellow"}
    print_table(title, ("#", "tool", "version", "similarity", "score", "penalty", "outcome", "ms", "why / error"), rows,
                keys=("tool", "version", "outcome"),
                styles=lambda col, v: (colours.get(v, "red") if col == "outcome" else ""))


def cmd_resilient(args: argparse.Namespace) -> int:
    from tools.recovery import ResilientCallError, call_tool_resilient

    data = read_json_arg(args.input)
    runtime = runtime_for(args)
    try:
        try:
            out = call_tool_resilient(runtime, args.scenario, data, tags=args.tags, max_attempts=args.max_attempts,
                                      mark_failures=not args.no_mark)
        except ResilientCallError as exc:
            if args.json_out:
                emit_json({"ok": False, **exc.to_dict()})
            else:
                sys.stderr.write(visible(f"tooldeck: {exc.message}") + "\n")  # one line, as every error
                if exc.hops or exc.skipped:
                    _print_trace(f"resilient: {exc.message}", exc.hops, exc.skipped)
            return 1
    finally:
        runtime.close()
    if args.json_out:
        emit_json(out)
        return 0
    _print_trace(f"resilient: {out['tool_id']} {out['version']} succeeded after {out['attempts']} "
                 f"attempt(s) in {out['ms']:.0f} ms", out["hops"], out["skipped"])
    console().print(shown(dumps_visible(out["result"], indent=2, default=str)))
    return 0


def cmd_scores(args: argparse.Namespace) -> int:
    from tools.recovery import tracker_for

    runtime = runtime_for(args)
    try:
        runtime.wait_ready(60)
        tracker = tracker_for(runtime)
        tracker.sync(force=True)
        snap = tracker.scores_snapshot()
    finally:
        runtime.close()
    rows = [{"tool_id": k[0], "version": k[1], **v} for k, v in sorted(snap.items())]
    if args.json_out:
        emit_json(rows)
        return 0
    styles = {"closed": "green", "open": "red", "half_open": "yellow"}
    print_table(plural(len(rows), "tool version"), ("tool", "version", "score", "failures", "circuit", "disabled", "negative tags"),
                [(r["tool_id"], r["version"], f"{r['score']:.2f}", r["failures"], r["circuit"], "yes" if r["disabled"] else "",
                  ", ".join(r["tags"])) for r in rows],
                keys=("tool", "version", "circuit"), styles=lambda col, v: styles.get(v, "") if col == "circuit" else "")
    return 0


def cmd_control(args: argparse.Namespace) -> int:
    from tools.recovery import controls

    runtime = runtime_for(args)
    try:
        if args.action == "reset-score":
            out = controls.reset_score(runtime, args.tool, args.version, actor=args.actor)
        elif args.action == "remove-tag":
            out = controls.remove_tag(runtime, args.tool, args.tag, args.version, actor=args.actor)
        elif args.action == "circuit":
            out = controls.force_circuit(runtime, args.tool, args.state, args.version, actor=args.actor, reason=args.reason)
        elif args.action in ("disable", "enable"):
            out = controls.set_disabled(runtime, args.tool, args.action == "disable", args.version, actor=args.actor,
                                        reason=args.reason)
        else:  # argparse restricts the choices; this is a programming error
            raise UsageError(f"unknown control action {args.action!r}")
    finally:
        runtime.close()
    if args.json_out:
        emit_json(out)
    else:
        version = "all versions" if out["version"] == "*" else out["version"]
        what = (f"circuit {args.state}" if args.action == "circuit" else
                f"remove-tag {args.tag}" if args.action == "remove-tag" else args.action)
        console().print(shown(f"{what}: {out['tool_id']} {version} by {out['actor']}"), soft_wrap=True)
    return 0
