"""Candidate selection for a resilient call: relevance x quality x failure penalty.

Two queries find the tools: one against the tool collection by the scenario's embedding (no
payload filter: the rules below are plain Python over a few dozen hits) and one against the
lexical index by its words (state/lexical, BM25); `fuse` mixes their normalised scores into one
relevance. A narrowed caller (an MCP endpoint, tools/reach.py) gets each query's best hits among
the tools it may reach (`top_reachable`), never the catalog's best with the others dropped. Then
one query against the failure memory for all candidates together, and plain Python over the few
dozen hits: resolved version, tags, the builtin/sink exclusion, operator disables, circuits and
negative tags. Whatever is left out is in `skipped` with the reason, so the trace says why a tool
was not tried.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from state import failures as failure_tables
from state.db import StoreError
from state.index_file import index_path
from state.memory import Hit, SemanticMemory, ToolDoc
from state.memory_service import MemoryService
from tools.errors import StateError, ToolNotReadyError, UsageError
from tools.reach import narrowed, reachable
from tools.recovery.circuit import HALF_OPEN, OPEN
from tools.recovery.rules import blocking_tags, scenario_formats

if TYPE_CHECKING:
    from tools.host import RuntimeHost

#: How much one remembered failure on a similar scenario predicts another, by severity.
PENALTY_WEIGHT = {"low": 0.1, "medium": 0.3, "high": 0.5, "critical": 0.8}
#: The penalty factor never drops below this (a predicted failure of at most 0.95).
PENALTY_FLOOR = 0.05
#: A candidate predicted to fail at least this likely is tried after every other candidate.
TRY_LAST_ABOVE = 0.5
#: At most this many remembered failures are considered per query (all candidates together).
FAILURE_QUERY_LIMIT = 32
#: The words' share of relevance (a convex mix of min-max normalised scores, after Bruch et al.,
#: "An Analysis of Fusion Functions for Hybrid Retrieval", 2023). BFCL Recall@5 with
#: tests/benchmarks/bench_bfcl.py's catalogs, 1,000 / 10,000 tools: 0.3 0.83/0.62, 0.5 0.87/0.72,
#: 0.7 0.86/0.71; reciprocal rank fusion did as well (0.86/0.74) but ranks make tools described
#: alike differ by their rank, where their quality and failures should order them.
WORD_WEIGHT = 0.5
#: A tool its words also find (in the lexical top `pool`) is offered down to this share of
#: `min_similarity` (0.175 at the default 0.35): BFCL questions name a right tool whose embedding
#: is only 0.2-0.35 similar about a third of the time, yet share its distinctive words.
WORD_SIMILARITY_SHARE = 0.5


@dataclass(frozen=True, slots=True)
class Candidate:
    tool_id: str
    version: str
    similarity: float
    score: float
    penalty: float
    rank: float
    why: str
    probe: bool = False
    #: 1 - penalty: how likely it fails, predicted from remembered failures on similar scenarios
    predicted_failure: float = 0.0
    #: the embedding's and the words' scores mixed (see `fuse`); rank = relevance x score x penalty
    relevance: float = 0.0


@dataclass(frozen=True, slots=True)
class Match:
    """One tool point found by its embedding, its words or both."""

    id: str
    payload: dict[str, Any]
    similarity: float
    relevance: float
    vector_rank: int | None
    word_rank: int | None
    #: the past scenario it succeeded on whose similarity stands for its embedding's (`with_past_successes`)
    past: str | None = None

    def found_by(self) -> str:
        vector = f"embedding #{self.vector_rank}" if self.vector_rank else ""
        if vector and self.past is not None:
            vector += f" (like its past success {self.past if len(self.past) <= 60 else self.past[:57] + '...'!r})"
        return ", ".join(f for f in (vector, f"words #{self.word_rank}" if self.word_rank else "") if f)


@dataclass(frozen=True, slots=True)
class Skipped:
    tool_id: str
    version: str
    similarity: float
    reason: str


@dataclass
class Selection:
    scenario: str
    candidates: list[Candidate]
    skipped: list[Skipped]
    min_similarity: float
    best_similarity: float | None
    formats: list[str]
    timings_ms: dict[str, float] = field(default_factory=dict)
    best_tool: str | None = None

    def skipped_dicts(self) -> list[dict[str, Any]]:
        return [asdict(s) for s in self.skipped]


@dataclass(frozen=True, slots=True)
class SelectionSettings:
    min_similarity: float = 0.35
    penalty_min_similarity: float = 0.5
    pool: int = 32
    tagged_pool: int = 256
    ready_timeout: float = 30.0
    #: a candidate predicted to fail at least this likely is skipped (while another is left); 1 never skips
    skip_predicted_above: float = 0.9
    #: a candidate at least this similar to one ranked above it (their tool vectors) is tried after the distinct ones; 1: off
    near_copy_similarity: float = 0.9

    @classmethod
    def from_runtime(cls, runtime: RuntimeHost) -> SelectionSettings:
        s = runtime.settings.section("resilient")
        try:
            out = cls(float(s.get("min_similarity", 0.35)), float(s.get("penalty_min_similarity", 0.5)),
                      int(s.get("candidate_pool", 32)), int(s.get("tagged_candidate_pool", 256)),
                      float(s.get("ready_timeout_seconds", 30)), float(s.get("skip_predicted_above", 0.9)),
                      float(s.get("near_copy_similarity", 0.9)))
        except (TypeError, ValueError) as exc:
            raise UsageError(f"tooldeck.toml [resilient]: {exc}") from exc
        if not -1 <= out.min_similarity <= 1 or out.pool < 1 or out.tagged_pool < 1:
            raise UsageError("tooldeck.toml [resilient]: min_similarity must be in [-1, 1] and the pools >= 1")
        if not 0 < out.skip_predicted_above <= 1:
            raise UsageError("tooldeck.toml [resilient]: skip_predicted_above must be in (0, 1] (1 never skips)")
        if not 0 < out.near_copy_similarity <= 1:
            raise UsageError("tooldeck.toml [resilient]: near_copy_similarity must be in (0, 1] (1 treats no tool as a copy)")
        return out


# -- the memory, wired to the runtime -------------------------------------------------

def is_sink(manifest: Any) -> bool:
    extra = manifest.model_extra or {}
    return "sink" in manifest.tags or extra.get("role") in ("sink", "pass_through") or bool(extra.get("pass_through"))


def tool_doc(entry: Any) -> ToolDoc | None:
    """What a tool is about. Embedded: its name, description, tags and parameter names. Indexed
    by word as well: parameter descriptions and a couple of example inputs.

    Example inputs were embedded too until the words had an index of their own; in a 256-dim
    average of word vectors they blur what the description says (BFCL Recall@5 at 10,000 tools,
    bench_bfcl.py's catalogs: vectors alone 0.557 with them, 0.630 without; fused with the words
    0.707 and 0.730)."""
    m = entry.manifest
    if m is None:
        return None
    parts = [entry.tool_id.replace("_", " ") + ".", m.description]
    if m.tags:
        parts.append("Tags: " + ", ".join(m.tags) + ".")
    words: list[str] = []
    fields = (m.input_schema or {}).get("properties")
    if isinstance(fields, dict) and fields:
        parts.append("Fields: " + ", ".join(str(f).replace("_", " ") for f in list(fields)[:20]) + ".")
        words.extend(f"{name} {str(spec.get('description', ''))[:300] if isinstance(spec, dict) else ''}"
                     for name, spec in list(fields.items())[:64])
    examples = [e.get("input") if isinstance(e, dict) and "input" in e else e for e in m.examples[:2]]
    if examples:
        words.append(json.dumps(examples, default=str)[:300])
    return ToolDoc(entry.tool_id, entry.served_version, " ".join(p for p in parts if p), entry.source, tuple(m.tags), is_sink(m),
                   description=str(m.description or ""), parameters=" ".join(words))


def install(runtime: RuntimeHost) -> MemoryService | None:
    """Create the memory service over the failure tracker (installed just before); build it now for
    serving runtimes (or when `[memory] preload = "always"`)."""
    tracker = runtime.extensions.get("failures")
    if tracker is None:
        return None  # failure tracking did not install: its runtime.error event says why
    settings = runtime.settings.section("memory")
    url = os.environ.get("QDRANT_URL") or None
    catalog = runtime.catalog
    folders = [str(root.path) for root in catalog.roots] + [str(catalog.evolved_dir or "")]
    persisted = index_path(runtime.home, runtime.host, folders) if settings["persist"] else None  # a bool (tools/settings.py)
    memory = SemanticMemory(url=url, api_key=os.environ.get("QDRANT_API_KEY") or None,
                            prefix=str(settings.get("collection_prefix", "tooldeck")), index_path=persisted)

    def all_docs() -> list[ToolDoc]:
        docs = [tool_doc(e) for e in catalog.all_entries()]
        return [d for d in docs if d is not None]

    def doc_for(tool_id: str, version: str) -> ToolDoc | None:
        entry = catalog.find(tool_id, version)
        return tool_doc(entry) if entry is not None else None

    service = MemoryService(memory, runtime.store, all_docs=all_docs, doc_for=doc_for, catalog_finished=catalog.finished,
                            tail_interval=float(settings.get("tail_interval_seconds", 1.0)),
                            save_interval=float(settings.get("save_interval_seconds", 30.0)))
    catalog.subscribe(service.tools_changed)
    tracker.on_failure(service.wake)
    runtime.extensions["memory"] = service
    runtime.add_service("memory", service)
    preload = str(settings.get("preload", "serve"))
    if preload not in ("serve", "always", "never"):
        raise UsageError(f"tooldeck.toml [memory]: preload must be serve, always or never, not {preload!r}")
    if preload == "always" or (preload == "serve" and runtime.serve):
        service.start()
    return service


def memory_for(runtime: RuntimeHost, timeout: float) -> MemoryService:
    """The runtime's memory, built and current (waits up to `timeout` for the background build)."""
    service = runtime.extension("memory", timeout)
    if service is None:
        raise StateError("semantic memory is not installed in this runtime (see the runtime.error events)")
    try:
        ready = service.wait_ready(timeout)
    except StoreError as exc:
        raise StateError(str(exc)) from exc
    if not ready:
        raise ToolNotReadyError(f"semantic memory was not ready within {timeout:.0f} s (still indexing the catalog)")
    return service


