"""What evolution remembers: fixes reviewers approved, and approaches they rejected or rolled back.

A new evolution is offered the past decisions most similar to its failure (of any tool): approved
fixes as examples to learn from, rejected and rolled-back ones as approaches not to propose again,
each with the reviewer's reason. Similarity is TF-IDF cosine over the words of the failure (error,
mutation hint, the failing calls' errors, and the shape of each wrong answer: `returned 5, expected 4`
is off by one, `returned 2.5, expected 2` the wrong type; a proposal keeps the shapes of the failures
it was made for), computed here over the decided proposals in the store:
deterministic, no model, no index to keep. The proposal records what it was offered (`memory`),
and a candidate whose diff repeats a rejected one of the same tool is flagged to the reviewer.
`[evolution] memory = false` turns all of it off.
"""

from __future__ import annotations

import ast
import difflib
import json
import math
import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from state import proposals

#: proposals read per recall (newest decided first)
HISTORY = 500
#: below this similarity a past decision is not offered
MIN_SIMILARITY = 0.12
#: a candidate whose added and removed lines match a rejected diff's this closely repeats it
REPEAT_RATIO = 0.8
DIFF_LIMIT = 1500
_WORD = re.compile(r"[a-z][a-z0-9_]+")
_STOP = frozenset({
    "the", "a", "an", "and", "or", "of", "to", "in", "is", "it", "be", "not", "must", "for", "on", "with", "as", "by",
    "at", "this", "that", "from", "are", "was", "were",
})


@dataclass(frozen=True, slots=True)
class Recalled:
    """One past decision offered to a new evolution."""

    proposal_id: int
    tool_id: str
    version: str
    status: str
    similarity: float
    error: str
    hint: str
    reason: str
    diff: str


def words(text: str) -> list[str]:
    return [w for w in _WORD.findall(text.lower()) if w not in _STOP]


def failure_text(error_message: str, mutation_hint: str, failures: Iterable[dict[str, Any]] = ()) -> str:
    """The words a failure is known by: the error, the hint, the recorded failures' errors and classes, and
    the shapes of their wrong answers."""
    failures = list(failures)[:10]
    parts = [error_message, mutation_hint]
    for f in failures:
        parts.extend(str(f.get(k) or "") for k in ("error_class", "error", "scenario"))
    parts.extend(failure_shapes([error_message, *(str(f.get("error") or "") for f in failures)]))
    return " ".join(parts)


#: "returned X, expected Y", "expected Y, got X", "got X, expected Y" (what a workflow reports of a wrong answer)
_ANSWER = (re.compile(r"\breturned (?P<got>.+?),? expected (?P<want>.+)$"),
           re.compile(r"\bexpected (?P<want>.+?),? (?:but )?got (?P<got>.+)$"),
           re.compile(r"\bgot (?P<got>.+?),? (?:but )?expected (?P<want>.+)$"))
_UNPARSED = object()


def _literal(text: str) -> Any:
    text = text.strip().rstrip(".")
    if len(text) > 2000:
        return _UNPARSED
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return _UNPARSED


def answer_shape(got: Any, want: Any) -> str | None:
    """How a wrong answer differs from the expected one, as one word (None when it says nothing)."""
    if got == want and type(got) is type(want):
        return None
    if got is None:
        return "shape_none"
    if isinstance(got, bool) and isinstance(want, bool):
        return "shape_bool_flipped"
    if type(got) is not type(want):
        return f"shape_type_{type(got).__name__}_{type(want).__name__}"
    if isinstance(got, (int, float)):
        return "shape_sign" if got == -want else "shape_off_by_one" if abs(got - want) == 1 else "shape_number"
    if isinstance(got, (str, list, tuple)):
        try:
            if sorted(got) == sorted(want):
                return "shape_order"
        except TypeError:
            pass
        if abs(len(got) - len(want)) == 1:
            return "shape_length_off_by_one"
        return "shape_missing_items" if len(got) < len(want) else "shape_extra_items" if len(got) > len(want) else "shape_changed_items"
    if isinstance(got, dict):
        return "shape_keys" if set(got) != set(want) else "shape_values"
    return None


def failure_shapes(errors: Iterable[str]) -> list[str]:
    """The shapes of the wrong answers these error texts report, most frequent first (each once)."""
    found: Counter[str] = Counter()
    for error in errors:
        for pattern in _ANSWER:
            m = pattern.search(error.strip())
            if m is None:
                continue
            got, want = _literal(m.group("got")), _literal(m.group("want"))
            if got is not _UNPARSED and want is not _UNPARSED:
                shape = answer_shape(got, want)
                if shape is not None:
                    found[shape] += 1
            break
    return [shape for shape, _ in found.most_common()]


def _vectors(texts: list[list[str]]) -> list[dict[str, float]]:
    df = Counter(w for t in texts for w in set(t))
    n = len(texts)
    out = []
    for t in texts:
        tf = Counter(t)
        vec = {w: (c / len(t)) * (math.log((1 + n) / (1 + df[w])) + 1) for w, c in tf.items()} if t else {}
        norm = math.sqrt(sum(v * v for v in vec.values())) or 1.0
        out.append({w: v / norm for w, v in vec.items()})
    return out


