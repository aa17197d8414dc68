"""Embedded vector indexes side by side on BFCL-derived tool catalogs (issue 25): which one to embed.

The catalogs are bench_bfcl.py's (BFCL functions a question expects, the other BFCL functions,
renamed and reworded distractors), embedded once with wordllama as selection embeds them. Each
candidate index then runs in its own process (so its memory is its own) over the same vectors:

- build: cold build of N tools; add1: incremental add of one more (mean of 20)
- q p50/p95: one query, top 32, for each sampled BFCL question (the question embedded beforehand)
- RSS: the process's peak resident memory growth over holding the vectors alone
- recall@32: share of the exact (numpy) top 32 the index returns; BFCL R@5: the question's
  tool in the index's top 5 (the embedding alone, no words, no selection rules)

Candidates: numpy exact search (a float32 matrix, one matrix-vector product), Qdrant local mode
(qdrant-client, what tooldeck embedded before), qdrant-edge (Qdrant's engine in-process), usearch
(as tooldeck embeds it: state/vectors.py),
hnswlib and sqlite-vec (brute force inside SQLite). Install the ones to compare (benchmark only):
    .venv/bin/pip install --no-deps bfcl-eval && .venv/bin/pip install usearch hnswlib sqlite-vec qdrant-edge-py
Run: .venv/bin/python tests/benchmarks/bench_index.py [--sizes 10000,100000] [--indexes numpy,usearch,...]

`--persisted` measures tooldeck's own index instead (state/memory_service.py's MemoryService over a real
SQLite store, the tool index persisted by state/index_file.py): the cold build of N tools, a
restart over the file it saved, and the incremental add of one tool, against a baseline measured
in the same run (the build as it was before the index was persisted: embed every text as
wordllama does, insert every vector into an f32 usearch index with the same HNSW parameters,
then index every tool's words, one after the other). Issue 25's targets: cold
<= 60 s at 100,000 tools, add of one <= 10 ms.
    .venv/bin/python tests/benchmarks/bench_index.py --persisted --sizes 100000
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
for entry in (str(ROOT), str(Path(__file__).parent)):
    if entry not in sys.path:
        sys.path.insert(0, entry)

DIM = 256
K = 32
INDEXES = ("numpy", "qdrant_local", "qdrant_edge", "usearch", "hnswlib", "sqlite_vec")


def peak_mb() -> float:
    """This process's peak resident memory (VmHWM: unlike ru_maxrss, not inherited from the parent across exec)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# -- the candidates: build(vectors) -> index; add(index, id, vector); query(index, vector, k) -> ids -----------

class Numpy:
    def build(self, vectors: Any) -> None:
        import numpy as np

        self.matrix = np.ascontiguousarray(vectors, dtype=np.float32)

    def add(self, i: int, vector: Any) -> None:
        import numpy as np

        self.matrix = np.vstack([self.matrix, vector[None, :]])  # a real index would grow by chunks

    def query(self, vector: Any, k: int) -> list[int]:
        import numpy as np

        scores = self.matrix @ vector
        top = np.argpartition(-scores, k)[:k]
        return top[np.argsort(-scores[top])].tolist()


class QdrantLocal:
    def build(self, vectors: Any) -> None:
        from qdrant_client import QdrantClient, models

        self.models = models
        self.client = QdrantClient(":memory:")
        self.client.create_collection("t", vectors_config=models.VectorParams(size=DIM, distance=models.Distance.COSINE))
        for start in range(0, len(vectors), 2000):
            chunk = vectors[start:start + 2000]
            self.client.upsert("t", [models.PointStruct(id=start + n, vector=v.tolist()) for n, v in enumerate(chunk)], wait=True)

    def add(self, i: int, vector: Any) -> None:
        self.client.upsert("t", [self.models.PointStruct(id=i, vector=vector.tolist())], wait=True)

    def query(self, vector: Any, k: int) -> list[int]:
        query = self.models.NearestQuery.model_construct(nearest=vector)  # as state/memory.py queries it
        return [p.id for p in self.client.query_points("t", query=query, limit=k, with_payload=False).points]