# -- selection -------------------------------------------------------------------------

def _spread(values: list[float]) -> tuple[float, float]:
    """(lowest, highest - lowest) of a query's scores, for min-max normalisation (a lone hit: spread 1)."""
    low, high = min(values), max(values)
    return low, (high - low) or 1.0


def with_past_successes(vector_hits: list[Any], past_hits: list[Any], memory: SemanticMemory) -> tuple[list[Any], dict[str, str]]:
    """(the tools found by their embedding, each at the best of its description's similarity and its past
    successes' (`past_hits`: the usage collection's hits, state/usage.py), best first; tool point -> the past
    scenario where that one was the better). A tool found only by a past success joins with that similarity."""
    best: dict[str, tuple[float, str]] = {}
    for hit in past_hits:
        point = str(hit.payload["tool_point"])  # every usage point names its tool's (state/usage.py)
        if point not in best or hit.similarity > best[point][0]:
            best[point] = (hit.similarity, str(hit.payload.get("scenario", "")))
    if not best:
        return vector_hits, {}
    by_id = {h.id: h for h in vector_hits}
    payloads = memory.tool_payloads([point for point in best if point not in by_id])
    past: dict[str, str] = {}
    for point, (similarity, scenario) in best.items():
        held = by_id.get(point)
        payload = held.payload if held is not None else payloads.get(point)
        if payload is None or (held is not None and held.similarity >= similarity):
            continue  # a tool gone from the index, or described better than any past use
        by_id[point] = Hit(point, similarity, payload)
        past[point] = scenario
    return sorted(by_id.values(), key=lambda h: -h.similarity), past


