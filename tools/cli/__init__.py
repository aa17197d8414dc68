"""`tooldeck`: the command-line face of the runtime (the dashboard is the other).

Each capability adds its subcommands from its own module (COMMAND_MODULES). The global
options (`--workspace/-w`, `--json`) are accepted before or after the subcommand. One exit
code rule for every command (EXIT_CODES); errors are one line on stderr with secrets masked,
and with `--json` also one JSON object on stdout.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable, Iterator, Sequence

from state.db import StoreError
from state.redact import redact
from tools.cli.output import emit_error_json, exit_code_for
from tools.errors import ToolError

COMMAND_MODULES = [
    "tools.cli.core_cmds",
    "tools.cli.buffer_cmds",
    "tools.cli.evolution_cmds",
    "tools.cli.failure_cmds",
    "tools.cli.spec_cmds",
    "tools.cli.mcp_cmds",
    "tools.cli.state_cmds",
]

def _exit_codes() -> str:
    from tools.errors import EXIT_CODES

    by_code: dict[int, list[str]] = {}
    for error_class, code in EXIT_CODES.items():
        by_code.setdefault(code, []).append(error_class)
    return ("exit codes (every command; --json prints {\"ok\": false, \"error\", \"error_class\"}):\n"
            "  0  success (a listing that shows broken tools still succeeded; `tools --check` fails on them;\n"
            "     a no-op such as a rollback to the version already served)\n"
            f"  1  a tool or the runtime failed doing what was asked: {', '.join(by_code[1])}\n"
            f"  2  the request must change (malformed, names nothing there, stale): {', '.join(by_code[2])}")


EXAMPLES = """\
examples:
  tooldeck                                   open the dashboard on the current workspace
  tooldeck demo                              the dashboard over a throwaway demo workspace
  tooldeck tools -w ~/project                list tools, their status, version and score
  tooldeck call csv_parser '{"text": "a,b"}'  call a tool (JSON argument, or - for stdin)
  tooldeck buffer status --json              buffers as JSON
  tooldeck review list                       evolution proposals awaiting a person"""

#: Opens the dashboard: `(workspace=..., demo=..., traffic=...) -> exit code`. The dashboard is a
#: face over this runtime, so it hands itself in (tui.launch) instead of being imported from here.
DashboardOpener = Callable[..., int]


class Parser(argparse.ArgumentParser):
    #: set by main() before parsing, so a usage error can still answer in JSON
    json_requested = False

    def error(self, message: str) -> None:  # type: ignore[override]
        if Parser.json_requested:
            emit_error_json(message, "bad_usage")
        from tools.visible import visible

        self.exit(2, f"tooldeck: error: {visible(redact(message))} (see {self.prog} --help)\n")


def _json_requested(argv: Sequence[str]) -> bool:
    return "--json" in argv[: list(argv).index("--")] if "--" in argv else "--json" in argv


def package_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("tooldeck")
    except PackageNotFoundError:
        return "unknown (not installed)"


def _subparsers(parser: argparse.ArgumentParser) -> Iterator[argparse.ArgumentParser]:
    """Every parser below `parser`, once each (aliases share their parser)."""
    seen: set[int] = set()
    stack = [parser]
    while stack:
        current = stack.pop()
        for action in current._actions:
            if isinstance(action, argparse._SubParsersAction):
                for child in action.choices.values():
                    if id(child) not in seen:
                        seen.add(id(child))
                        stack.append(child)
                        yield child


def _add_global_options(parser: argparse.ArgumentParser, *, top: bool) -> None:
    """`--workspace` and `--json` on every parser; below the top they only override when given."""
    default_ws: object = None if top else argparse.SUPPRESS
    default_json: object = False if top else argparse.SUPPRESS
    parser.add_argument("--workspace", "-w", metavar="DIR", default=default_ws,
                        help="workspace directory (default: $TOOLDECK_WORKSPACE, else the current directory)")
    parser.add_argument("--json", action="store_true", dest="json_out", default=default_json,
                        help="machine-readable output: one JSON value on stdout, errors as {\"ok\": false, ...}")


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="tooldeck",
        description="Operator dashboard and runtime for LLM tool ecosystems. "
                    "Without a command, `tooldeck` opens the dashboard on the workspace.",
        epilog=f"{EXAMPLES}\n\n{_exit_codes()}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"tooldeck {package_version()}",
                        help="print tooldeck's version and exit (commands such as `call` have their own --version: a tool's version)")
    _add_global_options(parser, top=True)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    for child in _subparsers(parser):
        _add_global_options(child, top=False)
    return parser


def fail(message: str, code: int = 1) -> int:
    from tools.visible import visible

    first = redact(message).split("\n")[0] if message else "failed"  # at newlines only: other breaks are shown
    sys.stderr.write(f"tooldeck: {visible(first)}\n")
    return code


def main(argv: Sequence[str] | None = None, *, dashboard: DashboardOpener | None = None) -> int:
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    Parser.json_requested = _json_requested(argv)
    args = parser.parse_args(argv)
    args.open_dashboard = dashboard
    if args.command is None:
        from tools.cli.core_cmds import cmd_dashboard

        args.func = cmd_dashboard
    try:
        return int(args.func(args) or 0)
    except ToolError as exc:
        if args.json_out:
            emit_error_json(redact(exc.message), exc.error_class, {k: v for k, v in exc.to_dict().items()
                                                                    if k not in ("error", "error_class")})
        return fail(exc.message, exit_code_for(exc))
    except StoreError as exc:
        if args.json_out:
            emit_error_json(redact(str(exc)), "state")
        return fail(str(exc), 1)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 0


def run(dashboard: DashboardOpener | None = None) -> None:
    sys.exit(main(dashboard=dashboard))
