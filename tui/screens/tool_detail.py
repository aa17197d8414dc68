"""Enter on a tool: its manifest, recent calls and failures, charts over the last hour, and the operator controls.

Live, as the panels are: when the tool's row in the dashboard's latest snapshot changes (a call, a failure, its
circuit or score), the screen reads the tool again."""

from __future__ import annotations

import time
from typing import Any

from rich.console import Group
from rich.syntax import Syntax
from rich.table import Column, Table
from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Footer, Label, Static

from tools.visible import visible
from tui.details import as_json
from tui.style import shown

ACTOR = "dashboard"
#: how often the screen looks whether its tool's row changed (a read follows only a change)
FOLLOW_SECONDS = 1.0


def gather(runtime: Any, tool_id: str, version: str | None = None) -> dict[str, Any]:
    """Everything the detail screen shows, read off the event loop."""
    from state.calls import recent_calls
    from tui.history import tool_charts

    entry = runtime.resolve(tool_id, version)
    failures = runtime.extensions.get("failures")
    version = entry.served_version
    return {
        "tool_id": tool_id, "version": version, "path": str(entry.path), "source": entry.source,
        "overrides": str(entry.overrides) if entry.overrides else None,
        "manifest": entry.path.read_text(encoding="utf-8", errors="replace") if entry.path.exists() else "",
        "calls": recent_calls(runtime.store, tool_id, version=version, limit=15),
        "failures": failures.recent_failures(tool_id, version, limit=15) if failures else [],
        "health": (failures.scores_snapshot().get((tool_id, version)) if failures else None) or {},
        "versions": sorted(runtime.catalog.versions(tool_id)),
        "charts": tool_charts(runtime, tool_id, version),
    }


