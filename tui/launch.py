"""The `tooldeck` command: the CLI of the runtime, with this dashboard as its bare-command face.

The runtime's CLI (tools.cli) never imports the dashboard; the dashboard hands itself in.
`tooldeck` and `tooldeck -w DIR` open the dashboard without building the parser of every
subcommand (~30 ms of the first frame); anything else goes through the CLI.
"""

from __future__ import annotations

import sys
from typing import Any

NO_TERMINAL = ("the dashboard needs a terminal (stdin and stdout are not both a tty); "
               "use `tooldeck serve` or a subcommand such as `tooldeck tools` in scripts")


def open_dashboard(**options: Any) -> int:
    """Run the dashboard; without a terminal it refuses (a UsageError: one line, exit 2) before drawing anything."""
    if not (sys.stdin.isatty() and sys.stdout.isatty()):
        from tools.errors import UsageError

        raise UsageError(NO_TERMINAL)
    from tui.app import run_dashboard  # Textual is imported only when the dashboard opens

    return run_dashboard(**options)


def dashboard_only(argv: list[str]) -> tuple[bool, str | None]:
    """(True, workspace) when `argv` asks for nothing but the dashboard (`-w DIR` / `--workspace DIR` at most)."""
    workspace = None
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg in ("-w", "--workspace") and i + 1 < len(argv):
            workspace, i = argv[i + 1], i + 2
        elif arg.startswith("--workspace="):
            workspace, i = arg.split("=", 1)[1], i + 1
        else:
            return False, None
    return True, workspace


def run() -> None:
    only, workspace = dashboard_only(sys.argv[1:])
    if only:
        from tools.errors import UsageError
        from tools.ids import resolve_workspace

        try:
            sys.exit(open_dashboard(workspace=str(resolve_workspace(workspace))))
        except UsageError as exc:
            from tools.visible import visible

            sys.stderr.write(f"tooldeck: {visible(exc.message)}\n")
            sys.exit(2)
        except KeyboardInterrupt:
            sys.exit(130)
    from tools.cli import run as run_cli

    run_cli(dashboard=open_dashboard)
