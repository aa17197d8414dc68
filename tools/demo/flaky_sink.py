"""Demo pass-through tool: refuses FLAKY_SINK_FAILURE_RATE of the batches (seeded), stores the rest once."""

import json
import os
import random
import sqlite3
import time
from pathlib import Path

_rng = random.Random(int(os.environ.get("FLAKY_SINK_SEED", "37")))
_con = None


def _db():
    global _con
    if _con is None:
        workspace = Path(os.environ.get("TOOLDECK_WORKSPACE", "."))
        path = Path(os.environ.get("USAGE_SINK_DB") or workspace / ".tooldeck" / "sink.db")
        path.parent.mkdir(parents=True, exist_ok=True)
        _con = sqlite3.connect(path, timeout=30, isolation_level=None)
        _con.execute("PRAGMA journal_mode=WAL")
        _con.execute(
            "CREATE TABLE IF NOT EXISTS batches (batch_id TEXT PRIMARY KEY, buffer_id TEXT, count INTEGER,"
            " items TEXT, stored_at REAL)"
        )
    return _con


def store(data):
    rate = float(data.get("failure_rate", os.environ.get("FLAKY_SINK_FAILURE_RATE", "0.2")))
    if _rng.random() < rate:
        raise RuntimeError(f"ledger refused the batch (rate {rate})")
    meta = data.get("buffer_metadata") or {}
    items = data["buffered_items"]
    batch_id = meta.get("batch_id") or f"unbatched-{time.time_ns()}"
    cur = _db().execute(
        "INSERT OR IGNORE INTO batches(batch_id, buffer_id, count, items, stored_at) VALUES (?,?,?,?,?)",
        (batch_id, meta.get("buffer_id"), len(items), json.dumps(items), time.time()),
    )
    return {"stored": len(items) if cur.rowcount else 0, "duplicate": cur.rowcount == 0, "batch_id": batch_id}
