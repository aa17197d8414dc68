"""`tooldeck`: the command-line face of the runtime (the dashboard is the other).

Each capability adds its subcommands from its own module (COMMAND_MODULES).
Exit codes: 0 success, 1 a tool or operation failed, 2 bad usage. Errors are
one line on stderr with secrets masked.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable, Sequence

from state.db import StoreError
from state.redact import redact
from tools.errors import ToolError, UsageError

COMMAND_MODULES = [
    "tools.cli.core_cmds",
    "tools.cli.buffer_cmds",
    "tools.cli.evolution_cmds",
    "tools.cli.failure_cmds",
    "tools.cli.spec_cmds",
    "tools.cli.mcp_cmds",
]


class Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"tooldeck: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="tooldeck", description="Operator dashboard and runtime for LLM tool ecosystems.")
    parser.add_argument("--workspace", "-w", help="workspace directory (default: $TOOLDECK_WORKSPACE or the current directory)")
    parser.add_argument("--json", action="store_true", dest="global_json", help="machine-readable output")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def fail(message: str, code: int = 1) -> int:
    sys.stderr.write(f"tooldeck: {redact(message).splitlines()[0] if message else 'failed'}\n")
    return code


#: Opens the dashboard: `(workspace=..., demo=..., traffic=...) -> exit code`. The dashboard is a
#: face over this runtime, so it hands itself in (tui.launch) instead of being imported from here.
DashboardOpener = Callable[..., int]


def main(argv: Sequence[str] | None = None, *, dashboard: DashboardOpener | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    args.open_dashboard = dashboard
    # `tooldeck --json tools` and `tooldeck tools --json` mean the same
    args.json_out = bool(getattr(args, "json_out", False) or args.global_json)
    if args.command is None:
        from tools.cli.core_cmds import cmd_dashboard

        args.func = cmd_dashboard
    try:
        return int(args.func(args) or 0)
    except UsageError as exc:
        return fail(exc.message, 2)
    except ToolError as exc:
        return fail(exc.message, 1)
    except StoreError as exc:
        return fail(str(exc), 1)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 0


def run(dashboard: DashboardOpener | None = None) -> None:
    sys.exit(main(dashboard=dashboard))
