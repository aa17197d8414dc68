"""The CLI as a user runs it: real processes, exit codes, one-line errors."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.helpers import python_tool


def tooldeck(*args: str, ws: Path, input: str | None = None, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "tools", "--workspace", str(ws), *args], capture_output=True, text=True,
                          input=input, timeout=timeout)


@pytest.fixture
def ws(workspace: Path) -> Path:
    python_tool(workspace / "tools", "echo", "def run(d):\n    return {'echo': d}\n",
                input_schema={"text": {"type": "string", "required": True}},
                tests=[{"input": {"text": "a"}, "expect": {"echo": {"text": "a"}}},
                       {"input": {}, "expect_error": "bad input"}])
    (workspace / "tools" / "broken.yaml").write_text("name: broken\ntype: [\n")
    return workspace


def test_tools_json_lists_status(ws: Path) -> None:
    out = tooldeck("tools", "--json", ws=ws)
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    rows = {r["id"]: r for r in data["tools"]}
    assert rows["echo"]["status"] == "ready" and rows["echo"]["type"] == "python"
    assert rows["broken"]["status"] == "error" and "invalid YAML" in rows["broken"]["error"]
    assert data["summary"].startswith("Ready:")


def test_tools_table(ws: Path) -> None:
    out = tooldeck("tools", "--wait", ws=ws)
    assert "echo" in out.stdout and "broken" in out.stdout
    assert out.returncode == 1  # --wait reports a catalog with errors as a failure


def test_call_exit_codes_and_one_line_errors(ws: Path) -> None:
    ok = tooldeck("call", "echo", '{"text": "hi"}', ws=ws)
    assert ok.returncode == 0 and json.loads(ok.stdout) == {"echo": {"text": "hi"}}
    stdin = tooldeck("call", "echo", "-", ws=ws, input='{"text": "from stdin"}')
    assert json.loads(stdin.stdout) == {"echo": {"text": "from stdin"}}
    bad_json = tooldeck("call", "echo", "{oops", ws=ws)
    assert bad_json.returncode == 2 and bad_json.stderr.count("\n") == 1 and "not valid JSON" in bad_json.stderr
    bad_input = tooldeck("call", "echo", '{"nope": 1}', ws=ws)
    assert bad_input.returncode == 1 and "bad input" in bad_input.stderr
    unknown = tooldeck("call", "ech", "{}", ws=ws)
    assert unknown.returncode == 1 and "did you mean echo" in unknown.stderr
    escape = tooldeck("call", "../../etc/passwd", "{}", ws=ws)
    assert escape.returncode == 2 and "invalid tool id" in escape.stderr
    usage = tooldeck("call", ws=ws)
    assert usage.returncode == 2
    as_json = tooldeck("call", "echo", '{"nope": 1}', "--json", ws=ws)
    assert as_json.returncode == 1 and json.loads(as_json.stdout)["error_class"] == "bad_input"


def test_test_command(ws: Path) -> None:
    out = tooldeck("test", "echo", ws=ws)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "2 passed, 0 failed" in out.stdout


def _children(pid: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as fh:
                    fields = fh.read().rsplit(")", 1)[1].split()
                if int(fields[1]) == pid:
                    found.append(int(entry))
            except (FileNotFoundError, ProcessLookupError, IndexError):
                continue
    return found


def test_serve_stops_cleanly_on_sigterm(ws: Path) -> None:
    proc = subprocess.Popen([sys.executable, "-m", "tools", "--workspace", str(ws), "serve"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        lines = []
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            lines.append(line)
            if line.startswith("Ready:"):
                break
        assert any(line.startswith("Ready:") for line in lines), lines
        # a call from another process is served while serve runs
        assert tooldeck("call", "echo", '{"text": "x"}', ws=ws).returncode == 0
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
        assert proc.returncode == 0, err
        assert "stopping" in out
        assert _children(proc.pid) == []
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_missing_workspace_is_a_usage_error(tmp_path: Path) -> None:
    out = tooldeck("tools", ws=tmp_path / "no" / "such")
    assert out.returncode == 2 and "does not exist" in out.stderr
    assert not (tmp_path / "no").exists()
