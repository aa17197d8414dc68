"""The `runtimes` table: who is live. A runtime is live while its heartbeat (on the store's clock)
is younger than LIVE_AFTER_SECONDS; on this host a row whose process is gone is not."""

from __future__ import annotations

import os
from typing import Any

LIVE_AFTER_SECONDS = 10.0


def pid_alive(pid: int) -> bool:
    """Whether a process with this pid exists on this host (one we may not signal counts)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def live_runtimes(store: Any) -> list[dict[str, Any]]:
    """Every runtime, on any node, with a fresh heartbeat, oldest first."""
    cutoff = store.now() - LIVE_AFTER_SECONDS
    return [dict(r) for r in store.query("SELECT * FROM runtimes WHERE heartbeat >= ? ORDER BY started", (cutoff,))]


def live_nodes(store: Any) -> set[tuple[str, str]]:
    """(session, node) of every live runtime: a fresh heartbeat, and on this host a process that still exists."""
    import socket

    host = socket.gethostname()
    return {(r["session"], r["node"]) for r in live_runtimes(store) if r["host"] != host or pid_alive(int(r["pid"]))}
