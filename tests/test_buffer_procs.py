"""Buffers across real processes: concurrent writers, kill -9 of writers and of a flusher, the executable, the CLI."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from tests.buffer_helpers import attempts, prepare_workspace, sink_batches, sink_items, wait_for
from tools.buffers.engine import engine_for
from tools.cli import main as cli_main

REPO = Path(__file__).resolve().parents[1]

#: writes `count` items (forever when count < 0) tagged `tag`, printing each acknowledged item on its own line
WRITER = textwrap.dedent("""
    import os, sys
    sys.path.insert(0, {repo!r})
    from tools.runtime import Runtime
    from tools.buffers.engine import engine_for
    ws, buffer_id, tag, count, mode = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5]
    max_size = int(sys.argv[6])
    runtime = Runtime(ws)
    engine = engine_for(runtime)
    settings = dict(max_size=max_size, flush_interval_seconds=0.1, pass_through_tool="sink")
    out = sys.stdout
    i = n = 0
    while count < 0 or i < count:
        step, n = n % 3, n + 1
        if mode == "tool" or (mode == "mixed" and step == 0):
            item = f"{{tag}}-{{i}}"
            runtime.call("buffer", {{"operation": "write", "buffer_id": buffer_id, "data": item, **settings}})
            out.write(item + "\\n")
            i += 1
        elif mode == "mixed" and step == 1:
            items = [f"{{tag}}-{{i + k}}" for k in range(5)]
            engine.write_many(buffer_id, items, **settings)
            out.write("".join(x + "\\n" for x in items))
            i += 5
        else:
            item = f"{{tag}}-{{i}}"
            engine.write(buffer_id, item, **settings)
            out.write(item + "\\n")
            i += 1
        out.flush()
    if mode == "exit-hard":
        os._exit(0)
    runtime.close()
""").format(repo=str(REPO))


def start_writer(ws: Path, buffer_id: str, tag: str, count: int, mode: str, out: Path,
                 max_size: int = 10) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", WRITER, str(ws), buffer_id, tag, str(count), mode, str(max_size)],
                            stdout=out.open("w"), stderr=subprocess.PIPE, cwd=out.parent)


def acknowledged(path: Path) -> list[str]:
    text = path.read_text()
    lines = text.split("\n")
    return [line for line in lines[:-1] if line]  # a last line without its newline was not acknowledged


@pytest.fixture
def ws(workspace: Path) -> Path:
    return prepare_workspace(workspace, lease=1.0, max_attempts=20)


@pytest.mark.parametrize("writers", [2, 4])
def test_concurrent_writer_processes_lose_nothing(ws: Path, tmp_path: Path, writers: int) -> None:
    procs = []
    for k in range(writers):
        out = tmp_path / f"w{k}.out"
        procs.append((start_writer(ws, "shared", f"w{k}", 150, "mixed", out), out))
    acked: list[str] = []
    for proc, out in procs:
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err.decode()[-2000:]
        acked += acknowledged(out)
    assert len(acked) >= writers * 150  # every writer finished
    delivered = sink_items(ws, "shared")
    assert sorted(delivered) == sorted(acked)  # each exactly once: nothing lost, nothing doubled
    batches = sink_batches(ws, "shared")
    assert max(b["count"] for b in batches) == 10


@pytest.mark.slow
def test_kill_writers_at_random_moments(ws: Path, tmp_path: Path, make_runtime) -> None:
    rng = random.Random(3)
    acked: list[str] = []
    kills = 0
    for round_no in range(8):
        pair = []
        for k in range(3):
            out = tmp_path / f"r{round_no}-{k}.out"
            pair.append((start_writer(ws, "crashy", f"r{round_no}w{k}", -1, "mixed", out, max_size=50), out))
        for proc, out in pair:
            wait_for(lambda out=out, proc=proc: out.stat().st_size > 0 or proc.poll() is not None, timeout=20, interval=0.005)
        time.sleep(rng.uniform(0.0, 0.25))
        for proc, out in pair:
            assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            kills += 1
            acked += acknowledged(out)
    assert kills >= 20 and len(acked) > 100
    server = engine_for(make_runtime(ws, serve=True))  # the survivor: re-claims expired leases, flushes the rest
    try:
        wait_for(lambda: (server.status("crashy")[0].pending == 0 and server.status("crashy")[0].dead_letter_items == 0),
                 timeout=30, interval=0.1)
    except AssertionError:
        raise AssertionError(f"not drained: {server.status('crashy')[0]}; open batches "
                             f"{[dict(b) for b in server.tables.open_batches('crashy')]}") from None
    delivered = sink_items(ws, "crashy")
    assert len(delivered) == len(set(delivered))  # no item in two batches
    missing = set(acked) - set(delivered)
    assert not missing, f"{len(missing)} acknowledged items lost, e.g. {sorted(missing)[:5]}"


def test_kill_flusher_mid_flush_redelivers_the_same_batch(ws: Path, tmp_path: Path, make_runtime) -> None:
    (ws / "slow").write_text("30")
    script = textwrap.dedent(f"""
        import sys, time
        sys.path.insert(0, {str(REPO)!r})
        from tools.runtime import Runtime
        from tools.buffers.engine import engine_for
        runtime = Runtime({str(ws)!r})
        engine = engine_for(runtime)
        engine.write_many("midflush", list(range(20)), max_size=20, flush_interval_seconds=60, pass_through_tool="sink")
        while not runtime.workers.pids():
            time.sleep(0.01)
        print(*runtime.workers.pids(), flush=True)
        time.sleep(60)
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=tmp_path)
    worker_pids = [int(p) for p in proc.stdout.readline().split()]
    wait_for(lambda: attempts(ws), timeout=20)  # the sink has the batch and is sleeping on it
    proc.kill()  # the flusher dies mid-flush, with its worker
    proc.wait()
    for pid in worker_pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    (ws / "slow").unlink()
    first = attempts(ws)[0]
    server = engine_for(make_runtime(ws, serve=True))
    wait_for(lambda: sink_batches(ws, "midflush"), timeout=30)  # after the 1 s lease expired
    assert attempts(ws) == [first, first]  # delivered again, with the same batch id
    batch = sink_batches(ws, "midflush")[0]
    assert batch["batch_id"] == first and batch["items"] == list(range(20))
    wait_for(lambda: server.status("midflush")[0].pending == 0)
    flush_events = server.runtime.events.tail(0, kinds=["buffer.flush"])
    assert [(e.payload["batch_id"], e.payload["attempt"]) for e in flush_events] == [(first, 2)]


