"""What evolution tells the model and replays in the sandbox: recent failures and recorded calls."""

from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING, Any

from state.calls import failed_calls, successful_calls
from tools.errors import ToolError

if TYPE_CHECKING:
    from tools.host import RuntimeHost

log = logging.getLogger("tooldeck.evolution")
#: failures that say nothing about the tool's own behaviour, so are not replayed as scenarios
SKIP_SCENARIO_CLASSES = {"unavailable", "not_ready", "unknown_tool", "bad_usage", "bad_id", "state"}
#: input the tool's schema refused: the caller's mistake, replayed only when the evolution's error names it
CALLER_CLASSES = {"bad_input"}


def _as_dict(row: Any) -> dict[str, Any]:
    if isinstance(row, dict):
        return row
    if hasattr(row, "_asdict"):
        return row._asdict()
    if hasattr(row, "__dataclass_fields__"):
        from dataclasses import asdict

        return asdict(row)
    try:
        return dict(row)
    except (TypeError, ValueError):
        return dict(getattr(row, "__dict__", {}))


def _loads(text: Any) -> Any:
    if text is None or not isinstance(text, str):
        return text
    try:
        return json.loads(text)
    except (json.JSONDecodeError, RecursionError):
        return text


def recent_failures(runtime: RuntimeHost, tool_id: str, version: str, limit: int = 10) -> list[dict[str, Any]]:
    """Failures of this version: the failure tracker's records (if installed) and failed `calls` rows."""
    out: list[dict[str, Any]] = []
    tracker = runtime.extensions.get("failures")
    if tracker is not None and hasattr(tracker, "recent_failures"):
        try:
            rows = tracker.recent_failures(tool_id=tool_id, version=version, limit=limit)
        except (ToolError, TypeError, ValueError) as exc:
            log.warning("evolution: failure tracker unavailable for %s: %s", tool_id, exc)
            rows = []
        for raw in rows or []:
            row = _as_dict(raw)
            if row.get("origin") == "runtime":
                continue  # the failed `calls` row below says the same, with the input
            out.append({
                "source": "failures", "scenario": row.get("scenario"),
                "error": row.get("error_message") or row.get("error"), "error_class": row.get("error_class"),
                "severity": row.get("severity"), "input": _loads(row.get("input_data", row.get("input"))),
            })
    for row in failed_calls(runtime.store, tool_id, version, limit):
        out.append({"source": "calls", "error": row["error"], "error_class": row["outcome"],
                    "input": None if row["input_truncated"] else _loads(row["input"])})
    return out


def scenarios(failures: list[dict[str, Any]], error_message: str) -> list[dict[str, Any]]:
    replayable = [f for f in failures if f.get("input") is not None and f.get("error_class") not in SKIP_SCENARIO_CLASSES]
    usable = [f for f in replayable if f.get("error_class") not in CALLER_CLASSES]
    needle = (error_message or "").strip().lower()
    if needle:
        matching = [f for f in replayable if needle in f"{f.get('error')} {f.get('error_class')} {f.get('scenario')}".lower()]
        usable = matching or usable
    seen: set[str] = set()
    out = []
    for f in usable:
        key = json.dumps(f["input"], sort_keys=True, default=str)
        if key not in seen:
            seen.add(key)
            out.append(f)
    return out[:5]


def regressions(runtime: RuntimeHost, tool_id: str, version: str, limit: int) -> list[dict[str, Any]]:
    rows = successful_calls(runtime.store, tool_id, version, limit * 5)
    seen: set[str] = set()
    out = []
    for row in rows:
        if row["input"] in seen:
            continue
        seen.add(row["input"])
        out.append({"input": _loads(row["input"]), "output": None if row["output_truncated"] else _loads(row["output"])})
        if len(out) >= limit:
            break
    return out
