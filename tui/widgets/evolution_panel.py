"""Evolution: proposals, the selected one's diff, every validation stage, and the review keys."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rich.console import Group
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import DataTable, Static

from tools.visible import visible
from tui.details import Details, as_json, error_blocks, when
from tui.snapshot import Snapshot
from tui.style import shown, status_text
from tui.widgets.diff_view import DiffView
from tui.widgets.live_table import Col, LiveTable
from tui.widgets.panel import Panel

if TYPE_CHECKING:
    from tui.screens.dialogs import ChoiceScreen

COLUMNS = [Col("#", "id"), Col("tool", "tool", names_row=True), Col("version", "version"), Col("status", "status"),
           Col("from", "parent", drop=1),
           Col("hint", "hint", flex=True, drop=2, min_width=10), Col("model", "model", drop=3), Col("tokens", "tokens", drop=4)]
STATUS_STYLE = {"awaiting_review": "warn", "approved": "ok", "failed_validation": "error", "rejected": "error",
                "rolled_back": "muted", "cancelled": "muted", "generating": "accent", "validating": "accent", "failed": "error",
                "model_error": "error"}


def _reviewer() -> str:
    import getpass

    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "operator"


def _validated_again(proposal: dict[str, Any]) -> dict[str, Any]:
    """The status line's answer to V: the new status and the stage that decided it."""
    stages = proposal.get("stages") or []
    failed = next((st for st in stages if st.get("passed") is False and not st.get("skipped")), None)
    why = f": {failed['name']} failed" if failed else ""
    return {"status": f"#{proposal['id']} validated again: {proposal.get('status')}{why}"}


def stats_screen(runtime: Any) -> dict[str, Any]:
    """`review stats` as a dashboard screen: the same rows (tools/evolution/stats.py), hints made visible."""
    import json

    from tools.evolution import StatsView, evolution_stats

    stats = evolution_stats(runtime.store)
    table = StatsView(stats)
    overall = stats["overall"]
    n = overall["proposals"]
    rate = ("none decided yet" if overall["approval_rate"] is None
            else f"{overall['approval_rate'] * 100:.0f}% of the decided ones approved")
    return {"status": f"{n} proposal{'s' if n != 1 else ''}, {rate}", "title": "Evolution statistics",
            "screen": table, "copy": json.dumps(stats, indent=2)}


def stage_result(stage: dict[str, Any], colors: dict[str, str]) -> Text:
    """`✓ tests  5/5 tests passed; parent tests not kept: JSON is not CSV  323.0 ms`: a stage's mark, name, its
    one-line result (sandbox-written: made visible, never markup) and time; a skipped stage says why."""
    mark, style = stage_mark(stage, colors)
    line = Text(f"{mark} ", style=style)
    line.append(f"{visible(str(stage.get('name', '')))}", style="bold")
    detail = visible(str(stage.get("detail") or "").replace("\n", " ⏎ "), multiline=False)
    if stage.get("skipped"):
        line.append(f"  skipped: {detail[:160]}", style="dim")
        if stage.get("name") == "failing_scenario":
            line.append("  (V validates again with the failures recorded since)", style="dim")
        return line
    if detail:
        failed = stage.get("passed") is False
        line.append(f"  {detail[:160]}{'…' if len(detail) > 160 else ''}", style=colors["error"] if failed else "")
    if stage.get("ms") not in (None, ""):
        line.append(f"  {stage.get('ms')} ms", style="dim")
    return line


