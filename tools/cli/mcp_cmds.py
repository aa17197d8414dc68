"""`tooldeck mcp`: the catalog as an MCP server for MCP clients (desktop assistants, IDEs, agents)."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("mcp", help="serve the catalog to MCP clients (tooldeck mcp serve)")
    p.set_defaults(func=lambda args: _usage(p))
    commands = p.add_subparsers(dest="mcp_command", metavar="MCP_COMMAND", parser_class=type(p))

    # no abbreviations: `--token SECRET` must be an error, not `--token-file SECRET` echoing the secret back
    s = commands.add_parser("serve", help="speak MCP over stdio (default) or Streamable HTTP (--http HOST:PORT)", allow_abbrev=False)
    s.add_argument("--http", metavar="HOST:PORT", help="serve Streamable HTTP at http://HOST:PORT/mcp instead of stdio; "
                   "beyond loopback a bearer token is required (TOOLDECK_MCP_TOKEN or --token-file)")
    s.add_argument("--token-file", metavar="PATH", help="read the bearer token from this file (never pass it on the command line)")
    s.add_argument("--session", help="one tooldeck session for every client (default: TOOLDECK_SESSION, else one per client)")
    s.add_argument("--demo", action="store_true", help="include the demo catalog")
    s.set_defaults(func=cmd_mcp_serve)


def _usage(parser: argparse.ArgumentParser) -> int:
    parser.print_usage()
    return 2


def cmd_mcp_serve(args: argparse.Namespace) -> int:
    from tools.mcp import serve

    return serve(workspace=args.workspace, http=args.http, token_file=args.token_file, session=args.session, demo=args.demo)
