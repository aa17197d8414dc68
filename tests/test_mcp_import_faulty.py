"""Imported MCP servers that misbehave (tests/mcp_faulty_server.py, real processes): a result past max_output_bytes over
stdio and Streamable HTTP (JSON and SSE), a crash mid-call, a hang, garbage on stdout, a stderr flood, an exit at
start. Each is one clear failure of that server's call; the connection (where it can live) and every other server's
and local tool go on; nothing the server started outlives the runtime."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from tests.buffer_helpers import wait_for
from tests.helpers import alive, python_tool
from tests.mcp_import_helpers import (
    FAULTY,
    http_section,
    http_server,
    link,
    server_pid,
    stdio_section,
    wait_status,
    write_settings,
)
from tools.errors import ToolError
from tools.mcp.client import STDERR_LOG_PER_SECOND

MB = 1_000_000


def rss_kb(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise AssertionError(f"no {field} in /proc/self/status")


def faulty(name: str, state: Path, *extra: str, timeout: float = 20, cap: int | None = None) -> str:
    return stdio_section(name, state, *extra, script=FAULTY, timeout=timeout,
                         more=f"max_output_bytes = {cap}" if cap is not None else "")


def others_still_work(rt, tmp_path: Path) -> None:
    """The import test server's tool and a local tool answer at once (once `srv` is up: it starts beside `f`)."""
    wait_status(rt, "srv", "ready")
    assert rt.call("srv_echo", {"text": "still here"}) == {"echo": "still here", "length": 10}
    assert rt.call("local_ok", {}) == {"local": True}


@pytest.fixture
def local_tool(workspace: Path) -> None:
    python_tool(workspace / "tools", "local_ok", "def run(d):\n    return {'local': True}\n")


def test_a_result_past_max_output_bytes_is_output_too_large_and_the_connection_stays(
        workspace: Path, make_runtime, tmp_path: Path, local_tool: None) -> None:
    state = tmp_path / "f"
    write_settings(workspace, faulty("f", state, cap=2 * MB), faulty("g", tmp_path / "g"),
                   stdio_section("srv", tmp_path / "srv"), extra=f"[calls]\nmax_output_bytes = {3 * MB}\n")
    rt = make_runtime(serve=True)
    for name in ("f", "g", "srv"):
        wait_status(rt, name, "ready")
    pid = server_pid(state)
    assert rt.call("f_big", {"mb": 1}) == "x" * MB  # under the server's own cap
    before = rss_kb("VmRSS")
    Path("/proc/self/clear_refs").write_text("5")  # the peak (VmHWM) starts again from here
    for _ in range(3):
        with pytest.raises(ToolError) as err:
            rt.call("f_big", {"mb": 50})
        assert err.value.error_class == "output_too_large"
        assert "passed max_output_bytes (2000000 bytes); the answer was dropped, the connection kept" in err.value.message
        assert rt.call("f_ok", {}) == {"ok": True}  # the same connection, right after
    grown_mb = (rss_kb("VmHWM") - before) / 1024
    assert grown_mb < 40, f"the runtime's peak grew {grown_mb:.0f} MB over 50 MB results"  # never the whole message
    assert link(rt, "f").status == "ready" and server_pid(state) == pid and alive(pid)
    # `[calls] max_output_bytes` where the server sets none
    with pytest.raises(ToolError) as err:
        rt.call("g_big", {"mb": 4})
    assert err.value.error_class == "output_too_large" and "(3000000 bytes)" in err.value.message
    others_still_work(rt, tmp_path)
    rt.calls.flush()
    outcomes = [r[0] for r in rt.store.query("SELECT outcome FROM calls WHERE tool_id='f_big' ORDER BY id")]
    assert outcomes == ["ok"] + ["output_too_large"] * 3


