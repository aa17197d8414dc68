"""PostgreSQL benchmarks: acknowledged buffer writes (one and three writer processes), write_many,
event latency from one node to another's tail, and `tooldeck state migrate` of a large workspace.

Run: python tests/benchmarks/bench_postgres.py [--quick] [--only writes|events|migrate]
A PostgreSQL 16 server of its own (pgserver) with default settings (fsync on, synchronous_commit
on, as tooldeck runs). Every write figure is printed with its ratio to a baseline measured in the
same run on the same server: a bare psycopg loop inserting one row per transaction into a table of
the shape of buffer_items (one loop per writer process when three write).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
import warnings
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

ITEM = {"tool_id": "translator", "increment": 1}
ITEM_JSON = json.dumps(ITEM)


def line(label: str, value: str, note: str = "") -> None:
    print(f"{label:<62} {value:>16}  {note}".rstrip(), flush=True)


def verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


BARE = textwrap.dedent("""
    import json, sys, time
    import psycopg
    url, n, start_at, table = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), sys.argv[4]
    con = psycopg.connect(url, autocommit=True)
    con.execute(f"CREATE TABLE IF NOT EXISTS {table} (bkey BIGINT NOT NULL, seq BIGINT NOT NULL, ts DOUBLE PRECISION NOT NULL,"
                " data TEXT NOT NULL, PRIMARY KEY (bkey, seq))")
    item = '{"tool_id": "translator", "increment": 1}'
    time.sleep(max(0, start_at - time.time()))
    t0 = time.time()
    for i in range(n):
        con.execute(f"INSERT INTO {table}(bkey, seq, ts, data) VALUES (1, %s, %s, %s)", (i, time.time(), item))
    print(json.dumps({"start": t0, "end": time.time(), "n": n}))
""")

WRITER = textwrap.dedent("""
    import json, sys, time
    sys.path.insert(0, {repo!r})
    from tools.runtime import Runtime
    ws, n, start_at, buffer_id, how = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), sys.argv[4], sys.argv[5]
    from tools.buffers.engine import engine_for
    runtime = Runtime(ws)
    engine = engine_for(runtime)
    item = {{"tool_id": "translator", "increment": 1}}
    engine.write(buffer_id, item, flush_strategy="manual")
    payload = json.dumps({{"operation": "write", "buffer_id": buffer_id, "data": item}})
    time.sleep(max(0, start_at - time.time()))
    t0 = time.time()
    if how == "many":
        for _ in range(n // 100):
            engine.write_many(buffer_id, [item] * 100)
    elif how == "call_tool":
        for _ in range(n):
            runtime.call("buffer", payload)
    else:
        for _ in range(n):
            engine.write(buffer_id, item)
    t1 = time.time()
    print(json.dumps({{"start": t0, "end": t1, "n": n}}), flush=True)
    runtime.close()
""").format(repo=str(REPO))


def together(script: str, args_for: list[list[str]], env: dict[str, str], lead: float = 4.0) -> float:
    """Processes that start writing at the same wall-clock moment; aggregate rows/s."""
    start_at = time.time() + lead
    procs = [subprocess.Popen([sys.executable, "-c", script, *args[:2], str(start_at), *args[2:]], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for args in args_for]
    results = []
    for p in procs:
        out, err = p.communicate(timeout=900)
        if p.returncode != 0:
            raise SystemExit(f"writer process failed: {err[-2000:]}")
        results.append(json.loads(out.strip().splitlines()[-1]))
    total = sum(r["n"] for r in results)
    return total / (max(r["end"] for r in results) - min(r["start"] for r in results))


def workspace(root: Path, name: str) -> Path:
    ws = root / name
    (ws / "tools").mkdir(parents=True)
    return ws


def bench_writes(url: str, root: Path, n: int) -> None:
    env = {**os.environ, "TOOLDECK_DATABASE_URL": url}
    ws = workspace(root, "writes")
    base1 = together(BARE, [[url, str(n), "bare_one"]], env)
    one = together(WRITER, [[str(ws), str(n), "one", "each"]], env)
    line("bare psycopg loop, one row per transaction (baseline)", f"{base1:,.0f} rows/s")
    line("acknowledged buffer writes, 1 writer process", f"{one:,.0f} writes/s",
         f"{one / base1:.2f}x baseline (target >= 0.5x) {verdict(one / base1 >= 0.5)}")
    base3 = together(BARE, [[url, str(n), f"bare_three_{k}"] for k in range(3)], env)
    three = together(WRITER, [[str(ws), str(n), f"three_{k}", "each"] for k in range(3)], env)
    line("three bare loops at once (baseline)", f"{base3:,.0f} rows/s")
    line("acknowledged buffer writes, 3 writer processes", f"{three:,.0f} writes/s",
         f"{three / base3:.2f}x baseline (target >= 0.5x) {verdict(three / base3 >= 0.5)}")
    via_tool = together(WRITER, [[str(ws), str(n), "one", "call_tool"]], env)
    line("  the same through call_tool(\"buffer\", json) (hooks, records)", f"{via_tool:,.0f} writes/s",
         f"{via_tool / base1:.2f}x baseline")
    many = together(WRITER, [[str(ws), str(n * 10), "many", "many"]], env)
    line("write_many, 100 items per call, 1 writer process", f"{many:,.0f} items/s",
         f"{many / base1:.1f}x the one-row loop (target >= 10x) {verdict(many / base1 >= 10)}")


EMITTER = textwrap.dedent("""
    import sys, time
    sys.path.insert(0, {repo!r})
    from tools.runtime import Runtime
    ws, n, gap = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
    with Runtime(ws, label="node b") as rt:
        rt.events.emit("bench.ready")
        time.sleep(1.0)
        for i in range(n):
            rt.events.emit("bench.ping", i=i, t=time.time())
            time.sleep(gap)
""").format(repo=str(REPO))


def bench_events(url: str, root: Path, n: int) -> None:
    """Node b emits; node a (this process) tails with the store's wake-up and measures emit-to-seen."""
    os.environ["TOOLDECK_DATABASE_URL"] = url
    from tools.runtime import Runtime

    a, b = workspace(root, "node-a"), workspace(root, "node-b")
    rt = Runtime(a)
    try:
        after = rt.events.last_id()
        emitter = subprocess.Popen([sys.executable, "-c", EMITTER, str(b), str(n), "0.02"], env=dict(os.environ))
        latencies: list[float] = []
        deadline = time.monotonic() + 120
        while len(latencies) < n and time.monotonic() < deadline:
            for event in rt.events.tail(after, limit=1000):
                after = event.id
                if event.kind == "bench.ping":
                    latencies.append((time.time() - float(event.payload["t"])) * 1000)
            rt.events.wait(1.0)
        emitter.wait(60)
    finally:
        rt.close()
    latencies.sort()
    p50 = statistics.median(latencies)
    p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))]
    line(f"event on node b to node a's tail ({len(latencies)} events)", f"p50 {p50:.1f} ms",
         f"p99 {p99:.1f} ms (target p99 <= 250 ms) {verdict(p99 <= 250 and len(latencies) == n)}")


