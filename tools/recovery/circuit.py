"""A circuit breaker per (tool, version), shared by every process on every node through the state store.

Written here rather than taken from pybreaker, which holds a lock for the whole
guarded call and so serialises concurrent calls of a tool. Here a call only reads
in-memory state on its way in; the sliding window of outcomes is per process, and
every transition (closed -> open, open -> half-open probe claims, half-open ->
closed/open, operator overrides) is one short transaction on the state store
(`state.failures`) that other processes pick up on their next sync.

closed --(failure rate >= failure_rate over the last `window` calls, with at least
`min_calls`, and significantly so; or `consecutive_failures` in a row; or one critical
failure)--> open
open --(cooldown_seconds elapsed)--> half-open: at most `half_open_probes` probe calls
are admitted (claimed in the store, so across all processes and nodes); a probe that does not
report within `probe_timeout_seconds` frees its slot.
half-open --(`half_open_probes` probes succeed)--> closed; --(a probe fails)--> open again.

Why "significantly": a window of 5 to 20 calls is a small sample. A tool that fails 30% of
its calls, well under a `failure_rate` of 0.5, shows 3 failures in 5 calls one time in six,
so a plain share rule opened its circuit every few dozen calls (and five in a row every ~600),
each time refusing every caller for `cooldown_seconds`. The share must therefore also be
unlikely for a tool whose true failure rate is `failure_rate`: the one-sided binomial tail
P(X >= failures | calls, failure_rate) must be <= `significance` (default 0.05). A dead tool
still opens after 5 calls (5 of 5: p = 0.031); 1 turns the test off (the plain share rule).
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from tools.errors import UsageError

CLOSED, OPEN, HALF_OPEN = "closed", "open", "half_open"
STATES = (CLOSED, OPEN, HALF_OPEN)


@lru_cache(maxsize=4096)
def binomial_tail(n: int, k: int, p: float) -> float:
    """P(X >= k) for X ~ Binomial(n, p), summed upward from the k term (computed in log space)."""
    if k <= 0 or p >= 1.0:
        return 1.0
    if k > n or p <= 0.0:
        return 0.0
    term = math.exp(math.lgamma(n + 1) - math.lgamma(k + 1) - math.lgamma(n - k + 1)
                    + k * math.log(p) + (n - k) * math.log1p(-p))
    total = term
    odds = p / (1.0 - p)
    for i in range(k, n):
        term *= (n - i) / (i + 1) * odds
        total += term
    return min(1.0, total)


@dataclass(frozen=True, slots=True)
class CircuitConfig:
    window: int = 20
    min_calls: int = 5
    failure_rate: float = 0.5
    consecutive_failures: int = 10
    cooldown_seconds: float = 30.0
    half_open_probes: int = 2
    probe_timeout_seconds: float = 60.0
    significance: float = 0.05

    @classmethod
    def from_settings(cls, section: dict[str, Any]) -> CircuitConfig:
        """Validate `[circuit]` from tooldeck.toml; a bad value is a one-line usage error."""
        try:
            cfg = cls(
                window=int(section.get("window", 20)),
                min_calls=int(section.get("min_calls", 5)),
                failure_rate=float(section.get("failure_rate", 0.5)),
                consecutive_failures=int(section.get("consecutive_failures", 10)),
                cooldown_seconds=float(section.get("cooldown_seconds", 30)),
                half_open_probes=int(section.get("half_open_probes", 2)),
                probe_timeout_seconds=float(section.get("probe_timeout_seconds", 60)),
                significance=float(section.get("significance", 0.05)),
            )
        except (TypeError, ValueError) as exc:
            raise UsageError(f"tooldeck.toml [circuit]: {exc}") from exc
        if cfg.window < 1 or cfg.min_calls < 1 or cfg.consecutive_failures < 1 or cfg.half_open_probes < 1:
            raise UsageError("tooldeck.toml [circuit]: window, min_calls, consecutive_failures and half_open_probes must be >= 1")
        if not 0 < cfg.failure_rate <= 1:
            raise UsageError("tooldeck.toml [circuit]: failure_rate must be in (0, 1]")
        if cfg.cooldown_seconds < 0 or cfg.probe_timeout_seconds <= 0:
            raise UsageError("tooldeck.toml [circuit]: cooldown_seconds must be >= 0 and probe_timeout_seconds > 0")
        if not 0 < cfg.significance <= 1:
            raise UsageError("tooldeck.toml [circuit]: significance must be in (0, 1] (1 turns the test off)")
        return cfg

    def significant(self, calls: int, fails: int) -> bool:
        """Whether `fails` of `calls` is unlikely (<= significance) for a tool failing at exactly failure_rate."""
        if self.significance >= 1 or self.failure_rate >= 1:
            return True
        return binomial_tail(calls, fails, self.failure_rate) <= self.significance


class Circuit:
    """This process's view of one breaker: the shared state plus a local window of outcomes."""

    __slots__ = ("state", "opened_at", "forced", "reason", "probes", "probe_ok", "probe_deadline",
                 "outcomes", "fails", "consecutive")

    def __init__(self, window: int) -> None:
        self.state = CLOSED
        self.opened_at: float | None = None
        self.forced = False
        self.reason: str | None = None
        self.probes = 0
        self.probe_ok = 0
        self.probe_deadline: float | None = None
        self.outcomes: deque[bool] = deque(maxlen=window)  # True = failed
        self.fails = 0
        self.consecutive = 0

    def ok(self) -> None:
        """A success in closed state (the hot path: a deque append and two integer updates)."""
        outcomes = self.outcomes
        if len(outcomes) == outcomes.maxlen and outcomes[0]:
            self.fails -= 1
        outcomes.append(False)
        self.consecutive = 0

    def failed(self, cfg: CircuitConfig) -> str | None:
        """Count a failure; returns why the circuit should open now, or None."""
        outcomes = self.outcomes
        if len(outcomes) == outcomes.maxlen and outcomes[0]:
            self.fails -= 1
        outcomes.append(True)
        self.fails += 1
        self.consecutive += 1
        if self.consecutive >= cfg.consecutive_failures:
            return f"{self.consecutive} consecutive failures"
        n = len(outcomes)
        if n >= cfg.min_calls and self.fails / n >= cfg.failure_rate and cfg.significant(n, self.fails):
            return f"{self.fails} failures in the last {n} calls"
        return None

    def reset_window(self) -> None:
        self.outcomes.clear()
        self.fails = 0
        self.consecutive = 0

    def effective_state(self, now: float, cfg: CircuitConfig) -> str:
        """open turns half-open by itself once the cooldown has passed (unless an operator holds it)."""
        if self.state == OPEN and not self.forced and self.opened_at is not None and now >= self.opened_at + cfg.cooldown_seconds:
            return HALF_OPEN
        return self.state

    def apply_row(self, row: Any) -> None:
        """Take the shared state from a `tool_health` row; a circuit that closed elsewhere forgets its window."""
        state = row["circuit"]
        if state == CLOSED and self.state != CLOSED:
            self.reset_window()
        self.state = state
        self.opened_at = row["opened_at"]
        self.forced = bool(row["forced"])
        self.reason = row["circuit_reason"]
        self.probes = row["probes"]
        self.probe_ok = row["probe_ok"]
        self.probe_deadline = row["probe_deadline"]
