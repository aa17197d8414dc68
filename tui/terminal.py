"""The dashboard's terminal driver: it survives the terminal going away.

Textual writes the screen from a writer thread into a bounded queue. When the terminal closes
(a window closed, `tmux kill-session`) the next write raises EIO, the writer thread dies, the
queue fills, and the event loop blocks on it for ever: the process and everything it started
keep running. Here a write to a terminal that is gone is dropped, and the app is told, so it
quits as `q` would and its shutdown runs.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TextIO


class SafeOutput:
    """A terminal stream whose writes and flushes after EIO / EPIPE are dropped (once: `on_gone()`)."""

    def __init__(self, stream: TextIO, on_gone: Callable[[], None]) -> None:
        self._stream = stream
        self._on_gone = on_gone
        self.gone = False

    def _lost(self) -> None:
        if not self.gone:
            self.gone = True
            self._on_gone()

    def write(self, text: str) -> int:
        if self.gone:
            return len(text)
        try:
            return self._stream.write(text)
        except (OSError, ValueError):  # EIO / EPIPE: the terminal is gone; ValueError: the stream was closed
            self._lost()
            return len(text)

    def flush(self) -> None:
        if self.gone:
            return
        try:
            self._stream.flush()
        except (OSError, ValueError):
            self._lost()

    def fileno(self) -> int:
        return self._stream.fileno()

    def isatty(self) -> bool:
        return True

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


def driver_class(on_gone: Callable[[], None]) -> Any:
    """Textual's Linux driver writing through SafeOutput (None elsewhere: Textual picks its own)."""
    import sys

    if sys.platform == "win32":
        return None
    from textual.drivers.linux_driver import LinuxDriver

    class TooldeckDriver(LinuxDriver):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self._file = SafeOutput(self._file, on_gone)

    return TooldeckDriver