class QdrantEdge:
    def build(self, vectors: Any) -> None:
        import qdrant_edge as q

        self.q = q
        self.dir = tempfile.mkdtemp(prefix="bench-edge-")
        self.shard = q.EdgeShard.create(self.dir, q.EdgeConfig(vectors=q.EdgeVectorParams(size=DIM, distance=q.Distance.Cosine)))
        for start in range(0, len(vectors), 2000):
            points = [q.Point(start + n, v.tolist()) for n, v in enumerate(vectors[start:start + 2000])]
            self.shard.update(q.UpdateOperation.upsert_points(points))
        self.shard.optimize()

    def add(self, i: int, vector: Any) -> None:
        self.shard.update(self.q.UpdateOperation.upsert_points([self.q.Point(i, vector.tolist())]))

    def query(self, vector: Any, k: int) -> list[int]:
        request = self.q.QueryRequest(limit=k, query=self.q.Query.Nearest(vector.tolist()), with_payload=False)
        return [p.id for p in self.shard.query(request)]


class Usearch:
    """What tooldeck embeds: state/vectors.VectorCollection (usearch HNSW, its parameters)."""

    def build(self, vectors: Any) -> None:
        from state.vectors import VectorCollection

        self.index = VectorCollection(DIM)
        self.index.upsert([str(i) for i in range(len(vectors))], vectors)

    def add(self, i: int, vector: Any) -> None:
        self.index.upsert([str(i)], vector[None, :])

    def query(self, vector: Any, k: int) -> list[int]:
        return [int(point) for point, _similarity in self.index.search(vector, k)]


class Hnswlib:
    def build(self, vectors: Any) -> None:
        import hnswlib
        import numpy as np

        self.index = hnswlib.Index(space="cosine", dim=DIM)
        self.index.init_index(max_elements=len(vectors) + 100, ef_construction=200, M=16)
        self.index.add_items(vectors, np.arange(len(vectors)))
        self.index.set_ef(64)

    def add(self, i: int, vector: Any) -> None:
        self.index.add_items(vector[None, :], [i])

    def query(self, vector: Any, k: int) -> list[int]:
        labels, _ = self.index.knn_query(vector, k=k)
        return labels[0].tolist()


class SqliteVec:
    def build(self, vectors: Any) -> None:
        import sqlite3

        import sqlite_vec

        self.con = sqlite3.connect(":memory:")
        if not hasattr(self.con, "enable_load_extension"):
            raise RuntimeError("this Python's sqlite3 was built without extension loading (sqlite-vec cannot load)")
        self.con.enable_load_extension(True)
        sqlite_vec.load(self.con)
        self.con.execute(f"CREATE VIRTUAL TABLE t USING vec0(embedding float[{DIM}] distance_metric=cosine)")
        self.con.executemany("INSERT INTO t(rowid, embedding) VALUES (?, ?)", ((i, v.tobytes()) for i, v in enumerate(vectors)))

    def add(self, i: int, vector: Any) -> None:
        self.con.execute("INSERT INTO t(rowid, embedding) VALUES (?, ?)", (i, vector.tobytes()))

    def query(self, vector: Any, k: int) -> list[int]:
        rows = self.con.execute("SELECT rowid FROM t WHERE embedding MATCH ? AND k = ? ORDER BY distance", (vector.tobytes(), k))
        return [r[0] for r in rows]


CLASSES = {"numpy": Numpy, "qdrant_local": QdrantLocal, "qdrant_edge": QdrantEdge, "usearch": Usearch, "hnswlib": Hnswlib,
           "sqlite_vec": SqliteVec}


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