@pytest.mark.parametrize("body", ["sse", "json"])
def test_a_result_past_the_cap_over_http_is_output_too_large_and_the_session_stays(
        workspace: Path, make_runtime, tmp_path: Path, body: str) -> None:
    state = tmp_path / "h"
    extra = ("--json-response",) if body == "json" else ()
    with http_server(state, *extra, script=FAULTY) as url:
        write_settings(workspace, http_section("h", url, more=f"max_output_bytes = {2 * MB}"))
        rt = make_runtime(serve=True)
        wait_status(rt, "h", "ready")
        assert rt.call("h_big", {"mb": 1.5}) == "x" * 1_500_000  # past the SDK's own 1 MiB SSE event limit, under ours
        with pytest.raises(ToolError) as err:
            rt.call("h_big", {"mb": 50})
        assert err.value.error_class == "output_too_large" and "passed max_output_bytes (2000000 bytes)" in err.value.message
        assert rt.call("h_ok", {}) == {"ok": True}
        assert link(rt, "h").status == "ready"


def test_a_server_that_crashes_mid_call(workspace: Path, make_runtime, tmp_path: Path, local_tool: None) -> None:
    state = tmp_path / "f"
    write_settings(workspace, faulty("f", state), stdio_section("srv", tmp_path / "srv"))
    rt = make_runtime(serve=True)
    wait_status(rt, "f", "ready")
    first = server_pid(state)
    with pytest.raises(ToolError) as err:
        rt.call("f_crash", {})
    assert err.value.error_class == "crash"
    assert "f_crash: MCP server 'f' closed the connection during the call" in err.value.message
    others_still_work(rt, tmp_path)
    failed = wait_status(rt, "f", "error", timeout=30) if link(rt, "f").status != "ready" else link(rt, "f")
    if failed.status == "error":
        assert "exited with code 7: faulty server: crashing mid-call" in failed.error
    wait_for(lambda: link(rt, "f").status == "ready" and server_pid(state) != first, 60)  # back, a new process
    assert rt.call("f_ok", {}) == {"ok": True}
    assert not alive(first)


def test_a_server_that_hangs_mid_call(workspace: Path, make_runtime, tmp_path: Path, local_tool: None) -> None:
    state = tmp_path / "f"
    write_settings(workspace, faulty("f", state, timeout=2), stdio_section("srv", tmp_path / "srv"))
    rt = make_runtime(serve=True)
    wait_status(rt, "f", "ready")
    pid = server_pid(state)
    box: dict[str, ToolError] = {}

    def hang() -> None:
        try:
            rt.call("f_hang", {})
        except ToolError as exc:
            box["error"] = exc

    worker = threading.Thread(target=hang)
    worker.start()
    others_still_work(rt, tmp_path)  # while it hangs
    worker.join(30)
    assert box["error"].error_class == "timeout" and "f_hang: no result within 2 s" in box["error"].message
    others_still_work(rt, tmp_path)
    rt.close()
    wait_for(lambda: not alive(pid), 30)  # a hung server is killed with the runtime


def log_lines(workspace: Path, needle: str) -> list[str]:
    path = workspace / ".tooldeck" / "logs" / "tooldeck.log"
    return [line for line in path.read_text(errors="replace").splitlines() if needle in line] if path.exists() else []


def test_garbage_on_stdout_is_logged_and_skipped(workspace: Path, make_runtime, tmp_path: Path) -> None:
    write_settings(workspace, faulty("f", tmp_path / "f"))
    rt = make_runtime(serve=True)
    wait_status(rt, "f", "ready")
    assert rt.call("f_garbage", {}) == {"after_garbage": True}
    assert wait_for(lambda: log_lines(workspace, "mcp f: not a JSON-RPC message on stdout: this is not JSON-RPC"), 10)
    assert rt.call("f_ok", {}) == {"ok": True} and link(rt, "f").status == "ready"


