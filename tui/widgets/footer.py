"""A footer that shows the keys that fit, whole: the focused widget's first, `?` and `q` always.

Textual's Footer lays every key out and cuts the row at the screen edge (`z Maximis` at 80
columns). This one measures the keys and leaves out the ones that do not fit; `?` lists them all.
"""

from __future__ import annotations

from rich.cells import cell_len
from textual.app import ComposeResult
from textual.widgets import Footer
from textual.widgets._footer import FooterKey

ALWAYS = ("help", "quit", "dismiss(None)", "dismiss(False)")  # the way to every other key, and the way out


class FittedFooter(Footer):
    def compose(self) -> ComposeResult:
        if not self._bindings_ready:
            return
        items = []
        seen: set[str] = set()
        for _, binding, enabled, tooltip in self.screen.active_bindings.values():
            if not binding.show or binding.action in seen:
                continue
            seen.add(binding.action)
            key = self.app.get_key_display(binding)
            items.append((binding, enabled, tooltip, key, cell_len(key) + cell_len(binding.description) + 3))
        self._fitted_width = self.app.size.width
        room = self._fitted_width - 1
        chosen: set[int] = set()
        for i, item in enumerate(items):  # the way out and the key list first
            if item[0].action in ALWAYS and item[4] <= room:
                chosen.add(i)
                room -= item[4]
        for i, item in enumerate(items):
            if i not in chosen and item[4] <= room:
                chosen.add(i)
                room -= item[4]
        for i, (binding, enabled, tooltip, key, _) in enumerate(items):
            if i in chosen:
                yield FooterKey(binding.key, key, binding.description, binding.action, disabled=not enabled,
                                tooltip=tooltip).data_bind(compact=Footer.compact)

    _fitted_width = 0

    def on_resize(self) -> None:
        """Fit the keys again when the terminal's width changes (not on the footer's own re-layouts)."""
        width = self.app.size.width
        if self._bindings_ready and width != self._fitted_width:
            self._fitted_width = width
            self.call_after_refresh(self.recompose)