def run_one(name: str, data: Path) -> dict[str, Any]:
    """In a fresh process: build `name` over the saved vectors, time it, query it, measure it."""
    import numpy as np

    saved = np.load(data)
    vectors, queries, wanted, extra = saved["vectors"], saved["queries"], saved["wanted"], saved["extra"]
    base = peak_mb()
    index = CLASSES[name]()
    t = time.perf_counter()
    index.build(vectors)
    build = time.perf_counter() - t
    adds = []
    for n, vector in enumerate(extra):
        t = time.perf_counter()
        index.add(len(vectors) + n, vector)
        adds.append(time.perf_counter() - t)
    exact = Numpy()
    exact.build(np.vstack([vectors, extra]))
    for vector in queries[:20]:  # warm up (first-touch of pages, lazy initialisation)
        index.query(vector, K)
    latencies, overlap, hits = [], [], 0
    for vector, want in zip(queries, wanted, strict=True):
        t = time.perf_counter()
        got = index.query(vector, K)
        latencies.append((time.perf_counter() - t) * 1000)
        truth = exact.query(vector, K)
        overlap.append(len(set(got) & set(truth)) / K)
        hits += int(want) in got[:5]
    return {"build_s": build, "add_ms": statistics.mean(adds) * 1000, "p50": statistics.median(latencies), "p95": pct(latencies, 0.95),
            "rss_mb": peak_mb() - base, "recall32": statistics.mean(overlap), "r5": hits / len(queries)}


def catalog_vectors(n: int, functions: dict[str, Any], sample: list[tuple[str, str]], seed: int, out: Path) -> None:
    """bench_bfcl's catalog of `n` tools, embedded as selection embeds it (tool_doc's text), saved with the questions."""
    import bench_bfcl as bfcl
    import numpy as np

    from state.memory import Embedder
    from tools.catalog.manifest import Manifest
    from tools.recovery.selection import tool_doc

    expected = {t for _q, t in sample}
    rng = random.Random(seed)
    docs: list[tuple[str, dict[str, Any]]] = []
    for tid in (sorted(expected) + sorted(set(functions) - expected))[:n]:
        docs.append((tid, bfcl.manifest(tid, functions[tid], str(functions[tid].get("description", "")))))
    pool = sorted(set(functions) - expected)
    ids = {tid for tid, _m in docs}
    k = 0
    while len(docs) < n + 20:  # 20 more for the incremental adds
        src = pool[k % len(pool)]
        k += 1
        tid = bfcl.tool_id(f"{rng.choice(bfcl.PREFIXES)}_{k}_{src}")
        if tid not in ids:
            ids.add(tid)
            docs.append((tid, bfcl.manifest(tid, functions[src], bfcl.reword(str(functions[src].get("description", "")), rng))))
    texts = []
    for tid, raw in docs:
        entry = SimpleNamespace(tool_id=tid, manifest=Manifest.model_validate(raw), served_version="1.0.0", source="workspace")
        texts.append(tool_doc(entry).text)
    embedder = Embedder()
    vectors = np.asarray(embedder.embed(texts), dtype=np.float32)
    position = {tid: i for i, (tid, _m) in enumerate(docs)}
    queries = np.asarray(embedder.embed([q for q, _t in sample]), dtype=np.float32)
    np.savez(out, vectors=vectors[:n], extra=vectors[n:], queries=queries, wanted=np.array([position[t] for _q, t in sample]))


def persisted_docs(n: int, functions: dict[str, Any], seed: int) -> tuple[list[Any], list[Any]]:
    """Catalog entries (as the runtime's catalog holds them) of bench_bfcl's catalog of `n` tools, and 100 more."""
    import bench_bfcl as bfcl

    from tools.catalog.manifest import Manifest

    rng = random.Random(seed)
    pool = sorted(functions)
    entries = []
    for k in range(n + 100):
        src = pool[k % len(pool)]
        tid = bfcl.tool_id(f"{rng.choice(bfcl.PREFIXES)}_{k}_{src}") if k >= len(pool) else src
        raw = bfcl.manifest(tid, functions[src], bfcl.reword(str(functions[src].get("description", "")), rng) if k >= len(pool)
                            else str(functions[src].get("description", "")))
        entries.append(SimpleNamespace(tool_id=tid, manifest=Manifest.model_validate(raw), served_version="1.0.0", source="workspace"))
    return entries[:n], entries[n:]