def fuse(vector_hits: list[Any], word_hits: list[Any], similarities: dict[str, float], min_similarity: float,
         past: dict[str, str] | None = None) -> list[Match]:
    """The tools either query found, best first by relevance.

    relevance = (1 - WORD_WEIGHT) x (s - s_min) / (s_max - s_min) + WORD_WEIGHT x (b - b_min) / (b_max - b_min)
    over this query's hits (s the embedding's cosine similarity, b the words' BM25; a tool the
    words did not find has b = b_min). Scores, not ranks: two tools described alike stay alike,
    so their quality and failures order them. A tool is kept when its embedding is at least
    `min_similarity` similar, or its words found it and it is at least `WORD_SIMILARITY_SHARE`
    of that (`similarities` gives the cosine of tools found by their words only)."""
    cosine = {**similarities, **{h.id: h.similarity for h in vector_hits}}
    bm25 = {h.id: h.similarity for h in word_hits}
    vector_rank = {h.id: n for n, h in enumerate(vector_hits, 1)}
    word_rank = {h.id: n for n, h in enumerate(word_hits, 1)}
    payloads = {h.id: h.payload for h in (*word_hits, *vector_hits)}
    s_low, s_spread = _spread(list(cosine.values()) or [0.0])
    b_low, b_spread = _spread(list(bm25.values()) or [0.0])
    word_floor = min(min_similarity, min_similarity * WORD_SIMILARITY_SHARE)
    out = []
    for point, payload in payloads.items():
        similarity = cosine.get(point)
        if similarity is None or similarity < (word_floor if point in bm25 else min_similarity):
            continue
        relevance = ((1 - WORD_WEIGHT) * (similarity - s_low) / s_spread
                     + WORD_WEIGHT * (bm25.get(point, b_low) - b_low) / b_spread)
        out.append(Match(point, payload, similarity, relevance, vector_rank.get(point), word_rank.get(point),
                         (past or {}).get(point)))
    out.sort(key=lambda m: -m.relevance)
    return out


