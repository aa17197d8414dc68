"""The delivery threads of one flusher: up to `size` jobs at once, at most one per buffer.

Daemon threads fed by a queue rather than a `ThreadPoolExecutor`, whose threads the
interpreter joins at exit: a pass-through tool hanging until its timeout must not hold the
process open past the close budget.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable

log = logging.getLogger("tooldeck.buffers")


class DeliveryPool:
    """Runs one job per key (a buffer id) at a time, `size` keys at once; `on_done` runs after each job."""

    def __init__(self, size: int, on_done: Callable[[], None], on_error: Callable[[str, BaseException], None]) -> None:
        self.size = max(1, size)
        self._on_done = on_done
        self._on_error = on_error
        self._jobs: queue.SimpleQueue[tuple[str, Callable[[], None]] | None] = queue.SimpleQueue()
        self._busy: set[str] = set()
        self._threads: list[threading.Thread] = []
        self._idle = threading.Condition()
        self._stopped = False

    def busy(self) -> set[str]:
        with self._idle:
            return set(self._busy)

    def free(self) -> int:
        with self._idle:
            return self.size - len(self._busy)

    def submit(self, key: str, job: Callable[[], None]) -> bool:
        """Start `job` unless `key` already has one running or every thread is busy; True if started."""
        with self._idle:
            if self._stopped or key in self._busy or len(self._busy) >= self.size:
                return False
            self._busy.add(key)
            if len(self._threads) < len(self._busy):
                thread = threading.Thread(target=self._run, name=f"tooldeck-buffer-delivery-{len(self._threads) + 1}",
                                          daemon=True)
                self._threads.append(thread)
                thread.start()
        self._jobs.put((key, job))
        return True

    def _run(self) -> None:
        while True:
            item = self._jobs.get()
            if item is None:
                return
            key, job = item
            try:
                job()
            except Exception as exc:  # the thread must outlive one bad delivery; the batch stays durable
                self._on_error(f"delivering {key}", exc)
            finally:
                with self._idle:
                    self._busy.discard(key)
                    self._idle.notify_all()
                self._on_done()

    def wait(self, deadline: float, until: Callable[[set[str]], bool] | None = None) -> bool:
        """Wait (monotonic `deadline`) until no job runs, or until `until(busy keys)`; True if that happened."""
        with self._idle:
            while True:
                if (until(self._busy) if until is not None else not self._busy):
                    return True
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._idle.wait(left)

    def stop(self) -> None:
        """No new jobs; idle threads exit (a thread stuck in a delivery exits when it returns)."""
        with self._idle:
            self._stopped = True
            threads = len(self._threads)
        for _ in range(threads):
            self._jobs.put(None)