def bench_persisted(n: int, functions: dict[str, Any], sample: list[tuple[str, str]], seed: int, tmp: Path) -> None:
    """Cold build, restart and add of one for tooldeck's persisted index, against the old sequential build."""
    import os
    import threading

    import numpy as np
    from usearch.index import Index

    from state import vectors as vectors_module
    from state.db import open_store
    from state.lexical import LexicalIndex
    from state.memory import SemanticMemory, load_wordllama, tool_point_id
    from state.memory_service import MemoryService
    from tools.recovery.selection import tool_doc

    entries, extra = persisted_docs(n, functions, seed)
    load_wordllama()  # loaded once per process in a runtime too; not part of the build

    # baseline: how the index was built before (main's MemoryService.reindex: embed all, insert all, then the words)
    load_before = os.getloadavg()[0]
    t, c = time.perf_counter(), time.process_time()
    docs = [d for d in map(tool_doc, entries) if d is not None]
    vectors = load_wordllama().embed([d.text for d in docs], norm=True)  # as main's Embedder did: unsorted
    collection = Index(ndim=DIM, metric="cos", dtype="f32", connectivity=vectors_module.CONNECTIVITY,
                       expansion_add=vectors_module.EXPANSION_ADD, expansion_search=vectors_module.EXPANSION_SEARCH)
    collection.add(np.arange(len(docs), dtype=np.uint64), vectors)  # main's f32 index, one call
    words = LexicalIndex()
    for d in docs:
        words.upsert(tool_point_id(d.tool_id, d.version), d.fields())
    baseline, baseline_cpu = time.perf_counter() - t, time.process_time() - c
    del vectors, collection, words, docs

    store = open_store(tmp / "home")
    path = tmp / "home" / "index" / "bench.tools"
    finished = threading.Event()
    finished.set()

    def service() -> MemoryService:
        def all_docs() -> list[Any]:
            return [d for d in map(tool_doc, entries) if d is not None]

        memory = SemanticMemory(index_path=path)
        return MemoryService(memory, store, all_docs=all_docs, doc_for=lambda _t, _v: None, catalog_finished=finished)

    cpu: list[float] = []

    def build(svc: MemoryService) -> float:
        t, c = time.perf_counter(), time.process_time()
        svc.start()
        svc.wait_ready(1800)
        cpu.append(time.process_time() - c)  # every thread of this process: what 2 idle cores would need / 2
        return time.perf_counter() - t

    cold_service = service()
    cold = build(cold_service)
    cold_embedded = cold_service.memory.embedder.texts_embedded
    cold_service.stop(600)  # saved after the build (or now)
    saved_mb = path.stat().st_size / 1e6
    questions = [cold_service.memory.embed_one(q) for q, _t in sample[:100]]
    cold_top = [[h.id for h in cold_service.memory.search_tools(v, 5)] for v in questions]
    timings = cold_service.timings
    del cold_service

    warm_service = service()
    restart = build(warm_service)
    memory = warm_service.memory
    restart_embedded, tokenised = memory.embedder.texts_embedded, memory.lexical.tokenised
    same = statistics.mean(len(set(a) & {h.id for h in memory.search_tools(v, 5)}) / 5 for a, v in zip(cold_top, questions, strict=True))
    adds, bare = [], []
    for entry in extra[:50]:
        doc = tool_doc(entry)
        t = time.perf_counter()
        memory.index_tools([doc])
        adds.append((time.perf_counter() - t) * 1000)
    for entry in extra[50:]:
        doc = tool_doc(entry)
        vector = memory.embed_one(doc.text)[None, :]
        t = time.perf_counter()
        memory.upsert_tools([doc], vector)
        bare.append((time.perf_counter() - t) * 1000)
    add, add50, add95 = statistics.mean(adds), statistics.median(adds), pct(adds, 0.95)
    warm_service.stop(600)
    store.close()
    print(f"{n} tools: restart: {tokenised} tools' words tokenised, the others taken back from the file")
    print(f"{n} tools: build stages (cold): embed {timings.embed:.1f} s, insert + words (overlapped) {timings.upsert:.1f} s; "
          f"file {saved_mb:.0f} MB saved in {timings.extra.get('save', 0):.2f} s; {cold_embedded} texts embedded")
    print(f"index build for {n:,} tools, cold {cold:.1f} s (target <= 60 s {'PASS' if cold <= 60 else 'FAIL'}) / restart with "
          f"persisted index {restart:.1f} s ({restart_embedded} texts embedded, "
          f"{warm_service.timings.extra.get('restored', 0):.0f} points restored in {warm_service.timings.extra.get('restore', 0):.1f} s) / "
          f"incremental add of one {add50:.2f} ms (median of 50, embedding included; mean {add:.2f}, p95 {add95:.2f} ms; "
          f"target <= 10 ms {'PASS' if add50 <= 10 else 'FAIL'}), {statistics.median(bare):.2f} ms without embedding")
    print(f"{n} tools: baseline (the build before persistence, sequential, same run) {baseline:.1f} s: cold {baseline / cold:.2f}x "
          f"faster, restart {baseline / restart:.1f}x faster; top 5 after restart = top 5 before: {same:.3f}")
    print(f"{n} tools: CPU seconds (all threads): baseline {baseline_cpu:.1f}, cold {cpu[0]:.1f}, restart {cpu[1]:.1f}; "
          f"load average {load_before:.1f} before, {os.getloadavg()[0]:.1f} after (2 cores, shared)")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--persisted", action="store_true", help="tooldeck's persisted index: cold build, restart, add of one")
    parser.add_argument("--sizes", default="10000,100000")
    parser.add_argument("--indexes", default=",".join(INDEXES))
    parser.add_argument("--questions", type=int, default=300)
    parser.add_argument("--seed", type=int, default=5)
    parser.add_argument("--one", help=argparse.SUPPRESS)
    parser.add_argument("--data", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(run_one(args.one, Path(args.data))))
        return
    import bench_bfcl as bfcl

    functions, questions = bfcl.load(bfcl.data_dir())
    sample = random.Random(args.seed).sample(questions, min(args.questions, len(questions)))
    if args.persisted:
        for n in (int(s) for s in args.sizes.split(",")):
            with tempfile.TemporaryDirectory(prefix="bench-index-persisted-") as tmp:
                bench_persisted(n, functions, sample, args.seed, Path(tmp))
        return
    print(f"BFCL: {len(functions)} functions, {len(sample)} questions; top {K} per query; each index in its own process")
    print(f"{'tools':>7} {'index':<13} {'build s':>8} {'add1 ms':>8} {'q p50 ms':>9} {'q p95 ms':>9} {'RSS MB':>7} "
          f"{'recall@32':>9} {'BFCL R@5':>8}")
    with tempfile.TemporaryDirectory(prefix="bench-index-") as tmp:
        for n in (int(s) for s in args.sizes.split(",")):
            data = Path(tmp) / f"vectors-{n}.npz"
            t = time.perf_counter()
            catalog_vectors(n, functions, sample, args.seed, data)
            print(f"{n:>7} (catalog built and embedded in {time.perf_counter() - t:.1f} s)")
            for name in args.indexes.split(","):
                run = subprocess.run([sys.executable, __file__, "--one", name, "--data", str(data)], capture_output=True, text=True,
                                     timeout=1800)
                if run.returncode != 0:
                    print(f"{n:>7} {name:<13} failed: {(run.stderr.strip().splitlines() or ['?'])[-1][:100]}")
                    continue
                r = json.loads(run.stdout.strip().splitlines()[-1])
                print(f"{n:>7} {name:<13} {r['build_s']:>8.2f} {r['add_ms']:>8.2f} {r['p50']:>9.3f} {r['p95']:>9.3f} {r['rss_mb']:>7.0f} "
                      f"{r['recall32']:>9.3f} {r['r5']:>8.3f}", flush=True)


if __name__ == "__main__":
    main()
