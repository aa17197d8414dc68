"""Failures: tools ranked by quality score with a trend, the latest failures, resilient runs hop by hop."""

from __future__ import annotations

import time
from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding

from tools.cli.output import plural
from tui.details import Details, as_json, error_blocks, when
from tui.snapshot import Snapshot
from tui.style import score_text, shown, sparkline, status_text
from tui.widgets.live_table import Col, LiveTable
from tui.widgets.panel import Panel

SCORE_COLUMNS = [Col("tool", "tool", names_row=True), Col("version", "version"), Col("score", "score"), Col("circuit", "circuit"),
                 Col("fails", "fails", drop=1), Col("trend", "trend", drop=2), Col("tags", "tags", flex=True, drop=3)]
FAILURE_COLUMNS = [Col("time", "time"), Col("tool", "tool", names_row=True), Col("class", "class", drop=1),
                   Col("severity", "severity", drop=2),
                   Col("error", "error", flex=True, drop=1, min_width=12), Col("scenario", "scenario", flex=True, drop=3)]
RESILIENT_COLUMNS = [Col("time", "time"), Col("ok", "ok"), Col("hops", "hops", flex=True, min_width=16),
                     Col("scenario", "scenario", flex=True, drop=1)]


def fell_back(run: dict[str, Any]) -> bool:
    """A run worth a look: it failed, or a tool before the one that answered failed."""
    hops = run.get("hops") or []
    return not run.get("ok") or any(h.get("outcome") != "ok" for h in hops)


def without_tool(message: str, tool: str) -> str:
    """An error message on its tool's row without the tool's name in front (`boom: ValueError: x` -> `ValueError: x`):
    the name is in the row already, and the message's start is what the narrow column has room for."""
    return message[len(tool) + 2:] if tool and message.startswith(f"{tool}: ") else message


