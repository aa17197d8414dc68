"""Proposing on its own, never approving on its own: `[evolution] auto_propose` (off by default).

A serving runtime watches recorded failures; when the version a tool serves has a score below
`[evolution] auto_propose_below` and recorded failing inputs, and no proposal of that tool is
running or awaiting review, it starts one evolution of it (once per version per runtime), within
`[model] daily_token_budget`. The proposal's origin is `auto_propose`: it waits for a person like
any other, whatever `auto_approve` says (tools.evolution.evolve refuses to approve it by policy).
"""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING, Any

from state import proposals
from state.db import StoreError
from tools.errors import ToolError
from tools.evolution.context import recent_failures
from tools.evolution.review import RUNNING

if TYPE_CHECKING:
    from tools.host import RuntimeHost

log = logging.getLogger("tooldeck.evolution")
#: a tool with one of these proposals already has a person's attention (or soon will)
OPEN = (*RUNNING, "awaiting_review")


class AutoProposer:
    """The serving runtime's `auto_propose` service: woken by each recorded failure."""

    def __init__(self, runtime: RuntimeHost, threshold: float, budget: int) -> None:
        self.runtime = runtime
        self.threshold = threshold
        self.budget = budget
        self._tried: set[tuple[str, str]] = set()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="tooldeck-auto-propose", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def notify(self) -> None:
        """A failure was recorded (the failure tracker's listener)."""
        self._wake.set()

    def stop(self, timeout: float) -> None:
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout)

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait()
            self._wake.clear()
            if self._stop.is_set():
                return
            try:
                self.scan()
            except (ToolError, StoreError) as exc:
                log.error("auto_propose: %s", exc)

    def scan(self) -> list[int]:
        """Start an evolution of each served version below the threshold; the proposal ids started."""
        tracker = self.runtime.extensions.get("failures")
        if tracker is None:
            return []
        started: list[int] = []
        for (tool_id, version), health in sorted(tracker.scores_snapshot().items()):
            if health["score"] >= self.threshold or (tool_id, version) in self._tried:
                continue
            if self.runtime.resolution(tool_id, wait=False).version != version:
                continue  # only the version calls run
            entry = self.runtime.catalog.find(tool_id, version)
            if entry is None or entry.manifest is None or entry.manifest.type not in ("python", "executable") or entry.source == "builtin":
                continue
            if any(r["status"] in OPEN for r in proposals.list_rows(self.runtime.store, tool_id=tool_id, limit=20)):
                continue
            failing = [f for f in recent_failures(self.runtime, tool_id, version) if f.get("input") is not None]
            if not failing:
                continue
            if self.budget > 0 and self._tokens_today() >= self.budget:
                self.runtime.events.emit("evolution.auto_skipped", tool_id, version, reason="daily token budget spent",
                                         budget=self.budget)
                return started
            self._tried.add((tool_id, version))
            started.append(self._propose(tool_id, version, float(health["score"]), int(health.get("failures", 0)), failing))
        return [pid for pid in started if pid]

    def _tokens_today(self) -> int:
        from tools.invoke import tokens_used_today

        return tokens_used_today(self.runtime.store)

    def _propose(self, tool_id: str, version: str, score: float, failures: int, failing: list[dict[str, Any]]) -> int:
        from tools.evolution.evolve import evolve_tool

        hint = (f"auto-proposed: the score of {tool_id} {version} fell to {score:.2f} (below {self.threshold:g}) after "
                f"{failures} failures; make the recorded failing inputs succeed")
        self.runtime.events.emit("evolution.auto_proposed", tool_id, version, score=round(score, 4), threshold=self.threshold)
        try:
            proposal = evolve_tool(self.runtime, tool_id, str(failing[0].get("error") or ""), hint, origin="auto_propose")
        except ToolError as exc:
            log.error("auto_propose: evolving %s %s: %s", tool_id, version, exc.message)
            return 0
        return int(proposal["id"])


def install(runtime: RuntimeHost) -> None:
    """EXTENSIONS hook (after failure tracking): a serving runtime with `auto_propose` on starts the service."""
    cfg = runtime.settings.section("evolution")
    if not runtime.serve or not cfg.get("auto_propose", False):  # a bool: tools/settings.py checks the type
        return
    tracker = runtime.extensions.get("failures")
    if tracker is None:
        return
    budget = int(runtime.settings.section("model").get("daily_token_budget", 0) or 0)
    proposer = AutoProposer(runtime, float(cfg.get("auto_propose_below", 0.5)), budget)
    runtime.extensions["auto_propose"] = proposer
    runtime.add_service("auto_propose", proposer)
    tracker.on_failure(proposer.notify)
    proposer.start()
