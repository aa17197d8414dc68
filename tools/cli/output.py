"""Shared output helpers for subcommands: JSON or a rich rendering, never both."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any

from state.redact import redact
from tools.visible import cut_point, dumps_visible, visible

if TYPE_CHECKING:
    from rich.text import Text

    from tools.runtime import Runtime


def exit_code_for(exc: BaseException) -> int:
    """The exit code of an error, by its class (tools.errors.EXIT_CODES); 1 for anything else."""
    from tools.errors import exit_code

    return exit_code(str(getattr(exc, "error_class", "")))


def emit_json(value: Any) -> None:
    """One JSON value on stdout. Letters stay readable (no `ensure_ascii`), but control, bidi and invisible
    characters are `\\uXXXX` escapes (tools/visible.py): still the same JSON, harmless on a terminal."""
    sys.stdout.write(redact(dumps_visible(value, indent=2, default=str)) + "\n")


def emit_error_json(message: str, error_class: str, extra: dict[str, Any] | None = None) -> None:
    """A --json failure: one object, `{"ok": false, "error", "error_class", ...extra}`, the same for every command."""
    emit_json({"ok": False, "error": message, "error_class": error_class, **(extra or {})})


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
    given to `call_tool` is; so is an empty argument or empty stdin (tools.errors.parse_json): an empty pipe or an
    unset shell variable is not the `{}` that leaving the argument out means."""
    from tools.errors import parse_json

    if text is None:
        return {}
    if text == "-":
        return parse_json(sys.stdin.read(), f"{what} on stdin")
    return parse_json(text, what)


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


SHORT = 12  # cells: a column whose every value fits is sized to its content (numbers, statuses, types)
GAP = 2  # spaces between two columns


def fit_columns(widths: Sequence[int], least: Sequence[int], keys: Sequence[bool], room: int) -> dict[int, int]:
    """Which columns a terminal `room` cells wide shows, and how wide: {column index: width}.

    `widths` are the widest cells; free text may be cut down to `least` (a column whose `least` is
    its width is never cut). Free-text columns share what the others leave (one that needs less
    takes less). Rather than squeezing one below `least`, the last free-text column is left out
    whole, then the last column that is not a key: keys always show whole, even wider than `room`.
    """
    shown = list(range(len(widths)))
    while sum(least[i] for i in shown) + GAP * (len(shown) - 1) > room:
        droppable = [i for i in shown if least[i] < widths[i]] or [i for i in shown if not keys[i]]
        if not droppable:
            break
        shown.remove(droppable[-1])
    out = {i: widths[i] for i in shown if least[i] == widths[i]}
    texts = sorted((i for i in shown if least[i] < widths[i]), key=lambda i: widths[i])
    spare = room - sum(out.values()) - GAP * (len(shown) - 1)
    for n, i in enumerate(texts):  # the narrowest first: what one does not need, the next may have
        rest = sum(least[j] for j in texts[n + 1:])  # what those after it must keep
        out[i] = max(least[i], min(widths[i], spare // (len(texts) - n), spare - rest))
        spare -= out[i]
    return {i: out[i] for i in shown}


def cut(cell: Text, width: int) -> Text:
    """A table cell (a rich `Text` of `visible` text) cut to `width` cells, ending in `…`: before a spelled-out
    character rather than through it (tools/visible.py `cut_point`), so a cut never shows a marker that is not there."""
    from rich.cells import cell_len

    if cell.cell_len <= width:
        return cell
    plain = cell.plain
    low, high = 0, len(plain)  # the longest prefix that leaves a cell for the `…`
    while low < high:
        mid = (low + high + 1) // 2
        low, high = (mid, high) if cell_len(plain[:mid]) <= width - 1 else (low, mid - 1)
    kept = cell[:cut_point(plain, low)]
    kept.append("…")
    return kept


def print_table(title: str, columns: Sequence[str], rows: Iterable[Sequence[Any]], *,
                keys: Sequence[str] = (), styles: Callable[[str, str], str] | None = None) -> None:
    """A table: rich on a terminal; tab-separated lines (a header, then one row per line) when piped.

    On a terminal each row is one line (the way gh and kubectl print): `keys` (ids, hashes, versions)
    and every column whose values are short (numbers, statuses) are as wide as their widest value,
    never wrapped nor cut; free text (descriptions, errors) gets the rest, cut with an ellipsis, and
    when too little is left, the last free-text columns are left out whole (the table says which).
    Piped output never wraps anything, so `tooldeck tools | grep ID` finds whole ids.
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

    cells: list[list[Text]] = []
    for row in rows:
        texts = ["" if value is None else str(value) for value in row] + [""] * (len(columns) - len(row))
        cells.append([Text(visible(text, multiline=False), style=styles(col, text) if styles else "")
                      for col, text in zip(columns, texts, strict=False)])
    widths = [max([Text(col).cell_len] + [r[i].cell_len for r in cells]) for i, col in enumerate(columns)]
    is_key = [col in keys for col in columns]
    least = [widths[i] if is_key[i] or max([0] + [r[i].cell_len for r in cells]) <= SHORT else
             min(widths[i], max(SHORT, Text(col).cell_len)) for i, col in enumerate(columns)]
    room = out.width
    shown = fit_columns(widths, least, is_key, room)
    table = Table(box=None, padding=(0, GAP // 2), pad_edge=False)
    for i, width in shown.items():
        table.add_column(columns[i], width=width, no_wrap=True, overflow="ellipsis")
    for r in cells:
        table.add_row(*(cut(r[i], width) for i, width in shown.items()))
    out.print(Text(visible(title, multiline=False), style="table.title"))
    out.width = max(room, sum(shown.values()) + GAP * (len(shown) - 1))  # keys alone too wide: the terminal wraps them
    out.print(table, crop=False)
    out.width = room
    hidden = [col for i, col in enumerate(columns) if i not in shown]
    if hidden:
        out.print(Text(f"not shown at {room} columns: {', '.join(hidden)} (piped output has every column)", style="dim"))
