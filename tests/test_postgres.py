"""The PostgreSQL backend's own behaviour: SQL translation, migrations under an advisory lock, the
commit-ordered event tail, the database clock, URLs as secrets, an unreachable server."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from state.db import SCHEMA_VERSION, StoreError, StoreUnavailableError, database_url, open_store
from state.events import EventLog
from state.postgres.sql import Row, row_class, translate
from state.url import safe_url
from tools.secrets import clean_env, redact

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def pg(pg_cluster, monkeypatch: pytest.MonkeyPatch):
    """A fresh database of the session's server, named by TOOLDECK_DATABASE_URL."""
    name = pg_cluster.create()
    url = pg_cluster.url(name)
    monkeypatch.setenv("TOOLDECK_DATABASE_URL", url)
    yield url
    pg_cluster.drop(name)


def test_placeholders_and_percent_signs_are_translated() -> None:
    assert translate("SELECT a FROM t WHERE b=? AND c LIKE '1.%' AND d=?") == (
        "SELECT a FROM t WHERE b=%s AND c LIKE '1.%%' AND d=%s", False)
    assert translate("SELECT 1 WHERE (v=?2 OR ?2 IS NULL) AND t>=?1") == (
        "SELECT 1 WHERE (v=%(p2)s OR %(p2)s IS NULL) AND t>=%(p1)s", True)
    assert translate("SELECT '?' , \"a?\" FROM t WHERE x=?")[0] == "SELECT '?' , \"a?\" FROM t WHERE x=%s"
    with pytest.raises(ValueError, match="mixes"):
        translate("SELECT ?, ?1")


def test_rows_answer_by_position_and_by_name() -> None:
    row: Row = row_class(("id", "kind"))((7, "x"))
    assert row[0] == 7 and row["kind"] == "x" and dict(row) == {"id": 7, "kind": "x"} and tuple(row) == (7, "x")
    with pytest.raises(IndexError, match="no such column: nope"):
        row["nope"]


def test_nodes_starting_together_migrate_once(pg_cluster, tmp_path: Path) -> None:
    """Five processes open one empty database at once: the schema has no IF NOT EXISTS, so a second
    migration would fail with "already exists"; under pg_advisory_lock every one of them opens it."""
    name = f"empty_{int(time.time() * 1000)}"
    pg_cluster.admin.execute(f"CREATE DATABASE {name}")
    url = pg_cluster.url(name)
    script = ("import sys; from state.postgres import PgStore\n"
              "s = PgStore(sys.argv[1]); print(s.schema_version()); s.close()\n")
    try:
        procs = [subprocess.Popen([sys.executable, "-c", script, url], cwd=REPO, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True) for _ in range(5)]
        outs = [p.communicate(timeout=120) for p in procs]
        assert [p.returncode for p in procs] == [0] * 5, [err[-800:] for _, err in outs]
        assert {out.strip() for out, _ in outs} == {str(SCHEMA_VERSION)}
    finally:
        pg_cluster.drop(name)


@pytest.mark.slow
def test_the_event_tail_skips_no_event_that_commits_late(pg: str) -> None:
    """Writers whose commits interleave, and one transaction holding its event for 10 s: a reader
    tailing all along gets every event exactly once, the late one included, although a reader of
    `id > last` would have moved past its id long before it committed."""
    writer_store, reader_store = open_store(Path("."), url=pg), open_store(Path("."), url=pg)
    reader = EventLog(reader_store)
    held_id: list[int] = []
    opened = threading.Event()

    def hold() -> None:
        with writer_store.tx() as con:
            held_id.append(int(con.execute("INSERT INTO events(ts, pid, kind) VALUES (?, 1, 'late') RETURNING id",
                                           (time.time(),)).fetchone()[0]))
            opened.set()
            time.sleep(10)  # the transaction stays open while the others commit

    def write(tag: str, n: int) -> None:
        log = EventLog(writer_store)
        for i in range(n):
            log.emit(f"w.{tag}", n=i)

    holder = threading.Thread(target=hold)
    holder.start()
    assert opened.wait(30)
    writers = [threading.Thread(target=write, args=(tag, 150)) for tag in "abc"]
    for w in writers:
        w.start()
    seen: list[int] = []
    naive_cursor = 0  # where a reader of `id > last` would be
    after = 0
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        for e in reader.tail(after, limit=50):
            seen.append(e.id)
            after = e.id
        naive_cursor = max([naive_cursor] + [r[0] for r in reader_store.query("SELECT id FROM events WHERE id > ?",
                                                                                 (naive_cursor,))])
        if len(seen) == 451:
            break
        reader.wait(0.5)
    holder.join()
    for w in writers:
        w.join()
    assert len(seen) == len(set(seen)) == 451, f"{len(seen)} events seen, {len(set(seen))} distinct"
    assert held_id[0] in seen  # it arrived once it committed (first: it is the oldest transaction)
    assert naive_cursor > held_id[0]  # `id > last` had passed it: it would have been skipped
    writer_store.close()
    reader_store.close()