def failure_penalties(hits: list[Any], keys: set[tuple[str, str]], threshold: float) -> dict[tuple[str, str], tuple[float, str]]:
    """(tool, version) -> (factor, note) from remembered failures on similar scenarios.

    factor = max(PENALTY_FLOOR, product over remembered failures f of this version whose scenario has
    similarity s_f >= threshold of (1 - min(0.95, w(severity_f) x s_f x (0.5 + 0.5 x min(count_f, 3) / 3))))
    The count saturates at 3, so one scenario repeated many times cannot bury a tool by itself.
    """
    out: dict[tuple[str, str], tuple[float, str]] = {}
    for hit in hits:
        p = hit.payload
        key = (p.get("tool_id"), p.get("version"))
        if key not in keys or hit.similarity < threshold:
            continue
        weight = PENALTY_WEIGHT.get(p.get("severity", "medium"), 0.3) * hit.similarity * (0.5 + 0.5 * min(int(p.get("count", 1)), 3) / 3)
        factor, note = out.get(key, (1.0, ""))
        factor *= 1.0 - min(weight, 0.95)
        if not note:
            note = f"failed on similar scenario {p.get('scenario', '')[:60]!r} ({p.get('severity')}, x{p.get('count', 1)})"
        out[key] = (max(PENALTY_FLOOR, factor), note)
    return out


def _served_entry(runtime: RuntimeHost, hit: Any, skipped: list[Skipped], noted: set[tuple[str, str]]) -> Any:
    """The loaded entry of this hit's version if that version is the one calls run now (the runtime's
    resolver decides), else None: another version answers and its own point speaks for it. A promoted
    version that cannot serve is named in `skipped` once, never dropped unseen."""
    tool_id, version = hit.payload.get("tool_id"), hit.payload.get("version")
    served = runtime.resolution(tool_id, wait=False)
    for passed, why in served.fell_back_from:
        if (tool_id, passed) not in noted:
            noted.add((tool_id, passed))
            skipped.append(Skipped(tool_id, passed, round(hit.similarity, 4),
                                   f"promoted but cannot serve ({why}); {served.version or 'nothing'} serves"))
    entry = served.entry
    if entry is None or entry.manifest is None or entry.served_version != version:
        return None
    return entry


