"""Semantic memory: a collection of tools, one of failure scenarios and one of past successes
(state/usage.py), embedded by wordllama.

The vector index (state/vectors, usearch), qdrant-client (~1 s to import, server mode only)
and wordllama (~0.3 s plus ~0.4 s to load) are imported here only, inside the functions that
use them, and only from the background thread that builds the memory (state/memory_service.py),
so neither `Runtime(...)` nor the first frame of the dashboard waits for them.

Default is the embedded index (one per process), kept current by the catalog's changes and by
tailing the `failures` table. Its tool collection is persisted in the workspace, one file per
node (state/index_file): each tool point records the hash of the text its vector was embedded
from, so a restart embeds only tools whose text changed, drops tools gone and adds new ones; a
file that is missing, torn, corrupt or from another embedder or format is logged and the index
rebuilt from the catalog. The failure collection is rebuilt from the `failures` table at start
(a few scenarios per tool, not worth a file), the past successes from the event log.
`QDRANT_URL` (and `QDRANT_API_KEY`) use a Qdrant server instead, shared by every node. Either way the tools' words are indexed too
(state/lexical), per process, rebuilt at start. Point ids are uuid5 of what the point is about
(state/points), so re-indexing is idempotent.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from state import index_file
from state.index_file import IndexFileError
from state.lexical import LexicalIndex
from state.points import failure_point_id, tool_point_id, usage_point_id
from state.vectors import KIND as INDEX_KIND
from state.vectors import VectorCollection

log = logging.getLogger("tooldeck.memory")
DIM = 256
#: Past this many tools at once (a first start), embedding, the vector index's inserts and the
#: word index overlap, a chunk of this many at a time (`SemanticMemory._upsert_many`).
BULK_CHUNK = 4096


@dataclass(frozen=True, slots=True)
class ToolDoc:
    """What one tool version is about: `text` is embedded; the id, `description`, tags and
    `parameters` (names and descriptions) are indexed word by word (state/lexical)."""

    tool_id: str
    version: str
    text: str
    source: str
    tags: tuple[str, ...] = ()
    sink: bool = False
    description: str = ""
    parameters: str = ""

    def fields(self) -> dict[str, str]:
        """The lexical index's fields for this tool."""
        return {"name": self.tool_id, "tags": " ".join(self.tags), "description": self.description or self.text,
                "parameters": self.parameters}


@dataclass(frozen=True, slots=True)
class Hit:
    id: str
    similarity: float
    payload: dict[str, Any]


def text_hash(text: str) -> str:
    """What a tool point's vector was embedded from, in short: a changed hash means embed again."""
    return hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=12).hexdigest()


def words_hash(doc: ToolDoc) -> str:
    """What a tool point's words were weighed from: a changed hash means tokenise again."""
    return text_hash("\x1f".join(f"{name}\x1e{text}" for name, text in doc.fields().items()))


_MODEL: Any = None
_MODEL_LOCK = threading.Lock()


def load_wordllama() -> Any:
    """The bundled weights, loaded once per process (read-only, so every runtime shares them)."""
    global _MODEL
    with _MODEL_LOCK:
        if _MODEL is None:
            wordllama = _import_wordllama()
            _MODEL = wordllama.WordLlama.load(cache_dir=Path(wordllama.__file__).parent, disable_download=True)
        return _MODEL


