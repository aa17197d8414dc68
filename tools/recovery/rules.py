"""The rules of failure tracking as plain functions: severities, demotion, recovery, negative tags.

Kept apart from the tracker so the README's table of rules and the tests that
check it read the same few lines, with no database in the way.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from tools.errors import UsageError

SEVERITIES = ("low", "medium", "high", "critical")

#: Demotion per failure. low/medium/high are the original system's figures.
#: critical (data loss, a security problem, plausible-but-wrong output) costs 2.5x a high
#: failure, so four take a perfect tool to 0, and it also opens the circuit at once.
SEVERITY_DELTA = {"low": 0.01, "medium": 0.05, "high": 0.10, "critical": 0.25}

#: Repeated failures accelerate, as in the original (+0.05 past 5, +0.10 past 10), but the
#: count is of this version's demoting failures in a sliding window (24 h by default),
#: not over its whole life, so a tool that has served for a year is not punished forever
#: for old failures while one that keeps failing now sinks fast.
ACCELERATION = ((10, 0.10), (5, 0.05))
ACCELERATION_WINDOW_SECONDS = 86400.0

#: Recovery per successful call, never above the manifest's quality_score: a medium
#: failure takes 25 successes to undo, so a tool failing more than ~4% of its calls
#: at medium severity keeps drifting down.
RECOVERY_PER_SUCCESS = 0.002

#: Failures that say more about the caller than the tool.
CALLER_FAULT = frozenset({"bad_input", "bad_usage", "bad_id", "unknown_tool", "not_ready", "unavailable",
                          "no_candidates", "all_failed"})
#: For the runtime's own tools (source "builtin") only these classes are the tool's fault.
BUILTIN_FAULT = frozenset({"crash", "timeout", "bad_output", "reported"})

#: Severity the runtime gives a failure it observes itself, by class.
AUTO_SEVERITY = {"timeout": "medium", "exit_code": "medium", "crash": "medium", "bad_output": "medium"}


@dataclass(frozen=True, slots=True)
class Demotion:
    """What one failure does to a (tool, version)."""

    severity: str
    delta: float
    counts_for_circuit: bool
    trips_circuit: bool
    may_tag: bool


def check_severity(value: object) -> str:
    if not isinstance(value, str) or value.lower() not in SEVERITIES:
        raise UsageError(f"invalid severity {value!r}: use one of {', '.join(SEVERITIES)}")
    return value.lower()


def auto_severity(error_class: str) -> str:
    if error_class in CALLER_FAULT:
        return "low"
    return AUTO_SEVERITY.get(error_class, "medium")


def acceleration(recent_failures: int) -> float:
    """Extra demotion given the number of demoting failures in the window, this one included."""
    for threshold, extra in ACCELERATION:
        if recent_failures > threshold:
            return extra
    return 0.0


def demotion(severity: str, error_class: str, source: str, recent_failures: int) -> Demotion:
    """The exact rule the README documents.

    - builtin tools: a class outside BUILTIN_FAULT (a caller's bad input, a resilient
      run that found nothing) is recorded with delta 0 and touches neither circuit nor tags;
    - any tool: a caller-fault class demotes at most `low`, never counts for the circuit and
      adds no negative tag;
    - otherwise SEVERITY_DELTA[severity] + acceleration(recent failures in the window).
    """
    if source == "builtin" and error_class not in BUILTIN_FAULT:
        return Demotion(severity, 0.0, False, False, False)
    if error_class in CALLER_FAULT:
        return Demotion("low", SEVERITY_DELTA["low"], False, False, False)
    delta = SEVERITY_DELTA[severity] + acceleration(recent_failures)
    return Demotion(severity, round(delta, 6), True, severity == "critical", severity != "low")


def demote(score: float, delta: float) -> float:
    """Never below 0, never up: a score of 0.0 stays 0.0 (the original turned it back into 1.0)."""
    return max(0.0, min(1.0, score - max(0.0, delta)))


def recover(score: float, base: float, successes: int) -> float:
    """Slow recovery toward the manifest's quality_score, never above it, never above 1."""
    if successes <= 0 or score >= base:
        return max(0.0, min(1.0, score))
    return max(0.0, min(base, 1.0, score + RECOVERY_PER_SUCCESS * successes))


# -- negative tags ---------------------------------------------------------------------

#: Data formats and input traits a scenario can name; each match tags the failing
#: version `not-for-<name>`. A closed vocabulary: words outside it never become tags.
FORMAT_PATTERNS: tuple[tuple[str, re.Pattern[str]], ...] = tuple(
    (name, re.compile(pattern, re.IGNORECASE)) for name, pattern in (
        ("json", r"\b(json|jsonl|ndjson|geojson)\b"),
        ("csv", r"\b(csv|tsv)\b|comma[- ]separated|tab[- ]separated"),
        ("xml", r"\bxml\b"),
        ("yaml", r"\bya?ml\b"),
        ("html", r"\bx?html?\b|\bweb ?page\b"),
        ("pdf", r"\bpdf\b"),
        ("markdown", r"\bmarkdown\b"),
        ("excel", r"\b(excel|xlsx?|spreadsheet)\b"),
        ("sql", r"\bsql\b"),
        ("image", r"\b(image|png|jpe?g|gif|bitmap)s?\b"),
        ("audio", r"\b(audio|mp3|wav)\b"),
        ("binary", r"\bbinary\b|\bbytes\b|\bbase64\b"),
        ("non-utf8", r"\bnon[- ]?utf-?8\b|\b(latin-?1|iso-?8859(-1)?|cp1252|windows-1252)\b|\binvalid (utf-?8|encoding)\b"),
        ("large-input", r"\b(very |extremely )?(large|huge|big|giant|massive|oversized)\s+(input|file|document|payload|dataset|data)s?\b"),
    )
)
TAG_RE = re.compile(r"^not-for-[a-z0-9][a-z0-9-]{0,40}\Z")


def scenario_formats(scenario: str) -> list[str]:
    """The formats and traits a scenario names, in vocabulary order."""
    if not scenario:
        return []
    return [name for name, pattern in FORMAT_PATTERNS if pattern.search(scenario)]


def negative_tags(scenario: str, tool_id: str, tool_tags: list[str] | tuple[str, ...] = ()) -> list[str]:
    """Tags to add when `tool_id` failed on `scenario`.

    A format the tool itself declares (in its id or its tags) is not tagged: a CSV
    parser failing on one CSV is a score and circuit matter, not a reason to stop
    offering it for CSV at all.
    """
    own = {t.lower() for t in tool_tags} | set(tool_id.split("_"))
    return [f"not-for-{name}" for name in scenario_formats(scenario) if name not in own]


def check_tag(value: object) -> str:
    if not isinstance(value, str) or not TAG_RE.fullmatch(value):
        raise UsageError(f"invalid negative tag {value!r}: expected not-for-<format>, e.g. not-for-json")
    return value


def blocking_tags(scenario_tags: list[str], tool_tags: frozenset[str] | set[str]) -> list[str]:
    """Which of a tool's negative tags rule it out for a scenario naming `scenario_tags`."""
    return [f"not-for-{name}" for name in scenario_tags if f"not-for-{name}" in tool_tags]
