"""Operator controls, the CLI, and two processes marking failures at once."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.helpers import python_tool
from tools.errors import InvalidIdError, ToolUnavailableError, UnknownToolError, UsageError
from tools.recovery import controls
from tools.recovery.ledger import mark_tool_failure
from tools.recovery.rules import ACCELERATION, SEVERITY_DELTA

REPO = Path(__file__).resolve().parents[1]


def tooldeck(ws: Path, *args: str, timeout: float = 90) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "tools", "--workspace", str(ws), *args], capture_output=True, text=True,
                          timeout=timeout, cwd=REPO)


@pytest.fixture
def ws(workspace: Path) -> Path:
    python_tool(workspace / "tools", "echo", "def run(d):\n    return {'echo': d.get('x')}\n", tags=["echo"])
    return workspace


def test_reset_score_and_remove_tag_with_actor(ws, make_runtime):
    rt = make_runtime(ws)
    mark_tool_failure(rt, "echo", "parse JSON data", "e", "high")
    out = controls.reset_score(rt, "echo", actor="alice")
    assert (out["score_before"], out["score"]) == (0.9, 1.0)
    out = controls.remove_tag(rt, "echo", "not-for-json", actor="alice")
    assert out["tags"] == []
    snap = rt.extensions["failures"].scores_snapshot()[("echo", "1.0.0")]
    assert (snap["score"], snap["tags"], snap["failures"]) == (1.0, [], 1)
    evs = [(e.kind, e.tool_id, e.version, e.payload["actor"]) for e in rt.events.recent(20) if e.kind.startswith("control.")]
    assert evs == [("control.reset_score", "echo", "1.0.0", "alice"), ("control.remove_tag", "echo", "1.0.0", "alice")]
    assert [h["reason"] for h in rt.extensions["failures"].score_history("echo")] == ["failure", "reset"]


def test_disable_and_enable(ws, make_runtime):
    rt = make_runtime(ws)
    controls.set_disabled(rt, "echo", True, actor="bob", reason="leaks memory")
    with pytest.raises(ToolUnavailableError) as info:
        rt.call("echo", {"x": "1"})
    assert str(info.value) == "echo 1.0.0 is disabled by bob: leaks memory"
    assert rt.extensions["failures"].scores_snapshot()[("echo", "1.0.0")]["disabled"] is True
    controls.set_disabled(rt, "echo", False, actor="bob")
    assert rt.call("echo", {"x": "1"}) == {"echo": "1"}
    controls.set_disabled(rt, "echo", True, "1.0.0", actor="bob")  # one version only
    with pytest.raises(ToolUnavailableError):
        rt.call("echo", {"x": "1"})
    controls.set_disabled(rt, "echo", False, "1.0.0", actor="bob")
    assert rt.call("echo", {"x": "2"}) == {"echo": "2"}
    controls.set_disabled(rt, "echo", True, actor="bob")  # the whole tool, then one version enabled (the dashboard's toggle)
    controls.set_disabled(rt, "echo", False, "1.0.0", actor="bob")
    assert rt.call("echo", {"x": "3"}) == {"echo": "3"}


@pytest.mark.parametrize("action, exc, text", [
    (lambda rt: controls.reset_score(rt, "nosuch"), UnknownToolError, "unknown tool 'nosuch'"),
    (lambda rt: controls.reset_score(rt, "echo", "9.9.9"), UnknownToolError, "has no version 9.9.9"),
    (lambda rt: controls.reset_score(rt, "echo", "latest"), InvalidIdError, "invalid version"),
    (lambda rt: controls.remove_tag(rt, "echo", "not-for-json"), UsageError, "has no tag 'not-for-json'"),
    (lambda rt: controls.remove_tag(rt, "echo", "json"), UsageError, "invalid negative tag"),
    (lambda rt: controls.force_circuit(rt, "echo", "ajar"), UsageError, "must be open or closed"),
    (lambda rt: controls.set_disabled(rt, "echo", True, actor="x;rm -rf"), UsageError, "invalid actor"),
    (lambda rt: controls.set_disabled(rt, "nosuch", True), UnknownToolError, "unknown tool"),
])
def test_control_bad_input(ws, make_runtime, action, exc, text):
    rt = make_runtime(ws)
    with pytest.raises(exc) as info:
        action(rt)
    assert text in str(info.value)
    assert [e for e in rt.events.recent(50) if e.kind.startswith("control.")] == []


def test_two_processes_marking_at_once_lose_nothing(ws, make_runtime):
    n = 25
    script = textwrap.dedent(f"""
        import sys
        from tools.runtime import Runtime
        from tools.recovery.ledger import mark_tool_failure
        with Runtime({str(ws)!r}) as rt:
            rt.wait_ready(30)
            print("go", flush=True)
            sys.stdin.readline()
            for i in range({n}):
                mark_tool_failure(rt, "echo", f"scenario {{sys.argv[1]}} {{i}}", "e", "low")
    """)
    procs = []
    for tag in ("a", "b"):  # started one after the other: the race under test is the marking, not the start
        p = subprocess.Popen([sys.executable, "-c", script, tag], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True, cwd=REPO)
        procs.append(p)
        line = p.stdout.readline().strip()
        if line != "go":
            p.kill()
            raise AssertionError(f"writer did not start: {line!r} {p.stderr.read()[-2000:]}")
    for p in procs:  # release both at once
        p.stdin.write("\n")
        p.stdin.flush()
    for p in procs:
        _out, err = p.communicate(timeout=60)
        assert p.returncode == 0, err
    rt = make_runtime(ws)
    rt.wait_ready(10)
    assert rt.store.query_one("SELECT COUNT(*) FROM failures")[0] == 2 * n
    assert rt.store.query_one("SELECT failures FROM tool_health WHERE tool_id='echo'")[0] == 2 * n
    assert len(rt.events.recent(500, kinds=["tool.failure"])) == 2 * n
    # every demotion applied once, in a serial order: 5 at low, 5 more with +0.05, the rest with +0.10
    extra = dict((t, e) for t, e in ACCELERATION)
    expected = sum(SEVERITY_DELTA["low"] + (extra[10] if k > 10 else extra[5] if k > 5 else 0) for k in range(1, 2 * n + 1))
    deltas = [r[0] for r in rt.store.query("SELECT delta FROM failures ORDER BY id")]
    assert sum(deltas) == pytest.approx(expected)
    assert rt.extensions["failures"].scores_snapshot()[("echo", "1.0.0")]["score"] == pytest.approx(max(0.0, 1 - expected))


def test_cli_fail_scores_failures_control_resilient(ws):
    out = tooldeck(ws, "fail", "echo", "--scenario", "parse YAML config", "--error", "ScannerError", "--severity", "high")
    assert out.returncode == 0 and "tagged not-for-yaml" in out.stdout, out.stderr
    out = tooldeck(ws, "fail", "echo", "--scenario", "s", "--error", "e", "--severity", "huge")
    assert out.returncode == 2 and out.stderr.startswith("tooldeck: invalid severity 'huge'")
    out = tooldeck(ws, "scores", "--json")
    row = next(r for r in json.loads(out.stdout) if r["tool_id"] == "echo")
    assert (row["score"], row["tags"], row["circuit"], row["failures"]) == (0.9, ["not-for-yaml"], "closed", 1)
    out = tooldeck(ws, "failures", "echo", "--json")
    assert json.loads(out.stdout)[0]["scenario"] == "parse YAML config"
    out = tooldeck(ws, "control", "remove-tag", "echo", "not-for-yaml", "--actor", "carol")
    assert out.returncode == 0 and out.stdout.startswith("remove-tag not-for-yaml: echo ") and "by carol" in out.stdout, out.stderr
    out = tooldeck(ws, "control", "circuit", "echo", "open", "--json")
    assert json.loads(out.stdout)["state"] == "open"
    out = tooldeck(ws, "scores")
    assert "echo" in out.stdout and "open" in out.stdout
    out = tooldeck(ws, "control", "circuit", "echo", "closed")
    assert out.returncode == 0 and out.stdout.startswith("circuit closed: echo "), out.stdout  # says which state
    out = tooldeck(ws, "resilient", "echo the value back", '{"x": "hi"}', "--tags", "echo", "--json")
    assert out.returncode == 0, out.stderr
    got = json.loads(out.stdout)
    assert got["result"] == {"echo": "hi"} and got["hops"][0]["tool_id"] == "echo"
    piped = tooldeck(ws, "resilient", "echo the value back", '{"x": "hi"}', "--tags", "echo")  # stdout is a pipe here
    lines = piped.stdout.splitlines()
    assert lines[0].split("\t")[:3] == ["#", "tool", "version"] and lines[1].split("\t")[1] == "echo"  # TSV, ids whole
    assert not any(c in piped.stdout for c in "┏━│╭") and all(len(line) < 400 for line in lines[:2])
    out = tooldeck(ws, "resilient", "book a flight to Tokyo", "{}")
    assert out.returncode == 1 and "nothing was tried" in out.stderr and out.stderr.count("\n") == 1
    out = tooldeck(ws, "resilient", "echo it", "{not json")
    assert out.returncode == 2 and "not valid JSON" in out.stderr