def _import_wordllama() -> Any:
    """`import wordllama`, without what its import does to the process: it calls `logging.basicConfig(level=INFO)`,
    which gave the root logger a stderr handler, so every library's INFO records (uvicorn's, the MCP SDK's with
    session ids) were printed onto the terminal, the dashboard or an MCP client's stderr log from then on."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    import wordllama

    for handler in root.handlers[:]:
        if handler not in handlers:
            root.removeHandler(handler)
    root.setLevel(level)
    return wordllama


class Embedder:
    """wordllama's bundled 256-dim weights, loaded without any download."""

    def __init__(self) -> None:
        self._model: Any = None
        #: texts embedded by this embedder so far (what a persisted index saves, tests and benchmarks read)
        self.texts_embedded = 0
        #: seconds spent embedding them
        self.seconds = 0.0

    def load(self) -> None:
        if self._model is None:
            self._model = load_wordllama()

    def fingerprint(self) -> str:
        """Which vectors this embedder makes: a persisted index made by another is not reused."""
        import usearch

        self.load()  # imports wordllama (`_import_wordllama`): here it is already loaded
        import wordllama

        shape = "x".join(str(n) for n in self._model.embedding.shape)
        return f"wordllama {getattr(wordllama, '__version__', '?')} {shape} norm; usearch {usearch.__version__} {INDEX_KIND}"

    def embed(self, texts: list[str]) -> Any:
        """Unit vectors (numpy float32, one row per text).

        Many texts are embedded shortest first: wordllama pads each batch of 64 to its longest
        text, so batches of texts of like length do ~25% less work (the vectors are identical)."""
        if self._model is None:
            self.load()
        start = time.perf_counter()
        if len(texts) > 64:
            import numpy as np

            order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
            vectors = np.empty((len(texts), DIM), dtype=np.float32)
            vectors[order] = self._model.embed([texts[i] for i in order], norm=True)
        else:
            vectors = self._model.embed(texts, norm=True)
        self.seconds += time.perf_counter() - start
        self.texts_embedded += len(texts)
        return vectors


#: Words saved with the tool index: (vocabulary, term ids, weights, point -> (words hash, start, end)).
SavedWords = tuple[list[str], Any, Any, dict[str, tuple[str, int, int]]]


def _payload(doc: ToolDoc) -> dict[str, Any]:
    return {"tool_id": doc.tool_id, "version": doc.version, "source": doc.source, "tags": list(doc.tags), "sink": doc.sink}


