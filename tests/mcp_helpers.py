"""Shared pieces of the MCP tests (no tests here): a workspace of small tools, `tooldeck mcp serve` in a real
process driven by the SDK's client or by raw JSON-RPC clients over stdio and HTTP."""

from __future__ import annotations

import json
import os
import queue
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from tests.buffer_helpers import SINK_CODE, wait_for
from tests.helpers import exec_tool, python_tool

REPO = Path(__file__).resolve().parents[1]
TOKEN = "tok-" + "3f9a1c7e5b2d4a60"  # 20 characters: long enough for the server's rule

ECHO = '''
def run(data):
    return {"echo": data["text"], "length": len(data["text"])}
'''
#: prints its input upper-cased: a tool whose input is a plain string and whose output is text
SHOUT = '''
import json, sys
sys.stdout.write(json.load(sys.stdin).upper() + "!")
'''
BROKEN = '''
import sys
sys.stderr.write("boom: the disk is full\\n")
sys.exit(3)
'''
#: writes its pid to <workspace>/<pid_file>, then sleeps: a call that only ends when killed
SLEEPY = '''
import json, os, sys, time
data = json.load(sys.stdin)
path = os.path.join(os.environ["TOOLDECK_WORKSPACE"], data.get("pid_file", "sleepy.pid"))
with open(path + ".tmp", "w") as f:
    f.write(str(os.getpid()))
os.replace(path + ".tmp", path)
time.sleep(float(data.get("seconds", 60)))
print(json.dumps({"slept": data.get("seconds", 60)}))
'''
#: the failing and the working tool a resilient call falls back between (similar descriptions)
FLAKY_CONVERTER = '''
import sys
sys.stderr.write("converter backend unavailable\\n")
sys.exit(1)
'''
GOOD_CONVERTER = '''
def run(data):
    return {"celsius": round((float(data["fahrenheit"]) - 32) * 5 / 9, 2)}
'''


def make_workspace(ws: Path, *, settings: str = "") -> Path:
    tools = ws / "tools"
    python_tool(tools, "echo", ECHO, description="Echo a text back with its length",
                input_schema={"text": {"type": "string", "required": True, "description": "What to echo"}},
                output_schema={"type": "object", "required": ["echo"], "properties": {"echo": {"type": "string"}}},
                read_only=True, idempotent=True)
    exec_tool(tools, "shout", SHOUT, description="Shout a text", input_schema={"type": "string"})
    exec_tool(tools, "broken", BROKEN, description="A tool that always fails")
    exec_tool(tools, "sleepy", SLEEPY, description="Sleep for a while", timeout=120)
    exec_tool(tools, "converter_remote", FLAKY_CONVERTER, description="Convert a temperature from fahrenheit to celsius",
              tags=["temperature", "conversion"], quality_score=1.0)
    python_tool(tools, "converter_local", GOOD_CONVERTER, description="Convert temperatures from fahrenheit to celsius",
                tags=["temperature", "conversion"], quality_score=0.9)
    python_tool(tools, "sink", SINK_CODE, func="store", description="Store buffered batches", timeout=20)
    (ws / "tooldeck.toml").write_text(settings)
    return ws


def serve_argv(ws: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "tools", "--workspace", str(ws), "mcp", "serve", *extra]


def server_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("TOOLDECK_SESSION", "TOOLDECK_MCP_TOKEN")}
    env.update(extra)
    return env


def db_rows(ws: Path, sql: str, params: tuple[Any, ...] = ()) -> list[dict[str, Any]]:
    from tests.helpers import state_rows

    return state_rows(ws, sql, params)


# -- the SDK's own client ----------------------------------------------------------------

class Inbox:
    """What the server sent on its own: notifications, in order."""

    def __init__(self) -> None:
        self.messages: list[Any] = []

    async def __call__(self, message: Any) -> None:
        self.messages.append(message)

    def count(self, method: str) -> int:
        return sum(1 for m in self.messages if getattr(m, "method", None) == method)


@asynccontextmanager
async def sdk_stdio(ws: Path, *, name: str = "test-ide", extra: tuple[str, ...] = (), env: dict[str, str] | None = None,
                    errlog: Path | None = None) -> AsyncIterator[tuple[Any, Inbox]]:
    """`tooldeck mcp serve` as a subprocess, a ClientSession over its stdio, initialized."""
    import mcp_types as types
    from mcp.client.session import ClientSession
    from mcp.client.stdio import StdioServerParameters, stdio_client

    params = StdioServerParameters(command=sys.executable, args=serve_argv(ws, *extra)[1:], cwd=str(REPO),
                                   env=env or server_env())
    inbox = Inbox()
    log = open(errlog or ws.parent / "server-stderr.log", "a")  # noqa: SIM115 - closed below
    try:
        async with stdio_client(params, errlog=log) as (read, write), ClientSession(
                read, write, client_info=types.Implementation(name=name, version="1.0"), message_handler=inbox) as session:
            await session.initialize()
            yield session, inbox
    finally:
        log.close()


# -- raw JSON-RPC over stdio --------------------------------------------------------------

