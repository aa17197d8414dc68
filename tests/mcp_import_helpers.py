"""Shared pieces of the MCP import tests (no tests here): tooldeck.toml sections for the test server
(tests/mcp_import_server.py) over stdio and Streamable HTTP, and readers of what it recorded."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tests.buffer_helpers import wait_for

REPO = Path(__file__).resolve().parents[1]
SERVER = REPO / "tests" / "mcp_import_server.py"
FAULTY = REPO / "tests" / "mcp_faulty_server.py"
TOKEN = "tok-imported-" + "9c1e77ab42d0"  # long enough to be masked wherever it appears


def stdio_section(name: str, state: Path, *extra: str, env: dict[str, str] | None = None,
                  timeout: float | None = 20, script: Path = SERVER, more: str = "") -> str:
    """`[mcp.servers.NAME]` running the test server (or `script`) over stdio with its files in `state`."""
    args = [str(script), "--state", str(state), *extra]
    lines = [f"[mcp.servers.{name}]", f"command = {json.dumps(sys.executable)}", f"args = {json.dumps(args)}"]
    if env:
        lines.append("env = { " + ", ".join(f"{k} = {json.dumps(v)}" for k, v in env.items()) + " }")
    if timeout is not None:
        lines.append(f"timeout_seconds = {timeout}")
    if more:
        lines.append(more)
    return "\n".join(lines) + "\n"


def http_section(name: str, url: str, *, headers: dict[str, str] | None = None, timeout: float | None = 20,
                 more: str = "") -> str:
    lines = [f"[mcp.servers.{name}]", f"url = {json.dumps(url)}"]
    if more:
        lines.append(more)
    if headers:
        lines.append("headers = { " + ", ".join(f"{json.dumps(k)} = {json.dumps(v)}" for k, v in headers.items()) + " }")
    if timeout is not None:
        lines.append(f"timeout_seconds = {timeout}")
    return "\n".join(lines) + "\n"


def write_settings(ws: Path, *sections: str, extra: str = "") -> None:
    (ws / "tooldeck.toml").write_text(extra + "\n" + "\n".join(sections))


def server_pid(state: Path, timeout: float = 60) -> int:
    return int(wait_for(lambda: (state / "pid").exists() and (state / "pid").read_text().strip(), timeout))


def starts(state: Path) -> int:
    """How many times the server was started (one line per start in pids.log)."""
    path = state / "pids.log"
    return len(path.read_text().split()) if path.exists() else 0


def kill9(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def link(runtime: Any, name: str) -> Any:
    return runtime.extension("mcp").links[name]


def wait_status(runtime: Any, name: str, status: str, timeout: float = 60) -> Any:
    hub = runtime.extension("mcp")
    return wait_for(lambda: hub.links[name].status == status and hub.links[name], timeout)


def batches(state: Path) -> list[dict[str, Any]]:
    path = state / "batches.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines() if line] if path.exists() else []


@contextmanager
def http_server(state: Path, *extra: str, env: dict[str, str] | None = None, script: Path = SERVER) -> Iterator[str]:
    """The test server (or `script`) over Streamable HTTP on 127.0.0.1 (a real process); yields its /mcp URL."""
    state.mkdir(parents=True, exist_ok=True)
    (state / "port").unlink(missing_ok=True)
    log = open(state.parent / f"{state.name}-http.log", "ab")  # noqa: SIM115 - closed below
    proc = subprocess.Popen([sys.executable, str(script), "--state", str(state), "--http", *extra], stdin=subprocess.DEVNULL,
                            stdout=log, stderr=log, env={**os.environ, **(env or {})})
    try:
        def port() -> str | None:
            if proc.poll() is not None:
                raise AssertionError(f"test server exited {proc.returncode}")
            path = state / "port"
            return path.read_text().strip() if path.exists() else None

        yield f"http://127.0.0.1:{wait_for(port, 60)}/mcp"
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(30)
        log.close()


def files_under(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if p.is_file()]


def holding(folder: Path, needle: str) -> list[str]:
    """Files under `folder` whose bytes contain `needle` (the database, its WAL, logs, caches)."""
    raw = needle.encode()
    return [str(p) for p in files_under(folder) if raw in p.read_bytes()]