def test_executable_for_non_python_callers(ws: Path) -> None:
    exe = REPO / "tools" / "builtins" / "buffer.py"
    env = {**os.environ, "TOOLDECK_WORKSPACE": str(ws)}

    def run(payload: object) -> tuple[int, dict]:
        done = subprocess.run([sys.executable, str(exe)], input=json.dumps(payload), capture_output=True, text=True,
                              env=env, timeout=60)
        return done.returncode, json.loads(done.stdout)

    code, out = run({"operation": "write", "buffer_id": "exe", "data": {"n": 1}, "max_size": 5, "pass_through_tool": "sink"})
    assert code == 0 and out["success"] is True
    assert sink_items(ws, "exe") == [{"n": 1}]  # nothing else flushes this buffer: delivered when it exited
    code, out = run({"operation": "status", "buffer_id": "exe"})
    assert code == 0 and out["flushed_total"] == 1 and out["max_size"] == 5
    code, out = run({"operation": "explode", "buffer_id": "exe"})
    assert code == 1 and "unknown operation" in out["error"]


def test_cli(ws: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    prepare_workspace(ws, max_attempts=2)
    w = ["--workspace", str(ws)]
    assert cli_main([*w, "buffer", "write", "cli", '{"a": 1}', "2", "--strategy", "manual", "--pass-through", "sink"]) == 0
    assert "2 written, 2 pending" in capsys.readouterr().out
    assert cli_main([*w, "buffer", "write", "cli", "not json"]) == 2
    assert "not valid JSON" in capsys.readouterr().err
    assert cli_main([*w, "buffer", "write", "../x", "1"]) == 2
    assert "invalid buffer_id" in capsys.readouterr().err
    assert cli_main([*w, "buffer", "status", "cli", "--json"]) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out)["pending"] == 2 and "manual strategy" in captured.err
    assert cli_main([*w, "buffer", "flush", "cli"]) == 0
    assert "flushed 2 items" in capsys.readouterr().out
    assert sink_items(ws, "cli") == [{"a": 1}, 2]
    assert cli_main([*w, "buffer", "status", "nope"]) == 2  # an unknown id is bad usage
    # pending items whose writer died: status warns that nothing flushes them
    out = tmp_path / "hard.out"
    proc = start_writer(ws, "orphaned", "h", 3, "exit-hard", out)
    assert proc.wait(timeout=60) == 0
    assert cli_main([*w, "buffer", "status"]) == 0
    captured = capsys.readouterr()
    assert "orphaned" in captured.out and "no live runtime is flushing" in captured.err
    # clear asks first: no terminal and no --yes is refused as bad usage, nothing removed
    assert cli_main([*w, "buffer", "clear", "orphaned"]) == 2
    assert "without --yes" in capsys.readouterr().err
    assert cli_main([*w, "buffer", "status", "orphaned", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["pending"] == 3
    assert cli_main([*w, "buffer", "clear", "orphaned", "--yes"]) == 0
    assert "cleared 3 items" in capsys.readouterr().out
    # dead-letter list and replay
    (ws / "fail").write_text("")
    assert cli_main([*w, "buffer", "write", "dead", "1", "2", "--strategy", "manual", "--pass-through", "sink"]) == 0
    for _ in range(2):  # max_attempts in this workspace
        cli_main([*w, "buffer", "flush", "dead"])
    capsys.readouterr()
    assert cli_main([*w, "buffer", "dead-letter", "list", "dead", "--json"]) == 0
    dead = json.loads(capsys.readouterr().out)["dead_letters"]
    assert len(dead) == 1 and dead[0]["count"] == 2
    (ws / "fail").unlink()
    assert cli_main([*w, "buffer", "dead-letter", "replay", "dead"]) == 0
    assert "1 delivered" in capsys.readouterr().out
    assert sink_items(ws, "dead") == [1, 2]


def test_cli_flush_says_what_became_of_a_failed_batch(ws: Path) -> None:
    """Retried, parked as dead-letter after the last attempt, or refused by an open circuit: one true sentence each."""
    prepare_workspace(ws, max_attempts=2)

    def tooldeck(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "tools", "--workspace", str(ws), *args], capture_output=True,
                              text=True, timeout=60)

    (ws / "fail").write_text("")
    assert tooldeck("buffer", "write", "dl", '{"n": 1}', "--strategy", "manual", "--pass-through", "sink").returncode == 0
    first = tooldeck("buffer", "flush", "dl")
    assert first.returncode == 1 and "a batch failed and will be retried: sink: " in first.stdout
    assert "dead-letter" not in first.stdout
    last = tooldeck("buffer", "flush", "dl")  # max_attempts = 2: this attempt parks it
    assert last.returncode == 1 and "will be retried" not in last.stdout, last.stdout
    assert "parked as dead-letter after 2 attempts (tooldeck buffer dead-letter replay dl)" in last.stdout
    assert json.loads(tooldeck("buffer", "dead-letter", "list", "dl", "--json").stdout)["dead_letters"][0]["count"] == 1
    assert tooldeck("control", "circuit", "sink", "open").returncode == 0
    assert tooldeck("buffer", "write", "cb", "1", "--strategy", "manual", "--pass-through", "sink").returncode == 0
    refused = tooldeck("buffer", "flush", "cb")
    assert refused.returncode == 1 and "the pass-through tool refused the call" in refused.stdout
    assert "failed" not in refused.stdout, refused.stdout  # a refusal spends no attempt and is no failure


def test_clear_during_a_delivery_leaves_that_batch_to_it_and_the_flush_is_recorded(ws: Path, backend) -> None:
    """`clear` while a flush is delivering: the batch the sink is receiving is not reported as discarded; the
    delivery completes and counts as any flush (stats, last flush, event); what waited behind it is cleared."""
    from tests.helpers import state_rows

    def tooldeck(*args: str) -> list[str]:
        return [sys.executable, "-m", "tools", "--workspace", str(ws), *args]

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(tooldeck(*args), capture_output=True, text=True, timeout=60, cwd=REPO)

    assert run("buffer", "write", "c1", "1", "2", "3", "--strategy", "manual", "--pass-through", "sink",
               "--max-size", "3").returncode == 0
    (ws / "slow").write_text("3")
    flush = subprocess.Popen(tooldeck("buffer", "flush", "c1"), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             cwd=REPO)
    try:
        wait_for(lambda: attempts(ws), timeout=30)  # the sink has the batch and is storing it
        assert run("buffer", "write", "c1", "4", "5").returncode == 0  # waiting behind the batch in flight
        cleared = run("buffer", "clear", "c1", "--yes")
        assert cleared.returncode == 0, cleared.stderr
        assert "c1: cleared 2 items; 3 items in flight were left to their delivery" in cleared.stdout
        out, err = flush.communicate(timeout=60)
    finally:
        if flush.poll() is None:
            flush.kill()
    assert flush.returncode == 0 and "flushed 3 items in 1 batch" in out, (out, err)
    assert sink_items(ws, "c1") == [1, 2, 3]
    st = json.loads(run("buffer", "status", "c1", "--json").stdout)
    assert (st["pending"], st["flushed_total"], st["batches_total"], st["last_flush_result"], st["last_flush_count"]) == (
        0, 3, 1, "ok", 3)
    kinds = [r["kind"] for r in state_rows(ws, "SELECT kind FROM events WHERE kind LIKE 'buffer.%' ORDER BY id")]
    assert kinds[-2:] == ["buffer.clear", "buffer.flush"]
    clear_event = state_rows(ws, "SELECT payload FROM events WHERE kind='buffer.clear'")[0]["payload"]
    assert json.loads(clear_event) == {"buffer_id": "c1", "removed": 2, "in_flight": 3}


def test_cli_flush_shows_what_a_sink_answering_success_false_said(ws: Path) -> None:
    """A sink answering `{"success": false}` fails the batch; the line shows its own error (or message) if it
    gave one, and no dangling colon if it gave none."""
    from tests.helpers import python_tool

    python_tool(ws / "tools", "refuser", '''
def run(data):
    said = data.get("say")
    return {"success": False, **({said[0]: said[1]} if said else {})}
''')

    def tooldeck(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "tools", "--workspace", str(ws), *args], capture_output=True,
                              text=True, timeout=60, cwd=REPO)

    cases = {"bare": None, "err": ["error", "disk full"], "msg": ["message", "quota exceeded"]}
    for buffer_id, say in cases.items():
        assert tooldeck("buffer", "write", buffer_id, "1", "--strategy", "manual", "--pass-through", "refuser").returncode == 0
        if say is not None:
            assert tooldeck("call", "buffer", json.dumps({"operation": "configure", "buffer_id": buffer_id,
                                                          "pass_through_input": {"say": say}})).returncode == 0
    lines = {}
    for buffer_id in cases:
        out = tooldeck("buffer", "flush", buffer_id)
        assert out.returncode == 1
        lines[buffer_id] = out.stdout.strip().replace("\n", " ")
    assert lines["bare"].endswith("a batch failed and will be retried: refuser: answered success=false"), lines["bare"]
    assert lines["err"].endswith("will be retried: refuser: answered success=false: disk full"), lines["err"]
    assert lines["msg"].endswith("will be retried: refuser: answered success=false: quota exceeded"), lines["msg"]


