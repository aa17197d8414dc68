"""A Hypothesis state machine drives a real buffer and checks it against a plain in-memory model.

The model is what must have been delivered, what is still pending (waiting or
in a retry batch, with its attempt count) and what is parked as dead-letter,
through writes, failing and working flushes, replays and clears.
"""

from __future__ import annotations

import itertools
from collections import Counter
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule, run_state_machine_as_test

from tests.buffer_helpers import prepare_workspace, sink_items
from tools.buffers.engine import engine_for

MAX_SIZE = 3
MAX_ATTEMPTS = 3


def test_buffer_against_model(workspace: Path, make_runtime) -> None:
    # a long backoff: retries happen only through explicit flushes, so the model stays deterministic
    ws = prepare_workspace(workspace, max_attempts=MAX_ATTEMPTS, backoff_base=3600, backoff_max=3600, lease=3600)
    engine = engine_for(make_runtime(ws))
    engine.runtime.get_tool("sink")
    names = (f"m{i}" for i in itertools.count())
    values = itertools.count()

    class BufferModel(RuleBasedStateMachine):
        def __init__(self) -> None:
            super().__init__()
            self.buffer_id = next(names)
            engine.configure(self.buffer_id, flush_strategy="manual", max_size=MAX_SIZE, pass_through_tool="sink")
            self.waiting: list[int] = []
            self.retry: list[list[Any]] = []  # [items, attempts], in seq order
            self.dead: list[list[int]] = []
            self.delivered: list[int] = []
            self.sink_ok = True

        @rule(n=st.integers(min_value=1, max_value=4))
        def write(self, n: int) -> None:
            for _ in range(n):
                v = next(values)
                assert engine.write(self.buffer_id, v)["success"]
                self.waiting.append(v)

        @rule(n=st.integers(min_value=0, max_value=7))
        def write_many(self, n: int) -> None:
            items = [next(values) for _ in range(n)]
            assert engine.write_many(self.buffer_id, items)["written"] == n
            self.waiting += items

        @rule(ok=st.booleans())
        def set_sink(self, ok: bool) -> None:
            self.sink_ok = ok
            flag = ws / "fail"
            if ok:
                flag.unlink(missing_ok=True)
            else:
                flag.write_text("")

        def _failed_attempt(self, items: list[int], attempts: int) -> None:
            if attempts >= MAX_ATTEMPTS:
                self.dead.append(items)
            else:
                self.retry.append([items, attempts])

        @rule()
        def flush(self) -> None:
            out = engine.flush(self.buffer_id)
            assert out["success"] is self.sink_ok or (not self.retry and not self.waiting)
            if self.sink_ok:
                for items, _ in self.retry:
                    self.delivered += items
                self.delivered += self.waiting
                self.retry, self.waiting = [], []
                return
            retry, self.retry = self.retry, []
            for items, attempts in retry:
                self._failed_attempt(items, attempts + 1)
            if not retry and self.waiting:  # a retry failure stops new batches; else one new batch fails
                batch, self.waiting = self.waiting[:MAX_SIZE], self.waiting[MAX_SIZE:]
                self._failed_attempt(batch, 1)

        @rule()
        def replay(self) -> None:
            out = engine.replay(self.buffer_id)
            dead, self.dead = self.dead, []
            assert len(out["replayed"]) == len(dead)
            for items in dead:
                if self.sink_ok:
                    self.delivered += items
                else:
                    self._failed_attempt(items, 1)
            # revived batches join the retry list in seq order
            self.retry.sort(key=lambda r: r[0][0])

        @rule()
        def clear(self) -> None:
            assert engine.clear(self.buffer_id).removed == len(self.waiting) + sum(len(i) for i, _ in self.retry) + sum(
                len(d) for d in self.dead)
            self.waiting, self.retry, self.dead = [], [], []

        @invariant()
        def matches_model(self) -> None:
            s = engine.status(self.buffer_id)[0]
            assert s.waiting == len(self.waiting)
            assert s.in_flight == sum(len(items) for items, _ in self.retry)
            assert s.pending == s.waiting + s.in_flight
            assert s.dead_letter_items == sum(len(d) for d in self.dead)
            assert s.retry_batches == len(self.retry) and s.dead_letter_batches == len(self.dead)
            assert Counter(sink_items(ws, self.buffer_id)) == Counter(self.delivered)

        def teardown(self) -> None:
            (ws / "fail").unlink(missing_ok=True)

    run_state_machine_as_test(BufferModel, settings=settings(
        max_examples=60, stateful_step_count=30, deadline=None, database=None, suppress_health_check=list(HealthCheck)))
