"""What evolution remembers: fixes reviewers approved, and approaches they rejected or rolled back.

A new evolution is offered the past decisions most similar to its failure (of any tool): approved
fixes as examples to learn from, rejected and rolled-back ones as approaches not to propose again,
each with the reviewer's reason. Similarity is TF-IDF cosine over the words of the failure (error,
mutation hint, the failing calls' errors, and the shape of each wrong answer: `returned 5, expected 4`
is off by one, `returned 2.5, expected 2` the wrong type; a proposal keeps the shapes of the failures
it was made for), computed here over the decided proposals in the store:
deterministic, no model, no index to keep. An approved fix is also known by the kind of change its
diff makes (`fix_kind`), and approvals teach which kinds answered which shapes (`kind_prior`).
The proposal records what it was offered (`memory`), and a candidate whose diff repeats a
rejected one of the same tool is flagged to the reviewer.
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
#: decisions that undid a candidate: approaches not to propose again
UNDONE = ("rejected", "rolled_back")
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
    kind: str | None = None  # what kind of change the fix was (fix_kind)


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
        return "shape_sign" if got == -want else "shape_off_by_one" if abs(got - want) == 1 else \
            "shape_truncated" if _truncated(got, want) else "shape_number"
    if isinstance(got, (str, list, tuple)):
        try:
            if sorted(got) == sorted(want):
                return "shape_order"
        except TypeError:
            pass
        if isinstance(got, (list, tuple)) and len(got) == len(want):
            items = _item_shape([(g, w) for g, w in zip(got, want, strict=True) if g != w or type(g) is not type(w)])
            if items is not None:
                return items
        if abs(len(got) - len(want)) == 1:
            return "shape_length_off_by_one"
        return "shape_missing_items" if len(got) < len(want) else "shape_extra_items" if len(got) > len(want) else "shape_changed_items"
    if isinstance(got, dict):
        return "shape_keys" if set(got) != set(want) else "shape_values"
    return None


def _item_shape(pairs: list[tuple[Any, Any]]) -> str | None:
    """How the differing items of two equally long lists differ, when they all differ the same way (named as a
    single answer that differs so: `[11, 10]` for `[10, 10]` is off by one as 11 for 10 is)."""
    if not pairs:
        return None
    numbers = all(isinstance(v, (int, float)) and not isinstance(v, bool) for pair in pairs for v in pair)
    if numbers and all(type(g) is not type(w) for g, w in pairs):
        return "shape_items_type"
    if numbers and all(_truncated(g, w) for g, w in pairs):
        return "shape_truncated"
    if numbers and all(abs(g - w) == 1 for g, w in pairs):
        return "shape_off_by_one"
    if numbers and all(g == -w for g, w in pairs):
        return "shape_sign"
    return None


def _truncated(got: float, want: float) -> bool:
    """A whole number where a fraction was wanted, its integer part (a floor or an int() too many)."""
    return float(got).is_integer() and not float(want).is_integer() and abs(got - want) < 1


#: an exception a call raised, by its class's name (`ValueError: max() arg is an empty sequence`)
_RAISED = re.compile(r"\b([A-Z][A-Za-z]*(?:Error|Exception))\b")


def failure_shapes(errors: Iterable[str]) -> list[str]:
    """The shapes of the failures these error texts report, most frequent first (each once): how a wrong answer
    differs from the expected one, or which exception a call raised (`shape_raised_valueerror`)."""
    found: Counter[str] = Counter()
    for error in errors:
        raised = _RAISED.search(error[:500])
        if raised is not None and not any(pattern.search(error.strip()) for pattern in _ANSWER):
            found[f"shape_raised_{raised.group(1).lower()}"] += 1
            continue
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
    """(approved fixes, rejected or rolled-back approaches), each the `limit` most similar to `query`.

    Approved fixes are ranked by similarity and by what reviewers' approvals taught about the failure's
    shapes: how often a fix of each kind (fix_kind) was the approved answer to a wrong answer of each
    shape. The first fix offered is the best; each next one is of a kind not offered yet where one
    scores at least half as well (a failure that fits several kinds of fix shows one of each)."""
    rows = [r for r in proposals.decided(store, HISTORY) if r["id"] != exclude]
    if not rows:
        return [], []
    shapes_of = {r["id"]: _shapes_of(r) for r in rows}
    docs = [words(failure_text(r["error_message"] or "", r["mutation_hint"] or "") + " " + " ".join(shapes_of[r["id"]]))
            for r in rows]
    vectors = _vectors([words(query), *docs])
    kinds = {r["id"]: fix_kind(r["diff"] or "") for r in rows if r["status"] not in UNDONE}
    prior = kind_prior([w for w in words(query) if w.startswith("shape_")],
                       [(shapes_of[r["id"]], kinds[r["id"]]) for r in rows if kinds.get(r["id"])])
    scored = []
    for vector, r in zip(vectors[1:], rows, strict=True):
        similarity = _cosine(vectors[0], vector)
        kind = kinds.get(r["id"])
        learned = prior.get(kind, 0.0) if kind else 0.0
        if similarity < MIN_SIMILARITY and not learned:  # neither worded alike nor a kind the shapes were fixed by
            continue
        scored.append((similarity + learned, similarity, r, kind))
    scored.sort(key=lambda item: (-item[0], -item[2]["id"]))
    approved = [x for x in scored if x[2]["status"] not in UNDONE]
    undone = [x for x in scored if x[2]["status"] in UNDONE]
    return [_recalled(x) for x in _diverse(approved, limit)], [_recalled(x) for x in undone[:limit]]


def _recalled(item: tuple[float, float, Any, str | None]) -> Recalled:
    _rank, similarity, r, kind = item
    status = r["status"]
    reason = r["review_reason"] or ("rolled back after it served" if status == "rolled_back" else "")
    return Recalled(int(r["id"]), r["tool_id"], r["version"], status, round(similarity, 3), (r["error_message"] or "")[:300],
                    (r["mutation_hint"] or "")[:300], reason[:300], _cut_diff(r["diff"] or ""), kind)


def _diverse(scored: list[tuple[float, float, Any, str | None]], limit: int) -> list[tuple[float, float, Any, str | None]]:
    """The best fix of each kind, best kind first, then the next best of any kind: two fixes of one kind teach less
    than one of each of two (a fix of unknown kind counts as a kind of its own)."""
    seen: set[str] = set()
    first = []
    for item in scored:
        if item[3] is None or item[3] not in seen:
            first.append(item)
            if item[3] is not None:
                seen.add(item[3])
    chosen = first[:limit]
    return chosen + [item for item in scored if item not in chosen][:limit - len(chosen)]


def kind_prior(shapes: list[str], history: list[tuple[list[str], str | None]]) -> dict[str, float]:
    """P(kind of the approved fix | the failure's shapes), learned from past approvals: naive Bayes over the shapes
    present (each P(shape | kind) Laplace-smoothed). Empty when the failure has no shapes or nothing was learned."""
    if not shapes:
        return {}
    per_kind: Counter[str] = Counter(k for _s, k in history if k)
    if not per_kind:
        return {}
    seen: Counter[tuple[str, str]] = Counter((shape, k) for past, k in history if k for shape in set(past))
    total = sum(per_kind.values())
    logs = {k: math.log(n / total) + sum(math.log((seen[(shape, k)] + 1) / (n + 2)) for shape in set(shapes))
            for k, n in per_kind.items()}
    top = max(logs.values())
    weights = {k: math.exp(v - top) for k, v in logs.items()}
    norm = sum(weights.values())
    return {k: w / norm for k, w in weights.items()}


_CONVERSIONS = frozenset({"int", "float", "str", "repr", "list", "tuple", "set", "bool", "dict", "round"})
_OPERATORS = frozenset({"+", "-", "*", "/", "//", "%", "**", "<", "<=", ">", ">=", "==", "!=", "and", "or", "not",
                        "in", "is"})


def fix_kind(diff: str) -> str | None:
    """What kind of change a fix is, from its diff's removed and added lines: `fix_off_by_one` (an integer moved
    by one), `fix_type` (a conversion or `/` against `//`), `fix_operator`, `fix_swap` (the same tokens in
    another order), `fix_guard` (an `if` added); None for anything else or bigger."""
    lines = _code_lines(diff)
    removed = [line[1:] for line in lines if line.startswith("-") and line[1:].strip()]
    added = [line[1:] for line in lines if line.startswith("+") and line[1:].strip()]
    if not added or len(removed) > 6 or len(added) > 8:
        return None
    old, new = _tokens(removed), _tokens(added)
    if any(t in ("if", "elif") for t in new) and new.count("if") + new.count("elif") > old.count("if") + old.count("elif"):
        return "fix_guard"
    if not removed:
        return None
    if old != new and sorted(old) == sorted(new):
        return "fix_swap"
    changes = [(old[i1:i2], new[j1:j2]) for tag, i1, i2, j1, j2 in
               difflib.SequenceMatcher(None, old, new, autojunk=False).get_opcodes() if tag != "equal"]
    if not changes:
        return None
    flat_old = [t for a, _b in changes for t in a]
    flat_new = [t for _a, b in changes for t in b]
    if all(t in _CONVERSIONS or t in ("/", "//") for t in flat_old + flat_new):
        return "fix_type"
    if all(len(a) == 1 and len(b) == 1 and _by_one(a[0], b[0]) for a, b in changes):
        return "fix_off_by_one"
    if all(t in _OPERATORS for t in flat_old + flat_new):
        return "fix_operator"
    return None


def _code_lines(diff: str) -> list[str]:
    """The diff's lines of the tool's code: not of its manifest (whose version and lineage every fix changes)."""
    out: list[str] = []
    code = True
    for line in diff.splitlines():
        if line.startswith("--- "):
            code = not line.split(" (", 1)[0].rstrip().endswith((".yaml", ".yml"))
            continue
        if line.startswith("+++ ") or line.startswith("@@"):
            continue
        if code:
            out.append(line)
    return out


def _tokens(lines: list[str]) -> list[str]:
    out: list[str] = []
    for line in lines:
        out.extend(_TOKEN.findall(line.split("#", 1)[0]))
    return out


_TOKEN = re.compile(r"[A-Za-z_][A-Za-z0-9_]*|\d+(?:\.\d+)?|\*\*|//|<=|>=|==|!=|\S")


def _by_one(a: str, b: str) -> bool:
    return a.isdigit() and b.isdigit() and abs(int(a) - int(b)) == 1


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
            kind = f", {r.kind.removeprefix('fix_').replace('_', ' ')}" if r.kind else ""
            parts.append(f"### proposal {r.proposal_id}: {r.tool_id} {r.version} (similarity {r.similarity}{kind})\n"
                         f"error: {r.error or '-'}\nhint: {r.hint or '-'}\n```diff\n{r.diff or '(no diff kept)'}\n```\n")
    if avoid:
        parts.append("## Approaches reviewers rejected for similar failures (do not propose them again)\n")
        for r in avoid:
            parts.append(f"### proposal {r.proposal_id}: {r.tool_id} {r.version}, {r.status}: {r.reason or 'no reason given'}\n"
                         f"hint was: {r.hint or '-'}\n```diff\n{r.diff or '(no diff kept)'}\n```\n")
    return "\n".join(parts)


def offered(fixes: list[Recalled], avoid: list[Recalled]) -> dict[str, Any]:
    """What the proposal records of its memory (ids and similarities; the texts are in those proposals)."""
    return {"fixes": [{"proposal_id": r.proposal_id, "tool_id": r.tool_id, "similarity": r.similarity, "kind": r.kind}
                      for r in fixes],
            "avoid": [{"proposal_id": r.proposal_id, "tool_id": r.tool_id, "similarity": r.similarity, "status": r.status,
                       "reason": r.reason} for r in avoid]}


def _changed_lines(diff: str) -> list[str]:
    """The lines a diff adds or removes, of the tool's code when it changes code: the manifest's lines (its version,
    entry and lineage, which name the hint and the error) differ between two tries of the very same approach."""
    def changed(lines: list[str]) -> list[str]:
        return [line[1:].strip() for line in lines if line[:1] in "+-" and not line.startswith(("+++", "---")) and line[1:].strip()]

    return changed(_code_lines(diff)) or changed(diff.splitlines())


def repeats_warning(proposal: dict[str, Any]) -> str | None:
    """What a reviewer is told when `proposal` repeats an approach a person turned down, or None: the one wording
    for `review show`, the dashboard's proposal detail, its details screen and its approve dialog, so a reviewer
    approving from either face sees it. The reason is the reviewer's raw text: the caller makes it visible."""
    repeated = (proposal.get("memory") or {}).get("repeats")
    if not repeated:
        return None
    reason = repeated.get("reason") or "no reason given"
    return f"REPEATS proposal {repeated['proposal_id']} ({repeated['status']}): {reason}"


def repeats(store: Any, tool_id: str, diff: str, *, exclude: int | None = None) -> dict[str, Any] | None:
    """The rejected (or rolled-back) proposal of the same tool whose changes this diff repeats, or None."""
    mine = _changed_lines(diff)
    if not mine:
        return None
    for r in proposals.decided(store, HISTORY, tool_id=tool_id):
        if r["id"] == exclude or r["status"] not in UNDONE or not r["diff"]:
            continue
        ratio = difflib.SequenceMatcher(None, mine, _changed_lines(r["diff"]), autojunk=False).ratio()
        if ratio >= REPEAT_RATIO:
            reason = r["review_reason"] or ("rolled back after it served" if r["status"] == "rolled_back" else "")
            return {"proposal_id": int(r["id"]), "version": r["version"], "status": r["status"], "reason": reason,
                    "ratio": round(ratio, 3)}
    return None

