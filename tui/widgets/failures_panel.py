"""Failures: tools ranked by quality score with a trend, the latest failures, resilient runs hop by hop."""

from __future__ import annotations

import time
from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import Tree

from tui.snapshot import Snapshot
from tui.style import score_text, sparkline, status_text
from tui.widgets.live_table import LiveTable
from tui.widgets.panel import Panel

SCORE_COLUMNS = [("tool", "tool"), ("version", "version"), ("score", "score"), ("trend", "trend"), ("fails", "fails"),
                 ("circuit", "circuit"), ("tags", "tags")]
FAILURE_COLUMNS = [("time", "time"), ("tool", "tool"), ("scenario", "scenario"), ("class", "class"), ("severity", "severity"),
                   ("error", "error")]


class FailuresPanel(Panel):
    title = "Failures"
    BINDINGS = [Binding("m", "mark", "Mark failure", id="failures.mark")]

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._resilient_ids: list[int] = []

    def compose(self) -> ComposeResult:
        yield LiveTable(SCORE_COLUMNS, id="scores-table")
        yield LiveTable(FAILURE_COLUMNS, id="failures-table")
        tree: Tree[dict[str, Any]] = Tree("resilient calls", id="resilient-tree")
        tree.show_root = False
        yield tree

    def fingerprint(self, snapshot: Snapshot) -> Any:
        return repr(snapshot.scores), tuple(f.get("id") for f in snapshot.failures), tuple(r.get("id") for r in snapshot.resilient)

    def apply(self, snapshot: Snapshot, colors: dict[str, str]) -> bool:
        scores = self.query_one("#scores-table", LiveTable)
        failures = self.query_one("#failures-table", LiveTable)
        changed = scores.apply([(f"{s['tool_id']}@{s['version']}", self._score_cells(s, colors)) for s in snapshot.scores])
        changed |= failures.apply([(str(f["id"]), self._failure_cells(f, colors)) for f in snapshot.failures])
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
        ids = [int(r["id"]) for r in runs]
        if ids == self._resilient_ids:
            return False
        tree = self.query_one("#resilient-tree", Tree)
        known = set(self._resilient_ids)
        for run in runs:
            if int(run["id"]) in known:
                continue
            ok = bool(run.get("ok", run.get("success")))
            hops = run.get("hops") or run.get("trace") or []
            label = Text(time.strftime("%H:%M:%S ", time.localtime(run.get("ts", 0))), style="dim")
            label.append("✓ " if ok else "✗ ", style=colors["ok"] if ok else colors["error"])
            label.append(str(run.get("scenario", ""))[:60])
            winner = next((h for h in hops if h.get("outcome") == "ok"), None)
            answered = f" → {winner.get('tool_id')} {winner.get('version', '')}" if winner else ""
            label.append(f"  {len(hops)} hops{answered}", style="dim")
            node = tree.root.add(label, data=run, expand=False)
            for hop in hops:
                node.add_leaf(self._hop_label(hop, colors), data=hop)
        self._resilient_ids = ids
        while len(tree.root.children) > 50:
            tree.root.children[0].remove()
        return True

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
            from tools.failures import mark_tool_failure

            self.app.run_blocking(f"mark {values['tool']}", lambda rt: mark_tool_failure(
                rt, values["tool"], values["scenario"], values["error"], values["severity"] or "medium"))

        self.app.push_screen(PromptScreen("Mark a failure by hand", [
            ("tool", "tool id", tool), ("scenario", "scenario (what was asked)", ""), ("error", "error message", ""),
            ("severity", "severity: low | medium | high | critical", "medium")]), done)