class EvolutionPanel(Panel):
    title = "Evolution"
    number = 4
    BINDINGS = [
        Binding("a", "approve", "Approve", id="evolution.approve"),
        Binding("r", "reject", "Reject", id="evolution.reject"),
        Binding("b", "rollback", "Roll back", id="evolution.rollback"),
        Binding("c", "cancel_evolution", "Cancel", id="evolution.cancel"),
        Binding("e", "evolve", "Evolve", id="evolution.evolve"),
        Binding("v", "toggle_diff", "Diff mode", id="evolution.diff_mode"),
        Binding("V", "revalidate", "Validate again", id="evolution.revalidate"),
        Binding("S", "stats", "Stats", id="evolution.stats"),
    ]

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.detail: dict[str, Any] | None = None
        self._detail_key: tuple[Any, ...] | None = None
        self._approving: tuple[int, ChoiceScreen] | None = None  # the approve dialog open, and its proposal
        self._reading: int | None = None  # the status line saying a stale detail is being read again (its token)

    def compose(self) -> ComposeResult:
        yield LiveTable(COLUMNS, id="proposals-table")
        yield Static("", id="proposal-detail")
        yield DiffView(id="diff-view")

    @property
    def table(self) -> LiveTable:
        return self.query_one("#proposals-table", LiveTable)

    def fingerprint(self, snapshot: Snapshot) -> Any:
        return tuple((p.get("id"), p.get("status"), p.get("updated")) for p in snapshot.proposals)

    def apply(self, snapshot: Snapshot, colors: dict[str, str]) -> None:
        rows = [(str(p["id"]), self._cells(p, colors)) for p in snapshot.proposals]
        self._proposals = {str(p["id"]): p for p in snapshot.proposals}
        self.table.apply(rows)
        self._warn_approving()
        self.update_counts()
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

    def update_counts(self) -> None:
        proposals = getattr(self, "_proposals", {})
        waiting = sum(1 for p in proposals.values() if p.get("status") == "awaiting_review")
        self.border_subtitle = f"{self.table.count_label('proposal')} · {waiting} awaiting review"

    def details(self, table: LiveTable, key: str) -> Details | None:
        summary = getattr(self, "_proposals", {}).get(key)
        if summary is None:
            return None
        detail = self.detail if self.detail is not None and str(self.detail.get("id")) == key else None
        return proposal_details(detail or summary, self._colors())

    def _colors(self) -> dict[str, str]:
        try:
            from tui.style import theme_colors

            return theme_colors(self.app)
        except Exception:  # noqa: BLE001 - a theme without colours still renders
            return {"ok": "green", "error": "red", "warn": "yellow", "accent": "cyan", "muted": "dim"}

    @staticmethod
    def _cells(p: dict[str, Any], colors: dict[str, str]) -> tuple:
        status = str(p.get("status", ""))
        style = colors.get(STATUS_STYLE.get(status, ""), "")
        tokens = p.get("tokens") or {}
        total = int(tokens.get("input", 0) or 0) + int(tokens.get("output", 0) or 0)
        model = "replay" if p.get("replay") else str(p.get("model") or p.get("provider") or "")
        return (str(p["id"]), p.get("tool_id", ""), p.get("version") or "", Text(status, style=style), p.get("parent_version") or "—",
                str(p.get("mutation_hint") or p.get("hint") or ""), model, f"{total:,}")

    def selected_id(self) -> int | None:
        key = self.table.selected_key()
        return int(key) if key else None

    def on_data_table_cell_highlighted(self, event: DataTable.CellHighlighted) -> None:
        if event.data_table.id == "proposals-table" and event.cell_key.row_key.value is not None:
            pid = int(event.cell_key.row_key.value)
            if self.detail is None or self.detail.get("id") != pid:
                self.app.load_proposal(pid)

    def show_detail(self, proposal: dict[str, Any] | None) -> None:
        """Show a proposal's detail; an answer older than the one shown (a slow load overtaken) is dropped."""
        shown = self.detail
        if (proposal is not None and shown is not None and shown.get("id") == proposal.get("id")
                and float(shown.get("updated") or 0) > float(proposal.get("updated") or 0)):
            return
        self.detail = proposal
        reading, self._reading = self._reading, None
        if reading is not None:  # read again: the status line that said so is done
            self.app.end_status(reading)
        if getattr(self, "_pending", None) is not None:
            self._run_pending()
        body = self.query_one("#proposal-detail", Static)
        diff = self.query_one(DiffView)
        if proposal is None:
            body.update(Text("no proposals yet: press e to evolve the selected tool", style="dim"))
            diff.show("")
            return
        body.update(self._detail_renderable(proposal))
        text = str(proposal.get("diff") or "")
        if proposal.get("status") in ("failed_validation", "cancelled") and not has_candidate(text):
            diff.show("", placeholder=candidate_error(proposal) or "no candidate was written")
        else:
            diff.show(text)

    def _detail_renderable(self, p: dict[str, Any]) -> Group:
        colors = self._colors()
        head = Text()
        head.append(f"#{p['id']} {p.get('tool_id')} {p.get('parent_version') or '∅'} → {p.get('version')}  ", style="bold")
        head.append_text(status_text(str(p.get("status", "")), colors))
        model = "replay (recorded responses, not a live model)" if p.get("replay") else str(p.get("model") or "")
        tokens = p.get("tokens") or {}
        head.append(f"   model {model} · tokens {tokens.get('input', 0)}/{tokens.get('output', 0)}", style="dim")
        lines = [head]
        # what the files on disk say against the stages below (the same words as `review show`)
        if p.get("changed_on_disk"):
            lines.append(shown(f"CHANGED ON DISK: {p['changed_on_disk']}", colors["error"]))
        for problem in p.get("problems") or []:
            lines.append(shown(f"NOT AS SHOWN: {problem} (it cannot be approved)", colors["error"]))
        for edit in p.get("edited") or []:
            lines.append(shown(f"EDITED: {', '.join(edit.get('files') or []) or 'the candidate'} edited on disk by an operator "
                               "after validation, not by the model", colors["warn"]))
        warning = repeats_line(p, colors)
        if warning is not None:  # the same words as `review show`: this repeats an approach a reviewer turned down
            lines.append(warning)
        # hint, error, stage details, failure and review reason are model-, tool- or sandbox-written: made visible
        if p.get("mutation_hint"):
            lines.append(shown(f"hint: {p['mutation_hint']}"))
        if p.get("error_message"):
            lines.append(shown(f"error: {p['error_message']}", colors["error"]))
        if p.get("explanation"):  # the model's own account of its change, beside the diff it explains
            lines.append(shown(f"why: {str(p['explanation'])[:600]}"))
        for stage in p.get("stages") or []:  # each stage's one-line result: the evidence, without opening anything
            lines.append(stage_result(stage, colors))
        protections = p.get("protections") or {}
        if protections:
            held = " · ".join(f"{k} {'✓' if v is True else ('✗' if v is False else v)}" for k, v in protections.items())
            lines.append(Text(f"sandbox: {held}", style="dim"))
        sha = p.get("current_diff_sha256") or p.get("diff_sha256") or ""
        if sha:
            lines.append(Text(f"diff sha256 {sha}", style="dim"))
        if p.get("failure"):
            lines.append(shown(f"stopped: {p['failure']}", colors["error"]))
        if p.get("review_reason") or p.get("reason"):
            lines.append(shown(f"review: {p.get('review_reason') or p.get('reason')}", "dim"))
        return Group(*lines)

    # -- keys ----------------------------------------------------------------------

    def _need(self, statuses: tuple[str, ...] | None = None, action: str = "") -> dict[str, Any] | None:
        """The selected proposal as it is now, if its status allows the action. A detail older than the list's
        row (its status changed since it was read) is read again first, and `action` then runs on the fresh
        detail: keys act on the current state, with no second press."""
        if self.detail is None:
            self.app.set_status("no proposal selected", error=True)
            return None
        summary = getattr(self, "_proposals", {}).get(str(self.detail.get("id")))
        if summary is not None and (summary.get("status") != self.detail.get("status")
                                    or float(summary.get("updated") or 0) > float(self.detail.get("updated") or 0)):
            pid = int(self.detail["id"])
            self._pending = (pid, action) if action else None
            self.app.load_proposal(pid)
            self._reading = self.app.set_status(f"proposal #{pid} is now {summary.get('status')}: reading it again"
                                                + (f" before {action.replace('_', ' ')}" if action else ""), progress=True)
            return None
        if statuses and self.detail.get("status") not in statuses:
            self.app.set_status(f"proposal #{self.detail['id']} is {self.detail.get('status')}", error=True)
            return None
        return self.detail

    def _run_pending(self) -> None:
        """The action a stale detail deferred, now that its proposal has been read again."""
        pending, self._pending = getattr(self, "_pending", None), None
        if pending is not None and self.detail is not None and int(self.detail.get("id") or 0) == pending[0]:
            self.call_later(getattr(self, f"action_{pending[1]}"))

    def action_toggle_diff(self) -> None:
        mode = self.query_one(DiffView).toggle()
        self.app.set_status(f"diff: {mode}")

    def action_approve(self) -> None:
        """Choose the scope: nothing is pre-selected (the dashboard's own session runs no workflow); the live sessions,
        the one whose calls of this tool failed last first, then global."""
        proposal = self._need(("awaiting_review",), "approve")
        if proposal is None:
            return
        sha = proposal.get("current_diff_sha256") or ""
        tool = str(proposal.get("tool_id"))
        sessions = self.app.latest.sessions if self.app.latest else []
        warning = repeats_line(proposal, {"warn": ""})

        def chosen(scope: str | None) -> None:
            self._approving = None
            if scope is None:
                self.app.set_status("approval cancelled")
                return
            from tools.evolution import approve

            self.app.run_blocking(f"approve #{proposal['id']} for {scope}",
                                  lambda rt: approve(rt, proposal["id"], scope, _reviewer(), sha))

        def ask(message: Any) -> None:
            if message.error:
                return
            from tui.screens.dialogs import ChoiceScreen

            dialog = ChoiceScreen(
                f"Approve #{proposal['id']}: {tool} {proposal.get('version')} for which scope?", message.result["options"],
                note=(f"{warning.plain}\n" if warning is not None else "")
                + f"approving the diff on screen (sha256 {sha[:16]}…); pick a scope with ↑/↓, then enter", preselect=False,
                check=lambda _scope: self._decided_meanwhile(int(proposal["id"])))
            self._approving = (int(proposal["id"]), dialog)
            self.app.push_screen(dialog, chosen)
            self._warn_approving()

        self.app.run_blocking(f"approve #{proposal['id']}", lambda rt: {"status": "asking",
                                                                          "options": scope_options(rt, tool, sessions)}, then=ask)

    def _decided_meanwhile(self, pid: int) -> str | None:
        """Why proposal `pid` can no longer be approved, as the latest snapshot knows (None: it still can)."""
        status = getattr(self, "_proposals", {}).get(str(pid), {}).get("status")
        if status in (None, "awaiting_review"):
            return None
        return f"#{pid} was {status.replace('_', ' ')} meanwhile (by another reviewer or the CLI): nothing to approve; esc closes"

    def _warn_approving(self) -> None:
        """An approve dialog open on a proposal decided meanwhile says so at once, not only when enter is refused."""
        approving = self._approving
        if approving is None:
            return
        pid, dialog = approving
        problem = self._decided_meanwhile(pid)
        if problem and dialog.is_attached:
            dialog.say(problem)

    def action_revalidate(self) -> None:
        """Validate the candidate again (sandboxed) with the failures and calls recorded since it was validated."""
        proposal = self._need(("awaiting_review", "failed_validation"), "revalidate")
        if proposal is None:
            return
        from tools.evolution import revalidate

        self.app.run_blocking(f"revalidate #{proposal['id']}", lambda rt: _validated_again(revalidate(rt, proposal["id"])),
                              progress=f"validating #{proposal['id']} again with the failures recorded since…")

    def action_stats(self) -> None:
        """Approval rate, rounds, where validation fails and tokens, by model, hint, tool and stage (as `review stats`)."""
        self.app.run_blocking("evolution stats", stats_screen, progress="counting every proposal…")

    def action_reject(self) -> None:
        proposal = self._need(("awaiting_review", "failed_validation"), "reject")
        if proposal is None:
            return
        from tui.screens.dialogs import PromptScreen

        def done(values: dict[str, str] | None) -> None:
            if not values:
                self.app.set_status("rejection cancelled")
                return
            from tools.evolution import reject

            self.app.run_blocking(f"reject #{proposal['id']}", lambda rt: reject(rt, proposal["id"], values["reason"], _reviewer()))

        what = f"{proposal['tool_id']} {proposal.get('version') or ''}".strip()
        self.app.push_screen(PromptScreen(f"Reject #{proposal['id']} ({what}): why?", [("reason", "reason", "")],
                                          note="the reason is kept and shown to the next evolution of similar failures",
                                          check=lambda v: None if v["reason"].strip() else "a reason is required"), done)

    def action_rollback(self) -> None:
        proposal = self._need(("approved",), "rollback")
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
        proposal = self._need(("generating", "validating"), "cancel_evolution")
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