def _cosine(a: dict[str, float], b: dict[str, float]) -> float:
    if len(a) > len(b):
        a, b = b, a
    return sum(v * b.get(w, 0.0) for w, v in a.items())


def recall(store: Any, query: str, *, limit: int = 3, exclude: int | None = None) -> tuple[list[Recalled], list[Recalled]]:
    """(approved fixes, rejected or rolled-back approaches), each the `limit` most similar to `query`."""
    rows = [r for r in proposals.decided(store, HISTORY) if r["id"] != exclude]
    if not rows:
        return [], []
    docs = [words(failure_text(r["error_message"] or "", r["mutation_hint"] or "") + " " + " ".join(_shapes_of(r))) for r in rows]
    vectors = _vectors([words(query), *docs])
    scored = sorted(((_cosine(vectors[0], v), r) for v, r in zip(vectors[1:], rows, strict=True)),
                    key=lambda item: (-item[0], -item[1]["id"]))
    fixes: list[Recalled] = []
    avoid: list[Recalled] = []
    for similarity, r in scored:
        if similarity < MIN_SIMILARITY:
            break
        status = r["status"]
        rejected = status in ("rejected", "rolled_back")
        bucket = avoid if rejected else fixes
        if len(bucket) >= limit:
            continue
        reason = r["review_reason"] or ("rolled back after it served" if status == "rolled_back" else "")
        bucket.append(Recalled(int(r["id"]), r["tool_id"], r["version"], status, round(similarity, 3),
                               (r["error_message"] or "")[:300], (r["mutation_hint"] or "")[:300], (reason or "")[:300],
                               _cut_diff(r["diff"] or "")))
    return fixes, avoid


def _shapes_of(row: Any) -> list[str]:
    """The shapes of the failures a past proposal was made for (kept in its `memory` record)."""
    try:
        memory = json.loads(row["memory"] or "{}")
    except (ValueError, TypeError):
        return []
    shapes = memory.get("shapes") if isinstance(memory, dict) else None
    return [s for s in shapes if isinstance(s, str) and s.startswith("shape_")] if isinstance(shapes, list) else []


def _cut_diff(diff: str) -> str:
    return diff if len(diff) <= DIFF_LIMIT else diff[:DIFF_LIMIT] + "\n... (diff cut)"


def prompt_section(fixes: list[Recalled], avoid: list[Recalled]) -> str:
    """The prompt's memory: past fixes to learn from and approaches not to propose again."""
    parts: list[str] = []
    if fixes:
        parts.append("## Fixes reviewers approved for similar failures (learn from them; they may be of other tools)\n")
        for r in fixes:
            parts.append(f"### proposal {r.proposal_id}: {r.tool_id} {r.version} (similarity {r.similarity})\n"
                         f"error: {r.error or '-'}\nhint: {r.hint or '-'}\n```diff\n{r.diff or '(no diff kept)'}\n```\n")
    if avoid:
        parts.append("## Approaches reviewers rejected for similar failures (do not propose them again)\n")
        for r in avoid:
            parts.append(f"### proposal {r.proposal_id}: {r.tool_id} {r.version}, {r.status}: {r.reason or 'no reason given'}\n"
                         f"hint was: {r.hint or '-'}\n```diff\n{r.diff or '(no diff kept)'}\n```\n")
    return "\n".join(parts)


def offered(fixes: list[Recalled], avoid: list[Recalled]) -> dict[str, Any]:
    """What the proposal records of its memory (ids and similarities; the texts are in those proposals)."""
    return {"fixes": [{"proposal_id": r.proposal_id, "tool_id": r.tool_id, "similarity": r.similarity} for r in fixes],
            "avoid": [{"proposal_id": r.proposal_id, "tool_id": r.tool_id, "similarity": r.similarity, "status": r.status,
                       "reason": r.reason} for r in avoid]}


def _changed_lines(diff: str) -> list[str]:
    return [line[1:].strip() for line in diff.splitlines()
            if line[:1] in "+-" and not line.startswith(("+++", "---")) and line[1:].strip()]


def repeats(store: Any, tool_id: str, diff: str, *, exclude: int | None = None) -> dict[str, Any] | None:
    """The rejected (or rolled-back) proposal of the same tool whose changes this diff repeats, or None."""
    mine = _changed_lines(diff)
    if not mine:
        return None
    for r in proposals.decided(store, HISTORY, tool_id=tool_id):
        if r["id"] == exclude or r["status"] not in ("rejected", "rolled_back") or not r["diff"]:
            continue
        ratio = difflib.SequenceMatcher(None, mine, _changed_lines(r["diff"]), autojunk=False).ratio()
        if ratio >= REPEAT_RATIO:
            reason = r["review_reason"] or ("rolled back after it served" if r["status"] == "rolled_back" else "")
            return {"proposal_id": int(r["id"]), "version": r["version"], "status": r["status"], "reason": reason,
                    "ratio": round(ratio, 3)}
    return None

