"""The embedded vector index: one collection of unit vectors keyed by point id, on usearch (HNSW).

Chosen by `tests/benchmarks/bench_index.py` on BFCL-derived catalogs (README, "Semantic
memory", has the table). Qdrant's local mode, embedded before, scores every point in numpy:
~9 ms a query at 10,000 tools and ~90 ms at 100,000 here, and it warns above 20,000. Exact
search (numpy) takes 12 ms at 100,000. The HNSW indexes answer in about a millisecond at
100,000: usearch (a wheel on PyPI, maintained) with `EXPANSION_SEARCH` 256 keeps 94% of the
exact top 32 there (its default, 64, kept 74%: the BFCL catalogs hold ~100 reworded copies of
each function, which crowd an HNSW graph); hnswlib (ef 64: 84%) builds from source (no wheel
for this Python); qdrant-edge is Qdrant's own engine (85%), but admits one process per shard on
disk and its Python API is beta. `QDRANT_URL` still selects a Qdrant server (state/memory.py).

In memory, one per process, kept current by the catalog's changes and the failure tail; the
tool collection is also persisted in the workspace (state/index_file.py, `dump`/`load` here)
so a restart embeds only what changed. usearch (~0.16 s) is imported here only, inside `VectorCollection`, on the
memory's background thread.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from typing import Any

#: HNSW parameters (usearch's names): links per node, and candidates examined per insert / per query.
CONNECTIVITY = 16
EXPANSION_ADD = 128
EXPANSION_SEARCH = 256
#: Vectors are stored as half floats: at 30,000 BFCL tools the same recall of the exact top 32
#: (0.988 vs 0.990) and Recall@5 (0.597) as f32, ~25% less CPU to build, half the memory and file.
#: `int8` built in half the CPU again but kept only 0.938 of the exact top 32.
DTYPE = "f16"
#: What a persisted index must have been built with to be loaded (state/memory.py's fingerprint).
KIND = f"{DTYPE} cos, connectivity {CONNECTIVITY}, expansion {EXPANSION_ADD}"


class VectorCollection:
    """Unit vectors by point id; cosine similarity; thread-safe."""

    def __init__(self, dim: int) -> None:
        self.dim = dim
        self._index = self._new_index()
        self._lock = threading.RLock()
        self._label: dict[str, int] = {}
        self._point: dict[int, str] = {}
        self._next = 0

    def _new_index(self) -> Any:
        from usearch.index import Index

        return Index(ndim=self.dim, metric="cos", dtype=DTYPE, connectivity=CONNECTIVITY, expansion_add=EXPANSION_ADD,
                     expansion_search=EXPANSION_SEARCH)

    def __len__(self) -> int:
        return len(self._label)

    def dump(self) -> tuple[bytearray, dict[str, int], int]:
        """(usearch's serialisation, label of each point id, next label): what `load` takes back."""
        with self._lock:
            return self._index.save(), dict(self._label), self._next

    def load(self, blob: Any, labels: dict[str, int], next_label: int) -> None:
        """Replace the content with a `dump`; ValueError (the collection unchanged) when the two disagree."""
        import numpy as np

        index = self._new_index()
        try:
            index.load(blob)
        except RuntimeError as exc:  # usearch: "Failed to read vectors" and the like
            raise ValueError(f"usearch could not read the index: {exc}") from exc
        if index.ndim != self.dim or len(index) != len(labels):
            raise ValueError(f"the index holds {len(index)} vectors of {index.ndim} dimensions, the map {len(labels)} of {self.dim}")
        keys = np.fromiter(labels.values(), dtype=np.uint64, count=len(labels))
        if labels and (int(keys.max()) >= next_label or len(np.unique(keys)) != len(keys) or not bool(np.all(index.contains(keys)))):
            raise ValueError("the label map repeats a label, names one the index does not hold or one past its next label")
        index.expansion_search = EXPANSION_SEARCH
        with self._lock:
            self._index = index
            self._label = dict(labels)
            self._point = {label: point for point, label in labels.items()}
            self._next = next_label

    def upsert(self, ids: list[str], vectors: Any) -> None:
        """Add the points, replacing any already held under the same id."""
        import numpy as np

        if not ids:
            return
        matrix = np.ascontiguousarray(vectors, dtype=np.float32).reshape(len(ids), self.dim)
        last = dict(zip(ids, range(len(ids)), strict=True))  # an id given twice in one call: its last vector wins
        rows = list(last.values())
        with self._lock:
            self._remove(list(last))
            labels = np.arange(self._next, self._next + len(rows), dtype=np.uint64)
            self._next += len(rows)
            # one thread: usearch's multi-threaded add of a chunk left a point unreachable by search
            # in ~1 of 5 builds of a 116-tool index (test_a_first_build_in_chunks_indexes_every_tool:
            # the exact nearest vector, absent from the top 5); never in 20 builds with one thread
            self._index.add(labels, matrix[rows], threads=1)
            for point, label in zip(last, labels.tolist(), strict=True):
                self._label[point] = label
                self._point[label] = point

    def delete(self, ids: Iterable[str]) -> None:
        with self._lock:
            self._remove(list(ids))

    def _remove(self, ids: list[str]) -> None:
        for point in ids:
            label = self._label.pop(point, None)
            if label is not None:
                self._point.pop(label, None)
                self._index.remove(label)

    def search(self, vector: Any, limit: int, threshold: float | None = None) -> list[tuple[str, float]]:
        """(point id, cosine similarity) of the `limit` nearest points, best first, at least `threshold` when given."""
        import numpy as np

        with self._lock:
            if not self._label or limit < 1:
                return []
            matches = self._index.search(np.asarray(vector, dtype=np.float32), min(limit, len(self._label)))
            out = []
            for label, distance in zip(matches.keys.tolist(), matches.distances.tolist(), strict=True):
                point = self._point.get(int(label))
                similarity = 1.0 - float(distance)
                if point is not None and (threshold is None or similarity >= threshold):
                    out.append((point, similarity))
            return out

    def unit_vectors(self, ids: list[str]) -> tuple[list[str], Any]:
        """(the given points this collection holds, in order; their unit vectors as rows of one float32 matrix)."""
        import numpy as np

        with self._lock:
            held = [(point, self._label[point]) for point in ids if point in self._label]
            if not held:
                return [], np.zeros((0, self.dim), dtype=np.float32)
            stored = np.asarray(self._index.get(np.array([label for _p, label in held], dtype=np.uint64)), dtype=np.float32)
        stored = stored.reshape(len(held), self.dim)
        stored /= np.maximum(np.linalg.norm(stored, axis=1, keepdims=True), 1e-12)
        return [point for point, _label in held], stored

