"""`d` on a buffer: its dead-letter batches with a preview of their items, and replaying them."""

from __future__ import annotations

import json
import time
from typing import Any

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Footer, Label

from tools.cli.output import plural
from tui.details import Details, as_json, error_blocks, when
from tui.messages import ColumnsHidden
from tui.style import shown
from tui.widgets.live_table import Col, LiveTable

COLUMNS = [Col("batch", "batch", names_row=True), Col("items", "items"), Col("attempts", "attempts"), Col("parked", "parked"),
           Col("last error", "error", flex=True, min_width=16), Col("first item", "preview", flex=True, drop=1, min_width=16)]


def summary(batches: list[dict[str, Any]]) -> tuple[int, int]:
    return len(batches), sum(int(b.get("count") or 0) for b in batches)


def replay_status(result: dict[str, Any]) -> str:
    replayed, delivered, failed = (len(result.get(k) or []) for k in ("replayed", "delivered", "failed"))
    text = f"{replayed} batch{'es' if replayed != 1 else ''} replayed: {delivered} delivered"
    return text + (f", {failed} failed again (back on the retry path)" if failed else "")


class DeadLetterScreen(ModalScreen[None]):
    BINDINGS = [
        Binding("escape,q", "dismiss(None)", "Close", id="dead_letter.close"),
        Binding("r", "replay_one", "Replay batch", id="dead_letter.replay"),
        Binding("R", "replay_all", "Replay all", id="dead_letter.replay_all"),
    ]

    def __init__(self, buffer_id: str) -> None:
        super().__init__()
        self.buffer_id = buffer_id
        self.batches: dict[str, dict[str, Any]] = {}
        self.loads = 0  # how many times the list was read (a test waits for a refresh)

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog wide"):
            yield Label(f"Dead-letter batches of {self.buffer_id}", classes="dialog-question", id="dead-title")
            yield LiveTable(COLUMNS, id="dead-table")
            yield Label("", classes="dialog-note", id="dead-note")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one(LiveTable).focus()
        self.load()

    @work(thread=True, exclusive=True, group="dead-letter", exit_on_error=False)
    def load(self) -> None:
        from state.history import batch_items

        try:
            runtime = self.app.runtime
            batches = runtime.extensions["buffers"].dead_letters(self.buffer_id)
            for b in batches:
                b["items_preview"] = batch_items(runtime.store, str(b.get("batch_id")), 50)
        except Exception as exc:  # shown in the dialog
            self.app.call_from_thread(self._note, f"cannot list dead letters: {type(exc).__name__}: {exc}")
            return
        self.app.call_from_thread(self._fill, batches)

    def _fill(self, batches: list[dict[str, Any]]) -> None:
        self.loads += 1
        self.batches = {str(b.get("batch_id")): b for b in batches}
        rows = []
        for b in batches:
            parked = b.get("dead_at") or b.get("created")
            preview = (b.get("items_preview") or [""])[0]
            rows.append((str(b.get("batch_id")), (str(b.get("batch_id")), str(b.get("count", "")), str(b.get("attempts", "")),
                                                  time.strftime("%H:%M:%S", time.localtime(parked)) if parked else "",
                                                  shown(b.get("last_error") or "", "red"), preview)))
        self.query_one(LiveTable).apply(rows)
        count, items = summary(batches)
        self._title = f"Dead-letter batches of {self.buffer_id}: {plural(count, 'batch', 'batches')}, {plural(items, 'item')}"
        self._show_title()
        self._note("enter opens a batch (every item) · r replays it · R replays all (asks first) · esc closes"
                   if batches else "no dead-letter batches")

    def _show_title(self) -> None:
        """The title, and the columns the table leaves out for width (none goes missing unsaid)."""
        title = getattr(self, "_title", f"Dead-letter batches of {self.buffer_id}")
        hidden = self.query_one(LiveTable).hidden_labels
        self.query_one("#dead-title", Label).update(title + (f" · not shown: {', '.join(hidden)}" if hidden else ""))

    def on_columns_hidden(self, message: ColumnsHidden) -> None:
        message.stop()
        self._show_title()

    def _note(self, text: str) -> None:
        self.query_one("#dead-note", Label).update(text)

    def _replay(self, batch_id: str | None) -> None:
        engine = self.app.runtime.extensions["buffers"]
        what = f"replay {self.buffer_id}" + (f" {batch_id}" if batch_id else " (all)")

        def run(runtime: Any) -> dict[str, Any]:
            result = engine.replay(self.buffer_id, batch_id)
            return {**result, "status": replay_status(result)}

        self._note(f"{what}: running…")
        self.app.run_blocking(what, run, then=lambda _message: self.load())

    def action_replay_one(self) -> None:
        batch_id = self.query_one(LiveTable).selected_key()
        if batch_id is not None:
            self._replay(batch_id)

    def action_replay_all(self) -> None:
        count, items = summary(list(self.batches.values()))
        if not count:
            self.app.set_status(f"{self.buffer_id}: no dead-letter batches to replay")
            return
        self.app.confirm_then(f"Replay all {plural(count, 'dead-letter batch', 'dead-letter batches')} ({plural(items, 'item')})"
                              f" of {self.buffer_id}?",
                              lambda: self._replay(None), danger=False)

    def on_data_table_cell_selected(self, event: Any) -> None:
        event.stop()
        batch = self.batches.get(str(event.cell_key.row_key.value))
        if batch is not None:
            self.app.open_details(batch_details(self.buffer_id, batch))


def batch_details(buffer_id: str, b: dict[str, Any]) -> Details:
    items = b.get("items_preview") or []
    fields: list[tuple[str, Any]] = [("buffer", buffer_id), ("batch", b.get("batch_id")), ("items", b.get("count")),
                                     ("attempts", b.get("attempts")), ("created", when(b.get("created"))),
                                     ("parked", when(b.get("dead_at"))), ("sequence", f"{b.get('first_seq')}..{b.get('last_seq')}")]
    shown = [json.loads(i) if i.startswith(("{", "[", '"')) else i for i in items]
    more = f" (the first {len(items)} of {b.get('count')})" if len(items) < int(b.get("count") or 0) else ""
    blocks = [*error_blocks(str(b.get("last_error") or "")), (f"items{more}", as_json(shown), "json")]
    return Details(f"dead-letter batch {b.get('batch_id')} of {buffer_id}", fields, blocks, data={**b, "items_preview": shown})
