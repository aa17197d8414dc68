"""When the served tool list changes, from any process: a hot reload, a promotion or rollback,
a circuit opening or closing, an operator disabling a tool.

The event log is the shared record of all of these, so the watcher tails it (by rowid, only the
kinds that can change the list) and recomputes each endpoint's list signature when one arrives; it also
rechecks every RECHECK_SECONDS, which catches what has no event of its own (an open circuit
turning half-open when its cooldown ends). A recheck first compares a cheap `fingerprint` of
everything the lists depend on (the catalog's changes as its listeners hear them, promotions, the
tools calls are refused for): only when it moved are the signatures recomputed, since a signature
walks the whole catalog (about 1 s at 100,000 tools, every second, beside the clients' requests).
The caller sends `notifications/tools/list_changed` to the clients of each endpoint `poll()` names,
at most once per DEBOUNCE_SECONDS: a change to what one endpoint serves is news to its clients only.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Hashable, Mapping
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tools.host import RuntimeHost

KINDS = (
    "tool.ready", "tool.error", "tool.removed", "tool.reloaded", "tool.reload_failed", "tool.problem", "load.finished",
    "promotion.approved", "promotion.rolled_back",
    "circuit.opened", "circuit.closed", "control.circuit", "control.disable", "control.enable",
)
POLL_SECONDS = 0.2
RECHECK_SECONDS = 1.0
DEBOUNCE_SECONDS = 1.0


class ChangeWatcher:
    """Blocking (run `poll` in a thread); one per serving process, with a signature per endpoint."""

    def __init__(self, runtime: RuntimeHost, signatures: Mapping[str, Callable[[], Hashable]],
                 fingerprint: Callable[[], Hashable] | None = None) -> None:
        self.runtime = runtime
        self.signatures = dict(signatures)
        self.fingerprint = fingerprint
        self.printed: Hashable = None
        self.walks = 0
        self.after = 0
        self.last: dict[str, Hashable] = {}
        self.checked = 0.0

    def prime(self) -> None:
        self.after = self.runtime.events.last_id()
        self.printed = self.fingerprint() if self.fingerprint is not None else None
        self.last = {name: signature() for name, signature in self.signatures.items()}
        self.checked = time.monotonic()

    def poll(self) -> set[str]:
        """The endpoints whose list changed since the last poll."""
        events = self.runtime.events.tail(self.after, kinds=KINDS, limit=1000)
        now = time.monotonic()
        if not events and now - self.checked < RECHECK_SECONDS:
            return set()
        if events:
            self.after = events[-1].id
            # another process may have written these: read promotions and circuits afresh
            self.runtime.invalidate_promotions()
            tracker = self.runtime.extensions.get("failures")
            if tracker is not None:
                tracker.sync(force=True)
        self.checked = now
        if self.fingerprint is not None:
            printed, self.printed = self.printed, self.fingerprint()
            if not events and printed == self.printed:
                return set()  # nothing a list depends on moved: no walk of the catalog
        self.walks += 1
        changed = set()
        for name, signature in self.signatures.items():
            current = signature()
            if current != self.last.get(name):
                changed.add(name)
            self.last[name] = current
        return changed


class Debounce:
    """At most one send per `interval`; a change inside the interval is sent when it ends."""

    def __init__(self, interval: float = DEBOUNCE_SECONDS) -> None:
        self.interval = interval
        self.pending = False
        self.sent_at = float("-inf")
        self.sent = 0

    def changed(self) -> None:
        self.pending = True

    def due(self, now: float | None = None) -> bool:
        now = time.monotonic() if now is None else now
        if self.pending and now - self.sent_at >= self.interval:
            self.pending = False
            self.sent_at = now
            self.sent += 1
            return True
        return False