def _why_not_tried(p: dict[str, Any], wanted: set[str], tracker: Any, formats: list[str],
                   any_role: bool = False) -> tuple[str | None, Any]:
    """(why this candidate is left out, or None; its live (score, failures, half-open) when tracked)."""
    tool_id, version = p["tool_id"], p["version"]
    tool_tags = {x.lower() for x in p.get("tags", ())} if wanted else set()
    if (p.get("source") == "builtin" or p.get("sink")) and not wanted & tool_tags and not any_role:
        return f"{'runtime builtin' if p.get('source') == 'builtin' else 'pass-through sink'}: only tried when a tag asks for it", None
    if wanted and not wanted & tool_tags:
        return f"none of the requested tags ({', '.join(sorted(wanted))})", None
    control = tracker.disabled(tool_id, version)
    if control is not None:
        return f"disabled by {control.get('actor') or 'an operator'}", None
    health = tracker.view(tool_id, version)
    if health is None:
        return None, None
    state = tracker.circuit_state(health)
    if state == OPEN:
        return f"circuit open ({health.circuit.reason})", None
    if health.tags and (blocked := blocking_tags(formats, health.tags)):
        return f"negative tag {', '.join(blocked)}", None
    return None, (health.score, health.failures, state == HALF_OPEN)


def _ranked(viable: list[tuple[Match, dict[str, Any], Any, Any]], penalties: dict[tuple[str, str], tuple[float, str]],
            limit: int, skip_above: float, vectors: Callable[[list[str]], tuple[list[str], Any]] | None = None,
            near_copy: float = 1.0) -> tuple[list[Candidate], list[Skipped]]:
    """(the best `limit` candidates, those skipped as predicted to fail).

    rank = relevance x score x penalty (ties: the manifest's priority, then id). The prediction is
    1 - penalty: a candidate predicted to fail at least TRY_LAST_ABOVE likely is tried after every
    other one, and one at least `skip_above` likely is skipped, with its evidence, while a
    candidate not that likely to fail is left to try. A near-copy (its tool vector at least
    `near_copy` similar to one ranked above it, `vectors` giving them) is tried after the distinct
    candidates of its group: five copies of one tool are one option tried five times."""
    scored = []
    for hit, p, health, entry in viable:
        key = (p["tool_id"], p["version"])
        score = health[0] if health is not None else float(entry.manifest.quality_score)
        factor, note = penalties.get(key, (1.0, ""))
        predicted = round(1.0 - factor, 4)
        scored.append((predicted >= TRY_LAST_ABOVE, -hit.relevance * score * factor, -entry.manifest.priority, key,
                       hit, score, factor, note, health is not None and health[2], predicted))
    scored.sort(key=lambda item: item[:4])
    copies = _near_copies([item[4].id for item in scored], [item[3][0] for item in scored], vectors, near_copy,
                          [not item[0] and item[-1] < skip_above for item in scored], limit)
    if copies:  # a stable sort: the rank order holds within distinct and within copies
        scored.sort(key=lambda item: (item[0], item[4].id in copies))
    skipped: list[Skipped] = []
    if any(item[-1] < skip_above for item in scored):
        skipped = [Skipped(item[3][0], item[3][1], round(item[4].similarity, 4),
                           f"predicted to fail ({item[-1]:.2f} >= {skip_above:g}): {item[7]}")
                   for item in scored if item[-1] >= skip_above]
        scored = [item for item in scored if item[-1] < skip_above]
    candidates: list[Candidate] = []
    for _last, neg_rank, _prio, key, match, score, factor, note, probe, predicted in scored[:limit]:
        why = (f"relevance {match.relevance:.2f} (similarity {match.similarity:.2f}; {match.found_by()})"
               f" x score {score:.2f} x penalty {factor:.2f}")
        if note:
            why += f"; {note}"
        if match.id in copies:
            original, similarity = copies[match.id]
            why += f"; near-copy of {original} (similarity {similarity:.2f}): tried after the distinct candidates"
        if predicted >= TRY_LAST_ABOVE:
            why += f"; predicted to fail ({predicted:.2f}): tried last"
        if probe:
            why += "; half-open circuit: probe call"
        candidates.append(Candidate(key[0], key[1], round(match.similarity, 4), round(score, 4), round(factor, 4), round(-neg_rank, 4),
                                    why, probe, predicted, round(match.relevance, 4)))
    return candidates, skipped