class SemanticMemory:
    """The two collections and the queries selection makes against them."""

    def __init__(self, *, url: str | None = None, api_key: str | None = None, prefix: str = "tooldeck",
                 index_path: Path | None = None) -> None:
        self.url = url
        #: where the embedded tool collection is persisted (None: in memory only; unused with a server)
        self.index_path = index_path if not url else None
        self._api_key = api_key
        self.tools_collection = f"{prefix}_tools"
        self.failures_collection = f"{prefix}_failures"
        #: the scenarios tool versions succeeded on (state/usage.py)
        self.usage_collection = f"{prefix}_usage"
        self.embedder = Embedder()
        self.client: Any = None
        self._lock = threading.RLock()
        # point id -> payload of every point this process wrote: queries ask the index for ids and
        # scores only (payloads written by another node sharing a Qdrant server are fetched once)
        self._payloads: dict[str, dict[str, Any]] = {}
        #: the embedded collections by name (no QDRANT_URL), once open
        self.embedded: dict[str, VectorCollection] | None = None
        #: the words of the same tools (per process, like the embedded vectors; also beside a Qdrant server)
        self.lexical = LexicalIndex()
        #: tool point id -> hash of the text its vector was embedded from (state/index_file persists it)
        self._text_hash: dict[str, str] = {}
        #: tool point id -> hash of the fields its words were weighed from (persisted beside the vectors)
        self._words_hash: dict[str, str] = {}
        #: words restored from the file, taken back by the first indexing of each unchanged tool
        self._saved_words: SavedWords | None = None
        #: the tool collection changed since it was last saved
        self.tools_dirty = False

    @property
    def collections(self) -> tuple[str, str, str]:
        return (self.tools_collection, self.failures_collection, self.usage_collection)

    @property
    def mode(self) -> str:
        if self.url:
            return f"server {self.url}"
        return f"embedded (usearch, persisted in {self.index_path})" if self.index_path else "embedded (usearch, in memory)"

    def open(self) -> None:
        with self._lock:
            if self.client is not None or self.embedded is not None:
                return
            if not self.url:
                self.embedded = {name: VectorCollection(DIM) for name in self.collections}
                return
            from qdrant_client import QdrantClient, models

            client = QdrantClient(url=self.url, api_key=self._api_key, timeout=10, check_compatibility=False)
            for name in self.collections:
                if not client.collection_exists(name):
                    client.create_collection(name, vectors_config=models.VectorParams(size=DIM, distance=models.Distance.COSINE))
            self.client = client

    def close(self) -> None:
        with self._lock:
            if self.client is not None:
                self.client.close()
                self.client = None

    def embed_one(self, text: str) -> Any:
        return self.embedder.embed([text])[0]

    # -- writes --------------------------------------------------------------------

    def _upsert(self, collection: str, ids: list[str], vectors: Any, payloads: list[dict[str, Any]]) -> None:
        with self._lock:
            if self.embedded is not None:
                self.embedded[collection].upsert(ids, vectors)
            else:
                from qdrant_client import models

                points = [models.PointStruct(id=i, vector=vectors[n].tolist(), payload=payloads[n]) for n, i in enumerate(ids)]
                self.client.upsert(collection, points, wait=True)
            self._payloads.update(zip(ids, payloads, strict=True))

    def _delete(self, collection: str, ids: list[str]) -> None:
        with self._lock:
            if self.embedded is not None:
                self.embedded[collection].delete(ids)
            else:
                from qdrant_client import models

                self.client.delete(collection, points_selector=models.PointIdsList(points=list(ids)), wait=True)
            for point_id in ids:
                self._payloads.pop(point_id, None)

    def upsert_tools(self, docs: list[ToolDoc], vectors: Any | None = None) -> None:
        """Embed (unless `vectors` are given) and index these tools, whether or not their text changed."""
        if not docs:
            return
        if vectors is None and self.embedded is not None and len(docs) > BULK_CHUNK:
            self._upsert_many(docs)
            return
        if vectors is None:
            vectors = self.embedder.embed([d.text for d in docs])
        ids = [tool_point_id(d.tool_id, d.version) for d in docs]
        payloads = [_payload(d) for d in docs]
        with self._lock:
            self._upsert(self.tools_collection, ids, vectors, payloads)
            for point, doc in zip(ids, docs, strict=True):
                self._index_words(point, doc)
                self._text_hash[point] = text_hash(doc.text)
            self.tools_dirty = True

    def _index_words(self, point: str, doc: ToolDoc) -> None:
        """The tool's words into the lexical index: taken back from the file when its fields are unchanged."""
        digest = words_hash(doc)
        saved = self._saved_words
        found = saved[3].get(point) if saved is not None else None
        if saved is not None and found is not None and found[0] == digest:
            vocabulary, term_ids, weights, _where = saved
            _digest, start, end = found
            self.lexical.upsert_weighted(point, dict(zip([vocabulary[i] for i in term_ids[start:end].tolist()],
                                                         weights[start:end].tolist(), strict=True)))
        else:
            self.lexical.upsert(point, doc.fields())
        if self._words_hash.get(point) != digest:
            self._words_hash[point] = digest
            self.tools_dirty = True

    def _upsert_many(self, docs: list[ToolDoc]) -> None:
        """Many tools into the embedded index, the three costs overlapped: usearch's inserts release
        the GIL and run on their own thread, chunk by chunk, while this thread embeds the next
        chunk and then indexes the words (at 100,000 tools each is ~10-25 s of CPU on its own)."""
        from concurrent.futures import ThreadPoolExecutor

        assert self.embedded is not None
        collection = self.embedded[self.tools_collection]
        ids = [tool_point_id(d.tool_id, d.version) for d in docs]
        with self._lock, ThreadPoolExecutor(1, thread_name_prefix="tooldeck-index-add") as adder:
            added = []
            for start in range(0, len(docs), BULK_CHUNK):
                vectors = self.embedder.embed([d.text for d in docs[start:start + BULK_CHUNK]])
                added.append(adder.submit(collection.upsert, ids[start:start + BULK_CHUNK], vectors))
            for point, doc in zip(ids, docs, strict=True):
                self._payloads[point] = _payload(doc)
                self._index_words(point, doc)
            for future in added:
                future.result()
            # only now that every vector is in: a hash says "this text's vector is held"
            self._text_hash.update((point, text_hash(doc.text)) for point, doc in zip(ids, docs, strict=True))
            self.tools_dirty = True

    def index_tools(self, docs: list[ToolDoc]) -> int:
        """Index these tools, embedding only those whose text the index does not already hold a
        vector of (new, or their text changed); their words and payloads are always refreshed.
        Returns how many were embedded."""
        stale: list[ToolDoc] = []
        fresh: list[ToolDoc] = []
        with self._lock:
            held = self._text_hash
            for doc in docs:
                same = held.get(tool_point_id(doc.tool_id, doc.version)) == text_hash(doc.text)
                (fresh if same else stale).append(doc)
        self.upsert_tools(stale)
        with self._lock:
            for doc in fresh:
                point = tool_point_id(doc.tool_id, doc.version)
                self._payloads[point] = _payload(doc)
                self._index_words(point, doc)
            self._saved_words = None  # only a restart's first indexing takes words back
        return len(stale)

    def tool_points(self) -> set[str]:
        """The tool points this process indexed or restored."""
        with self._lock:
            return set(self._text_hash)

    def delete_tools(self, keys: Iterable[tuple[str, str]]) -> None:
        self.delete_tool_points([tool_point_id(t, v) for t, v in keys])

    def delete_tool_points(self, ids: list[str]) -> None:
        if not ids:
            return
        with self._lock:
            self._delete(self.tools_collection, ids)
            for point_id in ids:
                self._text_hash.pop(point_id, None)
                self._words_hash.pop(point_id, None)
            self.lexical.delete(ids)
            self.tools_dirty = True

    # -- the persisted tool index ----------------------------------------------------

    def restore_tools(self) -> int:
        """Load the persisted tool collection (embedded mode, when a file exists); returns the points restored.

        A file that cannot be used (torn, corrupt, another format or embedder) is logged and left
        to be overwritten: the caller indexes the catalog from nothing, as on a first start."""
        if self.embedded is None or self.index_path is None:
            return 0
        path = self.index_path
        try:
            found = index_file.read(path)
            if found is None:
                return 0
            meta, blob = found
            fingerprint = self.embedder.fingerprint()
            if meta.get("embedder") != fingerprint or meta.get("dim") != DIM:
                raise IndexFileError(f"{path}: made by {meta.get('embedder')!r} ({meta.get('dim')} dimensions), "
                                     f"this runtime embeds with {fingerprint!r}")
            points = meta.get("points")
            if not isinstance(points, list) or not all(isinstance(p, list) and len(p) == 4 for p in points):
                raise IndexFileError(f"{path}: its point map is not a list of [point, label, text hash, words hash]")
            labels = {str(point): int(label) for point, label, _text, _words in points}
            hashes = {str(point): str(digest) for point, _label, digest, _words in points}
            try:
                vector_bytes = int(meta["vector_bytes"])
                words = self._read_words(meta, points, blob[vector_bytes:])
                self.embedded[self.tools_collection].load(blob[:vector_bytes], labels, int(meta.get("next", 0)))
            except (ValueError, TypeError, KeyError) as exc:
                raise IndexFileError(f"{path}: {exc}") from exc
        except IndexFileError as exc:
            log.warning("semantic memory: the persisted tool index is not used, rebuilding it from the catalog: %s", exc)
            return 0
        with self._lock:
            self._text_hash = hashes
            self._saved_words = words
            # the words' digests as saved, so that taking a tool's words back from the file changes
            # nothing to save (a restart over an unchanged catalog rewrote the whole file: ~2 s of
            # GIL-holding work at 100,000 tools, while selection had started serving)
            self._words_hash = {point: found[0] for point, found in words[3].items()} if words is not None else {}
            self.tools_dirty = False
        return len(hashes)

    def _read_words(self, meta: dict[str, Any], points: list[Any], blob: Any) -> SavedWords | None:
        """The saved words (None when weighed by another kind of lexical index); ValueError when they do not add up."""
        import numpy as np

        if meta.get("words") != self.lexical.kind:
            return None
        vocabulary = meta.get("terms")
        if not isinstance(vocabulary, list) or not all(isinstance(t, str) for t in vocabulary):
            raise ValueError("its word list is not a list of words")
        offsets = np.frombuffer(blob, dtype=np.int64, count=len(points) + 1)
        total = int(offsets[-1])
        term_ids = np.frombuffer(blob, dtype=np.int32, count=total, offset=offsets.nbytes)
        weights = np.frombuffer(blob, dtype=np.float32, count=total, offset=offsets.nbytes + term_ids.nbytes)
        if (offsets.nbytes + term_ids.nbytes + weights.nbytes != len(blob) or offsets[0] != 0 or bool(np.any(np.diff(offsets) < 0))
                or (total and (int(term_ids.min()) < 0 or int(term_ids.max()) >= len(vocabulary)))):
            raise ValueError("its saved words do not add up")
        where = {str(p[0]): (str(p[3]), int(offsets[n]), int(offsets[n + 1])) for n, p in enumerate(points)}
        return vocabulary, term_ids, weights, where

    @staticmethod
    def _encode_words(weighed: list[dict[str, float]]) -> tuple[list[str], bytes]:
        """(vocabulary, offsets + term ids + weights as bytes) of each point's weighted words, in order."""
        import numpy as np

        ids: dict[str, int] = {}
        term_ids: list[int] = []
        weights: list[float] = []
        offsets = [0]
        for words in weighed:
            for term, weight in words.items():
                term_ids.append(ids.setdefault(term, len(ids)))
                weights.append(weight)
            offsets.append(len(term_ids))
        return list(ids), (np.asarray(offsets, dtype=np.int64).tobytes() + np.asarray(term_ids, dtype=np.int32).tobytes()
                           + np.asarray(weights, dtype=np.float32).tobytes())

    def save_tools(self) -> bool:
        """Persist the tool collection when it changed since the last save (embedded mode); True when written."""
        if self.embedded is None or self.index_path is None:
            return False
        with self._lock:
            if not self.tools_dirty:
                return False
            blob, labels, next_label = self.embedded[self.tools_collection].dump()
            hashes, digests = dict(self._text_hash), dict(self._words_hash)
            weighed = [self.lexical.weighted(point) or {} for point in labels]  # replaced, never changed, on upsert
            self.tools_dirty = False
        vocabulary, words = self._encode_words(weighed)
        meta = {"embedder": self.embedder.fingerprint(), "dim": DIM, "next": next_label, "vector_bytes": len(blob),
                "words": self.lexical.kind, "terms": vocabulary,
                "points": [[point, label, hashes.get(point, ""), digests.get(point, "")] for point, label in labels.items()]}
        try:
            index_file.write(self.index_path, meta, bytes(blob) + words)
        except OSError as exc:
            with self._lock:
                self.tools_dirty = True
            log.warning("semantic memory: could not save the tool index to %s: %s", self.index_path, exc)
            return False
        return True

    def upsert_failures(self, items: list[dict[str, Any]]) -> None:
        """items: tool_id, version, scenario, severity, count, last_ts (aggregated per scenario)."""
        if not items:
            return
        vectors = self.embedder.embed([i["scenario"] for i in items])
        ids = [failure_point_id(i["tool_id"], i["version"], i["scenario"]) for i in items]
        self._upsert(self.failures_collection, ids, vectors, [dict(i) for i in items])

    def upsert_usage(self, items: list[dict[str, Any]], vectors: Any) -> None:
        """items: tool_id, version, scenario (normalised), count, last_ts, tool_point; vectors: their scenarios' (state/usage.py)."""
        if items:
            self._upsert(self.usage_collection, [usage_point_id(i["tool_id"], i["version"], i["scenario"]) for i in items],
                         vectors, items)

    def delete_usage(self, ids: list[str]) -> None:
        self._delete(self.usage_collection, ids)

    # -- reads ---------------------------------------------------------------------

    def _search(self, collection: str, vector: Any, limit: int, threshold: float | None) -> list[Hit]:
        with self._lock:
            if self.embedded is not None:
                found = self.embedded[collection].search(vector, limit, threshold)
                return [Hit(point, similarity, self._payloads.get(point, {})) for point, similarity in found]
            result = self.client.query_points(collection, query=vector, limit=limit, score_threshold=threshold,
                                              with_payload=False)
            payloads = self._payloads
            missing = [p.id for p in result.points if str(p.id) not in payloads]
            if missing:  # written by another node sharing the server: fetch those payloads once
                for record in self.client.retrieve(collection, ids=missing, with_payload=True):
                    payloads[str(record.id)] = record.payload or {}
        return [Hit(str(p.id), float(p.score), payloads.get(str(p.id), {})) for p in result.points]

    def search_tools(self, vector: Any, limit: int, threshold: float | None = None) -> list[Hit]:
        return self._search(self.tools_collection, vector, limit, threshold)

    def search_tools_lexical(self, text: str, limit: int) -> list[Hit]:
        """The tools whose words best match `text` (BM25; `Hit.similarity` holds the BM25 score)."""
        with self._lock:
            payloads = self._payloads
            return [Hit(str(h.key), h.score, payloads.get(str(h.key), {})) for h in self.lexical.search(text, limit)]

    def tool_similarities(self, vector: Any, ids: list[str]) -> dict[str, float]:
        """Cosine similarity of `vector` to the given tool points (for tools found by their words only)."""
        if not ids:
            return {}
        import numpy as np

        held, stored = self.tool_vectors(ids)
        query = np.asarray(vector, dtype=np.float32)
        return dict(zip(held, (stored @ (query / max(float(np.linalg.norm(query)), 1e-12))).tolist(), strict=True))

    def tool_vectors(self, ids: list[str]) -> tuple[list[str], Any]:
        """(the given tool points the collection holds, in order; their unit vectors as the rows of one matrix)."""
        import numpy as np

        with self._lock:
            if self.embedded is not None:
                return self.embedded[self.tools_collection].unit_vectors(ids)
            records = self.client.retrieve(self.tools_collection, ids=ids, with_payload=False, with_vectors=True) if ids else []
        by_id = {str(r.id): r.vector for r in records if r.vector is not None}
        held = [i for i in ids if i in by_id]
        matrix = np.array([by_id[i] for i in held], dtype=np.float32).reshape(len(held), -1)
        matrix /= np.maximum(np.linalg.norm(matrix, axis=1, keepdims=True), 1e-12)
        return held, matrix

    def search_usage(self, vector: Any, limit: int, threshold: float | None = None) -> list[Hit]:
        """The scenarios tool versions succeeded on most similar to `vector` (payload: tool_id, version, scenario)."""
        return self._search(self.usage_collection, vector, limit, threshold)

    def tool_payloads(self, ids: list[str]) -> dict[str, dict[str, Any]]:
        """The payloads of these tool points (fetched once from a shared server when another node wrote them)."""
        with self._lock:
            out = {i: self._payloads[i] for i in ids if i in self._payloads}
            missing = [i for i in ids if i not in out]
            if missing and self.client is not None:
                for record in self.client.retrieve(self.tools_collection, ids=missing, with_payload=True):
                    out[str(record.id)] = self._payloads[str(record.id)] = record.payload or {}
            return out

    def search_failures(self, vector: Any, limit: int, threshold: float | None = None) -> list[Hit]:
        """One query for the failure memory of every candidate at once (grouped by the caller)."""
        return self._search(self.failures_collection, vector, limit, threshold)

    def count(self, collection: str) -> int:
        with self._lock:
            if self.embedded is not None:
                return len(self.embedded[collection])
            return int(self.client.count(collection, exact=True).count)
