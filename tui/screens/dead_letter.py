"""`d` on a buffer: its dead-letter batches, and replaying them."""

from __future__ import annotations

import time
from typing import Any

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import DataTable, Label


class DeadLetterScreen(ModalScreen[None]):
    BINDINGS = [
        Binding("escape,q", "dismiss(None)", "Close", id="dead_letter.close"),
        Binding("r", "replay_one", "Replay batch", id="dead_letter.replay"),
        Binding("R", "replay_all", "Replay all", id="dead_letter.replay_all"),
    ]

    def __init__(self, buffer_id: str) -> None:
        super().__init__()
        self.buffer_id = buffer_id

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog wide"):
            yield Label(f"Dead-letter batches of {self.buffer_id}", classes="dialog-question")
            yield DataTable(id="dead-table", cursor_type="row")
            yield Label("r replays the selected batch · R replays all · esc closes", classes="dialog-note", id="dead-note")

    def on_mount(self) -> None:
        table = self.query_one(DataTable)
        table.add_columns("batch", "items", "attempts", "parked", "last error")
        self.load()

    @work(thread=True, exclusive=True, group="dead-letter", exit_on_error=False)
    def load(self) -> None:
        try:
            batches = self.app.runtime.extensions["buffers"].dead_letters(self.buffer_id)
        except Exception as exc:  # shown in the dialog
            self.app.call_from_thread(self._note, f"cannot list dead letters: {exc}")
            return
        self.app.call_from_thread(self._fill, batches)

    def _fill(self, batches: list[dict[str, Any]]) -> None:
        table = self.query_one(DataTable)
        table.clear()
        for b in batches:
            parked = b.get("dead_at") or b.get("updated") or b.get("created")
            table.add_row(str(b.get("batch_id")), str(b.get("count", b.get("items", ""))), str(b.get("attempts", "")),
                          time.strftime("%H:%M:%S", time.localtime(parked)) if isinstance(parked, (int, float)) else "",
                          str(b.get("last_error", b.get("error", "")))[:120], key=str(b.get("batch_id")))
        if not batches:
            self._note("no dead-letter batches")

    def _note(self, text: str) -> None:
        self.query_one("#dead-note", Label).update(text)

    def _replay(self, batch_id: str | None) -> None:
        engine = self.app.runtime.extensions["buffers"]
        self.app.run_blocking(f"replay {self.buffer_id}", lambda rt: engine.replay(self.buffer_id, batch_id))
        self.set_timer(0.5, self.load)

    def action_replay_one(self) -> None:
        table = self.query_one(DataTable)
        if table.row_count == 0:
            return
        row_key, _ = table.coordinate_to_cell_key(table.cursor_coordinate)
        self._replay(row_key.value)

    def action_replay_all(self) -> None:
        self._replay(None)
