"""`tooldeck mcp`: the catalog as an MCP server for MCP clients (desktop assistants, IDEs, agents), and the MCP
servers whose tools the catalog imports (`tooldeck mcp list`)."""

from __future__ import annotations

import argparse

from tools.cli.output import emit_json, positive_number, print_table, runtime_for


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("mcp", help="serve the catalog to MCP clients (tooldeck mcp serve); list imported MCP servers")
    p.set_defaults(func=lambda args: _usage(p))
    commands = p.add_subparsers(dest="mcp_command", metavar="MCP_COMMAND", parser_class=type(p))

    # no abbreviations: `--token SECRET` must be an error, not `--token-file SECRET` echoing the secret back
    s = commands.add_parser("serve", help="speak MCP over stdio (default) or Streamable HTTP (--http HOST:PORT)", allow_abbrev=False)
    s.add_argument("--http", metavar="HOST:PORT", help="serve Streamable HTTP at http://HOST:PORT/mcp instead of stdio; "
                   "beyond loopback a bearer token is required (TOOLDECK_MCP_TOKEN or --token-file)")
    s.add_argument("--token-file", metavar="PATH", help="read the bearer token from this file (never pass it on the command line)")
    s.add_argument("--endpoint", metavar="NAME", help="over stdio, serve the endpoint [mcp.serve.endpoints.NAME] "
                   "(its tools, descriptions and defaults) instead of the default one; over --http every endpoint is "
                   "served, at /mcp/NAME")
    s.add_argument("--session", help="one tooldeck session for every client (default: TOOLDECK_SESSION, else one per client)")
    s.add_argument("--demo", action="store_true", help="include the demo catalog")
    s.set_defaults(func=cmd_mcp_serve)

    s = commands.add_parser("list", help="the MCP servers of tooldeck.toml [mcp.servers]: transport, status, tools, "
                            "who holds the connection, last error")
    s.add_argument("--no-connect", action="store_true", help="do not connect: show what live serving runtimes recorded "
                   "and what the tool-list cache knows")
    s.add_argument("--timeout", type=positive_number("seconds"), default=None,
                   help="how long to wait for the servers to connect (default: each server's timeout_seconds, else 30)")
    s.set_defaults(func=cmd_mcp_list)


def _usage(parser: argparse.ArgumentParser) -> int:
    parser.print_usage()
    return 2


def cmd_mcp_serve(args: argparse.Namespace) -> int:
    from tools.mcp import serve

    return serve(workspace=args.workspace, http=args.http, token_file=args.token_file, session=args.session, demo=args.demo,
                 endpoint=args.endpoint)


def cmd_mcp_list(args: argparse.Namespace) -> int:
    """Each server as the live serving runtime holding it recorded it (schema 6, `mcp_servers`); the others
    connected here (in parallel, each bounded by its timeout), unless --no-connect."""
    runtime = runtime_for(args)
    try:
        hub = runtime.extension("mcp")
        if hub is None:
            if args.json_out:
                emit_json([])
            else:
                print("no MCP servers in tooldeck.toml (add [mcp.servers.NAME] with command = ... or url = ...)")
            return 0
        if not args.no_connect:
            held = hub.held_elsewhere()  # a server another runtime holds is not started a second time to be listed
            names = [name for name in hub.links if name not in held]
            if names:
                timeout = args.timeout or max(hub.links[n].timeout for n in names) + 5
                hub.wait(names, timeout)
        rows = hub.statuses()
        if args.json_out:
            emit_json(rows)
        else:
            styles = {"ready": "green", "error": "red", "connecting": "yellow", "not connected": "dim"}
            table = [(r["server"], r["transport"], r["status"], "" if r["tools"] is None else str(r["tools"]),
                      r["target"], r["held_by"] or "", r["error"] or "") for r in rows]
            print_table(f"{len(rows)} MCP server{'s' if len(rows) != 1 else ''}",
                        ("server", "transport", "status", "tools", "command / url", "held by", "last error"), table,
                        keys=("server", "status", "tools"),
                        styles=lambda col, v: styles.get(v, "") if col == "status" else "")
        return 0
    finally:
        runtime.close()
