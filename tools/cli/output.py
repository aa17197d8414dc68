"""Shared output helpers for subcommands: JSON or a rich rendering, never both."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from state.redact import redact


def emit_json(value: Any) -> None:
    sys.stdout.write(redact(json.dumps(value, indent=2, default=str, ensure_ascii=False)) + "\n")


def console() -> Any:
    from rich.console import Console

    return Console(highlight=False)


def err_console() -> Any:
    from rich.console import Console

    return Console(stderr=True, highlight=False)


def runtime_for(args: argparse.Namespace, **kwargs: Any) -> Any:
    from tools.runtime import Runtime

    kwargs.setdefault("kind", "cli")
    return Runtime(args.workspace, **kwargs)


def read_json_arg(text: str | None, what: str = "input") -> Any:
    """A JSON argument, `-` for stdin, or nothing (an empty object)."""
    from tools.errors import UsageError

    if text is None:
        return {}
    if text == "-":
        text = sys.stdin.read()
    if not text.strip():
        return {}
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise UsageError(f"{what} is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from exc
