"""What Enter opens on any row: every field, the full error, the payload as JSON, charts.

Plain data (no Textual): a panel describes a row as `Details`; `tui.screens.details`
shows it. `load` reads more off the event loop (a buffer's pending history, a tool's
failure rate) and returns the fuller Details.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Chart:
    """A time series for the details screen. `levels` names the values of a step chart (a circuit's states)."""

    title: str
    x: list[float]  # unix timestamps
    series: list[tuple[str, list[float]]]
    ylabel: str = ""
    levels: tuple[str, ...] = ()
    marks: list[tuple[float, str]] = field(default_factory=list)  # (ts, label): events on the timeline
    #: the y axis's range when the values have one (a share: 0-100); None fits the data, from 0
    yrange: tuple[float, float] | None = None
    #: the x axis's unit ("s" or "min"); "" picks it from the span
    x_unit: str = ""
    #: the window the chart covers, in seconds before now (its x axis runs over all of it); None: the data's span
    window: float | None = None


@dataclass
class Details:
    title: str
    fields: list[tuple[str, Any]] = field(default_factory=list)
    blocks: list[tuple[str, str, str]] = field(default_factory=list)  # (heading, text, lexer: json | text | python | yaml)
    charts: list[Chart] = field(default_factory=list)
    data: Any = None  # what `y` copies; by default the fields and blocks
    load: Callable[[Any], Details] | None = None  # runtime -> fuller Details, run in a thread worker

    def copy_text(self) -> str:
        if self.data is not None:
            return as_json(self.data)
        out: dict[str, Any] = {name: value for name, value in self.fields}
        for heading, text, _ in self.blocks:
            out[heading] = text
        return as_json(out)


def as_json(value: Any) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False, default=str)


def when(ts: Any) -> str:
    """A timestamp as local date and time, with how long ago."""
    if not isinstance(ts, (int, float)) or not ts:
        return ""
    ago = time.time() - float(ts)
    age = f"{ago:.0f} s ago" if ago < 120 else f"{ago / 60:.0f} min ago" if ago < 7200 else f"{ago / 3600:.1f} h ago"
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(float(ts))) + f" ({age})"


def split_error(error: str) -> tuple[str, str]:
    """(message, stderr / traceback): the ledger joins a tool's stderr tail to its message with ' | '."""
    head, sep, tail = error.partition(" | ")
    if sep and ("\n" in tail or tail.lstrip().startswith("Traceback")):
        return head, tail
    return error, ""


def error_blocks(error: str) -> list[tuple[str, str, str]]:
    message, trace = split_error(error or "")
    blocks = [("error", message, "text")] if message else []
    if trace:
        blocks.append(("stderr / traceback", trace, "pytb" if "Traceback" in trace else "text"))
    return blocks
