"""A runtime's presence in the shared store: its heartbeat row and housekeeping.

Every runtime keeps one `runtimes` row keyed by (session, node), its heartbeat on the store's
clock (the database server's on PostgreSQL, so nodes whose clocks drift agree on who is live;
who is live is `state.runtimes`). The housekeeping thread heartbeats, checkpoints the store,
and (serving runtimes) prunes old rows.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any

from state import failures, runtimes
from state.calls import prune_calls
from state.db import Store, StoreError
from state.retention import LOW_WATER, trim_to_budget
from tools.errors import ToolError

if TYPE_CHECKING:
    from tools.host import RuntimeHost

HEARTBEAT_SECONDS = 2.0
CHECKPOINT_SECONDS = 60.0
PRUNE_SECONDS = 600.0
#: how often a serving runtime compares the state's size with `[retention] max_db_mb` (three PRAGMAs)
BUDGET_SECONDS = 30.0

log = logging.getLogger("tooldeck")


def heartbeat(runtime: RuntimeHost, store: Store) -> None:
    runtimes.heartbeat(store, runtimes.Presence(runtime.own_session, runtime.node, runtime.pid, runtime.host,
                                                bool(runtime.serve), runtime.label, runtime.kind))


def housekeeping(runtime: RuntimeHost, closing: Any) -> None:
    """The housekeeping thread's loop, until `closing` (a threading.Event) is set."""
    last_checkpoint = last_prune = last_budget = time.monotonic()
    while not closing.wait(HEARTBEAT_SECONDS):
        try:
            heartbeat(runtime, runtime.store)
            now = time.monotonic()
            if now - last_checkpoint > CHECKPOINT_SECONDS:
                runtime.store.checkpoint()
                last_checkpoint = now
            if runtime.serve and now - last_prune > PRUNE_SECONDS:
                prune(runtime)
                last_prune = last_budget = now
            elif runtime.serve and now - last_budget > BUDGET_SECONDS:
                keep_to_budget(runtime)
                last_budget = now
        except (ToolError, StoreError) as exc:
            log.error("housekeeping: %s", exc)


def prune(runtime: RuntimeHost) -> dict[str, int]:
    """Rows older than `[retention]` allows, and runtimes gone for a day; counts removed per table."""
    retention = runtime.settings.section("retention")
    store = runtime.store
    removed = {
        "events": runtime.events.prune(float(retention["events_days"]) * 86400),
        "calls": prune_calls(store, float(retention["calls_days"]) * 86400),
    }
    cutoff = time.time() - float(retention.get("failures_days", 30)) * 86400
    with store.tx() as con:
        removed["runtimes"] = runtimes.prune(con, store.now())
        removed.update(failures.prune(con, cutoff))  # the ledger and the score trend; current health rows stay
    for table, n in keep_to_budget(runtime).items():  # day limits bound age, not size: under steady traffic the budget does
        removed[table] = removed.get(table, 0) + n
    return removed


def keep_to_budget(runtime: RuntimeHost) -> dict[str, int]:
    """`[retention] max_db_mb`: past LOW_WATER of it, the oldest history goes down to LOW_WATER (rows removed
    per table), so the state stays under the budget between looks unless 30 s of writes outgrow the rest."""
    budget_mb = float(runtime.settings.section("retention").get("max_db_mb", 0) or 0)
    if budget_mb <= 0:
        return {}
    return trim_to_budget(runtime.store, int(budget_mb * 1024 * 1024 * LOW_WATER))


