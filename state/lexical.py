"""The lexical index of tools: BM25 over a tool's id, description, tags and parameters.

Why a second index beside the embeddings: wordllama's 256-dim vectors blur the words that pick
one tool out of thousands (an id like `weather_1_getweather`, a parameter named `city`), and
on the BFCL benchmark BM25 alone finds the right tool in the top 5 more often than the vectors
(0.84 vs 0.80 at 1,000 tools, 0.70 vs 0.56 at 10,000); fused, they do better than either.

Why not SQLite FTS5: its `bm25()` ranks every row that matches any query term, 2.3 ms p50 /
6.5 ms p95 at 10,000 tools here, growing with the catalog; this index keeps each term's
postings as numpy arrays and each term's BM25 scores until the index changes, and scores a query
by summing them per tool and picking the best from the postings (0.26 / 0.90 ms at 10,000 on the
same queries before the scores were kept; 300 BFCL questions at 100,000 tools: p50 0.72 -> 0.28
ms, p95 1.21 -> 0.62 ms once they were kept and the best picked from the postings). It lives in
memory beside the vector index, one per process, updated by the same catalog changes. Each
tool's weighted words are saved in the persisted tool index's file (state/memory.py): at 100,000
tools tokenising is ~6 of the ~8 s this index takes to build, and a restart takes back the words
of every tool whose fields are unchanged (`upsert_weighted`) instead of tokenising them again.

Scoring is BM25 with per-field weights (BM25F-style: a term in the id counts more than one in a
parameter's description). Query text is bounded (`MAX_QUERY_CHARS`, `MAX_QUERY_TERMS`): a huge
scenario costs what its first words cost. Control characters and punctuation separate words;
a query with no word left matches nothing.
"""

from __future__ import annotations

import math
import re
import threading
from collections.abc import Hashable, Iterable
from dataclasses import dataclass
from typing import Any

#: Field weights: a query word in the tool's id says more than one in a parameter's description.
FIELD_WEIGHTS = {"name": 4.0, "tags": 2.0, "description": 2.0, "parameters": 1.0}
#: What a tool's saved weighted words depend on besides its fields: saved words of another kind are tokenised again.
TERMS_VERSION = 1
K1 = 1.2
B = 0.75
#: Only this much of a query is read, and at most this many distinct words of it are scored.
MAX_QUERY_CHARS = 4000
MAX_QUERY_TERMS = 48
#: A query word found in more than this share of the tools is scored only if it is one of the
#: query's two rarest (at 100,000 BFCL tools: p50 0.75 -> 0.51 ms, Recall@5 unchanged).
COMMON_SHARE = 0.2
#: ... and in more than this many tools (below it, scoring the word costs nothing worth saving).
COMMON_MIN = 2000

_STOPWORDS = (
    "a an the and or of to in on for with by at from is are was were be been as it its this that these those i me my we our"
    " you your he she they them his her what which who whom how when where why can could would should will shall do does"
    " did please want need like also about into than then there here have has had not no some any all each more most"
    " other such only own same so too very just if but up out over")
STOPWORDS = frozenset(_STOPWORDS.split())

_CAMEL = re.compile(r"([a-z0-9])([A-Z])")
_WORD = re.compile(r"[^\W_]+")


def stem(word: str) -> str:
    """A light plural strip (`cities` -> `city`, `forecasts` -> `forecast`), enough to match
    a question's words to a description's without a stemming library."""
    if len(word) > 4 and word.endswith("ies"):
        return word[:-3] + "y"
    if len(word) > 3 and word.endswith("s") and not word.endswith(("ss", "us", "is")):
        return word[:-1]
    return word


def terms(text: str) -> list[str]:
    """The words of `text` as the index sees them: camelCase and snake_case split, lower case,
    stopwords and one-letter words left out, plurals stripped; in order, repeats kept."""
    out = []
    for word in _WORD.findall(_CAMEL.sub(r"\1 \2", text).lower()):
        if len(word) > 1 and word not in STOPWORDS:
            out.append(stem(word))
    return out


@dataclass(frozen=True, slots=True)
class LexicalHit:
    key: Hashable
    score: float


