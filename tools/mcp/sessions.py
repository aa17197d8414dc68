"""Each connected MCP client is a tooldeck session, listed with the live runtimes.

A client's session is named after its `clientInfo.name` plus a short id (`claude-desktop-3f9a1c`),
or is the one `--session` / `TOOLDECK_SESSION` pins. Its calls resolve, record and emit events
under that session, so a promotion scoped to it applies to that client alone. While it is
connected it has its own row in `runtimes` (label `mcp: <client> (<transport>)`), heartbeated
with the serving runtime's, so the dashboard lists it like any live runtime; `mcp.connected` and
`mcp.disconnected` events, and an `mcp.calls` summary at most every few seconds (never one
event per call), show it in the Activity log.

Clients of the 2026-07-28 protocol have no connection that outlives a request; they are one
session per client name, ended after `MODERN_IDLE_SECONDS` without a request.
"""

from __future__ import annotations

import logging
import re
import secrets
import socket
import threading
import time
from collections import Counter, OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from state import runtimes
from state.db import StoreError
from state.events import EventLog
from tools.errors import ToolError

if TYPE_CHECKING:
    from tools.host import RuntimeHost

log = logging.getLogger("tooldeck.mcp")
MODERN_IDLE_SECONDS = 300.0
SUMMARY_SECONDS = 5.0
MAX_CLIENT_NAME = 80
#: the most tools one session's `search_tools` keeps found; past it the oldest found goes first
MAX_FOUND = 1000
_UNSAFE = re.compile(r"[^A-Za-z0-9_.\-]+")


def session_name(client: str | None) -> str:
    """A session id (the NAME_RE of promotion scopes) from a client's self-chosen name."""
    slug = _UNSAFE.sub("-", client or "").strip("-._").lower()[:40].strip("-._") or "mcp-client"
    return f"{slug}-{secrets.token_hex(3)}"


class FoundTools:
    """The tools a client found with `search_tools` (tools/mcp/search.py), in the order it first found them.

    Bounded: at most `bound` (MAX_FOUND, 1,000) ids; adding past it drops the oldest found, so a client
    that searches all day holds a list the size a model can still read, and the server's memory per
    session stays small. Found again moves nothing: the order is of first finding, which keeps a
    client's `tools/list` pages stable as the set grows (new ids are appended)."""

    def __init__(self, bound: int = MAX_FOUND) -> None:
        self.bound = bound
        self._ids: OrderedDict[str, None] = OrderedDict()
        self._lock = threading.Lock()

    def add(self, tool_ids: Iterable[str]) -> bool:
        """Add these ids; whether the set changed (a new id, the oldest dropped or not)."""
        grew = False
        with self._lock:
            for tool_id in tool_ids:
                if tool_id in self._ids:
                    continue
                self._ids[tool_id] = None
                grew = True
                while len(self._ids) > self.bound:
                    self._ids.popitem(last=False)
        return grew

    def ids(self) -> list[str]:
        with self._lock:
            return list(self._ids)

    def __len__(self) -> int:
        return len(self._ids)


@dataclass
class ClientSession:
    session: str
    client: str
    client_version: str
    protocol: str
    transport: str
    started: float = field(default_factory=time.time)
    last_seen: float = field(default_factory=time.time)
    calls: int = 0
    failed: int = 0
    tools: Counter[str] = field(default_factory=Counter)
    open: bool = True
    reported_calls: int = 0
    reported_at: float = 0.0
    #: what `search_tools` found for this client (a `tool_search` endpoint lists these)
    found: FoundTools = field(default_factory=FoundTools)

    @property
    def label(self) -> str:
        return f"mcp: {self.client} ({self.transport})"

    def called(self, tool_id: str, ok: bool) -> None:
        self.calls += 1
        self.failed += not ok
        self.tools[tool_id] += 1
        self.last_seen = time.time()


