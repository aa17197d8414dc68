"""Live buffer figures for the dashboard and `tooldeck buffer status`, readable from any process.

Everything comes from the buffer rows (counters kept in the write transaction),
the small batches table and the per-second rates table, so a status of ~20
buffers costs a handful of indexed queries: fine at 4 Hz.
"""

from __future__ import annotations

import socket
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from state.buffers import BufferTables
from tools.buffers.policy import new_batch_due_at

if TYPE_CHECKING:
    from tools.host import RuntimeHost

WINDOW_SECONDS = 60


@dataclass(frozen=True, slots=True)
class BufferStatus:
    """One buffer's live figures. Rates are items per second over the last `WINDOW_SECONDS` full seconds."""

    buffer_id: str
    flush_strategy: str
    pass_through_tool: str | None
    max_size: int
    max_pending: int | None
    when_full: str
    flush_interval_seconds: float
    pending: int  # live items: waiting + in a batch being delivered or retried (dead-letter excluded)
    waiting: int  # not yet in a batch
    in_flight: int  # in claimed, retry or waiting batches
    delivering: int  # of those, in batches being delivered right now (claimed): `clear` leaves them to their delivery
    fill_ratio: float  # pending / max_size
    pending_ratio: float | None  # pending / max_pending
    writes_per_s: float
    flushed_per_s: float
    writes_history: tuple[int, ...]  # per second, oldest first, the last WINDOW_SECONDS seconds
    flushed_history: tuple[int, ...]
    last_flush_at: float | None
    last_flush_count: int | None
    last_flush_result: str | None  # ok | failed | dead_letter | waiting (the pass-through tool refused the batch)
    last_flush_error: str | None
    next_flush_at: float | None
    retry_batches: int
    #: batches the pass-through tool refused without running (circuit open, disabled): they wait for it, no attempt spent
    refused_batches: int
    refused_reason: str | None  # why, e.g. "waiting for circuit: sink 1.0.0: circuit open (...); next probe in 12 s"
    retries_total: int
    dead_letter_batches: int
    dead_letter_items: int
    dropped_total: int
    writes_total: int
    flushed_total: int
    batches_total: int
    flushing: bool  # a live runtime flushes this buffer (a serving one, or one that wrote to it)
    flushed_by: tuple[str, ...]  # "session/pid" of the live runtimes flushing it ("serve:..." for serving ones)
    warning: str | None

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["writes_history"] = list(self.writes_history)
        out["flushed_history"] = list(self.flushed_history)
        out["flushed_by"] = list(self.flushed_by)
        return out


def flushers_by_buffer(runtime: RuntimeHost, tables: BufferTables, *, exclude_self: bool = False) -> tuple[list[str], dict[str, list[str]]]:
    """(serving runtimes, buffer_id -> live runtimes that wrote to it), as "session/pid" labels
    ("session/host/pid" for a runtime on another machine)."""
    me = (runtime.session, runtime.node)
    host = socket.gethostname()
    alive = {}
    serving = []
    for r in runtime.live_runtimes():
        key = (r["session"], r["node"])
        if exclude_self and key == me:
            continue
        alive[key] = f"{r['session']}/{r['pid']}" if r["host"] == host else f"{r['session']}/{r['host']}/{r['pid']}"
        if r["serve"]:
            serving.append("serve:" + alive[key])
    by_buffer: dict[str, list[str]] = {}
    for f in tables.flushers():
        label = alive.get((f["session"], f["node"]))
        if label is not None:
            by_buffer.setdefault(f["buffer_id"], []).append(label)
    return serving, by_buffer


def other_flushers(runtime: RuntimeHost, tables: BufferTables, buffer_ids: set[str]) -> set[str]:
    """Which of `buffer_ids` another live runtime will flush (all of them when one is serving)."""
    serving, by_buffer = flushers_by_buffer(runtime, tables, exclude_self=True)
    if serving:
        return set(buffer_ids)
    return {b for b in buffer_ids if by_buffer.get(b)}


def _next_flush(row: Any, retry_due: float | None, now: float) -> float | None:
    """When the flusher will next act on this buffer: a deferred batch's next try or a new batch."""
    new = new_batch_due_at(row, now)
    return min((t for t in (retry_due, new) if t is not None), default=None)


def _items(n: int) -> str:
    return f"{n} item" if n == 1 else f"{n} items"