def stage_mark(stage: dict[str, Any], colors: dict[str, str]) -> tuple[str, str]:
    """✓ passed, ✗ failed, – skipped (a stage that did not run is not a pass)."""
    if stage.get("skipped"):
        return "–", colors.get("warn", "yellow")
    return ("✓", colors["ok"]) if stage.get("passed") else ("✗", colors["error"])


def has_candidate(diff: str) -> bool:
    """True when the diff adds anything: a candidate that failed before it was written diffs as a deletion."""
    return any(line.startswith("+") and not line.startswith("+++") for line in diff.splitlines())


def candidate_error(p: dict[str, Any]) -> str:
    failed = next((s for s in p.get("stages") or [] if s.get("passed") is False and not s.get("skipped")), None)
    parts = [str(p.get("failure") or "")]
    if failed:
        parts.append(f"{failed.get('name')}: {failed.get('detail', '')}")
    return "\n".join(x for x in parts if x)


def repeats_line(p: dict[str, Any], colors: dict[str, str]) -> Text | None:
    """The warning `review show` prints when `p` repeats a rejected approach (its owner words it), made visible."""
    from tools.evolution import repeats_warning

    warning = repeats_warning(p)
    return shown(warning, f"bold {colors['warn']}".strip()) if warning else None


def proposal_details(p: dict[str, Any], colors: dict[str, str]) -> Details:
    tokens = p.get("tokens") or {}
    fields: list[tuple[str, Any]] = [
        ("tool", f"{p.get('tool_id')} {p.get('parent_version') or '∅'} → {p.get('version')}"), ("status", p.get("status")),
        ("hint", p.get("mutation_hint") or "—"), ("model", "replay (recorded responses)" if p.get("replay") else p.get("model") or "—"),
        ("tokens in / out", f"{tokens.get('input', 0)} / {tokens.get('output', 0)}"), ("updated", when(p.get("updated"))),
        ("scope", p.get("scope") or "—"), ("diff sha256", p.get("current_diff_sha256") or p.get("diff_sha256") or "—"),
    ]
    warning = repeats_line(p, colors)
    if warning is not None:
        fields.insert(2, ("warning", warning))
    for stage in p.get("stages") or []:
        mark, style = stage_mark(stage, colors)
        line = Text(f"{mark} ", style=style)
        line.append_text(shown(f"{stage.get('ms', '')} ms · {stage.get('detail', '')}"))  # sandbox-written
        fields.append((f"stage {stage.get('name', '')}", line))
    blocks = []
    if p.get("explanation"):
        blocks.append(("the model's explanation", str(p["explanation"]), "text"))
    if p.get("error_message"):
        blocks.append(("error it fixes", str(p["error_message"]), "text"))
    if p.get("failure"):
        blocks.extend(error_blocks(str(p["failure"])))
    record = {k: v for k, v in p.items() if k != "diff"}
    blocks.append(("proposal", as_json(record), "json"))
    if p.get("diff"):
        blocks.append(("diff", str(p["diff"]), "diff"))
    return Details(f"proposal #{p.get('id')} {p.get('tool_id')} {p.get('version')}", fields, blocks, data=p)