def test_write_rates_survive_a_writer_killed_during_its_close_drain(ws: Path, backend, tmp_path: Path) -> None:
    """The per-second write counts are saved before the close drain (and every second during it): a writer
    killed with kill -9 while its exit delivers to a slow sink keeps every write it counted in the history."""
    from tests.helpers import state_rows

    script = textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {str(REPO)!r})
        from tools.runtime import Runtime
        from tools.buffers.engine import engine_for
        runtime = Runtime({str(ws)!r})
        engine = engine_for(runtime)
        engine.configure("rates", max_size=5000, flush_interval_seconds=60, pass_through_tool="sink")
        engine.write_many("rates", list(range(1000)))
        for i in range(1000):
            engine.write("rates", i)
        print("written", flush=True)
        runtime.close(timeout=30)
    """)
    (ws / "slow").write_text("30")  # the close drain's delivery hangs in the sink
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            cwd=tmp_path)
    try:
        wait_for(lambda: attempts(ws) or proc.poll() is not None, timeout=60)  # the drain is delivering
        assert proc.poll() is None, proc.communicate()
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    row = state_rows(ws, "SELECT writes_total, pending FROM buffers WHERE buffer_id='rates'")[0]
    assert (row["writes_total"], row["pending"]) == (2000, 2000)  # nothing delivered, nothing lost
    counted = state_rows(ws, "SELECT COALESCE(SUM(writes), 0) AS n FROM buffer_rates WHERE buffer_id='rates'")[0]["n"]
    assert counted == 2000
