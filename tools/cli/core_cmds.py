"""Core subcommands: tools, call, test, serve, demo and the dashboard."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from typing import TYPE_CHECKING, Any

from state.redact import redact
from tools.catalog import IMPORTED, hidden_text, last_loaded_version
from tools.cli.output import (
    console,
    emit_error_json,
    emit_json,
    exit_code_for,
    plural,
    positive_number,
    print_table,
    read_json_arg,
    runtime_for,
    shown,
)
from tools.errors import ToolError, UsageError, exit_code
from tools.visible import visible

if TYPE_CHECKING:
    from tools.host import RuntimeHost


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("tools", help="list tools with load status, version, type, score and which version serves")
    p.add_argument("--wait", action="store_true", help="wait until every tool has loaded (default: show what loaded within 2 s)")
    p.add_argument("--check", action="store_true",
                   help="wait for every tool, then exit 1 if any is in error (a health check for scripts); "
                        "warn of descriptions that hold control or invisible characters")
    p.set_defaults(func=cmd_tools)

    p = sub.add_parser("call", help="call a tool with JSON input (argument, or - for stdin)")
    p.add_argument("tool", help="the tool id")
    p.add_argument("input", nargs="?", help="JSON input, or - to read it from stdin; left out: {} (empty is bad input)")
    p.add_argument("--version", help="call this version instead of the one calls resolve to")
    p.add_argument("--timeout", type=positive_number("seconds"),
                   help="seconds before the tool is killed (default: the manifest's, else [calls] default_timeout_seconds)")
    p.set_defaults(func=cmd_call)

    p = sub.add_parser("test", help="run a tool manifest's own tests")
    p.add_argument("tool", help="the tool id")
    p.add_argument("--version", help="test this version (default: the one calls resolve to)")
    p.set_defaults(func=cmd_test)

    p = sub.add_parser("serve", help="run the headless runtime (load, watch, flush) until SIGINT/SIGTERM")
    p.add_argument("--demo", action="store_true", help="include the demo catalog")
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser("demo", help="the dashboard over the demo catalog, with generated traffic")
    p.add_argument("--no-traffic", action="store_true", help="do not start the traffic generator")
    p.add_argument("--keep", action="store_true", help="keep the throwaway demo workspace afterwards")
    p.set_defaults(func=cmd_demo)


def _wait_loaded(runtime: RuntimeHost, wait: bool) -> None:
    runtime.catalog.discovered.wait(30)
    runtime.require_store()
    if wait:
        runtime.wait_ready(120)
        hub = runtime.extensions.get("mcp")
        if hub is not None:
            hub.wait_listed(120)  # MCP servers whose tools no cache knows yet: connect and list them


def tool_rows(runtime: RuntimeHost) -> list[dict[str, Any]]:
    rows = []
    for entry in sorted(runtime.catalog.all_entries(), key=lambda e: (e.tool_id, e.source == "evolved", e.served_version)):
        m = entry.manifest
        rows.append({
            "id": entry.tool_id, "version": entry.served_version, "status": entry.status, "type": m.type if m else None,
            "source": entry.source, "score": m.quality_score if m else None, "error": entry.error,
            "path": str(entry.path), "overrides": str(entry.overrides) if entry.overrides else None,
            "description": m.description if m else None,
            "warning": hidden_text(m) if m else None,  # served to MCP clients spelled out (tools.mcp.listing.served_texts)
            "last_good_version": None,
        })
    _mark_unapproved(runtime, rows)
    _mark_broken_on_disk(runtime, rows)
    for problem in runtime.catalog.problems():
        rows.append({"id": problem.path.stem, "version": "", "status": "error", "type": None, "source": "problem",
                     "score": None, "error": problem.message, "path": str(problem.path), "overrides": None,
                     "description": None, "warning": None, "last_good_version": None})
    failures = runtime.extensions.get("failures")
    if failures is not None:
        live = failures.scores_snapshot()
        for row in rows:
            key = (row["id"], row["version"])
            if key in live:
                row.update(live[key])
    _mark_served(runtime, rows)
    return rows


def _mark_unapproved(runtime: RuntimeHost, rows: list[dict[str, Any]]) -> None:
    """An evolved version no person approved is not `ready` to anyone: its row says where its proposal
    stands (awaiting_review, failed_validation, rejected, ...), as the review list does."""
    for row in rows:
        if row["source"] != "evolved" or row["status"] != "ready":
            continue
        unapproved = _unapproved(runtime, row["id"], row["version"])
        if unapproved is not None:
            row["status"] = unapproved[1]
            row["error"] = row["error"] or f"proposal {unapproved[0]} is {unapproved[1]}: not served until approved"


def _mark_broken_on_disk(runtime: RuntimeHost, rows: list[dict[str, Any]]) -> None:
    """A tool whose files do not load here has no version, and this process serves nothing of it; a runtime that
    loaded it before the files broke keeps serving its last good version. `last_good_version` is the last version
    whose load a runtime recorded (tool_status), named in the detail."""
    for row in rows:
        if row["status"] != "error" or row["version"] or row["source"] == "evolved" or row["source"].startswith(IMPORTED):
            continue
        row["last_good_version"] = last_loaded_version(runtime.store, row["id"], row["source"])


def broken_on_disk_note(row: dict[str, Any]) -> str:
    """The detail of a tool with no version: what is broken, and what a running runtime still serves."""
    last = row.get("last_good_version")
    if last is None:
        return f"broken on disk, not served: {row['error']}"
    return (f"broken on disk: a runtime that loaded it before keeps serving its last good version {last} until the files"
            f" are fixed; a new one cannot load it: {row['error']}")


def _unapproved(runtime: RuntimeHost, tool_id: str, version: str) -> tuple[int, str] | None:
    """(proposal id, its status) of an evolved version no person approved; None once one did."""
    from state import proposals

    latest = proposals.latest(runtime.store, tool_id, version)
    if latest is None or latest["status"] in ("approved", "rolled_back") or proposals.approved_id(runtime.store, tool_id, version):
        return None
    return int(latest["id"]), str(latest["status"])


def _servers_in_error(runtime: RuntimeHost) -> dict[str, str]:
    """server -> its error, for the `[mcp.servers]` entries in error (here, or as the live runtime holding them
    recorded): their tools cannot be called, so they are listed in error and `tools --check` fails on them."""
    hub = runtime.extensions.get("mcp")
    if hub is None:
        return {}
    held = hub.held_elsewhere()  # a serving runtime's word for those it holds; the others are tried here
    hub.wait([n for n, link in hub.links.items() if n not in held and not link.config.problem], 30.0)
    return {s["server"]: s.get("error") or "error" for s in hub.statuses() if s.get("status") == "error"}


def _mark_servers_in_error(rows: list[dict[str, Any]], servers: dict[str, str]) -> set[str]:
    """The tools of an imported server in error (listed from its cached tool list) are in error with it;
    returns their ids."""
    marked = set()
    for row in rows:
        server = row["source"].removeprefix(IMPORTED) if row["source"].startswith(IMPORTED) else None
        if server in servers and row["status"] == "ready":
            row["status"], row["error"] = "error", f"MCP server {server} in error: {servers[server]}"
            marked.add(row["id"])
    return marked


def _mark_served(runtime: RuntimeHost, rows: list[dict[str, Any]]) -> None:
    """`serves`: the scopes whose calls this row's version answers ("global", or session ids), as the
    runtime's resolver decides (a promoted version that cannot serve does not, the one it falls back to does)."""
    runtime.invalidate_promotions()
    sessions: dict[str, set[str]] = {}
    for tool, scope in runtime.promotions():
        if scope != "global":
            sessions.setdefault(tool, set()).add(scope)
    base = {r["id"]: r["version"] for r in rows if r["source"] not in ("evolved", "problem")}
    served: dict[tuple[str, str], list[str]] = {}
    for tool in base:
        found = runtime.resolution(tool, session="global", wait=False)
        version = found.version if found.version is not None else base[tool]  # the base, even while it loads
        served.setdefault((tool, version), []).append("global")
        for scope in sorted(sessions.get(tool, ())):
            mine = runtime.resolution(tool, session=scope, wait=False)
            if mine.scope == scope and mine.version is not None:
                served.setdefault((tool, mine.version), []).append(scope)
    for row in rows:
        broken = row["status"] == "error" and not row["version"]  # nothing of it loaded here: this version serves nothing
        row["serves"] = [] if row["source"] == "problem" or broken else served.get((row["id"], row["version"]), [])