def scope_options(runtime: Any, tool_id: str, sessions: list[dict[str, Any]]) -> list[tuple[str, str]]:
    """The live sessions that run workflows (not dashboards), those whose calls of `tool_id` failed most recently first; then global."""
    from state.history import sessions_failing
    from state.promotions import all_promotions

    failing = sessions_failing(runtime.store, tool_id)
    serves = {scope: version for (tool, scope), version in all_promotions(runtime.store).items() if tool == tool_id}
    rank = {s: i for i, s in enumerate(failing)}
    seen: dict[str, dict[str, Any]] = {}
    for s in sessions:
        if (s.get("kind") or "") != "dashboard" and s["session"] not in seen:
            seen[s["session"]] = s
    ordered = sorted(seen.values(), key=lambda s: (rank.get(s["session"], len(rank)), -float(s.get("started") or 0)))
    options = []
    for s in ordered:
        why = " · its calls of this tool failed" if s["session"] in rank else ""
        if s["session"] in serves:
            why += f" · this session already serves {serves[s['session']]}"
        kind = s.get("kind") or "library"
        label = f"session {s['session']} ({s.get('label') or kind}, {kind}, pid {s['pid']}){why}"
        options.append((s["session"], label))
    served = f" · already serves {serves['global']}" if "global" in serves else ""
    options.append(("global", f"global: every session, survives restarts{served}"))
    return options
