"""Imported MCP servers as real processes: killed mid-call (failure recorded, reconnect, calls succeed again), a hung
server that blocks nobody, kill -9 of the runtime, the stdio server's minimal environment, `${VAR}` and its absence,
secrets kept out of the database, logs and cache, and a Streamable HTTP server with a secret header."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest

from tests.buffer_helpers import wait_for
from tests.helpers import alive
from tests.mcp_import_helpers import (
    SERVER,
    TOKEN,
    holding,
    http_section,
    http_server,
    kill9,
    link,
    server_pid,
    stdio_section,
    wait_status,
    write_settings,
)
from tools.errors import ToolError
from tools.mcp.client import MINIMAL_ENV


def test_server_killed_mid_call_fails_the_call_reconnects_and_serves_again(workspace: Path, make_runtime,
                                                                          tmp_path: Path) -> None:
    state = tmp_path / "state"
    write_settings(workspace, stdio_section("srv", state))
    rt = make_runtime(serve=True)
    wait_status(rt, "srv", "ready")
    first_pid = server_pid(state)
    box: dict[str, ToolError] = {}

    def slow() -> None:
        try:
            rt.call("srv_slow", {"seconds": 60})
        except ToolError as exc:
            box["error"] = exc

    worker = threading.Thread(target=slow)
    worker.start()
    wait_for(lambda: (state / "slow.started").exists(), 30)
    kill9(first_pid)
    worker.join(30)
    assert box["error"].error_class == "crash"
    assert "MCP server 'srv' closed the connection during the call" in box["error"].message
    srv = wait_for(lambda: link(rt, "srv").status != "ready" and link(rt, "srv"), 30)
    with pytest.raises(ToolError) as refused:  # while it is down: unavailable, at once, and held against the tool
        rt.call("srv_echo", {"text": "x"})
    assert refused.value.error_class == "unavailable" and "MCP server 'srv'" in refused.value.message
    wait_status(rt, "srv", "ready", timeout=60)
    assert srv.error is None and server_pid(state) != first_pid
    assert rt.call("srv_echo", {"text": "back"}) == {"echo": "back", "length": 4}
    rt.calls.flush()
    rows = rt.store.query("SELECT tool_id, outcome FROM calls WHERE tool_id LIKE 'srv_%' ORDER BY id")
    assert [(r[0], r[1]) for r in rows] == [("srv_slow", "crash"), ("srv_echo", "unavailable"), ("srv_echo", "ok")]
    failures = rt.store.query("SELECT tool_id, error_class FROM failures WHERE tool_id LIKE 'srv_%' ORDER BY id")
    assert [(r[0], r[1]) for r in failures] == [("srv_slow", "crash"), ("srv_echo", "unavailable")]
    events = wait_for(lambda: [tuple(r) for r in rt.store.query(  # written off the event loop, a moment after
        "SELECT kind, payload FROM events WHERE kind LIKE 'mcp.server_%' ORDER BY id")] if len(rt.store.query(
        "SELECT id FROM events WHERE kind LIKE 'mcp.server_%'")) >= 3 else None, 30)
    assert [e[0] for e in events] == ["mcp.server_ready", "mcp.server_error", "mcp.server_ready"]
    assert "the server was killed by signal 9" in json.loads(events[1][1])["error"]
    assert not alive(first_pid)


def test_a_hung_server_blocks_nobody(workspace: Path, make_runtime, tmp_path: Path) -> None:
    hung = ('[mcp.servers.hung]\ncommand = {!r}\nargs = ["-c", "import time; time.sleep(600)"]\ntimeout_seconds = 2\n'
            'connect_timeout_seconds = 2\n')
    write_settings(workspace, hung.format(sys.executable).replace("'", '"'), stdio_section("srv", tmp_path / "state"))
    rt = make_runtime(serve=True)
    wait_status(rt, "srv", "ready")
    assert link(rt, "hung").status == "connecting"  # still waiting for its initialize answer
    assert rt.call("srv_echo", {"text": "meanwhile"})["echo"] == "meanwhile"
    hung_link = wait_status(rt, "hung", "error", timeout=30)
    assert "did not start and initialize within 2 s (connect_timeout_seconds)" in hung_link.error
    assert rt.call("srv_echo", {"text": "after"})["echo"] == "after"


def test_a_server_slower_to_start_than_its_call_timeout_still_connects(workspace: Path, make_runtime, tmp_path: Path) -> None:
    """A cold start (npx, a Python server's imports on a busy machine) is not held to a 2 s call timeout:
    starting gets `connect_timeout_seconds` (default: the larger of timeout_seconds and 30)."""
    slow = tmp_path / "slow_start.py"
    slow.write_text(f"import runpy, sys, time\ntime.sleep(4)\nsys.argv[0] = {str(SERVER)!r}\n"
                    f"runpy.run_path({str(SERVER)!r}, run_name='__main__')\n")
    write_settings(workspace, stdio_section("srv", tmp_path / "state", timeout=2, script=slow))
    rt = make_runtime()
    assert rt.call("srv_echo", {"text": "late"})["echo"] == "late"
    assert link(rt, "srv").status == "ready" and link(rt, "srv").error is None


RUNTIME = textwrap.dedent("""
    import sys, time
    from tools.runtime import Runtime
    rt = Runtime(sys.argv[1], serve=True)
    while rt.extension("mcp").links["srv"].status != "ready":
        time.sleep(0.05)
    print("ready", flush=True)
    time.sleep(600)
""")


def test_kill_9_of_the_runtime_kills_the_stdio_server(workspace: Path, tmp_path: Path) -> None:
    state = tmp_path / "state"
    write_settings(workspace, stdio_section("srv", state))
    proc = subprocess.Popen([sys.executable, "-c", RUNTIME, str(workspace)], stdout=subprocess.PIPE, text=True,
                            cwd=Path(__file__).resolve().parents[1])
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        pid = server_pid(state)
        assert alive(pid)
        assert int(Path(f"/proc/{pid}/stat").read_text().split(")")[1].split()[1]) == proc.pid  # a child of the runtime
        proc.kill()
        proc.wait(30)
        wait_for(lambda: not alive(pid), 30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(30)


def test_env_vars_are_read_at_start_and_an_unset_one_is_an_error_naming_it(workspace: Path, make_runtime, tmp_path: Path,
                                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IMPORT_FILES_TOKEN", TOKEN)
    monkeypatch.setenv("UNRELATED_SETTING", "must-not-reach-the-server")
    monkeypatch.delenv("IMPORT_MISSING_TOKEN", raising=False)
    write_settings(workspace,
                   stdio_section("srv", tmp_path / "state", env={"API_TOKEN": "${IMPORT_FILES_TOKEN}", "MODE": "test"}),
                   stdio_section("broken", tmp_path / "broken", env={"API_TOKEN": "${IMPORT_MISSING_TOKEN}"}))
    rt = make_runtime(serve=True)
    wait_status(rt, "srv", "ready")
    report = rt.call("srv_env_report", {})
    assert report["token_sha256"] == hashlib.sha256(TOKEN.encode()).hexdigest()
    assert set(report["keys"]) <= set(MINIMAL_ENV) | {"API_TOKEN", "MODE", "LC_CTYPE"}, report["keys"]
    assert "UNRELATED_SETTING" not in report["keys"] and "PATH" in report["keys"]
    broken = wait_status(rt, "broken", "error")
    assert "[mcp.servers.broken] env.API_TOKEN: ${IMPORT_MISSING_TOKEN} is not set in the environment" in broken.error
    assert broken.error.count("[mcp.servers.broken]") == 1  # named once
    assert not (tmp_path / "broken").exists()  # never started
    with pytest.raises(ToolError, match=r"IMPORT_MISSING_TOKEN\} is not set"):
        rt.call("broken_echo", {"text": "x"})


def test_secrets_from_env_never_reach_the_database_logs_or_cache(workspace: Path, make_runtime, tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IMPORT_FILES_TOKEN", TOKEN)
    write_settings(workspace, stdio_section("srv", tmp_path / "state", env={"API_TOKEN": "${IMPORT_FILES_TOKEN}"}))
    rt = make_runtime(serve=True)
    wait_status(rt, "srv", "ready")
    leaked = rt.call("srv_leak", {})  # the server prints the token on stderr and returns it
    assert leaked == {"token": TOKEN}  # the caller gets what the tool answered
    rt.calls.flush()
    stored = rt.store.query("SELECT output FROM calls WHERE tool_id='srv_leak'")[0][0]
    assert "***" in stored and TOKEN not in stored
    log_text = "\n".join(p.read_text() for p in (workspace / ".tooldeck" / "logs").glob("*"))
    wait_for(lambda: "leaking the token: ***" in "\n".join(p.read_text() for p in (workspace / ".tooldeck" / "logs").glob("*")), 30)
    rt.close()
    assert holding(workspace / ".tooldeck", TOKEN) == []  # database, WAL, logs, tool-list cache
    assert TOKEN not in log_text
    assert (workspace / ".tooldeck" / "mcp" / "srv.tools.json").exists()


def test_a_streamable_http_server_with_a_secret_header(workspace: Path, make_runtime, tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    state = tmp_path / "http-state"
    with http_server(state, "--token-env", "EXPECTED_TOKEN", env={"EXPECTED_TOKEN": TOKEN}) as url:
        monkeypatch.setenv("IMPORT_SEARCH_TOKEN", TOKEN)
        write_settings(workspace, http_section("search", url, headers={"Authorization": "Bearer ${IMPORT_SEARCH_TOKEN}"}),
                       http_section("wrong", url, headers={"Authorization": "Bearer not-the-token"}, timeout=5))
        rt = make_runtime(serve=True)
        search = wait_status(rt, "search", "ready")
        assert search.config.transport == "http" and search.pid is None
        assert rt.call("search_echo", {"text": "over http"}) == {"echo": "over http", "length": 9}
        with pytest.raises(ToolError) as failed:
            rt.call("search_fail", {})
        assert failed.value.error_class == "tool_error"
        assert rt.call("search_add_tool", {"name": "http_added"})["added"] == "http_added"
        wait_for(lambda: rt.catalog.find("search_http_added"), 30)  # list_changed over HTTP too
        wrong = wait_status(rt, "wrong", "error", timeout=60)
        assert wrong.error and "[mcp.servers.wrong]" in wrong.error
        assert rt.call("search_echo", {"text": "still"})["echo"] == "still"
        rt.close()
    assert holding(workspace / ".tooldeck", TOKEN) == []
    assert not os.environ.get("TOOLDECK_MCP_TOKEN")


def test_a_server_that_exits_at_start_is_in_error_with_its_exit_code_and_last_words(workspace: Path, make_runtime) -> None:
    script = "import sys; sys.stderr.write('usage: server --root DIR\\\\nerror: --root is required\\\\n'); sys.exit(2)"
    write_settings(workspace, f'[mcp.servers.bad]\ncommand = "{sys.executable}"\nargs = ["-c", "{script}"]\ntimeout_seconds = 10\n')
    rt = make_runtime(serve=True)
    bad = wait_status(rt, "bad", "error")
    assert "the server exited with code 2: usage: server --root DIR | error: --root is required" in bad.error, bad.error
    assert bad.error.count("[mcp.servers.bad]") == 1
