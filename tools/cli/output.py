"""Shared output helpers for subcommands: JSON or a rich rendering, never both."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any

from state.redact import redact
from tools.visible import dumps_visible, visible

if TYPE_CHECKING:
    from tools.runtime import Runtime


def exit_code_for(exc: BaseException) -> int:
    """The exit code of an error, by its class (tools.errors.EXIT_CODES); 1 for anything else."""
    from tools.errors import exit_code

    return exit_code(str(getattr(exc, "error_class", "")))


def emit_json(value: Any) -> None:
    """One JSON value on stdout. Letters stay readable (no `ensure_ascii`), but control, bidi and invisible
    characters are `\\uXXXX` escapes (tools/visible.py): still the same JSON, harmless on a terminal."""
    sys.stdout.write(redact(dumps_visible(value, indent=2, default=str)) + "\n")


def shown(text: Any) -> Any:
    """Foreign text (a model's, a tool's, an MCP server's) as a rich `Text` with its control characters made
    visible: never parsed as markup (`[bold]` stays literal), never sent to the terminal as an escape."""
    from rich.text import Text

    return Text(visible(text))


def console() -> Any:
    """stdout for people; piped, it never wraps a line (ids and hashes stay whole for grep)."""
    from rich.console import Console

    terminal = sys.stdout.isatty()
    return Console(highlight=False, soft_wrap=not terminal)


def err_console() -> Any:
    from rich.console import Console

    return Console(stderr=True, highlight=False)


def runtime_for(args: argparse.Namespace, **kwargs: Any) -> Runtime:
    from tools.runtime import Runtime

    kwargs.setdefault("kind", "cli")
    return Runtime(args.workspace, **kwargs)


def read_json_arg(text: str | None, what: str = "input") -> Any:
    """A JSON argument, `-` for stdin, or nothing (an empty object). Malformed JSON is `bad_input`, as the same text
    given to `call_tool` is."""
    from tools.errors import ToolInputError

    if text is None:
        return {}
    if text == "-":
        text = sys.stdin.read()
    if not text.strip():
        return {}
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ToolInputError(f"{what} is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from exc


def plural(n: int, word: str, many: str | None = None) -> str:
    """`1 buffer`, `2 buffers`, `0 entries` (pass `many` for irregular plurals)."""
    return f"{n:,} {word if n == 1 else (many or word + 's')}"


def positive_number(unit: str, *, integer: bool = False) -> Any:
    """An argparse type: a number > 0 (else a usage error naming the unit), e.g. seconds or items."""

    def parse(text: str) -> float | int:
        try:
            value = int(text) if integer else float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a {'whole ' if integer else ''}number of {unit}") from None
        if not value > 0 or value != value or value == float("inf"):
            raise argparse.ArgumentTypeError(f"{text!r}: must be a positive number of {unit}")
        return value

    parse.__name__ = unit  # argparse names the type in its messages
    return parse


def _plain(value: Any) -> str:
    """One cell of tab-separated output: never a tab or a newline inside, no control character raw."""
    text = "" if value is None else str(value)
    return visible(text.replace("\\", "\\\\").replace("\t", "\\t"), multiline=False)


def print_table(title: str, columns: Sequence[str], rows: Iterable[Sequence[Any]], *,
                keys: Sequence[str] = (), styles: Callable[[str, str], str] | None = None) -> None:
    """A table: rich on a terminal; tab-separated lines (a header, then one row per line) when piped.

    `keys` name the columns holding ids and hashes: on a terminal they are never wrapped, and
    piped output never wraps anything, so `tooldeck tools | grep ID` finds whole ids.
    `styles(column, value)` gives a rich style for a cell (terminal only). Cells are data: shown with
    their control characters made visible (tools/visible.py) and never read as rich markup.
    """
    rows = [list(r) for r in rows]
    out = console()
    if not out.is_terminal:
        sys.stdout.write("\t".join(_plain(c) for c in columns) + "\n")
        for row in rows:
            sys.stdout.write("\t".join(_plain(v) for v in row) + "\n")
        sys.stdout.flush()
        return
    from rich.table import Table
    from rich.text import Text

    table = Table(title=Text(visible(title, multiline=False)), title_justify="left")
    for i, col in enumerate(columns):
        if col in keys:
            widest = max([len(col)] + [len(_plain(r[i])) for r in rows])
            table.add_column(col, no_wrap=True, min_width=widest)
        else:
            table.add_column(col, overflow="fold")
    for row in rows:
        cells = []
        for col, value in zip(columns, row, strict=False):
            text = "" if value is None else str(value)
            cells.append(Text(visible(text, multiline=False), style=styles(col, text) if styles else ""))
        table.add_row(*cells)
    out.print(table)