def test_an_event_written_elsewhere_wakes_a_waiting_reader(backend, tmp_path: Path) -> None:
    a, b = open_store(tmp_path, url=backend.url), open_store(tmp_path, url=backend.url)
    reader = EventLog(a)
    start = reader.last_id()
    reader.wait(0.2)  # the listener is up
    got: list[float] = []

    waiting = threading.Event()

    def follow() -> None:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if reader.tail(start):
                got.append(time.monotonic())
                return
            waiting.set()
            reader.wait(5.0, after_id=start)

    thread = threading.Thread(target=follow)
    thread.start()
    assert waiting.wait(30)  # the reader found nothing and waits: an event sent before its wait starts still wakes it
    sent = time.monotonic()
    EventLog(b).emit("from.b")
    thread.join(30)
    assert got and got[0] - sent < 4.0  # woken by the notification, not by the 5 s wait running out
    a.close()
    b.close()


def test_now_is_the_database_clock_whatever_this_machines_clock_says(pg: str) -> None:
    from state.postgres import PgStore

    skewed = PgStore(pg, local_clock=lambda: time.time() + 3600)  # a node whose clock is an hour ahead
    try:
        db_now = float(skewed.query_one("SELECT EXTRACT(EPOCH FROM clock_timestamp())::float8")[0])
        assert abs(skewed.now() - db_now) < 1.0
    finally:
        skewed.close()


def test_events_from_a_node_with_a_skewed_clock_are_stamped_on_the_database_clock(pg: str) -> None:
    """Every event writer (its own transaction or the caller's) stamps the store's clock, so events of
    several nodes order on one clock whatever each machine's clock says."""
    from state.buffers import BufferTables
    from state.calls import CallRecord, CallRecorder
    from state.events import EventLog
    from state.postgres import PgStore

    skewed = PgStore(pg, local_clock=lambda: time.time() + 3600)  # a node whose clock is an hour ahead
    try:
        log = EventLog(skewed, "s-skew")
        log.emit("test.own_tx")
        with skewed.tx() as con:
            log.emit_in(con, "test.in_tx", note=1)
        BufferTables(skewed, "s-skew").drop_event("b", 1, "drop_newest")
        recorder = CallRecorder(skewed, session="s-skew", max_queued=1)
        for _ in range(2):  # past max_queued: one record dropped, reported as `calls.dropped` with the next write
            recorder.record(CallRecord("t", "1.0.0", "s-skew", 1.0, "ok", {}, {}, ts=time.time()))
        recorder.flush()
        db_now = float(skewed.query_one("SELECT EXTRACT(EPOCH FROM clock_timestamp())::float8")[0])
        rows = skewed.query("SELECT kind, ts FROM events ORDER BY id")
        assert {r[0] for r in rows} >= {"test.own_tx", "test.in_tx", "buffer.drop", "calls.dropped"}
        assert all(abs(float(r[1]) - db_now) < 60 for r in rows), rows
    finally:
        skewed.close()


