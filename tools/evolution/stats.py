"""How evolution is doing: approval rate, rounds, where validation fails, and what it costs.

Counted over every proposal in the store, overall and grouped by model, mutation hint, tool and the
stage a failed validation stopped at; `tooldeck review stats` prints it (`--json` for scripts) and
the dashboard's Evolution panel shows it (`S`), both as `StatsView` draws it on a screen.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from state import proposals
from tools.visible import visible

#: a decision was made on these (the approval rate's denominator)
DECIDED = ("approved", "rolled_back", "rejected")
GROUPS: dict[str, Callable[[Any], str]] = {
    "model": lambda r: (f"{r['provider']}:{r['model']}" if r["provider"] and r["model"] else r["model"] or r["provider"] or "-"),
    "hint": lambda r: ((r["mutation_hint"] or "-").strip().splitlines() or ["-"])[0][:60],
    "tool": lambda r: r["tool_id"],
    "failed_stage": lambda r: _failed_stage(r) or "-",
}


def _failed_stage(row: Any) -> str | None:
    if row["status"] != "failed_validation":
        return None
    try:
        stages = json.loads(row["stages"] or "[]")
    except json.JSONDecodeError:
        stages = []
    failed = next((s for s in stages if isinstance(s, dict) and not s.get("passed")), None)
    if failed is not None:
        return str(failed.get("name"))
    return (row["failure"] or "unknown").split(":", 1)[0] or "unknown"


def _summary(rows: list[Any]) -> dict[str, Any]:
    n = len(rows)
    approved = sum(1 for r in rows if r["approved_at"] is not None)
    decided = sum(1 for r in rows if r["status"] in DECIDED)
    failed = sum(1 for r in rows if r["status"] == "failed_validation")
    tokens_in = sum(int(r["input_tokens"] or 0) for r in rows)
    tokens_out = sum(int(r["output_tokens"] or 0) for r in rows)
    rounds = [int(r["rounds"] or 0) for r in rows if r["rounds"]]
    return {
        "proposals": n, "approved": approved, "rejected": sum(1 for r in rows if r["status"] == "rejected"),
        "rolled_back": sum(1 for r in rows if r["status"] == "rolled_back"), "failed_validation": failed,
        "awaiting_review": sum(1 for r in rows if r["status"] == "awaiting_review"),
        "approval_rate": round(approved / decided, 3) if decided else None,
        "validation_pass_rate": round(1 - failed / n, 3) if n else None,
        "mean_rounds": round(sum(rounds) / len(rounds), 2) if rounds else None,
        "input_tokens": tokens_in, "output_tokens": tokens_out,
        "tokens_per_approval": round((tokens_in + tokens_out) / approved) if approved else None,
    }


def evolution_stats(store: Any) -> dict[str, Any]:
    """{"overall": summary, "by": {group: {key: summary}}} over every proposal."""
    rows = proposals.for_stats(store)
    by: dict[str, dict[str, Any]] = {}
    for group, key_of in GROUPS.items():
        buckets: dict[str, list[Any]] = {}
        for r in rows:
            if group == "failed_stage" and r["status"] != "failed_validation":
                continue
            buckets.setdefault(key_of(r), []).append(r)
        by[group] = {key: _summary(members) for key, members in sorted(buckets.items(), key=lambda kv: (-len(kv[1]), kv[0]))}
    return {"overall": _summary(rows), "by": by}


#: the table form of the statistics, shared by `tooldeck review stats` and the dashboard
STATS_COLUMNS = ("group", "key", "proposals", "approved", "rejected", "rolled back", "failed", "approval", "rounds", "tokens",
           "tokens/approval")
STATS_TITLE = "evolution: proposals by model, mutation hint, tool and the stage failed validations stopped at"


def stats_rows(stats: dict[str, Any]) -> list[tuple[Any, ...]]:
    """One row per group and key (overall first), in STATS_COLUMNS order."""

    def pct(value: float | None) -> str:
        return "-" if value is None else f"{value * 100:.0f}%"

    def row(group: str, key: str, s: dict[str, Any]) -> tuple[Any, ...]:
        return (group, key, s["proposals"], s["approved"], s["rejected"], s["rolled_back"], s["failed_validation"],
                pct(s["approval_rate"]), "-" if s["mean_rounds"] is None else s["mean_rounds"],
                s["input_tokens"] + s["output_tokens"], "-" if s["tokens_per_approval"] is None else s["tokens_per_approval"])

    rows = [row("all", "all", stats["overall"])]
    for group in GROUPS:
        rows += [row(group, k, s) for k, s in stats["by"][group].items()]
    return rows


class StatsView:
    """The statistics for a person: a table where it fits the width, else one block a row (`group: key`, then
    `column value` pairs). At 80 columns the table's eleven columns cut every header and key to three letters.
    Mutation hints are model- or operator-written text: shown with their control characters made visible."""

    def __init__(self, stats: dict[str, Any]) -> None:
        self.rows = [tuple(visible(str(cell), multiline=False) for cell in row) for row in stats_rows(stats)]

    def table(self) -> Any:
        from rich.table import Table

        table = Table(*STATS_COLUMNS, title=STATS_TITLE, title_justify="left", expand=False, show_edge=False, pad_edge=False)
        for column in table.columns[2:]:
            column.justify = "right"
        for row in self.rows:
            table.add_row(*row)
        return table

    def blocks(self) -> Any:
        from rich.console import Group
        from rich.padding import Padding
        from rich.text import Text

        out: list[Any] = [Text(STATS_TITLE, style="bold")]
        for group, key, *values in self.rows:
            out.append(Text(f"{group}: {key}", style="bold"))
            out.append(Padding(Text(" · ".join(f"{name} {value}" for name, value in zip(STATS_COLUMNS[2:], values, strict=True))),
                               (0, 0, 0, 2)))
        return Group(*out)

    def __rich_console__(self, console: Any, options: Any) -> Any:
        from rich.measure import Measurement

        table = self.table()
        fits = Measurement.get(console, options.update(width=10_000), table).maximum <= options.max_width
        yield table if fits else self.blocks()
