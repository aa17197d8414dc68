"""The state's size budget (`[retention] max_db_mb`, state/retention.py) and capped call records:
under steady traffic the database stays near its budget; history goes oldest first; what is not
history (pending buffer items, proposals, health rows) is never trimmed. Both backends."""

from __future__ import annotations

import json
import secrets
import time
from pathlib import Path
from typing import Any

from state.calls import SIZE_CAP, CallRecord, CallRecorder, _capped
from state.retention import KEEP, trim_to_budget


def fill(store: Any, n: int, size: int = 2400) -> None:
    recorder = CallRecorder(store, batch=500, max_queued=n + 1)
    now = time.time()
    for i in range(n):
        payload = secrets.token_hex(size // 2)  # incompressible, as real inputs mostly are (PostgreSQL compresses)
        recorder.record(CallRecord("t", "1.0.0", "s", 1.0, "bad_input", {"payload": payload, "i": i}, None, ts=now - n + i))
    recorder.flush()


def test_the_oldest_history_goes_until_the_state_fits_its_budget(store) -> None:
    from state.buffers import BufferTables

    tables = BufferTables(store, "s")
    tables.configure("keep", {})
    config = tables.load("keep")
    assert config is not None
    tables.append_many(config.bkey, [json.dumps({"n": i}) for i in range(50)], store.now())
    fill(store, 6000)
    before = store.used_bytes()
    budget = before // 3
    removed = trim_to_budget(store, budget)
    after = store.used_bytes()
    assert removed.get("calls", 0) > 0 and after <= budget, (before, after, removed)
    left = store.query("SELECT MIN(ts), COUNT(*) FROM calls")[0]
    newest = store.query("SELECT MAX(ts) FROM calls")[0][0]
    assert int(left[1]) >= KEEP and float(newest) > float(left[0])  # the newest stayed, the oldest went
    assert tables.rows("keep")[0]["pending"] == 50  # pending items are not history


def test_a_budget_already_met_removes_nothing(store) -> None:
    fill(store, 200)
    assert trim_to_budget(store, store.used_bytes() + 1) == {}


def test_a_long_record_keeps_its_start_and_the_sha256_of_the_whole() -> None:
    text, cut = _capped({"payload": "y" * (SIZE_CAP * 2)})
    assert cut == 1 and text is not None and len(text) < 1200 and "sha256 of the whole" in text
    same, _ = _capped({"payload": "y" * (SIZE_CAP * 2)})
    other, _ = _capped({"payload": "y" * (SIZE_CAP * 2) + "z"})
    assert same == text and other != text
    short, cut = _capped({"payload": "z"})
    assert cut == 0 and short == '{"payload":"z"}'


def test_housekeeping_trims_to_the_low_water_mark_so_the_next_writes_fit(workspace: Path, make_runtime) -> None:
    """Past LOW_WATER of `[retention] max_db_mb`, the serving runtime's housekeeping trims to LOW_WATER (it looks
    every 30 s), not to the budget itself: the writes until its next look fit in the rest."""
    from state.retention import LOW_WATER
    from tools.presence import keep_to_budget

    (workspace / "tooldeck.toml").write_text("[retention]\nmax_db_mb = 1\n")
    runtime = make_runtime(serve=True)
    fill(runtime.store, 3000)
    budget = 1024 * 1024
    assert runtime.store.used_bytes() > budget
    removed = keep_to_budget(runtime)
    assert removed.get("calls", 0) > 0 and runtime.store.used_bytes() <= LOW_WATER * budget, removed
    assert keep_to_budget(runtime) == {}  # under the mark: nothing more goes
