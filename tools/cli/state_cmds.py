"""`tooldeck state ...`: where the shared state lives, and moving it from SQLite to PostgreSQL."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from tools.cli.output import console, emit_json, print_table
from tools.errors import UsageError


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("state", help="the shared state: which backend; migrate SQLite to PostgreSQL")
    ssub = p.add_subparsers(dest="state_command", metavar="ACTION", parser_class=type(p))
    p.set_defaults(func=cmd_info)
    i = ssub.add_parser("info", help="which backend this workspace uses, and where (never a password)")
    i.set_defaults(func=cmd_info)
    n = ssub.add_parser("nodes", help="every live runtime sharing this state, on every host: host, pid, kind, "
                                      "session, heartbeat age")
    n.set_defaults(func=cmd_nodes)
    m = ssub.add_parser("migrate", help="copy this workspace's SQLite state into the PostgreSQL database named by "
                                        "TOOLDECK_DATABASE_URL (refuses a non-empty target and live runtimes)")
    m.set_defaults(func=cmd_migrate)


def _settings_url(args: argparse.Namespace) -> str | None:
    from state.db import database_url
    from tools.ids import resolve_workspace
    from tools.settings import load_settings

    return database_url(load_settings(resolve_workspace(args.workspace)).get("state", "database_url", ""))


def cmd_info(args: argparse.Namespace) -> int:
    from state.db import open_store
    from state.paths import tooldeck_home
    from tools.ids import resolve_workspace

    home = tooldeck_home(resolve_workspace(args.workspace))
    store = open_store(home, url=_settings_url(args), pool_size=1)
    try:
        info: dict[str, Any] = {**store.describe(), "schema_version": store.schema_version()}
    finally:
        store.close()
    if args.json_out:
        emit_json(info)
    else:
        console().print(f"{info['backend']}: {info['where']} (schema {info['schema_version']})")
    return 0


def cmd_nodes(args: argparse.Namespace) -> int:
    """Read from the store alone: this command is not a runtime and does not list itself."""
    from state.db import open_store
    from state.paths import tooldeck_home
    from state.runtimes import live_runtimes
    from tools.ids import resolve_workspace

    home = tooldeck_home(resolve_workspace(args.workspace))
    store = open_store(home, url=_settings_url(args), pool_size=1)
    try:
        now = store.now()
        rows = [{"host": r["host"], "pid": r["pid"], "kind": r.get("kind") or "runtime", "label": r.get("label"),
                 "session": r["session"], "node": r["node"], "serve": bool(r.get("serve")),
                 "heartbeat_age_s": round(max(0.0, now - float(r["heartbeat"])), 1), "started": r["started"]}
                for r in sorted(live_runtimes(store), key=lambda r: (r["host"], r["started"]))]
        where = store.describe()
    finally:
        store.close()
    if args.json_out:
        emit_json({"backend": where["backend"], "where": where["where"], "nodes": rows})
        return 0
    hosts = len({r["host"] for r in rows})
    print_table(f"{len(rows)} live runtimes on {hosts} host{'s' if hosts != 1 else ''} ({where['backend']})",
                ["host", "pid", "kind", "label", "session", "serving", "heartbeat"],
                [(r["host"], str(r["pid"]), r["kind"], r["label"] or "", r["session"], "yes" if r["serve"] else "no",
                  f"{r['heartbeat_age_s']:.0f} s ago") for r in rows], keys=["host", "session"])
    return 0


def cmd_migrate(args: argparse.Namespace) -> int:
    from state.migrate import migrate_sqlite_to_postgres
    from state.paths import tooldeck_home
    from tools.ids import resolve_workspace

    url = _settings_url(args)
    if not url:
        raise UsageError("state migrate: set TOOLDECK_DATABASE_URL (or [state] database_url) to the target PostgreSQL "
                         "database; a URL is never taken from the command line")
    home = tooldeck_home(resolve_workspace(args.workspace))
    interactive = not args.json_out and sys.stderr.isatty()

    def progress(table: str, copied: int) -> None:
        if interactive:
            sys.stderr.write(f"\r{table}: {copied} rows ")
            sys.stderr.flush()

    report = migrate_sqlite_to_postgres(home, url, progress=progress)
    if interactive:
        sys.stderr.write("\n")
    if args.json_out:
        emit_json(report.to_dict())
        return 0
    print_table(f"migrated {report.source} -> {report.target} in {report.seconds:.1f} s", ["table", "rows"],
                [(t, str(n)) for t, n in report.counts.items()], keys=["table"])
    if report.blobs_from_files:
        console().print(f"{report.blobs_from_files} approved files read from evolved/ (approved before the database kept them)")
    if report.candidates_from_files:
        console().print(f"{report.candidates_from_files} proposals awaiting review: candidate files read from evolved/ "
                        "(so any node can review them)")
    console().print("point every node at it: TOOLDECK_DATABASE_URL=... (the same catalog folder on each node)")
    return 0
