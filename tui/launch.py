"""The `tooldeck` command: the CLI of the runtime, with this dashboard as its bare-command face.

The runtime's CLI (tools.cli) never imports the dashboard; the dashboard hands itself in.
"""

from __future__ import annotations

from typing import Any


def open_dashboard(**options: Any) -> int:
    from tui.app import run_dashboard  # Textual is imported only when the dashboard opens

    return run_dashboard(**options)


def run() -> None:
    from tools.cli import run as run_cli

    run_cli(dashboard=open_dashboard)