class LexicalIndex:
    """In-memory BM25F index of documents made of weighted fields, keyed by any hashable key."""

    def __init__(self, weights: dict[str, float] | None = None) -> None:
        self.weights = dict(weights or FIELD_WEIGHTS)
        self._lock = threading.RLock()
        self._slot: dict[Hashable, int] = {}
        self._keys: list[Hashable | None] = []
        self._free: list[int] = []
        self._length: list[float] = []
        self._doc_terms: list[dict[str, float]] = []
        self._postings: dict[str, dict[int, float]] = {}
        self._arrays: dict[str, tuple[Any, Any]] = {}  # term -> (slots, weighted tf) as numpy arrays, built on first query
        #: term -> (slots, each slot's BM25 score for the term), built on first query; any change of the index
        #: empties it (a score depends on the number of tools and their average length)
        self._scored: dict[str, tuple[Any, Any]] = {}
        self._length_array: Any = None
        self._total_length = 0.0
        #: documents tokenised so far (`upsert`), as against taken back whole (`upsert_weighted`)
        self.tokenised = 0

    def __len__(self) -> int:
        return len(self._slot)

    @property
    def kind(self) -> str:
        """What weighted words made by this index depend on: the field weights and the tokeniser's version."""
        return f"terms {TERMS_VERSION}; " + ", ".join(f"{k} {v}" for k, v in sorted(self.weights.items()))

    def weigh(self, fields: dict[str, str]) -> dict[str, float]:
        """A document's words and their weighted counts; `fields` maps a field name of `weights` to its text."""
        weighted: dict[str, float] = {}
        for name, text in fields.items():
            weight = self.weights.get(name)
            if weight is None:
                raise ValueError(f"lexical index: unknown field {name!r} (known: {', '.join(self.weights)})")
            for term in terms(text or ""):
                weighted[term] = weighted.get(term, 0.0) + weight
        return weighted

    def upsert(self, key: Hashable, fields: dict[str, str]) -> None:
        """Index (or re-index) one document; `fields` maps a field name of `weights` to its text."""
        weighted = self.weigh(fields)
        self.tokenised += 1
        self.upsert_weighted(key, weighted)

    def weighted(self, key: Hashable) -> dict[str, float] | None:
        """The weighted words `key` is indexed under (not to be changed), None when it is not indexed."""
        with self._lock:
            slot = self._slot.get(key)
            return self._doc_terms[slot] if slot is not None else None

    def upsert_weighted(self, key: Hashable, weighted: dict[str, float]) -> None:
        """Index (or re-index) one document by words already weighed (`weigh`, or saved from `weighted`)."""
        with self._lock:
            self._remove(key)
            slot = self._free.pop() if self._free else len(self._keys)
            if slot == len(self._keys):
                self._keys.append(key)
                self._length.append(0.0)
                self._doc_terms.append({})
            self._keys[slot] = key
            self._slot[key] = slot
            length = sum(weighted.values())
            self._length[slot] = length
            self._doc_terms[slot] = weighted
            self._total_length += length
            for term, tf in weighted.items():
                self._postings.setdefault(term, {})[slot] = tf
                self._arrays.pop(term, None)
            self._length_array = None
            self._scored = {}

    def delete(self, keys: Iterable[Hashable]) -> None:
        with self._lock:
            for key in keys:
                self._remove(key)

    def _remove(self, key: Hashable) -> None:
        slot = self._slot.pop(key, None)
        if slot is None:
            return
        for term in self._doc_terms[slot]:
            posting = self._postings.get(term)
            if posting is not None:
                posting.pop(slot, None)
                if not posting:
                    del self._postings[term]
            self._arrays.pop(term, None)
        self._total_length -= self._length[slot]
        self._length[slot] = 0.0
        self._doc_terms[slot] = {}
        self._keys[slot] = None
        self._free.append(slot)
        self._length_array = None
        self._scored = {}

    def _array(self, term: str) -> tuple[Any, Any] | None:
        import numpy as np

        cached = self._arrays.get(term)
        if cached is None:
            posting = self._postings.get(term)
            if not posting:
                return None
            cached = (np.fromiter(posting.keys(), dtype=np.int64, count=len(posting)),
                      np.fromiter(posting.values(), dtype=np.float32, count=len(posting)))
            self._arrays[term] = cached
        return cached

    def _scores(self, term: str, n: int) -> tuple[Any, Any]:
        """(slots, BM25 score of `term` in each): idf x tf x (K1 + 1) / (tf + K1 x (1 - B + B x length / average))."""
        import numpy as np

        cached = self._scored.get(term)
        if cached is None:
            if self._length_array is None:
                self._length_array = np.asarray(self._length, dtype=np.float32)
            slots, tf = self._arrays[term]
            df = len(slots)
            idf = math.log(1.0 + (n - df + 0.5) / (df + 0.5))
            norm = K1 * (1.0 - B + B * self._length_array[slots] / max(self._total_length / n, 1e-6))
            cached = (slots, (idf * tf * (K1 + 1.0) / (tf + norm)).astype(np.float32))
            self._scored[term] = cached
        return cached

    def search(self, query: str, limit: int) -> list[LexicalHit]:
        """The `limit` best documents for `query` by BM25F, best first; [] when no word of it is indexed."""
        import numpy as np

        words = list(dict.fromkeys(terms(query[:MAX_QUERY_CHARS])))[:MAX_QUERY_TERMS]
        if not words or limit < 1:
            return []
        with self._lock:
            n = len(self._slot)
            if n == 0:
                return []
            found = sorted((word for word in words if self._array(word) is not None), key=lambda word: len(self._arrays[word][0]))
            # a word in more than COMMON_SHARE of many tools says little (BM25's idf ~2 vs ~9 for a
            # rare one) and costs the most: left out unless it is one of the query's two rarest words
            common = max(COMMON_SHARE * n, COMMON_MIN)
            scored = [self._scores(word, n) for rank, word in enumerate(found) if rank < 2 or len(self._arrays[word][0]) <= common]
            if not scored:
                return []
            slots_parts = [slots for slots, _ in scored]
            score_parts = [scores for _, scores in scored]
            all_slots = np.concatenate(slots_parts)
            # each tool's score, summed over the words it holds (an array the catalog's size: ~0.05 ms at
            # 100,000), read back at every posting; a tool holds at most len(scored) of them, so the best
            # `limit` tools are among the best limit x len(scored) postings. Picking those is cheaper
            # than listing the scored tools (np.flatnonzero or np.unique took ~0.4 ms at 100,000)
            totals = np.bincount(all_slots, weights=np.concatenate(score_parts), minlength=len(self._keys))
            at_postings = totals[all_slots]
            take = min(len(all_slots), limit * len(scored))
            if take < len(all_slots):
                best = np.argpartition(-at_postings, take - 1)[:take]
                all_slots, at_postings = all_slots[best], at_postings[best]
            matched, first = np.unique(all_slots, return_index=True)
            scores = at_postings[first]
            order = np.argsort(-scores, kind="stable")[:limit]
            keys = self._keys
            return [LexicalHit(keys[int(matched[i])], float(scores[i])) for i in order if keys[int(matched[i])] is not None]
