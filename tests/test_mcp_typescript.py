"""`tooldeck mcp serve` with the official TypeScript SDK client (`@modelcontextprotocol/sdk`, what Claude
Desktop, VS Code and most IDE clients are built on), over stdio and Streamable HTTP, as a separate node
process: list, call, a failing call of a tool with an output schema (the TypeScript client checks
structured content against it even when isError is set), a bad argument, cancellation, list_changed.

The SDK is installed by the test session itself, pinned, into a cache folder reused across runs
(node and npm are on every machine; the npm registry is reachable from CI)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import python_tool
from tests.mcp_helpers import REPO, HttpServer, make_workspace, serve_argv, server_env

SDK_VERSION = "1.32.2"
CLIENT = Path(__file__).parent / "mcp_ts" / "client.mjs"
PICKY = "def run(data):\n    raise ValueError('picky: will not do ' + data['text'])\n"

pytestmark = pytest.mark.slow


@pytest.fixture(scope="session", name="ts_sdk")
def ts_sdk_fixture() -> Path:
    """The TypeScript SDK in ~/.cache/tooldeck-tests/ts-sdk-VERSION, installed once."""
    if shutil.which("node") is None or shutil.which("npm") is None:
        pytest.fail("node and npm are needed for the TypeScript client tests (apt-get install nodejs npm)")
    folder = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "tooldeck-tests" / f"ts-sdk-{SDK_VERSION}"
    if not (folder / "node_modules" / "@modelcontextprotocol" / "sdk" / "package.json").is_file():
        folder.mkdir(parents=True, exist_ok=True)
        done = subprocess.run(["npm", "install", "--no-audit", "--no-fund", "--prefix", str(folder),
                               f"@modelcontextprotocol/sdk@{SDK_VERSION}"], capture_output=True, text=True, timeout=600)
        if done.returncode != 0:
            pytest.fail(f"npm install @modelcontextprotocol/sdk@{SDK_VERSION} failed: {done.stderr[-2000:]}")
    return folder


def ts_workspace(ws: Path) -> Path:
    make_workspace(ws)
    python_tool(ws / "tools", "picky", PICKY, description="A tool with an output schema that refuses",
                input_schema={"text": {"type": "string", "required": True}},
                output_schema={"type": "object", "required": ["done"], "properties": {"done": {"type": "boolean"}}})
    return ws


def run_client(sdk: Path, ws: Path, *target: str) -> dict[str, dict[str, Any]]:
    done = subprocess.run(["node", str(CLIENT), str(sdk), str(ws), *target], capture_output=True, text=True, timeout=240,
                          cwd=REPO, env=server_env())
    steps = {}
    for line in done.stdout.splitlines():
        if line.startswith("{"):
            row = json.loads(line)
            steps[row.pop("step")] = row
    assert done.returncode == 0 and "closed" in steps, (done.stdout[-3000:], done.stderr[-3000:])
    return steps


def check(steps: dict[str, dict[str, Any]]) -> None:
    assert steps["capabilities"] == {"toolsListChanged": True}  # over HTTP too: the SDK refreshes only when announced
    assert "echo" in steps["list"]["names"] and "picky" in steps["list"]["withOutputSchema"]
    assert "buffer" in steps["list"]["withOutputSchema"]
    assert steps["call"] == {"ok": True, "isError": False, "text": steps["call"]["text"], "meta": steps["call"]["meta"],
                             "structured": {"echo": "from typescript", "length": 15}}
    for step, words in (("buffer_error", "nosuch"), ("tool_error", "picky: will not do x")):
        result = steps[step]
        assert result["ok"] and result["isError"], result  # an error result, not MCP error -32602
        assert words in result["text"] and result["structured"] is None
        assert result["meta"]["tooldeck/error"]["error_class"]
    bad = steps["bad_argument"]
    assert (bad["ok"] and bad["isError"]) or bad["code"] == -32602, bad
    cancelled = steps["cancel"]
    assert not cancelled["ok"] and "timed out" in cancelled["message"].lower(), cancelled
    assert steps["progress"]["ok"] and not steps["progress"]["isError"], steps["progress"]
    assert steps["progress_ticks"]["ticks"] >= 1  # a progress notification every second of the call
    assert steps["list_changed"] == {"notified": True, "added": True}


def test_the_typescript_client_over_stdio(ts_sdk: Path, workspace: Path) -> None:
    ws = ts_workspace(workspace)
    argv = serve_argv(ws)
    check(run_client(ts_sdk, ws, "stdio", argv[0], json.dumps(argv[1:])))


def test_the_typescript_client_over_http(ts_sdk: Path, workspace: Path) -> None:
    ws = ts_workspace(workspace)
    server = HttpServer(ws)
    try:
        check(run_client(ts_sdk, ws, "http", server.wait_listening()))
    finally:
        server.stop()