class FailuresPanel(Panel):
    title = "Failures"
    number = 3
    BINDINGS = [
        Binding("m", "mark", "Mark failure", id="failures.mark"),
        Binding("F", "only_fallbacks", "Fallbacks only", id="failures.only_fallbacks"),
    ]

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._runs: dict[str, dict[str, Any]] = {}
        self._failures: dict[str, dict[str, Any]] = {}
        self._scores: dict[str, dict[str, Any]] = {}
        self.only_fallbacks = False
        self._last: tuple[Snapshot, dict[str, str]] | None = None

    def compose(self) -> ComposeResult:
        yield LiveTable(SCORE_COLUMNS, id="scores-table")
        yield LiveTable(FAILURE_COLUMNS, id="failures-table")
        yield LiveTable(RESILIENT_COLUMNS, id="resilient-table")

    def fingerprint(self, snapshot: Snapshot) -> Any:
        return (repr(snapshot.scores), tuple(f.get("id") for f in snapshot.failures), tuple(r.get("id") for r in snapshot.resilient),
                self.only_fallbacks)

    def on_mount(self) -> None:
        super().on_mount()
        scores = self.query_one("#scores-table", LiveTable)
        scores.sort_by("score")  # ranked: the worst tools first (s re-sorts by another column)

    def apply(self, snapshot: Snapshot, colors: dict[str, str]) -> None:
        self._last = (snapshot, colors)
        scores = self.query_one("#scores-table", LiveTable)
        failures = self.query_one("#failures-table", LiveTable)
        self._scores = {f"{s['tool_id']}@{s['version']}": s for s in snapshot.scores}
        scores.apply([(key, self._score_cells(s, colors)) for key, s in self._scores.items()])
        ordered = sorted(snapshot.failures, key=lambda f: -int(f["id"]))
        self._failures = {str(f["id"]): f for f in ordered}
        failures.apply([(key, self._failure_cells(f, colors)) for key, f in self._failures.items()])
        self._apply_resilient(snapshot.resilient, colors)
        self._open = sum(1 for s in snapshot.scores if s.get("circuit") == "open")
        self.update_counts()

    def update_counts(self) -> None:
        failures = self.query_one("#failures-table", LiveTable)
        runs = self.query_one("#resilient-table", LiveTable)
        which = "fallback run" if self.only_fallbacks else "run"
        self.border_subtitle = (f"{failures.count_label('failure')} · {plural(getattr(self, '_open', 0), 'open circuit')} · "
                                f"{runs.count_label(which)}")

    @staticmethod
    def _score_cells(s: dict[str, Any], colors: dict[str, str]) -> tuple:
        trend = Text(sparkline(s.get("trend", []), 10), style=colors["accent"])
        tags = Text(", ".join(s.get("tags", [])), style=colors["warn"])
        circuit = status_text(str(s.get("circuit", "")).replace("_", "-"), colors)
        if s.get("disabled"):
            circuit = status_text("disabled", colors)
        return (s["tool_id"], s["version"], score_text(s.get("score"), colors), circuit, str(s.get("failures", 0)), trend, tags)

    @staticmethod
    def _failure_cells(f: dict[str, Any], colors: dict[str, str]) -> tuple:
        severity = Text(str(f.get("severity", "")), style=colors["error"] if f.get("severity") in ("high", "critical") else "")
        tool = str(f.get("tool_id", ""))
        error = without_tool(str(f.get("error", f.get("error_message", ""))), tool)
        return (time.strftime("%H:%M:%S", time.localtime(f.get("ts", 0))), tool, str(f.get("error_class", "")),
                severity, shown(error, colors["error"]), str(f.get("scenario", "")))

    def _apply_resilient(self, runs: list[dict[str, Any]], colors: dict[str, str]) -> None:
        """Newest first, one row a run keyed by its id (the cursor stays on its run); enter opens its hops."""
        ordered = sorted(runs, key=lambda r: -int(r["id"]))
        self._runs = {str(r["id"]): r for r in ordered}
        rows = []
        for run in ordered:
            if self.only_fallbacks and not fell_back(run):
                continue
            hops = run.get("hops") or []
            ok = bool(run.get("ok"))
            path = Text()
            for i, hop in enumerate(hops):
                if i:
                    path.append(" → ", style="dim")
                good = hop.get("outcome") == "ok"
                path.append(f"{hop.get('tool_id', '?')} {'✓' if good else '✗'}", style=colors["ok"] if good else colors["error"])
            rows.append((str(run["id"]), (time.strftime("%H:%M:%S", time.localtime(run.get("ts", 0))),
                                          Text("✓" if ok else "✗", style=colors["ok"] if ok else colors["error"]),
                                          path, str(run.get("scenario", "")))))
        self.query_one("#resilient-table", LiveTable).apply(rows)

    def action_only_fallbacks(self) -> None:
        self.only_fallbacks = not self.only_fallbacks
        if self._last is not None:
            self._apply_resilient(self._last[0].resilient, self._last[1])
        self.update_counts()
        self.app.set_status("resilient runs: only failed or fallback runs" if self.only_fallbacks else "resilient runs: all")

    def details(self, table: LiveTable, key: str) -> Details | None:
        if table.id == "scores-table":
            score = self._scores.get(key)
            if score is not None:
                self.app.open_tool(score["tool_id"], score["version"])
            return None
        if table.id == "failures-table":
            failure = self._failures.get(key)
            return failure_details(failure) if failure else None
        run = self._runs.get(key)
        return run_details(run, self._colors()) if run else None

    def _colors(self) -> dict[str, str]:
        from tui.style import theme_colors

        return theme_colors(self.app)

    def action_mark(self) -> None:
        from tui.screens.dialogs import PromptScreen

        table = self.query_one("#scores-table", LiveTable)
        key = table.selected_key() or ""
        tool = key.split("@", 1)[0]

        def done(values: dict[str, str] | None) -> None:
            if not values:
                self.app.set_status("mark failure cancelled")
                return
            from tools.recovery import mark_tool_failure

            self.app.run_blocking(f"mark {values['tool']}", lambda rt: mark_tool_failure(
                rt, values["tool"], values["scenario"], values["error"], values["severity"] or "medium"))

        def check(values: dict[str, str]) -> str | None:  # shown in the dialog, what was typed kept
            from tools.errors import ToolError
            from tools.recovery.ledger import check_report

            try:
                check_report(values["tool"], values["scenario"], values["error"], values["severity"] or "medium")
            except ToolError as exc:
                return exc.message
            runtime = self.app.runtime
            if runtime is not None and runtime.resolution(values["tool"], wait=False).entry is None:  # what the mark would raise
                known = runtime.catalog.find(values["tool"])
                return (f"tool {values['tool']!r} failed to load: {known.error}" if known is not None and known.error else
                        f"no tool {values['tool']!r} in the catalog")
            return None

        self.app.push_screen(PromptScreen("Mark a failure by hand", [
            ("tool", "tool id", tool), ("scenario", "scenario (what was asked)", ""), ("error", "error message", ""),
            ("severity", "severity: low | medium | high | critical", "medium")], check=check), done)