def bench_migrate(url: str, root: Path, events: int, items: int) -> None:
    from state.buffers import BufferTables
    from state.migrate import migrate_sqlite_to_postgres
    from state.sqlite import SqliteStore

    ws = workspace(root, "big")
    home = ws / ".tooldeck"
    store = SqliteStore(home / "tooldeck.db")
    now = time.time()
    with store.tx() as con:
        con.executemany("INSERT INTO events(ts, pid, session, kind, tool_id, version, payload) VALUES (?,?,?,?,?,?,?)",
                        [(now - i, 1, "s-bench", "tool.failure", "csv_parser", "1.0.0", json.dumps({"i": i, "error": "x" * 80}))
                         for i in range(events)])
    tables = BufferTables(store, "s-bench")
    config = tables.configure("pending", {"flush_strategy": "manual"})
    for start in range(0, items, 1000):
        tables.append_many(config.bkey, [ITEM_JSON] * min(1000, items - start), now)
    store.close()
    started = time.perf_counter()
    report = migrate_sqlite_to_postgres(home, url)
    took = time.perf_counter() - started
    assert report.counts["events"] == events and report.counts["buffer_items"] == items, report.counts
    line(f"tooldeck state migrate: {events:,} events, {items:,} pending items", f"{took:.2f} s",
         f"({(events + items) / took:,.0f} rows/s)")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--only", choices=("writes", "events", "migrate"), help="one part of the benchmark")
    args = parser.parse_args()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import pgserver
        import psycopg

        folder = Path(tempfile.mkdtemp(prefix="tooldeck-bench-pg-"))
        server = pgserver.get_server(folder / "pgdata", cleanup_mode="stop")
    root = folder / "work"
    root.mkdir()
    try:
        admin = psycopg.connect(server.get_uri(), autocommit=True)
        settings = {k: admin.execute(f"SHOW {k}").fetchone()[0] for k in ("fsync", "synchronous_commit", "server_version")}
        print(f"PostgreSQL {settings['server_version']} (pgserver), fsync={settings['fsync']}, "
              f"synchronous_commit={settings['synchronous_commit']}, {os.cpu_count()} CPUs", flush=True)
        for name in ("writes", "events", "migrate"):
            admin.execute(f"CREATE DATABASE {name}")
        n = 500 if args.quick else 2000
        if args.only in (None, "writes"):
            bench_writes(server.get_uri("writes"), root, n)
        if args.only in (None, "events"):
            bench_events(server.get_uri("events"), root, 100 if args.quick else 300)
        if args.only in (None, "migrate"):
            bench_migrate(server.get_uri("migrate"), root, 20_000 if args.quick else 100_000, 2_000 if args.quick else 10_000)
        admin.close()
    finally:
        server.cleanup()
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
