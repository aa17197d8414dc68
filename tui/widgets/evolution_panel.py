"""Evolution: proposals, the selected one's diff, every validation stage, and the review keys."""

from __future__ import annotations

from typing import Any

from rich.console import Group
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import DataTable, Static

from tui.snapshot import Snapshot
from tui.style import status_text
from tui.widgets.diff_view import DiffView
from tui.widgets.live_table import LiveTable
from tui.widgets.panel import Panel

COLUMNS = [("#", "id"), ("tool", "tool"), ("version", "version"), ("from", "parent"), ("status", "status"),
           ("tokens", "tokens"), ("model", "model"), ("hint", "hint")]
STATUS_STYLE = {"awaiting_review": "warn", "approved": "ok", "failed_validation": "error", "rejected": "error",
                "rolled_back": "muted", "cancelled": "muted", "generating": "accent", "validating": "accent", "failed": "error"}


def _reviewer() -> str:
    import getpass

    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "operator"


class EvolutionPanel(Panel):
    title = "Evolution"
    BINDINGS = [
        Binding("a", "approve", "Approve", id="evolution.approve"),
        Binding("r", "reject", "Reject", id="evolution.reject"),
        Binding("b", "rollback", "Roll back", id="evolution.rollback"),
        Binding("c", "cancel_evolution", "Cancel", id="evolution.cancel"),
        Binding("e", "evolve", "Evolve", id="evolution.evolve"),
        Binding("v", "toggle_diff", "Diff mode", id="evolution.diff_mode"),
    ]

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.detail: dict[str, Any] | None = None
        self._detail_key: tuple[Any, ...] | None = None

    def compose(self) -> ComposeResult:
        yield LiveTable(COLUMNS, id="proposals-table")
        yield Static("", id="proposal-detail")
        yield DiffView(id="diff-view")

    @property
    def table(self) -> LiveTable:
        return self.query_one("#proposals-table", LiveTable)

    def fingerprint(self, snapshot: Snapshot) -> Any:
        return tuple((p.get("id"), p.get("status"), p.get("updated")) for p in snapshot.proposals)

    def apply(self, snapshot: Snapshot, colors: dict[str, str]) -> bool:
        rows = [(str(p["id"]), self._cells(p, colors)) for p in snapshot.proposals]
        changed = self.table.apply(rows)
        waiting = sum(1 for p in snapshot.proposals if p.get("status") == "awaiting_review")
        self.border_subtitle = f"{len(snapshot.proposals)} proposals · {waiting} awaiting review"
        selected = self.selected_id()
        if selected is None and snapshot.proposals:
            selected = int(snapshot.proposals[0]["id"])
        summary = next((p for p in snapshot.proposals if int(p["id"]) == selected), None)
        key = (selected, summary.get("status"), summary.get("updated")) if summary else None
        if key != self._detail_key:
            self._detail_key = key
            if selected is not None:
                self.app.load_proposal(selected)
            else:
                self.show_detail(None)
        return changed

    @staticmethod
    def _cells(p: dict[str, Any], colors: dict[str, str]) -> tuple:
        status = str(p.get("status", ""))
        style = colors.get(STATUS_STYLE.get(status, ""), "")
        tokens = p.get("tokens") or {}
        total = int(tokens.get("input", 0) or 0) + int(tokens.get("output", 0) or 0)
        model = "replay" if p.get("replay") else str(p.get("model") or p.get("provider") or "")
        return (str(p["id"]), p.get("tool_id", ""), p.get("version") or "", p.get("parent_version") or "—",
                Text(status, style=style), f"{total:,}", model, str(p.get("mutation_hint") or p.get("hint") or "")[:60])

    def selected_id(self) -> int | None:
        key = self.table.selected_key()
        return int(key) if key else None

    def on_data_table_cell_highlighted(self, event: DataTable.CellHighlighted) -> None:
        if event.data_table.id == "proposals-table" and event.cell_key.row_key.value is not None:
            pid = int(event.cell_key.row_key.value)
            if self.detail is None or self.detail.get("id") != pid:
                self.app.load_proposal(pid)

    def show_detail(self, proposal: dict[str, Any] | None) -> None:
        self.detail = proposal
        body = self.query_one("#proposal-detail", Static)
        diff = self.query_one(DiffView)
        if proposal is None:
            body.update(Text("no proposals yet: press e to evolve the selected tool", style="dim"))
            diff.show("")
            return
        body.update(self._detail_renderable(proposal))
        diff.show(str(proposal.get("diff") or ""))

    def _detail_renderable(self, p: dict[str, Any]) -> Group:
        colors = {"ok": "green", "error": "red", "warn": "yellow", "accent": "cyan", "muted": "dim"}
        try:
            from tui.style import theme_colors

            colors = theme_colors(self.app)
        except Exception:  # noqa: BLE001 - a theme without colours still renders
            pass
        head = Text()
        head.append(f"#{p['id']} {p.get('tool_id')} {p.get('parent_version') or '∅'} → {p.get('version')}  ", style="bold")
        head.append_text(status_text(str(p.get("status", "")), colors))
        model = "replay (recorded responses, not a live model)" if p.get("replay") else str(p.get("model") or "")
        tokens = p.get("tokens") or {}
        head.append(f"   model {model} · tokens {tokens.get('input', 0)}/{tokens.get('output', 0)}", style="dim")
        lines = [head]
        if p.get("mutation_hint"):
            lines.append(Text(f"hint: {p['mutation_hint']}"))
        if p.get("error_message"):
            lines.append(Text(f"error: {p['error_message']}", style=colors["error"]))
        stage_line = Text("stages: ", style="bold")
        failed_detail = None
        for stage in p.get("stages") or []:
            ok = stage.get("passed")
            stage_line.append("✓ " if ok else "✗ ", style=colors["ok"] if ok else colors["error"])
            stage_line.append(f"{stage.get('name', '')} ")
            stage_line.append(f"{stage.get('ms', '')} ms  ", style="dim")
            if ok is False and failed_detail is None:
                failed_detail = f"{stage.get('name')}: {stage.get('detail', '')}"
            elif stage.get("skipped"):
                stage_line.append(f"(skipped: {str(stage.get('detail', ''))[:60]})  ", style="dim")
        if p.get("stages"):
            lines.append(stage_line)
        if failed_detail:
            lines.append(Text(failed_detail[:400], style=colors["error"]))
        protections = p.get("protections") or {}
        if protections:
            held = " · ".join(f"{k} {'✓' if v is True else ('✗' if v is False else v)}" for k, v in protections.items())
            lines.append(Text(f"sandbox: {held}", style="dim"))
        sha = p.get("current_diff_sha256") or p.get("diff_sha256") or ""
        if sha:
            lines.append(Text(f"diff sha256 {sha}", style="dim"))
        if p.get("failure"):
            lines.append(Text(f"stopped: {p['failure']}", style=colors["error"]))
        if p.get("review_reason") or p.get("reason"):
            lines.append(Text(f"review: {p.get('review_reason') or p.get('reason')}", style="dim"))
        return Group(*lines)

    # -- keys ----------------------------------------------------------------------

    def _need(self, statuses: tuple[str, ...] | None = None) -> dict[str, Any] | None:
        if self.detail is None:
            self.app.set_status("no proposal selected", error=True)
            return None
        if statuses and self.detail.get("status") not in statuses:
            self.app.set_status(f"proposal #{self.detail['id']} is {self.detail.get('status')}", error=True)
            return None
        return self.detail

    def action_toggle_diff(self) -> None:
        mode = self.query_one(DiffView).toggle()
        self.app.set_status(f"diff: {mode}")

    def action_approve(self) -> None:
        proposal = self._need(("awaiting_review",))
        if proposal is None:
            return
        sha = proposal.get("current_diff_sha256") or ""
        sessions = [(s["session"], f"session {s['session']} ({s.get('label') or 'runtime'}, pid {s['pid']})")
                    for s in (self.app.latest.sessions if self.app.latest else [])]
        seen: set[str] = set()
        options = [("global", "global: every session, survives restarts")]
        for value, label in sessions:
            if value not in seen:
                seen.add(value)
                options.append((value, label))
        from tui.screens.dialogs import ChoiceScreen

        def chosen(scope: str | None) -> None:
            if scope is None:
                self.app.set_status("approval cancelled")
                return
            from tools.evolution import approve

            self.app.run_blocking(f"approve #{proposal['id']}",
                                  lambda rt: approve(rt, proposal["id"], scope, _reviewer(), sha))

        self.app.push_screen(ChoiceScreen(
            f"Approve #{proposal['id']}: {proposal.get('tool_id')} {proposal.get('version')} for which scope?", options,
            note=f"approving the diff on screen, sha256 {sha[:16]}…"), chosen)

    def action_reject(self) -> None:
        proposal = self._need(("awaiting_review", "failed_validation"))
        if proposal is None:
            return
        from tui.screens.dialogs import PromptScreen

        def done(values: dict[str, str] | None) -> None:
            if not values or not values["reason"].strip():
                self.app.set_status("rejection cancelled (a reason is required)")
                return
            from tools.evolution import reject

            self.app.run_blocking(f"reject #{proposal['id']}", lambda rt: reject(rt, proposal["id"], values["reason"], _reviewer()))

        self.app.push_screen(PromptScreen(f"Reject #{proposal['id']}: why?", [("reason", "reason", "")]), done)

    def action_rollback(self) -> None:
        proposal = self._need(("approved",))
        if proposal is None:
            return
        tool, to_version, scope = proposal["tool_id"], proposal.get("parent_version"), proposal.get("scope") or "global"
        if not to_version:
            self.app.set_status("this proposal has no parent version to roll back to", error=True)
            return
        from tools.evolution import rollback

        self.app.confirm_then(f"Roll back {tool} to {to_version} for {scope}?",
                              lambda: self.app.run_blocking(f"rollback {tool}",
                                                            lambda rt: rollback(rt, tool, to_version, scope, _reviewer())))

    def action_cancel_evolution(self) -> None:
        proposal = self._need(("generating", "validating"))
        if proposal is None:
            return
        from tools.evolution import cancel

        self.app.confirm_then(f"Cancel the running evolution #{proposal['id']}?",
                              lambda: self.app.run_blocking(f"cancel #{proposal['id']}", lambda rt: cancel(rt, proposal["id"])))

    def action_evolve(self) -> None:
        tool = self.detail.get("tool_id") if self.detail else None
        tool = self.app.selected_tool() or tool
        if not tool:
            self.app.set_status("select a tool in the Tools panel first", error=True)
            return
        self.app.ask_evolve(tool)
