"""Failures: tools ranked by quality score with a trend, the latest failures, resilient runs hop by hop."""

from __future__ import annotations

import time
from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import DataTable

from tui.snapshot import Snapshot
from tui.style import score_text, sparkline, status_text
from tui.widgets.live_table import LiveTable
from tui.widgets.panel import Panel

SCORE_COLUMNS = [("tool", "tool"), ("version", "version"), ("score", "score"), ("trend", "trend"), ("fails", "fails"),
                 ("circuit", "circuit"), ("tags", "tags")]
FAILURE_COLUMNS = [("time", "time"), ("tool", "tool"), ("scenario", "scenario"), ("class", "class"), ("severity", "severity"),
                   ("error", "error")]
RESILIENT_COLUMNS = [("time", "time"), ("ok", "ok"), ("scenario", "scenario"), ("hops", "hops")]


class FailuresPanel(Panel):
    title = "Failures"
    BINDINGS = [Binding("m", "mark", "Mark failure", id="failures.mark")]

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._runs: dict[str, dict[str, Any]] = {}

    def compose(self) -> ComposeResult:
        yield LiveTable(SCORE_COLUMNS, id="scores-table")
        yield LiveTable(FAILURE_COLUMNS, id="failures-table", slots=True)
        yield LiveTable(RESILIENT_COLUMNS, id="resilient-table", slots=True)

    def fingerprint(self, snapshot: Snapshot) -> Any:
        return repr(snapshot.scores), tuple(f.get("id") for f in snapshot.failures), tuple(r.get("id") for r in snapshot.resilient)

    def on_mount(self) -> None:
        super().on_mount()
        scores = self.query_one("#scores-table", LiveTable)
        scores.sort_column = "score"  # ranked: the worst tools first (s re-sorts by another column)

    def apply(self, snapshot: Snapshot, colors: dict[str, str]) -> bool:
        scores = self.query_one("#scores-table", LiveTable)
        failures = self.query_one("#failures-table", LiveTable)
        changed = scores.apply([(f"{s['tool_id']}@{s['version']}", self._score_cells(s, colors)) for s in snapshot.scores])
        snapshot_failures = sorted(snapshot.failures, key=lambda f: -int(f["id"]))
        changed |= failures.apply([(str(f["id"]), self._failure_cells(f, colors)) for f in snapshot_failures])
        changed |= self._apply_resilient(snapshot.resilient, colors)
        open_circuits = sum(1 for s in snapshot.scores if s.get("circuit") == "open")
        self.border_subtitle = f"{len(snapshot.failures)} recent failures · {open_circuits} open circuits"
        return changed

    @staticmethod
    def _score_cells(s: dict[str, Any], colors: dict[str, str]) -> tuple:
        trend = Text(sparkline(s.get("trend", []), 10), style=colors["accent"])
        tags = Text(", ".join(s.get("tags", [])), style=colors["warn"])
        circuit = status_text(str(s.get("circuit", "")), colors)
        if s.get("disabled"):
            circuit = status_text("disabled", colors)
        return (s["tool_id"], s["version"], score_text(s.get("score"), colors), trend, str(s.get("failures", 0)), circuit, tags)

    @staticmethod
    def _failure_cells(f: dict[str, Any], colors: dict[str, str]) -> tuple:
        severity = Text(str(f.get("severity", "")), style=colors["error"] if f.get("severity") in ("high", "critical") else "")
        return (time.strftime("%H:%M:%S", time.localtime(f.get("ts", 0))), f.get("tool_id", ""), str(f.get("scenario", ""))[:60],
                str(f.get("error_class", "")), severity, str(f.get("error", f.get("error_message", "")))[:120])

    def _apply_resilient(self, runs: list[dict[str, Any]], colors: dict[str, str]) -> bool:
        """Newest first, one row a run; enter expands a run into its hops."""
        ordered = sorted(runs, key=lambda r: -int(r["id"]))
        self._runs = {str(r["id"]): r for r in ordered}
        rows = []
        for run in ordered:
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
                                          str(run.get("scenario", ""))[:50], path)))
        return self.query_one("#resilient-table", LiveTable).apply(rows)

    def on_data_table_cell_selected(self, event: DataTable.CellSelected) -> None:
        if event.data_table.id != "resilient-table":
            return
        run = self._runs.get(self.query_one("#resilient-table", LiveTable).selected_item() or "")
        if run is None:
            return
        from tui.screens.dialogs import TextScreen

        colors = self._colors()
        body = Text()
        for hop in run.get("hops") or []:
            body.append_text(self._hop_label(hop, colors))
            body.append("\n")
        for skipped in run.get("skipped") or []:
            body.append(f"skipped {skipped.get('tool_id', '?')} {skipped.get('version', '')}: {skipped.get('reason', '')}\n", style="dim")
        title = f"resilient call: {run.get('scenario', '')} ({'succeeded' if run.get('ok') else 'failed'}, {run.get('ms', '?')} ms)"
        self.app.push_screen(TextScreen(title, body))

    def _colors(self) -> dict[str, str]:
        from tui.style import theme_colors

        return theme_colors(self.app)

    @staticmethod
    def _hop_label(hop: dict[str, Any], colors: dict[str, str]) -> Text:
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
            bits.append(str(why)[:60])
        if hop.get("error"):
            bits.append(str(hop["error"])[:80])
        text.append("  " + " · ".join(bits), style="dim")
        return text

    def set_filter(self, text: str) -> None:
        self.query_one("#scores-table", LiveTable).set_filter(text)
        self.query_one("#failures-table", LiveTable).set_filter(text)

    def sort(self) -> str | None:
        focused = self.app.focused
        if isinstance(focused, LiveTable):
            return focused.sort_by_cursor_column()
        return None

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

        self.app.push_screen(PromptScreen("Mark a failure by hand", [
            ("tool", "tool id", tool), ("scenario", "scenario (what was asked)", ""), ("error", "error message", ""),
            ("severity", "severity: low | medium | high | critical", "medium")]), done)
