"""Stopping on SIGTERM, SIGINT or SIGHUP at any moment of a server's life, always through its clean exit.

Before the event loop runs (the runtime starting) and after it (the runtime closing, buffers
delivering), a plain handler only records the signal; while the loop runs, `wait` returns on it
and the transport stops. asyncio restores the default handlers when its loop ends (which would
let a second SIGTERM kill the close halfway), so `install` is called again then.
"""

from __future__ import annotations

import signal
import threading
from typing import Any

SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)


class Stop:
    def __init__(self) -> None:
        self.requested = threading.Event()

    def install(self) -> None:
        """Record signals instead of dying of them (main thread only)."""
        for signum in SIGNALS:
            signal.signal(signum, self._record)

    def _record(self, signum: int, frame: Any) -> None:
        self.requested.set()

    async def wait(self) -> None:
        """Return when a signal arrives, or at once if one arrived before the loop listened."""
        import anyio

        with anyio.open_signal_receiver(*SIGNALS) as signals:
            if self.requested.is_set():
                return
            async for _signum in signals:
                self.requested.set()
                return