#: `tools --check` names at most this many tools whose text holds hidden characters, then counts the rest
WARN_AT_MOST = 20


def _warn_hidden_text(rows: list[dict[str, Any]]) -> None:
    """One line on stderr per tool whose description or schema texts hold control, bidi or invisible characters
    (tools.catalog.texts): MCP clients get them spelled out, which is rarely what the manifest's author meant."""
    warned = [r for r in rows if r.get("warning")]
    for r in warned[:WARN_AT_MOST]:
        sys.stderr.write(visible(f"tooldeck: warning: {r['id']} {r['version']}: {r['warning']} (MCP clients are served "
                                 f"them spelled out; {r['path']})", multiline=False) + "\n")
    if len(warned) > WARN_AT_MOST:
        sys.stderr.write(f"tooldeck: warning: {plural(len(warned) - WARN_AT_MOST, 'more tool')} like these (tooldeck tools --json)\n")


def cmd_tools(args: argparse.Namespace) -> int:
    runtime = runtime_for(args)
    try:
        wait = args.wait or args.check or args.json_out
        _wait_loaded(runtime, wait)
        if not wait:
            runtime.catalog.finished.wait(2)
        servers = _servers_in_error(runtime) if wait else {}  # waits for them to connect
        rows = tool_rows(runtime)
        with_server = _mark_servers_in_error(rows, servers)
        summary = runtime.summary()
        broken = [r for r in rows if r["status"] == "error" and r["id"] not in with_server]  # the server is named apart
        if args.json_out:
            emit_json({"summary": summary, "tools": rows})
        else:
            styles = {"ready": "green", "error": "red", "loading": "yellow", "pending": "dim"}
            table = []
            for r in rows:
                detail = (broken_on_disk_note(r) if r["status"] == "error" and not r["version"] and r["source"] != "problem"
                          else r["error"]) or (f"warning: {r['warning']}" if r["warning"] else "") or (
                    f"overrides {r['overrides']}" if r["overrides"] else "")
                score = "" if r["score"] is None else f"{r['score']:.2f}"
                serves = ", ".join("session " + s if s != "global" else s for s in r["serves"]) or "-"
                table.append((r["id"], r["status"], r["version"], serves, r["type"] or "", r["source"], score, detail,
                              r["description"] or ""))
            print_table(summary, ("tool", "status", "version", "serves", "type", "source", "score", "detail", "description"), table,
                        keys=("tool", "version", "serves"), styles=lambda col, v: styles.get(v, "") if col == "status" else "")
        named = [f"{name} ({error})" for name, error in servers.items()]
        in_error = ([f"MCP server {named[0]} in error" if len(named) == 1 else
                     f"MCP servers in error: {', '.join(named)}"] if named else [])
        if args.check:  # a warning does not fail the check: the tool works, and clients are shown its text safely
            _warn_hidden_text(rows)
        if args.check and (broken or servers):
            parts = ([plural(len(broken), "tool") + " in error"] if broken else []) + in_error
            sys.stderr.write(visible(f"tooldeck: {'; '.join(parts)}") + "\n")
        elif in_error and not args.json_out:  # their tools are listed in error: say why once
            sys.stderr.write(visible(f"tooldeck: {in_error[0]}; its tools cannot be called (tooldeck mcp list)") + "\n")
        return 1 if args.check and (broken or servers) else 0
    finally:
        runtime.close()