def _near_copies(points: list[str], tools: list[str], vectors: Callable[[list[str]], tuple[list[str], Any]] | None,
                 threshold: float, tried: list[bool] | None = None, limit: int = 0) -> dict[str, tuple[str, float]]:
    """point -> (the tool it copies, their similarity) for each point whose vector is at least
    `threshold` similar to a distinct point before it in `points` (a greedy pass in rank order).

    With `limit`, only what decides the first `limit` candidates: the pass judges each point by the
    points above it, so a prefix holding `limit` distinct points that will be tried (`tried`: not
    tried last, not skipped) orders them as the whole list would; the points after it are not
    looked at (~0.3 ms of a selection at 10,000 tools). Otherwise, or when the prefix is short of
    them, every point."""
    if vectors is None or threshold >= 1 or len(points) < 2:
        return {}
    size = min(len(points), max(4 * limit, 16)) if limit and tried is not None else len(points)
    copies, distinct = _copies_among(points[:size], tools[:size], vectors, threshold)
    if size < len(points) and sum(1 for n, point in enumerate(points[:size]) if tried and tried[n] and point in distinct) < limit:
        copies, _ = _copies_among(points, tools, vectors, threshold)
    return copies


def _copies_among(points: list[str], tools: list[str], vectors: Callable[[list[str]], tuple[list[str], Any]],
                  threshold: float) -> tuple[dict[str, tuple[str, float]], set[str]]:
    """(the copies as `_near_copies` gives them, the distinct points) of `points`, all of them."""
    import numpy as np

    held, matrix = vectors(points)
    if len(held) < 2:
        return {}, set(held)
    tool_of = dict(zip(points, tools, strict=True))
    similar = np.tril(matrix @ matrix.T, -1)  # each point against the points ranked above it
    above = np.packbits(similar >= threshold, axis=1, bitorder="little")  # row n: bit j set when j is that similar
    kept, copy = 0, []  # kept: a bit per distinct point so far
    for n, row in enumerate(above):
        if int.from_bytes(row.tobytes(), "little") & kept:
            copy.append(n)
        else:
            kept |= 1 << n
    distinct_points = {held[j] for j in range(len(held)) if kept >> j & 1}
    if not copy:
        return {}, distinct_points
    distinct = np.array([bool(kept >> j & 1) for j in range(len(held))])
    rows = np.where(distinct[None, :], similar[copy], -np.inf)
    best = rows.argmax(axis=1).tolist()  # the distinct point each copy is most similar to
    return {held[n]: (tool_of[held[j]], float(rows[i, j])) for i, (n, j) in enumerate(zip(copy, best, strict=True))}, distinct_points


def top_reachable(query: Callable[[int], list[Any]], pool: int, floor: float | None = None) -> list[Any]:
    """The best `pool` hits of `query` (`query(n)`: its best n hits, best first, each naming its tool in
    `payload["tool_id"]`) that the call in progress may reach (tools/reach.py).

    Outside a narrowed call that is `query(pool)`, one query as before. A narrowed caller (an MCP endpoint)
    must not have the tools it cannot reach crowd its own out of the pool (60 hidden copies of a tool
    outrank the one it serves), so it gets what the query would answer over a catalog of only its tools:
    the query is asked again for more until it holds `pool` reachable hits, its last hit is below `floor`
    (hits come by similarity, so nothing further down could be offered), or it answers fewer than asked
    (no more). An endpoint serving 1% of bench_selection.py's 10,000 generated tools: a selection takes
    ~15 ms at the median (the runtime's own, ~2 ms), its queries asked for a few thousand hits; asking
    only until `limit` (5) were reachable was ~5 ms but offered a quarter fewer of the tools a ranking
    of the endpoint's tools alone offers."""
    if not narrowed():
        return query(pool)
    verdicts: dict[str, bool] = {}  # a tool's many points (usage: one per scenario) ask the rule once
    asked = pool
    while True:
        hits = query(asked)
        kept = []
        for hit in hits:
            tool_id = str(hit.payload.get("tool_id"))
            allowed = verdicts.get(tool_id)
            if allowed is None:
                allowed = verdicts[tool_id] = reachable(tool_id)
            if allowed:
                kept.append(hit)
        short = pool - len(kept)
        if short <= 0 or len(hits) < asked or (floor is not None and hits and hits[-1].similarity < floor):
            return kept[:pool]
        # as many more as the reachable share so far says are missing (and a quarter), at most 8x as many; twice as
        # many while none is reachable: the asking sums to a few times the last query, which is what costs
        asked += min(8 * asked, max(short, math.ceil(1.25 * short * asked / len(kept)))) if kept else asked


