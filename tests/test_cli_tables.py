"""CLI tables in a real terminal's width: one line a row, ids and numbers whole, free text cut with `…`."""

from __future__ import annotations

import re
import sys
from collections.abc import Sequence
from typing import Any

import pytest

from tools.cli.output import print_table

ANSI = re.compile(r"\x1b\[[0-9;]*m")
TOOLS = ("tool", "status", "version", "serves", "type", "source", "score", "detail", "description")
TOOL_KEYS = ("tool", "version", "serves")  # as `tooldeck tools` passes them
TOOL_ROWS = [
    ("buffer", "ready", "1.0.0", "global", "builtin", "builtin", "1.00", "",
     "Durable write buffer. Batches many small writes into few calls of a pass-through tool (flush at max_size items "
     "or when the oldest item is flush_interval_seconds old), survives crashes."),
    ("csv_parser", "ready", "1.0.0", "global", "executable", "workspace", "1.00", "",
     "Parse CSV text into rows of records keyed by the header line. CSV only."),
    ("extract_spec_from_file", "loading", "1.0.0", "global", "builtin", "builtin", "0.75", "", "Split a spec."),
    ("broken", "error", "1.2.0", "", "python", "workspace", "",
     "invalid YAML: mapping values are not allowed here (line 3, column 7)", ""),
]
TRACE = ("#", "tool", "version", "similarity", "score", "penalty", "outcome", "ms", "why / error")
TRACE_ROWS = [
    (1, "json_parser", "1.0.0", "0.79", "0.98", "0.92", "bad_input", "4.3",
     "relevance 1.00 (similarity 0.79; embedding #1, words #1) x score 0.98 x penalty 0.92 | bad input: 'text' must be a string"),
    (2, "translator_dictionary", "1.0.0", "0.59", "1.00", "1.00", "ok", "1053.7", "relevance 0.61 (similarity 0.59)"),
]


def on_terminal(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], width: int, columns: Sequence[str],
                rows: Sequence[Sequence[Any]], keys: Sequence[str]) -> list[str]:
    """What print_table shows in a terminal `width` columns wide (its own console, as a command gets it)."""
    monkeypatch.setenv("COLUMNS", str(width))
    monkeypatch.setattr(sys.stdout, "isatty", lambda: True)
    print_table("a title", columns, rows, keys=keys, styles=lambda col, v: "green" if v == "ready" else "")
    return [ANSI.sub("", line).rstrip() for line in capsys.readouterr().out.splitlines()]


def assert_fits(lines: list[str], columns: Sequence[str], rows: Sequence[Sequence[Any]], whole: Sequence[str], width: int) -> list[str]:
    """One line a row, nothing past the terminal's edge, `whole` columns never cut; the free text cut with `…`.
    Returns the columns shown."""
    assert lines[0] == "a title"
    assert all(len(line) <= width for line in lines), lines
    shown = [c for c in columns if re.search(rf"(^|  ){re.escape(c)}(  |$)", lines[1])]
    hidden = [c for c in columns if c not in shown]
    assert len(lines) == 2 + len(rows) + bool(hidden), lines  # a title, a header, a line a row, which columns it left out
    if hidden:
        assert lines[-1].startswith(f"not shown at {width} columns: {', '.join(hidden)}")
    assert set(whole) <= set(shown)
    for row, line in zip(rows, lines[2:], strict=False):
        for col, value in zip(columns, row, strict=True):
            if col not in shown:
                continue
            text = str(value)
            start = lines[1].index(col) if col != "#" else 0
            if col in whole:
                assert line[start:start + len(text)] == text and line[start + len(text):start + len(text) + 1] in ("", " "), (col, line)
            else:
                cell = line[start:].split("  ")[0]
                assert cell == text or (cell.endswith("…") and text.startswith(cell[:-1]) and len(cell) >= 12), (col, cell)
    return shown


@pytest.mark.parametrize("width", [80, 100, 160])
def test_tools_table_keeps_ids_statuses_and_numbers_whole_at_every_width(monkeypatch, capsys, width):
    lines = on_terminal(monkeypatch, capsys, width, TOOLS, TOOL_ROWS, TOOL_KEYS)
    shown = assert_fits(lines, TOOLS, TOOL_ROWS, ("tool", "status", "version", "serves", "type", "source", "score"), width)
    assert lines[1].split() == [c for c in TOOLS if c in shown]  # headers whole too: no `sta/tus`
    row = {line.split()[0]: line for line in lines[2:]}
    if width == 80:  # the short columns alone take 78 columns: the free text goes whole, not 2 characters wide
        assert shown == list(TOOLS[:7])
    elif width == 100:  # room for one free-text column of at least 12: the error, not the description
        assert shown == list(TOOLS[:8]) and row["broken"].endswith("…")
    else:  # both, sharing what is left; text that fits is not cut
        assert shown == list(TOOLS) and row["broken"].endswith("…") and row["buffer"].endswith("…")
        assert row["extract_spec_from_file"].endswith("Split a spec.")