class ToolDetailScreen(ModalScreen[None]):
    #: the column of calls, failures and charts (what runs past the screen's bottom) takes the keys that scroll;
    #: tab gives them to the manifest beside it, and the mouse wheel scrolls whichever column it is over
    AUTO_FOCUS = "#tool-activity"
    BINDINGS = [
        Binding("escape,q", "dismiss(None)", "Close", id="tool.close"),
        Binding("y", "copy", "Copy", id="tool.copy"),
        Binding("d", "toggle_disabled", "Disable/enable", id="tool.disable"),
        Binding("r", "reset_score", "Reset score", id="tool.reset_score"),
        Binding("t", "remove_tag", "Remove tag", id="tool.remove_tag"),
        Binding("o", "circuit('open')", "Force open", id="tool.circuit_open"),
        Binding("c", "circuit('closed')", "Force closed", id="tool.circuit_closed"),
    ]

    def __init__(self, tool_id: str, version: str | None = None) -> None:
        super().__init__()
        self.tool_id = tool_id
        self.version = version
        self.info: dict[str, Any] = {}
        self._charted = False
        self._seen: Any = None  # the tool's Tools row when the screen last read the tool

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog wide"):
            yield Label(self.tool_id, classes="dialog-question", id="tool-title")
            with Horizontal():
                with VerticalScroll(id="tool-manifest"):
                    yield Static("loading…", id="manifest-body")
                with VerticalScroll(id="tool-activity"):
                    yield Static("", id="activity-body")
                    yield Vertical(id="tool-charts")
        yield Footer()

    def on_mount(self) -> None:
        self._seen = self._row()
        self.load()
        self.set_interval(FOLLOW_SECONDS, self._follow)

    def _row(self) -> Any:
        """This tool's row in the dashboard's latest snapshot (what the Tools panel shows), or None."""
        snapshot = getattr(self.app, "latest", None)
        if snapshot is None:
            return None
        return next((row for row in snapshot.tools if row.tool_id == self.tool_id), None)

    def _follow(self) -> None:
        """Read the tool again when its Tools row changed: the screen was a snapshot that went on showing old
        calls while the row behind it counted new ones."""
        row = self._row()
        if row is not None and row != self._seen:
            self._seen = row
            self.load()

    @work(thread=True, exclusive=True, group="tool-detail", exit_on_error=False)
    def load(self) -> None:
        try:
            info = gather(self.app.runtime, self.tool_id, self.version)
        except Exception as exc:  # an unknown or broken tool: say why in the dialog
            self.app.call_from_thread(self.query_one("#manifest-body", Static).update, shown(str(exc), "bold red"))
            return
        self.app.call_from_thread(self._show, info)

    def _show(self, info: dict[str, Any]) -> None:
        self.info = info
        health = info["health"]
        title = f"{info['tool_id']} {info['version']} · {info['source']}"
        if health:
            title += f" · score {health.get('score', 0):.2f} · circuit {health.get('circuit')}"
            if health.get("disabled"):
                title += " · DISABLED"
            if health.get("tags"):
                title += f" · tags {', '.join(health['tags'])}"
        if info["overrides"]:
            title += f" · overrides {info['overrides']}"
        self.query_one("#tool-title", Label).update(shown(title, multiline=False))
        # the manifest (a description an MCP server or a model wrote), calls and failures are foreign text: made visible
        self.query_one("#manifest-body", Static).update(Group(shown(info["path"], "dim"),
                                                             Syntax(visible(info["manifest"]), "yaml", word_wrap=True)))
        # one line a row: a long input or error ends in an ellipsis (the full text is in the copy, `y`, and `tooldeck
        # failures`), never wraps into the next row's place
        calls = Table(Column("time", no_wrap=True), Column("outcome", no_wrap=True), Column("ms", no_wrap=True),
                      Column("input", no_wrap=True, overflow="ellipsis", ratio=1), box=None, title="recent calls",
                      title_justify="left", expand=True)
        for c in info["calls"]:
            calls.add_row(time.strftime("%H:%M:%S", time.localtime(c["ts"])), shown(c["outcome"]), f"{c['duration_ms']:.0f}",
                          shown((c.get("input") or "")[:50], multiline=False))
        failures = Table(Column("time", no_wrap=True), Column("class", no_wrap=True), Column("severity", no_wrap=True),
                         Column("scenario / error", no_wrap=True, overflow="ellipsis", ratio=1), box=None,
                         title="recent failures", title_justify="left", expand=True)
        for f in info["failures"]:
            failures.add_row(time.strftime("%H:%M:%S", time.localtime(f["ts"])), shown(f.get("error_class", "")),
                             shown(f.get("severity", "")),
                             shown(f"{f.get('scenario', '')[:40]} · {f.get('error', '')[:60]}", multiline=False))
        versions = shown(f"evolved versions: {', '.join(info['versions']) or 'none'}", "dim")
        self.query_one("#activity-body", Static).update(Group(calls, Text(""), failures, Text(""), versions))
        if info.get("charts") and not self._charted:
            from tui.widgets.chart import chart_widget

            self._charted = True
            self.query_one("#tool-charts", Vertical).mount_all([chart_widget(chart) for chart in info["charts"]])
        elif info.get("charts"):  # read again: the charts drawn anew where they are (the scroll position kept)
            for view, chart in zip(self.query_one("#tool-charts", Vertical).children, info["charts"], strict=False):
                view.show(chart)  # type: ignore[attr-defined]

    def action_copy(self) -> None:
        data = {k: v for k, v in self.info.items() if k != "charts"}
        text = as_json(data)
        self.app.copy_to_clipboard(text)
        self.notify(f"copied {len(text):,} characters", title=self.tool_id)

    def _control(self, what: str, fn: Any) -> None:
        def run(runtime: Any) -> Any:
            result = fn(runtime)
            return {"status": what, **(result if isinstance(result, dict) else {})}

        self.app.run_blocking(f"{self.tool_id}: {what}", run, then=lambda _message: self.load())

    def action_toggle_disabled(self) -> None:
        """Enabling is immediate; disabling a live tool asks first, saying how many callers and buffers it stops."""
        from tools.recovery import set_disabled

        version = self.info.get("version")
        disabled = bool(self.info.get("health", {}).get("disabled"))
        if disabled:
            self._control("enabled", lambda rt: set_disabled(rt, self.tool_id, False, version, actor=ACTOR))
            return
        from tui.actions import disable_question

        def ask(message: Any) -> None:
            if message.error:
                return
            self.app.confirm_then(message.result["question"], lambda: self._control(
                "disabled", lambda rt: set_disabled(rt, self.tool_id, True, version, actor=ACTOR)))

        self.app.run_blocking(f"{self.tool_id}: disable", lambda rt: {"status": "asking", "question": disable_question(
            rt, self.tool_id, version)}, then=ask)

    def action_reset_score(self) -> None:
        from tools.recovery import reset_score

        self.app.confirm_then(f"Reset the score of {self.tool_id} {self.info.get('version', '')}?",
                              lambda: self._control("score reset", lambda rt: reset_score(rt, self.tool_id, self.info.get("version"),
                                                                                           actor=ACTOR)))

    def action_remove_tag(self) -> None:
        from tui.screens.dialogs import ChoiceScreen

        tags = list(self.info.get("health", {}).get("tags", []))
        if not tags:
            self.app.set_status(f"{self.tool_id} has no tags to remove")
            return

        def chosen(tag: str | None) -> None:
            if tag:
                from tools.recovery import remove_tag

                self._control(f"tag {tag} removed", lambda rt: remove_tag(rt, self.tool_id, tag, self.info.get("version"), actor=ACTOR))

        self.app.push_screen(ChoiceScreen(f"Remove which tag from {self.tool_id}?", [(t, t) for t in tags]), chosen)

    def action_circuit(self, state: str) -> None:
        from tools.recovery import force_circuit

        version = self.info.get("version")

        def force() -> None:
            self._control(f"circuit forced {state}", lambda rt: force_circuit(rt, self.tool_id, state, version, actor=ACTOR))

        if state == "open":  # every caller is refused until someone closes it
            self.app.confirm_then(f"Hold the circuit of {self.tool_id} {self.info.get('version', '')} open? Every call is refused "
                                  "until you close it (c).", force)
        else:
            force()
