"""A Messages-API-compatible server on 127.0.0.1 for driving the real anthropic SDK in tests.

Queue the replies a test wants, then point the SDK at `server.url`:

    from tests.messages_server import anthropic_server_fixture, messages_server_fixture  # noqa: F401

    def test_x(anthropic_server):
        anthropic_server.reply_tool_use("write_tool_version", {"code": ..., "manifest_yaml": ..., "explanation": ...})
        anthropic_server.reply_text("hello", delay=0.0)
        anthropic_server.reply_error(529, "overloaded")
        ...
        assert anthropic_server.requests[0].body["messages"][0]["role"] == "user"

`anthropic_server` also sets ANTHROPIC_API_KEY (a fake key) and ANTHROPIC_BASE_URL for the test;
`messages_server` gives the bare server. Replies are served in order; with none queued the server
answers 500. Requests without a key (x-api-key or Authorization: Bearer) get 401. A reply with
`delay` sleeps first (for client timeouts). `"stream": true` requests get SSE for text replies.
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

FAKE_KEY = "sk-ant-test-secret-123456"


@dataclass
class Reply:
    status: int = 200
    body: dict[str, Any] | None = None
    delay: float = 0.0
    text_for_stream: str | None = None


@dataclass
class SeenRequest:
    path: str
    headers: dict[str, str]
    body: dict[str, Any]
    api_key: str | None = None

    @property
    def user_text(self) -> str:
        """Every text the request's messages carry (strings, text blocks, tool results), joined."""
        out: list[str] = []
        for message in self.body.get("messages", []):
            content = message.get("content")
            if isinstance(content, str):
                out.append(content)
                continue
            for block in content or []:
                if block.get("type") == "text":
                    out.append(block.get("text", ""))
                elif block.get("type") == "tool_result":
                    inner = block.get("content")
                    out.append(inner if isinstance(inner, str) else json.dumps(inner))
        return "\n".join(out)


@dataclass
class MessagesServer:
    host: str = "127.0.0.1"
    replies: deque[Reply] = field(default_factory=deque)
    requests: list[SeenRequest] = field(default_factory=list)
    model: str = "claude-test-model"
    _server: ThreadingHTTPServer | None = None
    _thread: threading.Thread | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _counter: int = 0

    # -- queueing replies -------------------------------------------------------------------

    def _message(self, content: list[dict[str, Any]], stop_reason: str, input_tokens: int, output_tokens: int) -> dict[str, Any]:
        with self._lock:
            self._counter += 1
            n = self._counter
        return {"id": f"msg_test_{n}", "type": "message", "role": "assistant", "model": self.model, "content": content,
                "stop_reason": stop_reason, "stop_sequence": None,
                "usage": {"input_tokens": input_tokens, "output_tokens": output_tokens}}

    def reply_text(self, text: str, *, delay: float = 0.0, input_tokens: int = 12, output_tokens: int = 7) -> None:
        body = self._message([{"type": "text", "text": text}], "end_turn", input_tokens, output_tokens)
        self.replies.append(Reply(200, body, delay, text_for_stream=text))

    def reply_tool_use(self, name: str, tool_input: dict[str, Any], *, text: str = "", delay: float = 0.0,
                       input_tokens: int = 1200, output_tokens: int = 800) -> None:
        content: list[dict[str, Any]] = [{"type": "text", "text": text}] if text else []
        with self._lock:
            self._counter += 1
            tool_id = f"toolu_test_{self._counter}"
        content.append({"type": "tool_use", "id": tool_id, "name": name, "input": tool_input})
        self.replies.append(Reply(200, self._message(content, "tool_use", input_tokens, output_tokens), delay))

    def reply_error(self, status: int, message: str = "server error", *, error_type: str = "api_error",
                    delay: float = 0.0) -> None:
        body = {"type": "error", "error": {"type": error_type, "message": message}}
        self.replies.append(Reply(status, body, delay))

    # -- lifecycle -----------------------------------------------------------------------------

    @property
    def url(self) -> str:
        assert self._server is not None
        return f"http://{self.host}:{self._server.server_address[1]}"

    def start(self) -> MessagesServer:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:  # keep test output quiet
                return

            def do_POST(self) -> None:  # noqa: N802 - the stdlib's name
                length = int(self.headers.get("content-length") or 0)
                raw = self.rfile.read(length) if length else b"{}"
                try:
                    body = json.loads(raw or b"{}")
                except json.JSONDecodeError:
                    body = {"_raw": raw.decode("utf-8", "replace")}
                auth = self.headers.get("authorization", "")
                key = self.headers.get("x-api-key") or (auth[7:] if auth.lower().startswith("bearer ") else None)
                server.requests.append(SeenRequest(self.path, {k.lower(): v for k, v in self.headers.items()}, body, key))
                if not key:
                    return self._send(401, {"type": "error", "error": {"type": "authentication_error", "message": "no key"}})
                if not self.path.rstrip("/").endswith("/v1/messages"):
                    return self._send(404, {"type": "error", "error": {"type": "not_found_error", "message": self.path}})
                try:
                    reply = server.replies.popleft()
                except IndexError:
                    return self._send(500, {"type": "error", "error": {"type": "api_error", "message": "no reply queued"}})
                if reply.delay:
                    time.sleep(reply.delay)
                if body.get("stream") and reply.status == 200 and reply.text_for_stream is not None:
                    return self._stream(reply)
                self._send(reply.status, reply.body or {})

            def _send(self, status: int, payload: dict[str, Any]) -> None:
                data = json.dumps(payload).encode()
                try:
                    self.send_response(status)
                    self.send_header("content-type", "application/json")
                    self.send_header("content-length", str(len(data)))
                    self.send_header("request-id", "req_test")
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (a timeout test)

            def _stream(self, reply: Reply) -> None:
                message = dict(reply.body or {})
                usage = message.get("usage", {})
                start = {**message, "content": [], "stop_reason": None, "usage": {"input_tokens": usage.get("input_tokens", 0),
                                                                                  "output_tokens": 0}}
                events = [
                    ("message_start", {"type": "message_start", "message": start}),
                    ("content_block_start", {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
                    ("content_block_delta", {"type": "content_block_delta", "index": 0,
                                             "delta": {"type": "text_delta", "text": reply.text_for_stream}}),
                    ("content_block_stop", {"type": "content_block_stop", "index": 0}),
                    ("message_delta", {"type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                                       "usage": {"output_tokens": usage.get("output_tokens", 0)}}),
                    ("message_stop", {"type": "message_stop"}),
                ]
                data = b"".join(f"event: {name}\ndata: {json.dumps(payload)}\n\n".encode() for name, payload in events)
                try:
                    self.send_response(200)
                    self.send_header("content-type", "text/event-stream")
                    self.send_header("content-length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass

        self._server = ThreadingHTTPServer((self.host, 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="messages-server", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> MessagesServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


@pytest.fixture(name="messages_server")
def messages_server_fixture() -> Iterator[MessagesServer]:
    with MessagesServer() as server:
        yield server


@pytest.fixture(name="anthropic_server")
def anthropic_server_fixture(messages_server: MessagesServer, monkeypatch: pytest.MonkeyPatch) -> MessagesServer:
    """The server, with ANTHROPIC_API_KEY (fake) and ANTHROPIC_BASE_URL pointing at it for this test."""
    monkeypatch.setenv("ANTHROPIC_API_KEY", FAKE_KEY)
    monkeypatch.setenv("ANTHROPIC_BASE_URL", messages_server.url)
    return messages_server
