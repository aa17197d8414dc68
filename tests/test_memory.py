"""Semantic memory: idempotent re-indexing, hot reload, failures from other processes, offline, server mode errors."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from state.memory import failure_point_id, tool_point_id
from tests.helpers import python_tool
from tools.errors import StateError
from tools.recovery.ledger import mark_tool_failure
from tools.recovery.selection import memory_for, select_candidates

REPO = Path(__file__).resolve().parents[1]


def wait_for(predicate, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached")
        time.sleep(0.02)


def counts(service) -> tuple[int, int]:
    m = service.memory
    return m.count(m.tools_collection), m.count(m.failures_collection)


def test_point_ids_are_deterministic():
    assert tool_point_id("csv_parser", "1.0.0") == tool_point_id("csv_parser", "1.0.0") != tool_point_id("csv_parser", "1.1.0")
    assert failure_point_id("a", "1.0.0", "Parse  JSON") == failure_point_id("a", "1.0.0", "parse json")


def test_reindexing_twice_leaves_the_same_points(make_runtime):
    rt = make_runtime(demo=True)
    service = memory_for(rt, 30)
    mark_tool_failure(rt, "csv_parser", "parse JSON data", "e", "high")
    mark_tool_failure(rt, "csv_parser", "Parse JSON   data", "e", "medium")  # same scenario: one point, count 2
    mark_tool_failure(rt, "json_parser", "parse a huge file", "e", "low")
    service.catch_up()
    first = counts(service)
    assert first == (len(rt.catalog.all_entries()), 2)
    assert service.reindex() == {"tools": first[0], "failures": 2}
    assert service.reindex() == {"tools": first[0], "failures": 2}
    assert counts(service) == first
    hits = service.memory.search_failures(service.memory.embed_one("parse JSON data"), 5, 0.9)
    assert [(h.payload["tool_id"], h.payload["count"], h.payload["severity"]) for h in hits] == [("csv_parser", 2, "high")]


def test_hot_reload_adds_and_removes_tools(workspace, make_runtime):
    rt = make_runtime()
    service = memory_for(rt, 30)
    before = counts(service)[0]
    path = python_tool(workspace / "tools", "weather_lookup", "def run(d):\n    return {'sky': 'clear'}\n",
                       description="Look up today's weather forecast for a city.", tags=["weather"])
    rt.catalog.reload_path(path)
    wait_for(lambda: counts(service)[0] == before + 1)
    sel = select_candidates(rt, "what is the weather forecast in Paris")
    assert [c.tool_id for c in sel.candidates] == ["weather_lookup"]
    path.unlink()
    rt.catalog.reload_path(path)
    wait_for(lambda: counts(service)[0] == before)
    assert select_candidates(rt, "what is the weather forecast in Paris").candidates == []


def test_failures_from_another_process_reach_the_memory_by_themselves(make_runtime, workspace):
    python_tool(workspace / "tools", "xml_reader", "def run(d):\n    return {}\n", description="Read XML documents.")
    rt = make_runtime()
    service = memory_for(rt, 30)
    assert counts(service)[1] == 0
    script = textwrap.dedent(f"""
        from tools.runtime import Runtime
        from tools.recovery.ledger import mark_tool_failure
        with Runtime({str(workspace)!r}) as rt:
            mark_tool_failure(rt, "xml_reader", "read an XML feed with namespaces", "KeyError: ns", "high")
    """)
    subprocess.run([sys.executable, "-c", script], check=True, timeout=60, cwd=REPO)
    wait_for(lambda: counts(service)[1] == 1)  # the memory thread tails the failures table on its own


def test_no_network_at_any_point(workspace):
    """Build the memory and run a resilient call with every non-loopback connection refused."""
    script = textwrap.dedent(f"""
        import socket
        attempts = []
        real_connect = socket.socket.connect
        def guarded(self, address):
            host = address[0] if isinstance(address, tuple) else address
            if self.family == socket.AF_UNIX or host in ("127.0.0.1", "::1", "localhost"):
                return real_connect(self, address)
            attempts.append(address)
            raise OSError("network access attempted: " + repr(address))
        socket.socket.connect = guarded
        real_getaddrinfo = socket.getaddrinfo
        def guarded_getaddrinfo(host, *a, **k):
            if host not in (None, "127.0.0.1", "::1", "localhost"):
                attempts.append(host)
                raise OSError("name lookup attempted: " + repr(host))
            return real_getaddrinfo(host, *a, **k)
        socket.getaddrinfo = guarded_getaddrinfo
        from tools.runtime import Runtime
        from tools.recovery.resilient import call_tool_resilient
        with Runtime({str(workspace)!r}, demo=True) as rt:
            out = call_tool_resilient(rt, "translate to french", {{"text": "Hello", "target": "fr"}}, tags=["translation"])
        print(out["result"]["translation"], len(attempts))
    """)
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=90, cwd=REPO,
                         env={"PATH": "/usr/bin:/bin", "HOME": str(workspace)})
    assert run.returncode == 0, run.stderr
    assert run.stdout.split() == ["bonjour", "0"]


def test_unreachable_qdrant_server_is_a_clear_error(workspace, make_runtime, monkeypatch):
    monkeypatch.setenv("QDRANT_URL", "http://127.0.0.1:9")
    monkeypatch.setenv("QDRANT_API_KEY", "qdrant-secret-key-123456")
    rt = make_runtime()
    with pytest.raises(StateError) as info:
        select_candidates(rt, "translate to french")
    message = str(info.value)
    assert "semantic memory (server http://127.0.0.1:9) failed to build" in message
    assert "qdrant-secret-key" not in message and "\n" not in message


def test_serving_runtimes_build_at_start_others_on_first_use(workspace, make_runtime):
    lazy = make_runtime()
    lazy.wait_ready(10)
    assert lazy.extensions["memory"].started_at is None
    eager = make_runtime(serve=True)
    eager.wait_ready(10)
    assert eager.extensions["memory"].started_at is not None
    assert eager.extensions["memory"].ready.wait(30)
    t = eager.extensions["memory"].timings
    assert t.tools == len(eager.catalog.all_entries()) and t.ready_at > 0


def ledger_tools(folder: Path) -> None:
    """A tool whose description says only what it runs, and one described in the words of accounting."""
    python_tool(folder, "ledger_sync", "def run(d):\n    return {'ok': True}\n", description="Runs the nightly batch job.")
    python_tool(folder, "report_builder", "def run(d):\n    return {'ok': True}\n",
                description="Build charts and summary reports from accounting data.")


def test_a_tool_is_found_by_the_scenarios_it_succeeded_on(make_runtime, workspace):
    """Tool2Vec: a tool's past successful scenarios, written by the people who use it, find it for a scenario
    its own description does not (0.22 similar), in this process at once and in others through the event log."""
    from tools.recovery.resilient import call_tool_resilient

    ledger_tools(workspace / "tools")
    rt = make_runtime()
    march = "reconcile the accounts for march"
    assert "ledger_sync" not in [c.tool_id for c in select_candidates(rt, march).candidates]
    first = call_tool_resilient(rt, "run the nightly batch job that reconciles the accounts of february", {})
    assert first["tool_id"] == "ledger_sync"
    [found, *_] = select_candidates(rt, march).candidates
    assert found.tool_id == "ledger_sync" and found.similarity > 0.4
    assert "embedding #1 (like its past success 'run the nightly batch job that reconciles the accounts of...')" in found.why
    service = memory_for(rt, 30)
    m = service.memory
    assert len(service.usage) == m.count(m.usage_collection) == 1
    call_tool_resilient(rt, march, {})  # the same tool again: one more point (another scenario)
    assert len(service.usage) == 2
    script = textwrap.dedent(f"""
        from tools.runtime import Runtime
        from tools.recovery.resilient import call_tool_resilient
        with Runtime({str(workspace)!r}) as rt:
            print(call_tool_resilient(rt, "reconcile the accounts for april", {{}})["tool_id"])
    """)
    other = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=60, cwd=REPO)
    assert other.stdout.strip() == "ledger_sync"  # that process read this one's successes back at its start
    wait_for(lambda: len(service.usage) == 3)  # and its success reaches this one by the tail


def test_past_successes_are_bounded_and_read_back_at_start(make_runtime, workspace):
    from tools.recovery.resilient import call_tool_resilient

    ledger_tools(workspace / "tools")
    rt = make_runtime()
    service = memory_for(rt, 30)
    service.usage.max_points = 2
    for month in ("february", "march", "april"):
        call_tool_resilient(rt, f"run the nightly batch job that reconciles the accounts of {month}", {})
    m = service.memory
    assert len(service.usage) == m.count(m.usage_collection) == 2  # the least recently successful went first
    scenarios = {h.payload["scenario"] for h in m.search_usage(m.embed_one("reconcile accounts"), 10)}
    assert scenarios == {"run the nightly batch job that reconciles the accounts of march",
                         "run the nightly batch job that reconciles the accounts of april"}
    rt.close()
    again = memory_for(make_runtime(), 30)
    assert len(again.usage) == 3 and again.timings.extra["past_successes"] == 3
