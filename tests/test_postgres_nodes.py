"""Three processes as three nodes: separate workspace folders (each with the same catalog), one
PostgreSQL database. Writers and flushers on every node, kill -9 at seeded random moments, a
flusher killed mid-lease, an approval on one node serving on another, the database stopped and
restarted under load."""

from __future__ import annotations

import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.buffer_helpers import wait_for
from tests.evolution_helpers import greet_answer, greet_tool, settings
from tests.helpers import python_tool, state_rows
from tests.messages_server import anthropic_server_fixture, messages_server_fixture  # noqa: F401

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow

#: The pass-through tool of every node: logs each delivery (node, batch id, item) into one SQLite file
#: all nodes share (TOOLDECK_SINK_DB), after an "attempt" row; sleeps while <sink dir>/hold-<node> exists.
NODE_SINK = '''
import json, os, sqlite3, time
from pathlib import Path

def store(data):
    db = Path(os.environ["TOOLDECK_SINK_DB"])
    node = os.environ.get("TOOLDECK_TEST_NODE", "?")
    meta = data["buffer_metadata"]
    con = sqlite3.connect(db, timeout=60, isolation_level=None)
    try:
        con.execute("PRAGMA journal_mode=WAL")
        con.execute("CREATE TABLE IF NOT EXISTS attempts (node TEXT, batch_id TEXT, ts REAL)")
        con.execute("CREATE TABLE IF NOT EXISTS delivered (node TEXT, batch_id TEXT, item TEXT, ts REAL)")
        con.execute("INSERT INTO attempts VALUES (?,?,?)", (node, meta["batch_id"], time.time()))
        hold = db.parent / f"hold-{node}"
        while hold.exists():
            time.sleep(0.05)
        con.execute("BEGIN IMMEDIATE")
        con.executemany("INSERT INTO delivered VALUES (?,?,?,?)",
                        [(node, meta["batch_id"], json.dumps(item), time.time()) for item in data["buffered_items"]])
        con.execute("COMMIT")
    finally:
        con.close()
    return {"stored": len(data["buffered_items"])}
'''

SETTINGS = """
[buffers]
max_attempts = 20
backoff_base_seconds = 0.05
backoff_max_seconds = 0.5
lease_seconds = {lease}
poll_seconds = 0.05
[circuit]
consecutive_failures = 100000
min_calls = 100000
"""

#: A writer node: writes `n` items one at a time; prints each only once the write returned (acknowledged).
WRITER = r"""
import json, sys, time
from tools import Runtime
ws, tag, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
with Runtime(ws, label="writer " + tag) as rt:
    for i in range(n):
        item = f"{tag}-{i}"
        try:
            rt.call("buffer", {"operation": "write", "buffer_id": "shared", "data": item})
        except Exception as exc:
            print("ERR " + str(exc).splitlines()[0], flush=True)
            time.sleep(0.05)
            continue
        print("OK " + item, flush=True)
    print("DONE", flush=True)
"""


def node_workspace(root: Path, name: str, lease: float = 2.0) -> Path:
    ws = root / f"node-{name}"
    python_tool(ws / "tools", "node_sink", NODE_SINK, func="store", timeout=120)
    (ws / "tooldeck.toml").write_text(SETTINGS.format(lease=lease))
    return ws


def node_env(sink_db: Path, name: str) -> dict[str, str]:
    return {**os.environ, "TOOLDECK_SINK_DB": str(sink_db), "TOOLDECK_TEST_NODE": name}


def start_serve(ws: Path, env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", "tools", "--workspace", str(ws), "serve"], cwd=REPO, env=env,
                            stdout=subprocess.DEVNULL, stderr=(ws / "serve.err").open("ab"))


def start_writer(ws: Path, env: dict[str, str], tag: str, n: int, out: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-c", WRITER, str(ws), tag, str(n)], cwd=ws.parent, env=env,
                            stdout=out.open("w"), stderr=(ws / f"writer-{tag}.err").open("w"))


def configure_shared(ws: Path, env: dict[str, str]) -> None:
    code = ("import sys; from tools import Runtime\n"
            "with Runtime(sys.argv[1]) as rt:\n"
            "    rt.call('buffer', {'operation': 'configure', 'buffer_id': 'shared', 'flush_strategy': 'batched',"
            " 'max_size': 20, 'flush_interval_seconds': 0.3, 'pass_through_tool': 'node_sink'})\n")
    subprocess.run([sys.executable, "-c", code, str(ws)], cwd=ws.parent, env=env, check=True, timeout=120)


