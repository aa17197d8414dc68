"""`tooldeck state migrate`: a workspace's SQLite state moves to PostgreSQL and serves from there."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from tests.buffer_helpers import prepare_workspace, sink_items
from tests.evolution_helpers import GREET_V2, greet_answer, greet_tool, settings
from tests.messages_server import anthropic_server_fixture, messages_server_fixture  # noqa: F401
from tools.runtime import Runtime

REPO = Path(__file__).resolve().parents[1]
SPACED = {"name": "ada lovelace"}


def tooldeck(ws: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "tools", "--workspace", str(ws), *args], cwd=REPO, capture_output=True,
                          text=True, timeout=300, env={**os.environ, **(env or {})})


def sqlite_counts(ws: Path, tables: list[str]) -> dict[str, int]:
    con = sqlite3.connect(ws / ".tooldeck" / "tooldeck.db")
    try:
        return {t: con.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0] for t in tables}
    finally:
        con.close()


def with_buffers(ws: Path) -> None:
    """The greet tool and the buffer tests' sink, fast buffer settings and the evolution tests' model settings."""
    prepare_workspace(ws)
    buffers = (ws / "tooldeck.toml").read_text()
    settings(ws)
    (ws / "tooldeck.toml").write_text((ws / "tooldeck.toml").read_text() + buffers)
    greet_tool(ws)


@pytest.fixture
def sqlite_workspace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, anthropic_server) -> Path:
    """A workspace that lived on SQLite: calls, failures, a buffer with pending items, an approved evolution."""
    monkeypatch.delenv("TOOLDECK_DATABASE_URL", raising=False)
    ws = tmp_path / "node-a"
    (ws / "tools").mkdir(parents=True)
    with_buffers(ws)
    from tools.evolution.evolve import evolve_tool
    from tools.evolution.review import approve

    with Runtime(ws) as rt:
        assert rt.call("greet", {"name": "bob"}) == {"greeting": "hello bob"}
        rt.call("buffer", {"operation": "write_many", "buffer_id": "moved", "items": list(range(25)),
                           "flush_strategy": "manual", "pass_through_tool": "sink"})
        rt.call("mark_tool_failure", {"tool_id": "greet", "scenario": "names with spaces", "error_message": "letters only",
                                      "severity": "high"})
        anthropic_server.reply_tool_use("write_tool_version", greet_answer())
        proposal = evolve_tool(rt, "greet", "name must be letters only", "Allow spaces in names")
        approve(rt, proposal["id"], "global", "tester", proposal["diff_sha256"])
        assert rt.call("greet", SPACED) == {"greeting": "hello ada lovelace"}
        anthropic_server.reply_tool_use("write_tool_version", greet_answer(code=GREET_V2 + "\n# 1.2.0\n"))
        pending = evolve_tool(rt, "greet", "", "Keep it, with a comment")  # awaiting review when the state moves
        assert pending["status"] == "awaiting_review" and pending["version"] == "1.2.0", pending.get("failure")
    con = sqlite3.connect(ws / ".tooldeck" / "tooldeck.db")
    con.execute("DELETE FROM approved_blobs")  # as if approved before the database kept file contents
    con.execute("DELETE FROM proposal_files")  # and proposed before it kept candidates
    con.commit()
    con.close()
    return ws


def test_migrate_moves_the_state_and_a_second_node_serves_from_it(sqlite_workspace: Path, pg_cluster, tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    ws = sqlite_workspace
    tables = ["events", "calls", "buffers", "buffer_items", "failures", "tool_health", "promotions", "proposals",
              "approved_files"]
    before = sqlite_counts(ws, tables)
    assert before["buffer_items"] == 25 and before["promotions"] == 1 and before["failures"] >= 1
    name = pg_cluster.create()
    url = pg_cluster.url(name)
    out = tooldeck(ws, "state", "migrate", "--json", env={"TOOLDECK_DATABASE_URL": url})
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    assert {t: report["counts"][t] for t in tables} == before
    assert report["blobs_from_files"] == 2  # the manifest and the code of greet 1.1.0, read from evolved/ and checked
    assert report["candidates_from_files"] == 1  # greet 1.2.0, awaiting review
    print(f"migrated in {report['seconds']:.2f} s")

    again = tooldeck(ws, "state", "migrate", env={"TOOLDECK_DATABASE_URL": url})
    assert again.returncode == 1 and "the target database is not empty (rows in events" in again.stderr

    # node b: another workspace folder with the same catalog, on the database only
    monkeypatch.setenv("TOOLDECK_DATABASE_URL", url)
    b = tmp_path / "node-b"
    (b / "tools").mkdir(parents=True)
    with_buffers(b)
    with Runtime(b) as rt:
        assert rt.call("greet", SPACED) == {"greeting": "hello ada lovelace"}  # the approved version, materialised
        assert rt.extension("failures").scores_snapshot()[("greet", "1.0.0")]["failures"] >= 1
        assert any(e.kind == "promotion.approved" for e in rt.events.tail(0, limit=5000))
        flushed = rt.call("buffer", {"operation": "flush", "buffer_id": "moved"})
        assert flushed["count"] == 25
        rt.events.emit("after.migrate")  # new ids continue past the copied ones
        from tools.evolution.review import approve, get_proposal, list_proposals

        rt.wait_ready(60)
        [waiting] = list_proposals(rt, "awaiting_review")
        seen = get_proposal(rt, waiting["id"])  # reviewed on node b, from its own copy of the candidate
        assert Path(seen["path"]).is_relative_to(b) and seen["current_diff_sha256"] == seen["diff_sha256"]
        approve(rt, waiting["id"], "global", "reviewer on b", seen["current_diff_sha256"])
        assert rt.resolved_version("greet")[0] == "1.2.0"
    assert sorted(sink_items(b, "moved")) == list(range(25))
    pg_cluster.drop(name)


def test_migrate_refuses_while_a_runtime_uses_the_sqlite_file(sqlite_workspace: Path, pg_cluster) -> None:
    name = pg_cluster.create()
    holder = subprocess.Popen([sys.executable, "-c", "import sys, time; from tools import Runtime\n"
                               "rt = Runtime(sys.argv[1]); rt.wait_ready(60); print('up', flush=True); time.sleep(120)",
                               str(sqlite_workspace)], cwd=REPO, stdout=subprocess.PIPE, text=True,
                              env={k: v for k, v in os.environ.items() if k != "TOOLDECK_DATABASE_URL"})
    try:
        assert holder.stdout.readline().strip() == "up"
        out = tooldeck(sqlite_workspace, "state", "migrate", env={"TOOLDECK_DATABASE_URL": pg_cluster.url(name)})
        assert out.returncode == 1 and "1 live runtimes still use it (library pid" in out.stderr, out.stderr
    finally:
        holder.kill()
        holder.wait()
        pg_cluster.drop(name)


def test_migrate_takes_no_url_from_the_command_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TOOLDECK_DATABASE_URL", raising=False)
    (tmp_path / "tools").mkdir()
    out = tooldeck(tmp_path, "state", "migrate", "postgresql://app:pw@db/x")
    assert out.returncode == 2 and "pw" not in out.stderr
    out = tooldeck(tmp_path, "state", "migrate")
    assert out.returncode == 2 and "set TOOLDECK_DATABASE_URL" in out.stderr