class SessionRegistry:
    """The clients of one serving process; every method does blocking I/O (call it from a thread)."""

    def __init__(self, runtime: RuntimeHost, *, transport: str, pinned: str | None) -> None:
        self.runtime = runtime
        self.transport = transport
        self.pinned = pinned
        self.host = socket.gethostname()
        self._lock = threading.Lock()
        self._sessions: list[ClientSession] = []
        self._by_client: dict[str, ClientSession] = {}  # 2026-07-28 clients, by name

    def live(self) -> list[ClientSession]:
        with self._lock:
            return [s for s in self._sessions if s.open]

    def _events(self, session: ClientSession) -> EventLog:
        return EventLog(self.runtime.store, session.session)

    def open(self, client: str | None, client_version: str | None, protocol: str) -> ClientSession:
        name = (client or "unknown client")[:MAX_CLIENT_NAME]
        session = ClientSession(self.pinned or session_name(client), name, (client_version or "")[:40], protocol, self.transport)
        with self._lock:
            self._sessions.append(session)
        self._write_row(session)
        self._events(session).emit("mcp.connected", client=session.client, client_version=session.client_version,
                                   protocol=protocol, transport=self.transport)
        log.info("mcp client %s %s connected as session %s (%s, %s)", name, session.client_version, session.session, protocol,
                 self.transport)
        return session

    def for_client(self, client: str | None, client_version: str | None, protocol: str) -> ClientSession:
        """The session of a 2026-07-28 client (no connection to hang it on): one per client name."""
        key = (client or "unknown client")[:MAX_CLIENT_NAME]
        with self._lock:
            session = self._by_client.get(key)
            if session is not None and session.open:
                session.last_seen = time.time()
                return session
        session = self.open(client, client_version, protocol)
        with self._lock:
            self._by_client[key] = session
        return session

    def close(self, session: ClientSession, reason: str) -> None:
        with self._lock:
            if not session.open:
                return
            session.open = False
            self._sessions = [s for s in self._sessions if s is not session]
            self._by_client = {k: s for k, s in self._by_client.items() if s is not session}
        try:
            self._summarise(session, force=True)
            if session.session != self.runtime.own_session:  # the runtime's own row goes when the runtime closes
                runtimes.leave(self.runtime.store, session.session, self.runtime.node)
            self._events(session).emit("mcp.disconnected", client=session.client, reason=reason, calls=session.calls,
                                       failed=session.failed, seconds=round(time.time() - session.started, 1))
        except (StoreError, ToolError) as exc:
            log.error("mcp session %s: could not record its end: %s", session.session, exc)
        log.info("mcp client %s (session %s) disconnected: %s", session.client, session.session, reason)

    def close_all(self, reason: str) -> None:
        for session in self.live():
            self.close(session, reason)

    def tick(self) -> None:
        """Heartbeat the live sessions' rows, summarise their calls, end idle 2026-07-28 sessions."""
        now = time.time()
        with self._lock:
            idle = [s for s in self._by_client.values() if now - s.last_seen > MODERN_IDLE_SECONDS]
        for session in idle:
            self.close(session, f"no request for {MODERN_IDLE_SECONDS:.0f} s")
        live = self.live()
        if live:  # heartbeats are on the clock every node shares (the store's)
            runtimes.beat(self.runtime.store, self.runtime.node, [s.session for s in live])
        for session in live:
            self._summarise(session)

    def _write_row(self, session: ClientSession) -> None:
        me = runtimes.Presence(session.session, self.runtime.node, self.runtime.pid, self.host, True, session.label, "mcp client")
        runtimes.heartbeat(self.runtime.store, me, started=session.started, relabel=True)

    def _summarise(self, session: ClientSession, *, force: bool = False) -> None:
        """One `mcp.calls` event with what the client called since the last one (at most every SUMMARY_SECONDS)."""
        calls, last = session.calls, session.reported_calls
        if calls == last or (not force and time.time() - session.reported_at < SUMMARY_SECONDS):
            return
        session.reported_calls, session.reported_at = calls, time.time()
        self._events(session).emit("mcp.calls", client=session.client, calls=calls - last, total=calls,
                                   failed=session.failed, tools=dict(session.tools.most_common(5)))