def select_candidates(runtime: RuntimeHost, scenario: str, *, tags: list[str] | None = None, limit: int = 5,
                      settings: SelectionSettings | None = None, sync: bool = True, any_role: bool = False) -> Selection:
    """Rank the tools that could serve `scenario`: found by its embedding or its words (`fuse`);
    nothing below the minimum similarity is offered unless its words found it too. `any_role`
    offers runtime builtins and sinks too, untagged: a search for a client that chooses what to
    call itself (tools/mcp/search.py), where a resilient call must not run them unasked."""
    started = time.perf_counter()
    cfg = settings or SelectionSettings.from_runtime(runtime)
    service = memory_for(runtime, cfg.ready_timeout)
    tracker = runtime.extension("failures")
    timings: dict[str, float] = {}
    if sync:  # one query tells whether anything changed in any process since the last look
        seq, last_failure = failure_tables.seq_and_last_failure(runtime.store)
        tracker.sync(force=True, seq=seq)
        service.catch_up(last_failure)
        timings["sync"] = (time.perf_counter() - started) * 1000
    t = time.perf_counter()
    memory: SemanticMemory = service.memory
    vector = memory.embed_one(scenario)
    timings["embed"] = (time.perf_counter() - t) * 1000
    t = time.perf_counter()
    wanted = {x.lower() for x in tags or []}
    pool = cfg.tagged_pool if wanted else cfg.pool
    floor = min(cfg.min_similarity, cfg.min_similarity * WORD_SIMILARITY_SHARE)  # fuse offers nothing less similar
    vector_hits = top_reachable(lambda n: memory.search_tools(vector, n), pool, floor)
    past: dict[str, str] = {}
    if len(service.usage):  # a tool is also as similar as the scenarios it succeeded on
        past_hits = top_reachable(lambda n: memory.search_usage(vector, n), pool, floor)
        vector_hits, past = with_past_successes(vector_hits, past_hits, memory)
    timings["search"] = (time.perf_counter() - t) * 1000
    t = time.perf_counter()
    word_hits = top_reachable(lambda n: memory.search_tools_lexical(scenario, n), pool)
    seen = {h.id for h in vector_hits}
    word_only = [h.id for h in word_hits if h.id not in seen]
    hits = fuse(vector_hits, word_hits, memory.tool_similarities(vector, word_only), cfg.min_similarity, past)
    timings["words"] = (time.perf_counter() - t) * 1000
    best = vector_hits[0].similarity if vector_hits else None
    best_tool = vector_hits[0].payload.get("tool_id") if vector_hits else None
    t = time.perf_counter()
    formats = scenario_formats(scenario)
    skipped: list[Skipped] = []
    noted: set[tuple[str, str]] = set()
    viable: list[tuple[Match, dict[str, Any], Any, Any]] = []
    for hit in hits:
        p = hit.payload
        entry = _served_entry(runtime, hit, skipped, noted)
        if entry is None:
            continue
        reason, health = _why_not_tried(p, wanted, tracker, formats, any_role)
        if reason is None:
            viable.append((hit, p, health, entry))
        else:
            skipped.append(Skipped(p["tool_id"], p["version"], round(hit.similarity, 4), reason))
    timings["rules"] = (time.perf_counter() - t) * 1000
    t = time.perf_counter()
    penalties: dict[tuple[str, str], tuple[float, str]] = {}
    keys = {(p["tool_id"], p["version"]) for _h, p, _x, _e in viable}
    if keys & service.failed_keys:  # nothing to predict from otherwise
        failure_hits = memory.search_failures(vector, FAILURE_QUERY_LIMIT, cfg.penalty_min_similarity)
        penalties = failure_penalties(failure_hits, keys, cfg.penalty_min_similarity)
    timings["failures"] = (time.perf_counter() - t) * 1000
    t = time.perf_counter()
    candidates, predicted = _ranked(viable, penalties, limit, cfg.skip_predicted_above, memory.tool_vectors, cfg.near_copy_similarity)
    timings["rank"] = (time.perf_counter() - t) * 1000
    skipped.extend(predicted)
    timings["total"] = (time.perf_counter() - started) * 1000
    return Selection(scenario, candidates, skipped, cfg.min_similarity, best, formats, timings, best_tool)
