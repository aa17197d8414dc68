"""Self-recovering calls: try the best tools for a scenario in order until one succeeds.

Each attempt is a hop in a trace (tool, version, similarity, score, why chosen,
outcome class, ms, error tail); the run is one `resilient.run` event with every
hop and every skipped tool, so the dashboard can replay it. Failures seen
during the run are recorded by the failure tracker's hook with the scenario
attached (when `mark_failures`), so they demote the tool, tag it and enter the
failure memory exactly once.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from tools.errors import ToolError, UsageError
from tools.recovery.ledger import tracker_for
from tools.recovery.selection import Selection, select_candidates
from tools.runtime import parse_input

if TYPE_CHECKING:
    from tools.host import RuntimeHost

MAX_ATTEMPTS_LIMIT = 50
MAX_SCENARIO = 2000
ERROR_TAIL = 300


class ResilientCallError(ToolError):
    """Every candidate failed, or none was similar enough; carries the whole trace."""

    error_class = "all_failed"

    def __init__(self, message: str, *, hops: list[dict[str, Any]], skipped: list[dict[str, Any]], scenario: str,
                 error_class: str) -> None:
        super().__init__(message, error_class=error_class, details={"scenario": scenario, "hops": hops, "skipped": skipped})
        self.hops = hops
        self.skipped = skipped


def check_tags(tags: Any) -> list[str]:
    if tags is None:
        return []
    if isinstance(tags, str):
        tags = [t for t in (x.strip() for x in tags.split(",")) if t]
    if not isinstance(tags, (list, tuple)) or not all(isinstance(t, str) and 0 < len(t.strip()) <= 64 for t in tags):
        raise UsageError(f"tags must be a list of non-empty strings (<= 64 characters), got {tags!r}"[:200])
    return [t.strip() for t in tags]


def check_scenario(scenario: Any) -> str:
    if not isinstance(scenario, str) or not scenario.strip():
        raise UsageError("resilient call: scenario must be a non-empty string describing what the call should do")
    if len(scenario) > MAX_SCENARIO:
        raise UsageError(f"resilient call: scenario is {len(scenario)} characters, the limit is {MAX_SCENARIO}")
    return scenario.strip()


def check_attempts(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_ATTEMPTS_LIMIT:
        raise UsageError(f"max_attempts must be an integer from 1 to {MAX_ATTEMPTS_LIMIT}, got {value!r}")
    return value


def _tail(exc: ToolError) -> str:
    """A hop's error in at most ERROR_TAIL characters: the message from its start (what failed),
    then as much of the end of stderr as fits (where it failed). Cutting the two joined from
    the end left a traceback behind a message's last letters (`eet | Traceback ...`)."""
    message = exc.message[:ERROR_TAIL]
    room = ERROR_TAIL - len(message) - 3
    if not exc.stderr_tail or room <= 0:
        return message
    return f"{message} | {exc.stderr_tail[-room:]}"


def run_hops(runtime: RuntimeHost, selection: Selection, data: Any, *, mark_failures: bool) -> tuple[Any, list[dict[str, Any]], Any]:
    """Try each selected candidate in order; returns (result, hops, winning candidate or None)."""
    tracker = tracker_for(runtime)
    hops: list[dict[str, Any]] = []
    for n, cand in enumerate(selection.candidates, 1):
        hop: dict[str, Any] = {"hop": n, "tool_id": cand.tool_id, "version": cand.version, "similarity": cand.similarity,
                               "score": cand.score, "penalty": cand.penalty, "rank": cand.rank, "why": cand.why,
                               "predicted_failure": cand.predicted_failure}
        started = time.perf_counter()
        try:
            entry = runtime.catalog.get(cand.tool_id, cand.version, timeout=10.0)
            with tracker.scenario(selection.scenario, mark_failures):
                result = runtime.call_entry(entry, data)
        except ToolError as exc:
            hop.update(outcome=exc.error_class, ms=round((time.perf_counter() - started) * 1000, 2), error=_tail(exc))
            health = tracker.health(cand.tool_id, cand.version)
            if health is not None:
                hop["score_after"] = round(float(health["score"]), 4)
            hops.append(hop)
            continue
        hop.update(outcome="ok", ms=round((time.perf_counter() - started) * 1000, 2), error="")
        hops.append(hop)
        return result, hops, cand
    return None, hops, None


def call_tool_resilient(runtime: RuntimeHost, scenario: str, input_data: Any, *, tags: Any = None, max_attempts: int = 5,
                        mark_failures: bool = True) -> dict[str, Any]:
    """The first success among the best candidates for `scenario`, with the trace; raises ResilientCallError otherwise."""
    scenario = check_scenario(scenario)
    tag_list = check_tags(tags)
    max_attempts = check_attempts(max_attempts)
    data = parse_input("resilient_tool_call", input_data)
    started = time.perf_counter()
    selection = select_candidates(runtime, scenario, tags=tag_list, limit=max_attempts)
    result, hops, winner = run_hops(runtime, selection, data, mark_failures=bool(mark_failures))
    skipped = selection.skipped_dicts()
    total_ms = round((time.perf_counter() - started) * 1000, 2)
    payload = {"scenario": scenario, "tags": tag_list, "ok": winner is not None, "hops": hops, "skipped": skipped,
               "ms": total_ms, "selection_ms": round(selection.timings_ms.get("total", 0.0), 2)}
    runtime.events.emit("resilient.run", winner.tool_id if winner else None, winner.version if winner else None, **payload)
    if winner is not None:
        memory = runtime.extensions.get("memory")
        if memory is not None and memory.ready.is_set():  # the next selection here knows this success at once
            memory.usage.catch_up()
        return {"ok": True, "result": result, "tool_id": winner.tool_id, "version": winner.version, "scenario": scenario,
                "attempts": len(hops), "hops": hops, "skipped": skipped, "ms": total_ms}
    if not hops:
        if selection.best_similarity is None or (selection.best_similarity < selection.min_similarity and not skipped):
            nearest = f"best: {selection.best_tool} at {selection.best_similarity:.2f}" if selection.best_tool else "the catalog is empty"
            message = (f"no tool is similar enough to {scenario!r} ({nearest}; minimum {selection.min_similarity:.2f}):"
                       " nothing was tried")
        else:
            reasons = "; ".join(f"{s['tool_id']}: {s['reason']}" for s in skipped[:4])
            message = f"no tool available for {scenario!r}: {len(skipped)} skipped ({reasons})"
        raise ResilientCallError(message, hops=hops, skipped=skipped, scenario=scenario, error_class="no_candidates")
    summary = ", ".join(f"{h['tool_id']} ({h['outcome']})" for h in hops)
    raise ResilientCallError(f"all {len(hops)} candidates failed for {scenario!r}: {summary}", hops=hops, skipped=skipped,
                             scenario=scenario, error_class="all_failed")


def tool_entry(runtime: RuntimeHost, data: Any) -> dict[str, Any]:
    """The `resilient_tool_call` builtin tool, taking the original callers' JSON."""
    if not isinstance(data, dict):
        raise UsageError("resilient_tool_call: input must be a JSON object")
    if "scenario" not in data:
        raise UsageError("resilient_tool_call: missing field 'scenario'")
    return call_tool_resilient(runtime, data["scenario"], data.get("input_data", {}), tags=data.get("tags"),
                               max_attempts=data.get("max_attempts", 5), mark_failures=data.get("mark_failures", True))
