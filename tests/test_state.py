"""The state store: schema versions, locks held by another process, events, retention."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from state.db import SCHEMA_VERSION, SchemaTooNewError, SqliteStore, StoreBusyError, open_store
from state.events import EventLog
from tools.errors import StateError

Store = SqliteStore  # the tests of SQLite's own behaviour (locks, WAL, a file that is not a database)


def set_schema_version(backend, home: Path, version: int) -> None:
    """Write a schema version as a newer tooldeck would have (SQLite: user_version; PostgreSQL: tooldeck_schema)."""
    open_store(home, url=backend.url).close()
    if backend.postgres:
        import psycopg

        with psycopg.connect(backend.url, autocommit=True) as con:
            con.execute("UPDATE tooldeck_schema SET version=%s WHERE id=1", (version,))
    else:
        con = sqlite3.connect(home / "tooldeck.db")
        con.execute(f"PRAGMA user_version={version}")
        con.close()


def test_newer_schema_is_refused(tmp_path: Path, backend) -> None:
    set_schema_version(backend, tmp_path, SCHEMA_VERSION + 1)
    with pytest.raises(SchemaTooNewError, match="newer than this tooldeck understands"):
        open_store(tmp_path, url=backend.url)


def test_runtime_reports_a_newer_schema_as_one_line(workspace: Path, make_runtime, backend) -> None:
    home = workspace / ".tooldeck"
    home.mkdir()
    set_schema_version(backend, home, 99)
    runtime = make_runtime()
    with pytest.raises(StateError, match="schema version 99 is newer"):
        runtime.call("anything", {})
    assert "schema version 99" in runtime.summary()


def test_not_a_database(tmp_path: Path) -> None:
    path = tmp_path / "tooldeck.db"
    path.write_bytes(b"this is not sqlite at all" * 100)
    with pytest.raises(Exception, match="not a tooldeck database|file is not a database"):
        Store(path)


def test_database_held_by_another_process_gives_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "tooldeck.db"
    Store(path).close()
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import sqlite3, sys, time\n"
         f"con = sqlite3.connect({str(path)!r}, isolation_level=None)\n"
         "con.execute('BEGIN EXCLUSIVE')\n"
         "print('locked', flush=True)\n"
         "time.sleep(30)\n"],
        stdout=subprocess.PIPE, text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        store = Store(path, busy_timeout_ms=200)
        events = EventLog(store)
        with pytest.raises(StoreBusyError, match="locked by another process"):
            events.emit("test.event")
    finally:
        holder.kill()
        holder.wait()
    # once the other process lets go, nothing is lost and writes work again
    store = Store(path)
    EventLog(store).emit("after.unlock")
    assert [e.kind for e in EventLog(store).tail(0)] == ["after.unlock"]


def test_events_tail_across_connections(tmp_path: Path, backend) -> None:
    writer = EventLog(open_store(tmp_path, url=backend.url), session="w")
    reader = EventLog(open_store(tmp_path, url=backend.url))
    first = writer.emit("a.one", "tool_x", "1.0.0", n=1)
    writer.emit("a.two")
    got = reader.tail(0)
    assert [e.kind for e in got] == ["a.one", "a.two"]
    assert got[0].payload == {"n": 1} and got[0].tool_id == "tool_x" and got[0].session == "w"
    assert [e.kind for e in reader.tail(first)] == ["a.two"]
    assert reader.tail(first, kinds=["a.one"]) == []


def test_retention_prunes_old_events_but_keeps_the_newest(store) -> None:
    log = EventLog(store)
    old = time.time() - 10 * 86400
    with log.store.tx() as con:
        con.executemany("INSERT INTO events(ts, pid, kind) VALUES (?, 1, 'old')", [(old,)] * 50)
    log.emit("fresh")
    assert log.prune(86400, keep_min=11) == 40  # the newest 11 stay whatever their age
    assert log.prune(86400, keep_min=1) == 10
    assert [e.kind for e in log.tail(0)] == ["fresh"]
    with log.store.tx() as con:
        con.executemany("INSERT INTO events(ts, pid, kind) VALUES (?, 1, 'old')", [(old,)] * 5)
    assert log.prune(86400, keep_min=100) == 0  # never below the floor


def test_secrets_are_masked_in_events(store, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-abcdefghijklmnop")
    log = EventLog(store)
    log.emit("oops", detail="the key is sk-ant-abcdefghijklmnop")
    assert log.tail(0)[0].payload == {"detail": "the key is ***"}


def test_wal_mode_and_checkpoint(tmp_path: Path) -> None:
    store = Store(tmp_path / "tooldeck.db")
    assert store.query_one("PRAGMA journal_mode")[0] == "wal"
    EventLog(store).emit("x")
    store.checkpoint()


def test_runtime_prune_applies_retention_to_every_growing_table(workspace: Path, make_runtime) -> None:
    (workspace / "tooldeck.toml").write_text("[retention]\nevents_days = 1\ncalls_days = 1\nfailures_days = 1\n")
    runtime = make_runtime()
    runtime.wait_ready(30)
    old = time.time() - 3 * 86400
    with runtime.store.tx() as con:
        con.executemany("INSERT INTO events(ts, pid, kind) VALUES (?, 1, 'old')", [(old,)] * 1500)
        con.execute("INSERT INTO calls(ts, tool_id, version, duration_ms, outcome) VALUES (?, 't', '1.0.0', 1, 'ok')", (old,))
        con.execute("INSERT INTO failures(ts, tool_id, version, severity, error_class, origin) VALUES (?, 't', '1.0.0',"
                    " 'low', 'crash', 'runtime')", (old,))
        con.execute("INSERT INTO score_history(ts, tool_id, version, score, delta, reason) VALUES (?, 't', '1.0.0', 0.9, -0.1,"
                    " 'failure')", (old,))
    removed = runtime.prune()
    assert removed["calls"] == 1 and removed["failures"] == 1 and removed["score_history"] == 1
    assert removed["events"] >= 500  # the newest 1,000 events stay whatever their age


def test_unknown_settings_are_reported_not_ignored(workspace: Path, make_runtime) -> None:
    (workspace / "tooldeck.toml").write_text("[retention]\nevents_dayz = 3\n[modle]\nname = 'x'\n")
    runtime = make_runtime()
    runtime.wait_ready(30)
    warnings = [e.payload["warning"] for e in runtime.events.tail(0, kinds=["runtime.warning"])]
    assert any("[retention] events_dayz" in w for w in warnings) and any("unknown section [modle]" in w for w in warnings)


def test_runtimes_on_two_machines_with_one_session_and_pid_do_not_collide(workspace: Path, make_runtime) -> None:
    """Containers repeat pids (every container's first process is pid 1) and may share a session id: a
    runtime is keyed by its node (host, pid, start token), so another machine's row stays its own."""
    import os

    runtime = make_runtime(session="s-shared")
    runtime.wait_ready(30)
    now = runtime.store.now()
    with runtime.store.tx() as con:
        con.execute("INSERT INTO runtimes(session, node, pid, host, started, heartbeat, serve) VALUES (?,?,?,?,?,?,?)",
                    ("s-shared", f"container-b:{os.getpid()}:aa11", os.getpid(), "container-b", now, now, 1))
    runtime._heartbeat()
    rows = {(r["host"], r["node"]) for r in runtime.live_runtimes() if r["session"] == "s-shared"}
    assert rows == {("container-b", f"container-b:{os.getpid()}:aa11"), (runtime.host, runtime.node)}
    assert runtime.node.startswith(f"{runtime.host}:{os.getpid()}:") and len(runtime.node.split(":")) == 3


def test_state_nodes_lists_every_live_runtime_but_not_itself(workspace: Path, make_runtime) -> None:
    """`tooldeck state nodes` reads the store alone (it is not a runtime), on either backend."""
    import json

    runtime = make_runtime(label="worker 7", kind="serve", serve=True)
    runtime.wait_ready(30)
    now = runtime.store.now()
    with runtime.store.tx() as con:  # a runtime on another machine, and one whose heartbeat stopped
        con.execute("INSERT INTO runtimes(session, node, pid, host, started, heartbeat, serve, label, kind)"
                    " VALUES (?,?,?,?,?,?,?,?,?)", ("s-far", "host-b:1:ab12", 1, "host-b", now, now, 0, "etl", "library"))
        con.execute("INSERT INTO runtimes(session, node, pid, host, started, heartbeat, serve, label, kind)"
                    " VALUES (?,?,?,?,?,?,?,?,?)", ("s-gone", "host-c:1:cd34", 1, "host-c", now - 600, now - 600, 0, None, None))
    out = subprocess.run([sys.executable, "-m", "tools", "--workspace", str(workspace), "--json", "state", "nodes"],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    nodes = {n["node"]: n for n in json.loads(out.stdout)["nodes"]}
    assert set(nodes) == {runtime.node, "host-b:1:ab12"}
    mine = nodes[runtime.node]
    assert (mine["host"], mine["pid"], mine["kind"], mine["label"], mine["serve"]) == (runtime.host, runtime.pid, "serve",
                                                                                      "worker 7", True)
    assert nodes["host-b:1:ab12"]["kind"] == "library" and nodes["host-b:1:ab12"]["heartbeat_age_s"] < 10
    piped = subprocess.run([sys.executable, "-m", "tools", "--workspace", str(workspace), "state", "nodes"],
                           capture_output=True, text=True, timeout=120)
    assert piped.stdout.splitlines()[0] == "host\tpid\tkind\tlabel\tsession\tserving\theartbeat"
    assert any(line.startswith("host-b\t1\tlibrary\tetl\ts-far\tno\t") for line in piped.stdout.splitlines())


def test_who_is_live_has_one_answer_a_row_of_a_dead_process_on_this_host_is_not_live(store) -> None:
    """`state.runtimes.live_runtimes` is the one rule: a fresh heartbeat and, on this host, a process.
    Every reader (the runtime, buffer status, the migration check, the dashboard, the CLI) calls it."""
    import socket

    from state import runtimes

    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()  # its pid names no process now
    here = socket.gethostname()
    runtimes.heartbeat(store, runtimes.Presence("s-dead", f"{here}:{gone.pid}:aa", gone.pid, here, True, None, "serve"))
    runtimes.heartbeat(store, runtimes.Presence("s-far", f"far:{gone.pid}:bb", gone.pid, "far", True, None, "serve"))
    runtimes.heartbeat(store, runtimes.Presence("s-me", f"{here}:{os.getpid()}:cc", os.getpid(), here, False, None, None))
    assert {r["session"] for r in runtimes.live_runtimes(store)} == {"s-far", "s-me"}
    assert runtimes.live_hosts(store) == {"far", here}
    assert runtimes.why_gone(store, "s-dead", f"{here}:{gone.pid}:aa", gone.pid) == (
        f"its runtime (pid {gone.pid} on this host) is no longer running")
    assert runtimes.why_gone(store, "s-me", f"{here}:{os.getpid()}:cc", os.getpid()) is None
    runtimes.leave(store, "s-me", f"{here}:{os.getpid()}:cc")
    assert {r["session"] for r in runtimes.live_runtimes(store)} == {"s-far"}
    with store.tx() as con:
        assert runtimes.prune(con, store.now() + 2 * runtimes.FORGET_AFTER_SECONDS) == 2
