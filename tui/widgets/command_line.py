"""The `:` command line: an Input whose Tab completes, as a shell's does.

Textual gives Tab to focus-next, so Tab in the command line left it on screen with the focus in a panel (and
escape, bound to the focused widget's chain, no longer reached it). Here Tab takes the suggestion shown, as
Right does at the end of the line, and otherwise keeps the focus where the typing is.
"""

from __future__ import annotations

from textual.binding import Binding
from textual.widgets import Input


class CommandLine(Input):
    BINDINGS = [Binding("tab", "complete", "Complete", show=False, id="command.complete")]

    def action_complete(self) -> None:
        """Accept the suggestion shown (the rest of a tool or buffer id); with none, stay."""
        if self._suggestion:
            self.value = self._suggestion
            self.cursor_position = len(self.value)