def write_items(ws: Path, n: int) -> None:
    """Acknowledged items written by the buffer tables alone (no runtime, so no flusher of the writer's own)."""
    from state.buffers import BufferTables
    from state.db import database_url, open_store

    store = open_store(ws / ".tooldeck", url=database_url(), pool_size=1)
    try:
        tables = BufferTables(store, "s-test")
        config = tables.ensure("shared")
        result = tables.append_many(config.bkey, [json.dumps(i) for i in range(n)], store.now())
        assert result.written == n
    finally:
        store.close()


def sink_rows(sink_db: Path, sql: str) -> list[tuple[Any, ...]]:
    if not sink_db.exists():
        return []
    con = sqlite3.connect(sink_db, timeout=60)
    try:
        return con.execute(sql).fetchall()
    except sqlite3.OperationalError:  # no table yet
        return []
    finally:
        con.close()


def acked(out: Path) -> set[str]:
    return {line[3:] for line in out.read_text().splitlines() if line.startswith("OK ")} if out.exists() else set()


def held_by_buffer(ws: Path) -> set[str]:
    return {json.loads(r["data"]) for r in state_rows(
        ws, "SELECT i.data FROM buffer_items i JOIN buffers b ON b.bkey = i.bkey WHERE b.buffer_id='shared'")}