@pytest.mark.parametrize("width", [80, 100, 160])
def test_a_resilient_trace_gives_the_why_the_room_the_tool_does_not_need(monkeypatch, capsys, width):
    lines = on_terminal(monkeypatch, capsys, width, TRACE, TRACE_ROWS, ("tool", "version", "outcome"))
    shown = assert_fits(lines, TRACE, TRACE_ROWS, TRACE[:8], width)
    assert ("why / error" in shown) == (width > 80)
    if width > 80:
        why = lines[2][lines[1].index("why / error"):]
        assert why.endswith("…") and len(why) == width - lines[1].index("why / error")  # all the width there is


def test_keys_wider_than_the_terminal_stay_whole(monkeypatch, capsys):
    long_id = "a_tool_with_a_long_identifier_that_would_wrap_at_eighty_col"
    lines = on_terminal(monkeypatch, capsys, 40, TOOLS, [(long_id, *TOOL_ROWS[0][1:])], TOOL_KEYS)
    assert lines[2].split() == [long_id, "1.0.0", "global"]  # one line the terminal wraps, the id uncut
    assert " ".join(lines[3:]).startswith("not shown at 40 columns: status, type, source, score, detail, description")


def test_free_text_takes_only_what_it_needs_and_the_rest_goes_to_the_next():
    from tools.cli.output import fit_columns

    assert fit_columns([5, 20, 100], [5, 12, 12], [True, False, False], 80) == {0: 5, 1: 20, 2: 51}
    assert fit_columns([5, 30, 100], [5, 12, 12], [True, False, False], 40) == {0: 5, 1: 15, 2: 16}
    assert fit_columns([5, 30, 100], [5, 12, 12], [True, False, False], 30) == {0: 5, 1: 23}
    assert fit_columns([50, 8], [50, 8], [True, False], 40) == {0: 50}


def test_piped_tables_stay_tab_separated(capsys):
    print_table("a title", ("tool", "status", "description"),
                [("echo", "ready", "tab\there, a\nnewline and a \\"), ("x", None, "")], keys=("tool",))
    assert capsys.readouterr().out == ("tool\tstatus\tdescription\n"
                                       "echo\tready\ttab\\there, a\\nnewline and a \\\\\n"
                                       "x\t\t\n")


@pytest.mark.parametrize("width", range(22, 56))
def test_a_cut_never_splits_a_spelled_out_character(monkeypatch, capsys, width):
    """`<U+202E>` and `\\x1b` stand for one character each: a cell cut to the terminal ends before one, then `…`,
    never in the middle (`<U+2…` would hide what was there)."""
    text = "reverses here \u202e and erases here \x1b[2K and goes on for a while after both"
    lines = on_terminal(monkeypatch, capsys, width, ("tool", "description"), [("sneaky", text)], ("tool",))
    cell = lines[2][lines[1].index("description"):]
    whole = "reverses here <U+202E> and erases here \\x1b[2K and goes on for a while after both"
    assert cell.endswith("…") and whole.startswith(cell[:-1]), cell
    assert not re.search(r"(<U\+[0-9A-F]{0,4}|\\x?[0-9a-f]?)…$", cell), cell  # the marker whole, or not at all
    assert len(cell) >= width - len(lines[1][:lines[1].index("description")]) - len("<U+202E>")  # no more room given up


def test_cut_point_backs_off_to_the_start_of_a_marker():
    from tools.visible import cut_point, visible

    shown = visible("ab\u202ecd\x1bef\rg")  # ab<U+202E>cd\x1bef\rg
    assert [cut_point(shown, end) for end in range(len(shown) + 1)] == [
        0, 1, 2, 2, 2, 2, 2, 2, 2, 2, 10, 11, 12, 12, 12, 12, 16, 17, 18, 18, 20, 21]
    for ch in map(chr, [*range(0x10000), 0x1D173, 0xE0001, 0xF0000]):  # every way `visible` spells one out
        spelled = visible(ch, multiline=False)
        if spelled != ch:
            assert [cut_point(spelled, end) for end in range(len(spelled) + 1)] == [0] * len(spelled) + [len(spelled)], spelled