def _warning(row: Any, waiting: int, pending: int, flushing: bool, refused: tuple[int, float | None, str | None],
             now: float) -> str | None:
    if pending <= 0:
        return None
    buffer_id = row["buffer_id"]
    if row["pass_through_tool"] is None:
        return (f"{_items(pending)} pending and no pass_through_tool: {'it waits' if pending == 1 else 'they wait'} for "
                f"`tooldeck buffer flush {buffer_id}`")
    if not flushing and (row["flush_strategy"] != "manual" or refused[0]):
        return (f"{_items(pending)} pending and no live runtime is flushing {'it' if pending == 1 else 'them'}: run `tooldeck serve`, "
                f"or `tooldeck buffer flush {buffer_id}`")
    n, due, reason = refused
    if n:
        when = f"; next try in {max(0.0, due - now):.0f} s" if due is not None else ""
        return f"{n} {'batch' if n == 1 else 'batches'} {reason or 'waiting for the pass-through tool'}{when}"
    if row["flush_strategy"] == "manual":
        return (f"manual strategy: {_items(waiting)} {'waits' if waiting == 1 else 'wait'} for `tooldeck buffer flush {buffer_id}`"
                if waiting else None)
    return None


def compute_status(runtime: RuntimeHost, tables: BufferTables, buffer_id: str | None = None) -> list[BufferStatus]:
    now = tables.store.now()
    batch_sql = ("SELECT buffer_id, state, COUNT(*) AS n, SUM(count) AS items, MIN(next_attempt_at) AS due,"
                 " MAX(last_error) AS error"
                 " FROM buffer_batches" + (" WHERE buffer_id=?" if buffer_id else "") + " GROUP BY buffer_id, state")
    with tables.store.snapshot():  # the buffers' counters and their batches as of one moment
        rows = tables.rows(buffer_id)
        batch_rows = tables.store.query(batch_sql, (buffer_id,) if buffer_id else ()) if rows else []
    if not rows:
        return []
    this_sec = int(now)
    first_sec = this_sec - WINDOW_SECONDS
    writes: dict[str, list[int]] = {}
    flushed: dict[str, list[int]] = {}
    for r in tables.rates(first_sec):
        i = r["sec"] - first_sec
        if 0 <= i < WINDOW_SECONDS:  # the current second is still filling: leave it out
            writes.setdefault(r["buffer_id"], [0] * WINDOW_SECONDS)[i] += r["writes"]
            flushed.setdefault(r["buffer_id"], [0] * WINDOW_SECONDS)[i] += r["flushed"]
    batches: dict[tuple[str, str], tuple[int, float | None, str | None]] = {
        (r["buffer_id"], r["state"]): (r["n"], r["due"], r["error"]) for r in batch_rows
    }
    delivering = {r["buffer_id"]: int(r["items"] or 0) for r in batch_rows if r["state"] == "claimed"}
    serving, by_buffer = flushers_by_buffer(runtime, tables)
    out = []
    zero = [0] * WINDOW_SECONDS
    for row in rows:
        bid = row["buffer_id"]
        pending, inflight = int(row["pending"]), int(row["inflight"])
        waiting = pending - inflight
        retry_n, retry_due, _ = batches.get((bid, "retry"), (0, None, None))
        refused = batches.get((bid, "waiting"), (0, None, None))
        dead_n = batches.get((bid, "dead"), (0, None, None))[0]
        if refused[1] is not None:
            retry_due = refused[1] if retry_due is None else min(retry_due, refused[1])
        w = writes.get(bid, zero)
        f = flushed.get(bid, zero)
        by = tuple(serving + by_buffer.get(bid, []))
        flushing = bool(by)
        max_pending = row["max_pending"]
        out.append(BufferStatus(
            buffer_id=bid, flush_strategy=row["flush_strategy"], pass_through_tool=row["pass_through_tool"],
            max_size=row["max_size"], max_pending=max_pending, when_full=row["when_full"],
            flush_interval_seconds=row["flush_interval_seconds"], pending=pending, waiting=waiting, in_flight=inflight,
            delivering=delivering.get(bid, 0),
            fill_ratio=pending / row["max_size"], pending_ratio=(pending / max_pending) if max_pending else None,
            writes_per_s=sum(w) / WINDOW_SECONDS, flushed_per_s=sum(f) / WINDOW_SECONDS,
            writes_history=tuple(w), flushed_history=tuple(f),
            last_flush_at=row["last_flush_at"], last_flush_count=row["last_flush_count"],
            last_flush_result=row["last_flush_result"], last_flush_error=row["last_flush_error"],
            next_flush_at=_next_flush(row, retry_due, now), retry_batches=retry_n,
            refused_batches=refused[0], refused_reason=refused[2], retries_total=row["retries_total"],
            dead_letter_batches=dead_n, dead_letter_items=row["dead_items"],
            dropped_total=row["dropped_total"], writes_total=row["writes_total"], flushed_total=row["flushed_total"],
            batches_total=row["batches_total"], flushing=flushing, flushed_by=by,
            warning=_warning(row, waiting, pending, flushing, refused, now),
        ))
    return out