def cmd_call(args: argparse.Namespace) -> int:
    data = read_json_arg(args.input)
    runtime = runtime_for(args)
    try:
        try:
            result = runtime.call(args.tool, data, version=args.version, timeout=args.timeout)
        except ToolError as exc:
            if exit_code_for(exc) != 1:
                raise  # the caller's mistake (unknown id, bad option): reported by main
            if args.json_out:
                emit_json({"ok": False, **exc.to_dict()})
            # one line: the tail of stderr only when the message does not carry it already
            # lines end at \n only: splitlines() also ends one at a CR and cut what a tool wrote after it from view
            tail = exc.stderr_tail.strip().split("\n")[-1] if exc.stderr_tail and exc.stderr_tail.strip() else ""
            extra = f" | {tail}" if tail and tail not in exc.message else ""
            first = exc.message.split("\n")[0] if exc.message else exc.error_class
            sys.stderr.write(visible(f"tooldeck: {first}{extra}") + "\n")
            return 1
        if args.json_out or not isinstance(result, str):
            emit_json(result)
        else:
            text = visible(result)  # a tool's text, shown: --json gives the exact characters
            sys.stdout.write(text if text.endswith("\n") else text + "\n")
        return 0
    finally:
        runtime.close()


def cmd_test(args: argparse.Namespace) -> int:
    runtime = runtime_for(args)
    try:
        results = runtime.run_tests(args.tool, version=args.version)
        failed = [r for r in results if not r["passed"]]
        summary = {"tool": args.tool, "passed": len(results) - len(failed), "failed": len(failed), "results": results}
        # a failed test is a failure like any other: one line on stderr, and with --json the one {"ok": false} object
        error = (f"{args.tool}: {len(failed)} of {plural(len(results), 'test')} failed, first "
                 f"{failed[0]['name']!r}: {failed[0]['detail']}") if failed else ""
        if args.json_out and failed:
            emit_error_json(error, "test_failed", summary)
        elif args.json_out:
            emit_json(summary)
        else:
            from rich.text import Text

            out = console()
            for r in results:
                mark = ("PASS", "green") if r["passed"] else ("FAIL", "red")
                out.print(Text.assemble(mark, f" {visible(r['name'])} ({r['ms']} ms) ", shown("" if r["passed"] else r["detail"])))
            if not results:
                out.print(f"{args.tool}: the manifest has no tests")
            out.print(f"{len(results) - len(failed)} passed, {len(failed)} failed")
        if not failed:
            return 0
        sys.stderr.write(visible(redact(f"tooldeck: {error}"), multiline=False) + "\n")
        return exit_code("test_failed")
    finally:
        runtime.close()


