"""The size budget of the state (`[retention] max_db_mb`): oldest-first trimming of what is history.

Day limits (`events_days`, `calls_days`, `failures_days`) bound how old a row may get; under steady
traffic they do not bound the size (the demo wrote 1.9 MB/min of call records: ~19 GB in its 7
days). The serving runtime's housekeeping looks at the size every 30 s and, past LOW_WATER of the
budget, calls `trim_to_budget` down to LOW_WATER of it: while the live rows take more than that,
the oldest rows of the largest history table go. Never touched: pending
buffer items and batches, proposals and approved code, promotions, health rows, controls.
"""

from __future__ import annotations

import math
from typing import Any

#: history tables and their time column; at least the newest KEEP rows of each stay
HISTORY = (("calls", "ts"), ("events", "ts"), ("failures", "ts"), ("score_history", "ts"), ("buffer_rates", "sec"),
           ("buffer_samples", "ts"))
KEEP = 100
#: housekeeping trims to this share of the budget, so the writes until its next look fit in the rest
LOW_WATER = 0.9
ROUNDS = 20
SLACK = 1.05  # a round frees a twentieth more than the excess its size estimate says, so few rounds are needed


def trim_to_budget(store: Any, budget_bytes: int) -> dict[str, int]:
    """Delete the oldest history until the live rows fit `budget_bytes`; rows removed per table.

    Each round takes the table whose rows take the most bytes and deletes its oldest rows, as many as
    its average row size says the excess needs; the budget wins over history, down to the newest KEEP
    rows of each table.
    """
    removed: dict[str, int] = {}
    tables = [table for table, _column in HISTORY]
    for _ in range(ROUNDS):
        excess = store.used_bytes() - budget_bytes
        if excess <= 0:
            break
        sizes = store.table_bytes(tables)
        counts = {t: int(store.query_one(f"SELECT COUNT(*) FROM {t}")[0]) for t in tables}
        trimmable = [t for t in tables if counts[t] > KEEP and sizes[t] > 0]
        if not trimmable:
            break  # only the newest rows of each are left: the rest of the state is not history
        table = max(trimmable, key=lambda t: sizes[t] * (counts[t] - KEEP) / counts[t])
        column = dict(HISTORY)[table]
        per_row = sizes[table] / counts[table]
        take = min(counts[table] - KEEP, max(100, math.ceil(excess * SLACK / per_row)))
        with store.tx() as con:
            cutoff = con.execute(f"SELECT {column} FROM {table} ORDER BY {column} LIMIT 1 OFFSET ?", (take - 1,)).fetchone()
            if cutoff is None:
                break
            done = con.execute(f"DELETE FROM {table} WHERE {column} <= ?", (cutoff[0],)).rowcount
        removed[table] = removed.get(table, 0) + int(done)
        store.checkpoint()
    return removed