def stop(procs: list[subprocess.Popen[bytes]]) -> None:
    for p in procs:
        if p.poll() is None:
            p.terminate()
    for p in procs:
        try:
            p.wait(timeout=30)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def test_three_nodes_kill_9_of_writers_and_flushers_loses_nothing_acknowledged(pg_cluster, tmp_path: Path,
                                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    name = pg_cluster.create()
    monkeypatch.setenv("TOOLDECK_DATABASE_URL", pg_cluster.url(name))
    seed = int(os.environ.get("TOOLDECK_CHAOS_SEED", random.randrange(1 << 30)))
    print(f"chaos seed {seed} (TOOLDECK_CHAOS_SEED={seed} repeats this run)")
    rng = random.Random(seed)
    sink_db = tmp_path / "sink" / "sink.db"
    sink_db.parent.mkdir()
    nodes = {n: node_workspace(tmp_path, n) for n in "abc"}
    envs = {n: node_env(sink_db, n) for n in nodes}
    configure_shared(nodes["a"], envs["a"])
    servers = {n: start_serve(nodes[n], envs[n]) for n in nodes}
    writers: dict[str, subprocess.Popen[bytes]] = {}
    outs: list[Path] = []
    generation = {n: 0 for n in nodes}

    def new_writer(n: str) -> None:
        generation[n] += 1
        tag = f"{n}{generation[n]}"
        out = tmp_path / f"writer-{tag}.out"
        outs.append(out)
        writers[n] = start_writer(nodes[n], envs[n], tag, 400, out)

    try:
        for n in nodes:
            new_writer(n)
        kills = []
        chaos_until = time.monotonic() + 20
        while time.monotonic() < chaos_until:
            time.sleep(rng.uniform(0.5, 2.0))
            n, what = rng.choice(sorted(nodes)), rng.choice(["writer", "flusher"])
            proc = writers[n] if what == "writer" else servers[n]
            if proc.poll() is None:
                proc.send_signal(signal.SIGKILL)
                proc.wait()
                kills.append(f"{what}@{n}")
            if what == "writer":
                new_writer(n)
            else:
                servers[n] = start_serve(nodes[n], envs[n])
        print(f"killed: {', '.join(kills)}")
        assert kills
        wait_for(lambda: all(w.poll() is not None for w in writers.values()), timeout=240)
        assert all(w.returncode == 0 for w in writers.values()), [(nodes[n] / "serve.err").read_text()[-500:] for n in nodes]
        everything = set().union(*(acked(o) for o in outs))
        assert len(everything) >= 1200  # the last writer of each node wrote its 400

        def delivered() -> set[str]:
            return {json.loads(r[0]) for r in sink_rows(sink_db, "SELECT item FROM delivered")}

        def settled() -> bool:  # nothing pending or in flight: every item delivered or parked as dead-letter
            row = state_rows(nodes["a"], "SELECT pending FROM buffers WHERE buffer_id='shared'")
            return not row[0]["pending"]

        wait_for(settled, timeout=180)
    finally:
        stop([*writers.values(), *servers.values()])
    lost = everything - delivered() - held_by_buffer(nodes["a"])
    assert not lost, f"{len(lost)} acknowledged items lost (seed {seed}): {sorted(lost)[:10]}"
    ids_per_item: dict[str, set[str]] = {}
    for batch_id, item in sink_rows(sink_db, "SELECT batch_id, item FROM delivered"):
        ids_per_item.setdefault(json.loads(item), set()).add(batch_id)
    twice = {item: ids for item, ids in ids_per_item.items() if len(ids) > 1}
    assert not twice, f"items delivered under two batch ids (seed {seed}): {list(twice.items())[:5]}"
    pg_cluster.drop(name)


def test_a_flusher_killed_mid_lease_has_its_batch_reclaimed_by_another_node(pg_cluster, tmp_path: Path,
                                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    name = pg_cluster.create()
    monkeypatch.setenv("TOOLDECK_DATABASE_URL", pg_cluster.url(name))
    lease = 3.0
    sink_db = tmp_path / "sink" / "sink.db"
    sink_db.parent.mkdir()
    (sink_db.parent / "hold-a").write_text("")  # node a's sink hangs: a holds the lease when it dies
    a, b = node_workspace(tmp_path, "a", lease), node_workspace(tmp_path, "b", lease)
    env_a, env_b = node_env(sink_db, "a"), node_env(sink_db, "b")
    configure_shared(a, env_a)
    serve_a = start_serve(a, env_a)
    serve_b = None
    try:
        write_items(a, 20)  # straight into the tables: no writer runtime that would flush them itself
        (attempt,) = wait_for(lambda: sink_rows(sink_db, "SELECT batch_id FROM attempts WHERE node='a'"), timeout=60)
        batch_id = attempt[0]
        serve_b = start_serve(b, env_b)
        wait_for(lambda: state_rows(b, "SELECT COUNT(*) AS n FROM runtimes WHERE serve=1")[0]["n"] >= 2, timeout=60)
        serve_a.send_signal(signal.SIGKILL)
        serve_a.wait()
        killed = time.time()
        rows = wait_for(lambda: sink_rows(sink_db, f"SELECT batch_id, MIN(ts) FROM delivered WHERE node='b'"
                                                   f" AND batch_id='{batch_id}' GROUP BY batch_id"), timeout=60)
        took = rows[0][1] - killed
        print(f"reclaimed by node b {took:.2f} s after node a was killed (lease {lease:.0f} s)")
        assert took <= lease + 3.0  # the rest of a's lease, then b's next scheduler pass
        batch = state_rows(b, "SELECT * FROM buffer_batches WHERE batch_id=?", (batch_id,))
        assert batch == []  # completed by b
        assert {r[0] for r in sink_rows(sink_db, "SELECT DISTINCT batch_id FROM delivered")} == {batch_id}
    finally:
        (sink_db.parent / "hold-a").unlink(missing_ok=True)
        stop([p for p in (serve_a, serve_b) if p is not None])
    pg_cluster.drop(name)


SERVE_GREET = r"""
import sys, time
from tools import Runtime
from tools.errors import ToolError
with Runtime(sys.argv[1], label="node b") as rt:
    rt.wait_ready(60)
    last = None
    end = time.time() + float(sys.argv[2])
    while time.time() < end:
        try:
            out = rt.call("greet", {"name": "ada lovelace"})["greeting"]
        except ToolError as exc:
            out = "refused"
        if out != last:
            print(f"{time.time()} {out}", flush=True)
            last = out
        time.sleep(0.05)
"""


def greet_nodes(tmp_path: Path) -> tuple[Path, Path]:
    """Two nodes' workspace folders with the same catalog (greet 1.0.0) and model settings."""
    nodes = tmp_path / "node-a", tmp_path / "node-b"
    for ws in nodes:
        (ws / "tools").mkdir(parents=True)
        settings(ws)
        greet_tool(ws)
    return nodes


def test_an_approval_on_node_a_serves_on_node_b_within_5_s_and_so_does_a_rollback(
        pg_cluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, anthropic_server) -> None:
    name = pg_cluster.create()
    monkeypatch.setenv("TOOLDECK_DATABASE_URL", pg_cluster.url(name))
    from tools.evolution.evolve import evolve_tool
    from tools.evolution.review import approve, rollback
    from tools.runtime import Runtime

    a, b = greet_nodes(tmp_path)
    out = tmp_path / "b.out"
    node_b = subprocess.Popen([sys.executable, "-c", SERVE_GREET, str(b), "120"], cwd=tmp_path, stdout=out.open("w"),
                              stderr=(tmp_path / "b.err").open("w"))
    rt = Runtime(a)
    try:
        wait_for(lambda: out.exists() and "refused" in out.read_text(), timeout=60)  # b serves the base version
        anthropic_server.reply_tool_use("write_tool_version", greet_answer())
        proposal = evolve_tool(rt, "greet", "name must be letters only", "Allow spaces in names")
        assert proposal["status"] == "awaiting_review", proposal.get("failure")
        approve(rt, proposal["id"], "global", "tester", proposal["diff_sha256"])
        approved = time.time()
        line = wait_for(lambda: [x for x in out.read_text().splitlines() if x.endswith("hello ada lovelace")], timeout=30)
        served = float(line[0].split()[0]) - approved
        print(f"approved on a, served on b after {served:.2f} s")
        assert served <= 5.0
        folder = b / ".tooldeck" / "evolved" / "greet" / "1.1.0"
        assert (folder / "greet_v1_1_0.py").read_bytes() == (a / ".tooldeck" / "evolved" / "greet" / "1.1.0" /
                                                            "greet_v1_1_0.py").read_bytes()
        rollback(rt, "greet", "1.0.0", "global", "tester")
        rolled = time.time()
        lines = wait_for(lambda: [x for x in out.read_text().splitlines() if x.endswith("refused")][1:], timeout=30)
        back = float(lines[0].split()[0]) - rolled
        print(f"rolled back on a, base served on b after {back:.2f} s")
        assert back <= 5.0
    finally:
        rt.close()
        node_b.terminate()
        node_b.wait(30)
    pg_cluster.drop(name)


def test_a_proposal_made_on_node_a_is_reviewed_and_approved_on_node_b(
        pg_cluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, anthropic_server) -> None:
    """B never reads A's folder: it reviews its own copy of the candidate, written from the database."""
    name = pg_cluster.create()
    monkeypatch.setenv("TOOLDECK_DATABASE_URL", pg_cluster.url(name))
    from tools.evolution.evolve import evolve_tool
    from tools.evolution.review import approve, get_proposal
    from tools.runtime import Runtime

    a, b = greet_nodes(tmp_path)
    ra, rb = Runtime(a), Runtime(b)
    try:
        anthropic_server.reply_tool_use("write_tool_version", greet_answer())
        made = evolve_tool(ra, "greet", "name must be letters only", "Allow spaces in names")
        assert made["status"] == "awaiting_review", made.get("failure")
        seen = get_proposal(rb, made["id"])
        mine = b / ".tooldeck" / "evolved" / "greet" / "1.1.0"
        assert Path(seen["path"]).parent == mine and seen["origin_path"] == made["path"]
        assert (mine / "greet_v1_1_0.py").read_bytes() == (Path(made["path"]).parent / "greet_v1_1_0.py").read_bytes()
        assert seen["parent_path"].startswith(str(b / "tools"))
        assert seen["diff"] == made["diff"] and seen["current_diff_sha256"] == made["diff_sha256"]
        approve(rb, made["id"], "global", "reviewer on b", seen["current_diff_sha256"])
        assert rb.call("greet", {"name": "ada lovelace"}) == {"greeting": "hello ada lovelace"}
        wait_for(lambda: ra.resolved_version("greet")[0] == "1.1.0", timeout=10)  # a's own candidate, approved on b
        assert ra.call("greet", {"name": "ada lovelace"}) == {"greeting": "hello ada lovelace"}
    finally:
        ra.close()
        rb.close()
    pg_cluster.drop(name)


def test_an_event_written_on_node_b_appears_in_node_a_s_tail(pg_cluster, tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    name = pg_cluster.create()
    monkeypatch.setenv("TOOLDECK_DATABASE_URL", pg_cluster.url(name))
    from tools.runtime import Runtime

    a, b = tmp_path / "node-a", tmp_path / "node-b"
    for ws in (a, b):
        (ws / "tools").mkdir(parents=True)
    rt = Runtime(a)
    try:
        after = rt.events.last_id()
        code = ("import sys; from tools import Runtime\nwith Runtime(sys.argv[1]) as rt:\n"
                "    rt.events.emit('node.hello', node=rt.node)\n")
        subprocess.run([sys.executable, "-c", code, str(b)], cwd=tmp_path, check=True, timeout=120)
        seen = wait_for(lambda: [e for e in rt.events.tail(after, limit=1000) if e.kind == "node.hello"], timeout=30)
        assert seen[0].payload["node"] != rt.node and seen[0].pid != os.getpid()
    finally:
        rt.close()
    pg_cluster.drop(name)


def test_the_database_stopped_and_restarted_under_load_loses_nothing_acknowledged(tmp_path: Path,
                                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """A server of its own (fsync on), stopped with `pg_ctl -m immediate` (as a crash) while a writer and a
    flusher run: writes fail with a clear error while it is down, nothing acknowledged is lost, and both
    processes carry on once it is back."""
    import tempfile
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import pgserver
        from pgserver._commands import pg_ctl

    pgdata = Path(tempfile.mkdtemp(prefix="tooldeck-pg-restart-"))
    server = pgserver.get_server(pgdata, cleanup_mode="stop")
    url = server.get_uri()
    monkeypatch.setenv("TOOLDECK_DATABASE_URL", url)
    sink_db = tmp_path / "sink" / "sink.db"
    sink_db.parent.mkdir()
    ws = node_workspace(tmp_path, "a")
    env = node_env(sink_db, "a")
    configure_shared(ws, env)
    serve = start_serve(ws, env)
    out = tmp_path / "writer.out"
    writer = start_writer(ws, env, "w", 3000, out)
    try:
        wait_for(lambda: len(acked(out)) >= 300, timeout=120)
        pg_ctl(["-w", "-m", "immediate", "stop"], pgdata=server.pgdata, user=server.system_user)
        down_at = len(out.read_text().splitlines())
        wait_for(lambda: sum(line.startswith("ERR ") for line in out.read_text().splitlines()) >= 2, timeout=60)
        server.ensure_postgres_running()
        wait_for(lambda: writer.poll() is not None, timeout=300)
        lines = out.read_text().splitlines()
        assert lines[-1] == "DONE", (ws / "writer-w.err").read_text()[-2000:]
        errors = [line for line in lines if line.startswith("ERR ")]
        assert errors and all("database unreachable" in e or "unknown" in e for e in errors), errors[:5]
        assert any(line.startswith("OK ") for line in lines[down_at + len(errors):])  # it wrote again once back
        everything = acked(out)

        def delivered() -> set[str]:
            return {json.loads(r[0]) for r in sink_rows(sink_db, "SELECT item FROM delivered")}

        wait_for(lambda: not state_rows(ws, "SELECT pending FROM buffers WHERE buffer_id='shared'")[0]["pending"],
                 timeout=180)
        lost = everything - delivered() - held_by_buffer(ws)
        assert not lost, f"{len(lost)} acknowledged items lost: {sorted(lost)[:10]}"
        print(f"{len(everything)} acknowledged, {len(errors)} writes refused while the database was down")
    finally:
        stop([writer, serve])
        server.cleanup()
        import shutil

        shutil.rmtree(pgdata, ignore_errors=True)


@pytest.mark.parametrize("where", ["another host", "this host"])
def test_a_manifest_differing_from_another_live_nodes_is_an_error_until_they_agree(workspace: Path, make_runtime,
                                                                                   backend, where: str) -> None:
    """Catalogs stay per node; each node records its manifests' hashes. Another live node (a fresh
    heartbeat; on this host, a running process) that loaded other files for the same (id, version)
    makes the tool an error here: compared per node, so two runtimes on one host are compared too."""
    import os
    import socket

    from tools.errors import ToolError

    python_tool(workspace / "tools", "echo", "def run(d):\n    return d\n")
    rt = make_runtime()
    entry = rt.get_tool("echo", timeout=30)
    version, mine = entry.served_version, entry.published_sha
    assert rt.call("echo", {"a": 1}) == {"a": 1}
    wait_for(lambda: state_rows(workspace, "SELECT sha256 FROM catalog_manifests WHERE tool_id='echo'"), timeout=30)
    host = "node-b" if where == "another host" else socket.gethostname()
    pid = 7 if where == "another host" else os.getpid()  # on this host a node is live while its process runs
    other = f"{host}:{pid}:beef"
    now = rt.store.now() + 60  # fresh however slow this machine is
    with rt.store.tx() as con:
        con.execute("INSERT INTO runtimes(session, node, pid, host, started, heartbeat, serve) VALUES (?,?,?,?,?,?,?)",
                    ("s-b", other, pid, host, now, now, 1))
        con.execute("INSERT INTO catalog_manifests(tool_id, version, node, host, sha256, path, updated) VALUES (?,?,?,?,?,?,?)",
                    ("echo", version, other, host, "ab" * 32, "/srv/node-b/tools/echo.yaml", now))

    def refused() -> str | None:
        try:
            rt.call("echo", {"a": 2})
        except ToolError as exc:
            return exc.message
        return None

    message = wait_for(refused, timeout=30)
    assert f"manifest differs from node {other}'s (sha256 abababababab... there" in message and entry_status(rt) == "error"
    with rt.store.tx() as con:  # node b's files fixed: the same manifest there
        con.execute("UPDATE catalog_manifests SET sha256=? WHERE node=?", (mine, other))
    wait_for(lambda: refused() is None, timeout=30)
    assert rt.call("echo", {"a": 3}) == {"a": 3} and entry_status(rt) == "ready"


def entry_status(rt: Any) -> str:
    return rt.catalog.find("echo").status
