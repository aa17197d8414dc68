"""A dashboard panel: a bordered, focusable, maximisable container that renders a snapshot."""

from __future__ import annotations

from typing import Any

from textual.containers import Vertical

from tui.snapshot import Snapshot


class Panel(Vertical, can_focus=False):
    """Subclasses render their part of a Snapshot and say whether anything changed."""

    ALLOW_MAXIMIZE = True
    title = ""

    def on_mount(self) -> None:
        self.border_title = self.title

    def apply(self, snapshot: Snapshot, colors: dict[str, str]) -> bool:
        raise NotImplementedError

    def fingerprint(self, snapshot: Snapshot) -> Any:
        """What this panel shows, hashable; an unchanged fingerprint skips the repaint (None: always apply)."""
        return None

    def set_filter(self, text: str) -> None:
        """Panels with a table filter its rows; the default is to ignore filters."""

    def sort(self) -> str | None:
        return None

    @property
    def runtime(self) -> Any:
        return getattr(self.app, "runtime", None)