class RawStdio:
    """A client that speaks JSON-RPC lines by hand at a chosen protocol revision; keeps every stdout line."""

    def __init__(self, ws: Path, *extra: str, env: dict[str, str] | None = None) -> None:
        self.stderr_path = ws.parent / "raw-stderr.log"
        self._stderr = open(self.stderr_path, "ab")  # noqa: SIM115 - closed in close()
        self.proc = subprocess.Popen(serve_argv(ws, *extra), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=self._stderr, cwd=REPO, env=env or server_env())
        self.lines: list[bytes] = []
        self.messages: queue.Queue[dict[str, Any]] = queue.Queue()
        self.notifications: list[dict[str, Any]] = []
        self._next = 0
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line)
            try:
                self.messages.put(json.loads(line))
            except json.JSONDecodeError:
                self.messages.put({"not_json": line.decode("utf-8", "replace")})

    def send(self, message: dict[str, Any]) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(message).encode() + b"\n")
        self.proc.stdin.flush()

    def notify(self, method: str, params: dict[str, Any] | None = None) -> None:
        self.send({"jsonrpc": "2.0", "method": method, **({"params": params} if params is not None else {})})

    def start(self, method: str, params: dict[str, Any] | None = None) -> int:
        self._next += 1
        self.send({"jsonrpc": "2.0", "id": self._next, "method": method, **({"params": params} if params is not None else {})})
        return self._next

    def response(self, request_id: int, timeout: float = 60.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            try:
                message = self.messages.get(timeout=max(0.01, deadline - time.monotonic()))
            except queue.Empty:
                raise AssertionError(f"no response to request {request_id} within {timeout} s; "
                                     f"stderr: {self.stderr_path.read_text()[-2000:]}") from None
            if message.get("id") == request_id and ("result" in message or "error" in message):
                return message
            self.notifications.append(message)

    def request(self, method: str, params: dict[str, Any] | None = None, timeout: float = 60.0) -> dict[str, Any]:
        return self.response(self.start(method, params), timeout)

    def initialize(self, protocol: str, name: str = "raw-client") -> dict[str, Any]:
        reply = self.request("initialize", {"protocolVersion": protocol, "capabilities": {},
                                            "clientInfo": {"name": name, "version": "0.1"}})
        self.notify("notifications/initialized")
        return reply

    def close(self, timeout: float = 60.0) -> int:
        assert self.proc.stdin is not None
        if not self.proc.stdin.closed:
            self.proc.stdin.close()
        try:
            return self.proc.wait(timeout)
        finally:
            self._stderr.close()

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(30)
        self._stderr.close()


# -- Streamable HTTP ------------------------------------------------------------------------

class HttpServer:
    """`tooldeck mcp serve --http ...` in a real process; `url` once it listens."""

    def __init__(self, ws: Path, bind: str = "127.0.0.1:0", *extra: str, env: dict[str, str] | None = None) -> None:
        self.proc = subprocess.Popen(serve_argv(ws, "--http", bind, *extra), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, cwd=REPO, env=env or server_env(), text=True)
        self.stderr: list[str] = []
        self.stdout: list[str] = []
        threading.Thread(target=self._drain, args=(self.proc.stderr, self.stderr), daemon=True).start()
        threading.Thread(target=self._drain, args=(self.proc.stdout, self.stdout), daemon=True).start()
        self.url = ""

    @staticmethod
    def _drain(stream: Any, into: list[str]) -> None:
        for line in stream:
            into.append(line)

    def wait_listening(self, timeout: float = 90.0) -> str:
        def listening() -> str | None:
            if self.proc.poll() is not None:
                raise AssertionError(f"server exited {self.proc.returncode}: {''.join(self.stderr)[-2000:]}")
            return next((line.split("listening on ", 1)[1].split()[0] for line in self.stderr if "listening on " in line), None)

        self.url = wait_for(listening, timeout)
        return self.url

    def stop(self, timeout: float = 60.0) -> int:
        if self.proc.poll() is None:
            self.proc.terminate()
        return self.proc.wait(timeout)


class RawHttp:
    """JSON-RPC over Streamable HTTP by hand: POST each message, read JSON or SSE answers."""

    def __init__(self, url: str, *, token: str | None = None, origin: str | None = None, host: str | None = None) -> None:
        import httpx

        self.url = url
        self.headers = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}
        if token:
            self.headers["Authorization"] = f"Bearer {token}"
        if origin:
            self.headers["Origin"] = origin
        if host:
            self.headers["Host"] = host
        self.client = httpx.Client(timeout=60)
        self._next = 0

    def post(self, message: dict[str, Any]) -> tuple[int, list[dict[str, Any]], Any]:
        reply = self.client.post(self.url, json=message, headers=self.headers)
        messages: list[dict[str, Any]] = []
        kind = reply.headers.get("content-type", "")
        if kind.startswith("text/event-stream"):
            messages = [json.loads(line[5:]) for line in reply.text.splitlines() if line.startswith("data:") and line[5:].strip()]
        elif kind.startswith("application/json") and reply.content:
            body = reply.json()
            messages = body if isinstance(body, list) else [body]
        return reply.status_code, messages, reply

    def request(self, method: str, params: dict[str, Any] | None = None) -> tuple[int, dict[str, Any] | None, list[dict[str, Any]]]:
        self._next += 1
        status, messages, reply = self.post({"jsonrpc": "2.0", "id": self._next, "method": method,
                                             **({"params": params} if params is not None else {})})
        if "mcp-session-id" in reply.headers:
            self.headers["Mcp-Session-Id"] = reply.headers["mcp-session-id"]
        answer = next((m for m in messages if m.get("id") == self._next), None)
        return status, answer, [m for m in messages if "id" not in m]

    def notify(self, method: str) -> int:
        status, _messages, _reply = self.post({"jsonrpc": "2.0", "method": method})
        return status

    def initialize(self, protocol: str, name: str = "raw-http") -> dict[str, Any]:
        status, answer, _ = self.request("initialize", {"protocolVersion": protocol, "capabilities": {},
                                                        "clientInfo": {"name": name, "version": "0.1"}})
        assert status == 200 and answer is not None, (status, answer)
        if protocol >= "2025-06-18":  # the header came with that revision; 2025-03-26 clients never send it
            self.headers["MCP-Protocol-Version"] = answer["result"]["protocolVersion"]
        assert self.notify("notifications/initialized") in (200, 202)
        return answer