def _print_progress(runtime: RuntimeHost, stream: Any = sys.stdout) -> None:
    """Print each tool as it loads, then the summary (the pre-dashboard demo, and serve)."""
    seen: set[tuple[str, str, str]] = set()
    lock = threading.Lock()

    def show(changes: list[Any]) -> None:
        with lock:
            for c in changes:
                if (c.tool_id, c.version, c.status) in seen:
                    continue
                seen.add((c.tool_id, c.version, c.status))
                status, detail = c.status, f"  {c.error}" if c.error else ""
                if c.source == "evolved" and status == "ready" and (unapproved := _unapproved(runtime, c.tool_id, c.version)):
                    status, detail = unapproved[1], f"  proposal {unapproved[0]}: not served until approved"  # as `tools` says
                stream.write(visible(f"  {status:<7} {c.tool_id} {c.version} [{c.source}]{detail}", multiline=False) + "\n")
            stream.flush()

    runtime.subscribe(show)


def _wait_for_signal() -> None:
    stop = threading.Event()

    def handler(signum: int, frame: Any) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)
    while not stop.wait(0.5):
        pass


def cmd_serve(args: argparse.Namespace) -> int:
    if args.json_out:  # --json promises one JSON value on stdout; serve writes a log until a signal stops it
        raise UsageError("serve has no --json output: it runs until SIGINT/SIGTERM and writes a progress log, not one "
                         "JSON value (for JSON, `tooldeck tools --wait --json` lists what loaded)")
    runtime = runtime_for(args, serve=True, demo=args.demo, label="serve", kind="serve")
    sys.stdout.write(f"tooldeck serve: workspace {runtime.workspace}, session {runtime.session}\n")
    sys.stdout.flush()
    _print_progress(runtime)
    try:
        runtime.catalog.finished.wait(60)
        runtime.require_store()
        sys.stdout.write(runtime.summary() + "\n")
        sys.stdout.flush()
        _wait_for_signal()
    finally:
        sys.stdout.write("tooldeck serve: stopping\n")
        sys.stdout.flush()
        runtime.close()
    return 0


def require_terminal() -> None:
    """The dashboard is full-screen: without a terminal on stdin and stdout it would only spill escape codes.
    (The dashboard checks this itself; `demo` asks first, before it makes a throwaway workspace.)"""
    if not (sys.stdin.isatty() and sys.stdout.isatty()):
        raise UsageError("the dashboard needs a terminal (stdin and stdout are not both a tty); "
                         "use `tooldeck serve` or a subcommand such as `tooldeck tools` in scripts")


def cmd_demo(args: argparse.Namespace) -> int:
    from tools.cli.demo_workspace import prepare_demo_workspace

    require_terminal()
    workspace, cleanup = prepare_demo_workspace(args.workspace, keep=args.keep)
    args.workspace = str(workspace)
    sys.stderr.write(f"tooldeck demo: workspace {workspace}\n")
    try:
        return cmd_dashboard(args, traffic=not args.no_traffic)
    finally:
        cleanup()
        kept = workspace.exists()
        sys.stderr.write(f"tooldeck demo: workspace {workspace} " + ("kept\n" if kept else
                         "removed (--keep or --workspace DIR keeps it)\n"))


def cmd_dashboard(args: argparse.Namespace, *, demo: bool = False, traffic: bool = False) -> int:
    from tools.ids import resolve_workspace  # not tools.runtime: the catalog's imports would delay the first frame

    if args.open_dashboard is None:
        raise UsageError("the dashboard is not part of the headless runtime: run `tooldeck` or `python -m tui`")
    workspace = resolve_workspace(args.workspace)  # a bad path is one line on stderr, before the screen opens
    return int(args.open_dashboard(workspace=str(workspace), demo=demo, traffic=traffic))