def test_a_stderr_flood_costs_neither_memory_nor_the_log(workspace: Path, make_runtime, tmp_path: Path) -> None:
    write_settings(workspace, faulty("f", tmp_path / "f"))
    rt = make_runtime(serve=True)
    wait_status(rt, "f", "ready")
    rt.extension("memory", 60).wait_ready(180)  # a serving runtime builds its memory at start: not beside the flood
    before = rss_kb("VmRSS")
    Path("/proc/self/clear_refs").write_text("5")
    started = time.monotonic()
    # this is about cost, not speed: ~1-3 s here, but a loaded 2-core CI machine once took over 90 s
    assert rt.call("f_flood", {"mb": 70, "lines": 100_000}, timeout=240) == {"flooded": True}
    assert rt.call("f_ok", {}) == {"ok": True}
    assert (rss_kb("VmHWM") - before) / 1024 < 40
    flood = wait_for(lambda: log_lines(workspace, "stderr flood, more than 50 lines a second"), 10)
    counts: list[int] = []  # the answer can arrive while the flood's last lines are still in the pipe: wait until read

    def drained() -> bool:
        counts.append(len(log_lines(workspace, "mcp f stderr:")))
        return len(counts) > 4 and counts[-1] == counts[-5]

    wait_for(drained, 60, interval=0.25)
    seconds = time.monotonic() - started
    lines = log_lines(workspace, "mcp f stderr:")
    # 100,001 lines: at most STDERR_LOG_PER_SECOND a second of them logged (each cut), however long the flood took
    assert len(lines) <= STDERR_LOG_PER_SECOND * (seconds + 2) and all(len(line) < 2200 for line in lines), (len(lines), seconds)
    assert flood and all(len(t) <= 300 for t in link(rt, "f")._process.stderr)


def open_fds() -> int:
    return len(list(Path("/proc/self/fd").iterdir()))


def test_a_server_that_exits_at_start(workspace: Path, make_runtime, tmp_path: Path, local_tool: None) -> None:
    write_settings(workspace, faulty("f", tmp_path / "f", "--exit-at-start"), stdio_section("srv", tmp_path / "srv"))
    rt = make_runtime(serve=True)
    failed = wait_status(rt, "f", "error")
    assert "exited with code 3: faulty server: missing configuration, giving up" in failed.error
    wait_for(lambda: failed.attempts >= 2 and failed.status == "error", 30)
    fds = open_fds()
    wait_for(lambda: failed.attempts >= 4 and failed.status == "error", 30)  # two more starts, each with three pipes
    assert open_fds() <= fds + 2, "a failed start left descriptors open"
    with pytest.raises(ToolError) as err:
        rt.call("f_ok", {})  # its tools were never listed: the id names the server in error
    assert err.value.error_class == "unavailable" and "exited with code 3" in err.value.message
    others_still_work(rt, tmp_path)


def test_the_id_of_a_dropped_answer_is_read_where_sdks_put_it() -> None:
    """The Python SDK writes `{"jsonrpc", "id", "result"}`, the TypeScript SDK `{"result", "jsonrpc", "id"}`: the id
    comes from the kept head or tail, never from inside the result."""
    import asyncio

    from tools.mcp.bounded import LineReader, Oversize

    body = '"x' + "y" * 5000 + '", "id": 99}'
    python_order = f'{{"jsonrpc":"2.0","id":7,"result":{{"content":[{{"type":"text","text":{body}}}]}}}}'.encode()
    ts_order = f'{{"result":{{"structuredContent":{{"id":99,"text":{body}}}}},"jsonrpc":"2.0","id":"req-8"}}'.encode()
    nested_only = f'{{"result":{{"id":5,"text":{body}}}}}'.encode()

    async def read(data: bytes) -> list[bytes | Oversize | None]:
        reader = asyncio.StreamReader()
        reader.feed_data(data)
        reader.feed_eof()
        lines = LineReader(reader, 1000)
        return [await lines.next() for _ in range(3)]

    first, second, end = asyncio.run(read(python_order + b"\n" + b'{"jsonrpc":"2.0","method":"x"}\n'))
    assert isinstance(first, Oversize) and first.size == len(python_order) and first.request_id() == 7
    assert second == b'{"jsonrpc":"2.0","method":"x"}' and end is None  # the next message is read as usual
    skipped = asyncio.run(read(ts_order + b"\n"))[0]
    assert isinstance(skipped, Oversize) and skipped.request_id() == "req-8"
    skipped = asyncio.run(read(nested_only + b"\n"))[0]
    assert isinstance(skipped, Oversize) and skipped.request_id() is None  # an id inside the result is not the message's