def failure_details(f: dict[str, Any]) -> Details:
    fields: list[tuple[str, Any]] = [
        ("tool", f"{f.get('tool_id')} {f.get('version', '')}"), ("when", when(f.get("ts"))), ("class", f.get("error_class", "")),
        ("severity", f.get("severity", "")), ("origin", f.get("origin", "")), ("scenario", f.get("scenario") or "—"),
        ("score", f"{f.get('score_after')} (demoted by {f.get('delta')})"), ("tags added", ", ".join(f.get("tags_added") or []) or "none"),
        ("session / process", f"{f.get('session') or '—'} / {f.get('pid') or '—'}"), ("failure id", f.get("id")),
    ]
    return Details(f"failure #{f.get('id')} of {f.get('tool_id')}", fields,
                   [*error_blocks(str(f.get("error") or "")), ("record", as_json(f), "json")], data=f)


def run_details(run: dict[str, Any], colors: dict[str, str]) -> Details:
    hops = run.get("hops") or []
    fields: list[tuple[str, Any]] = [
        ("scenario", run.get("scenario", "")), ("result", "succeeded" if run.get("ok") else "failed"),
        ("when", when(run.get("ts"))), ("took", f"{run.get('ms', '?')} ms"), ("session", run.get("session") or "—"),
    ]
    for i, hop in enumerate(hops, 1):
        fields.append((f"hop {i}", hop_label(hop, colors)))
    for skipped in run.get("skipped") or []:
        fields.append(("skipped", f"{skipped.get('tool_id', '?')} {skipped.get('version', '')}: {skipped.get('reason', '')}"))
    blocks = []
    for i, hop in enumerate(hops, 1):
        if hop.get("error"):
            blocks.extend((f"hop {i} {heading}", text, lexer) for heading, text, lexer in error_blocks(str(hop["error"])))
    blocks.append(("run", as_json(run), "json"))
    return Details(f"resilient call: {run.get('scenario', '')} ({'succeeded' if run.get('ok') else 'failed'})", fields, blocks, data=run)


def hop_label(hop: dict[str, Any], colors: dict[str, str]) -> Text:
    outcome = str(hop.get("outcome", hop.get("outcome_class", "")))
    style = colors["ok"] if outcome == "ok" else colors["warn"] if outcome.startswith("skipped") else colors["error"]
    text = Text(f"{hop.get('tool_id', '?')} {hop.get('version', '')} ", style="bold")
    text.append(outcome, style=style)
    bits = []
    for key in ("similarity", "score"):
        if isinstance(hop.get(key), (int, float)):
            bits.append(f"{key} {hop[key]:.2f}")
    if hop.get("ms") is not None:
        bits.append(f"{hop['ms']:.0f} ms")
    why = hop.get("why") or hop.get("reason") or ""
    if why:
        bits.append(str(why))
    text.append_text(shown("  " + " · ".join(bits), "dim"))  # a reason a tool or a fallback wrote
    return text