def test_a_configured_url_may_not_hold_a_password(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(StoreError, match=r"holds a password; give it by PGPASSWORD, ~/.pgpass or a \$\{VAR\} reference"):
        database_url("postgresql://app:hunter22@db.example/tooldeck")
    monkeypatch.setenv("TD_DB_PASS", "s3cret-value")
    assert database_url("postgresql://app:${TD_DB_PASS}@db.example/tooldeck") == "postgresql://app:s3cret-value@db.example/tooldeck"
    with pytest.raises(StoreError, match=r"\$\{TD_NOPE\} is not set"):
        database_url("postgresql://app:${TD_NOPE}@db.example/tooldeck")
    monkeypatch.setenv("TOOLDECK_DATABASE_URL", "postgresql://other@db2/x")
    assert database_url("postgresql://app@db.example/tooldeck") == "postgresql://other@db2/x"  # the environment wins


def test_the_url_is_a_secret_everywhere(pg: str, monkeypatch: pytest.MonkeyPatch) -> None:
    url = pg.replace("postgres:@", "postgres:pw-9f8e7d6c@")  # trust auth ignores the password
    monkeypatch.setenv("TOOLDECK_DATABASE_URL", url)
    store = open_store(Path("."), url=url)
    try:
        assert "pw-9f8e7d6c" not in store.where and "pw-9f8e7d6c" not in str(store.describe())
        assert redact(f"connect to {url} failed") == "connect to *** failed"
        assert redact("password pw-9f8e7d6c") == "password ***"
        assert "TOOLDECK_DATABASE_URL" not in clean_env()
        assert "***" in safe_url(url) and "pw-9f8e7d6c" not in safe_url(url)
    finally:
        store.close()


def test_where_a_store_is_names_database_host_and_user_but_is_not_the_secret_url(pg: str, tmp_path: Path) -> None:
    """The URL is redacted wherever it appears: a description equal to it would print as `***`."""
    store = open_store(Path("."), url=pg)
    try:
        name = pg.split("?")[0].rsplit("/", 1)[1]
        assert store.where.startswith(f"database {name} on /") and store.where.endswith(" as postgres")
        assert redact(store.where) == store.where and redact(f"{store.where}: unreachable") == f"{store.where}: unreachable"
    finally:
        store.close()
    (tmp_path / "tools").mkdir()
    out = subprocess.run([sys.executable, "-m", "tools", "--workspace", str(tmp_path), "--json", "state"], cwd=REPO,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["where"].startswith(f"database {name} on ")


def test_an_unreachable_server_is_a_clear_error(tmp_path: Path) -> None:
    url = f"postgresql://postgres@/nothing?host={tmp_path}"  # no server listens on this socket directory
    started = time.monotonic()
    with pytest.raises(StoreUnavailableError, match=r"database nothing on .* as postgres: database unreachable"):
        open_store(tmp_path, url=url)
    assert time.monotonic() - started < 30


def test_a_cli_write_with_the_database_down_is_one_clear_line_and_exit_1(tmp_path: Path) -> None:
    """No driver warnings on the terminal: they go to the workspace's log; stderr says what failed."""
    ws = tmp_path / "ws"
    (ws / "tools").mkdir(parents=True)
    env = {k: v for k, v in os.environ.items() if k != "TOOLDECK_DATABASE_URL"}
    env["TOOLDECK_DATABASE_URL"] = f"postgresql://postgres@/nothing?host={tmp_path}"  # no server listens there
    out = subprocess.run([sys.executable, "-m", "tools", "--workspace", str(ws), "buffer", "write", "b", '{"n": 1}'],
                         cwd=REPO, capture_output=True, text=True, timeout=120, env=env)
    assert out.returncode == 1 and out.stdout == ""
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1, out.stderr
    assert "database unreachable" in lines[0] and "nothing was written" in lines[0]
    assert "psycopg.pool" in (ws / ".tooldeck" / "logs" / "tooldeck.log").read_text()


def test_processes_upserting_the_same_rows_in_any_order_never_deadlock(pg: str, tmp_path: Path) -> None:
    """Two runtimes of one workspace recorded their tools' load status in the order each loaded them; on
    PostgreSQL each held a row the other waited for ("deadlock detected", seen in CI). Shared rows are
    upserted in key order: load statuses, call counters, the manifest cache."""
    from state.calls import CallRecord, CallRecorder
    from tools.catalog.entry import StatusChange, write_status

    stores = [open_store(tmp_path / "home", url=pg) for _ in range(2)]
    keys = [(f"tool_{n:02d}", "1.0.0") for n in range(40)]
    errors: list[BaseException] = []

    def writer(n: int) -> None:
        order = keys if n == 0 else keys[::-1]
        recorder = CallRecorder(stores[n])
        try:
            for _ in range(15):
                write_status(stores[n], [StatusChange(t, v, "ready", None, "workspace") for t, v in order])
                for t, v in order:
                    recorder.record(CallRecord(t, v, None, 1.0, "ok", {}, {}))
                recorder.flush()
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    for s in stores:
        s.close()
    assert errors == []
