"""What the catalog knows of one tool version, and the changes it publishes."""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tools.catalog.manifest import Manifest

PENDING, LOADING, READY, ERROR = "pending", "loading", "ready", "error"


class Loaded:
    """Whether an entry has finished loading: a threading.Event's `set`, `is_set` and `wait`, for less memory.

    An Event per entry (a Condition, its lock and waiter deque) was ~1 KB of each entry, 100 MB at
    100,000 tools, for what only a caller asking for a tool still loading ever waits on. Every
    entry shares one Condition instead: setting one wakes whoever waits (rarely anyone), and each
    waiter looks at its own entry again.
    """

    __slots__ = ("_set",)
    _changed = threading.Condition()

    def __init__(self) -> None:
        self._set = False

    def is_set(self) -> bool:
        return self._set

    def set(self) -> None:
        with Loaded._changed:
            self._set = True
            Loaded._changed.notify_all()

    def wait(self, timeout: float | None = None) -> bool:
        """True once set; False when `timeout` passed first."""
        if self._set:
            return True
        with Loaded._changed:
            return Loaded._changed.wait_for(self.is_set, timeout)


@dataclass(eq=False)
class ToolEntry:
    """One (tool id, version) the catalog knows of, and how far it got."""

    tool_id: str
    path: Path
    source: str
    version: str | None = None  # known up front only for evolved versions
    status: str = PENDING
    error: str | None = None
    manifest: Manifest | None = None
    overrides: Path | None = None
    loaded_at: float | None = None
    done: Loaded = field(default_factory=Loaded)
    claimed: bool = False
    cache: dict[str, Any] = field(default_factory=dict)  # compiled validators, per manifest
    #: what this node publishes for it: the sha256 of its manifest as loaded and of the code file it runs
    #: (tools.catalog.nodes)
    published_sha: str | None = None
    conflict: bool = False  # in error because another live node loaded other files for it
    #: an approved version's files and their sha256, set by the verifier once the folder matched them;
    #: the python worker checks the bytes it compiles against these (tools.invoke.worker_main)
    pinned: dict[str, str] | None = None

    @property
    def tool_dir(self) -> Path:
        return self.path.parent

    @property
    def served_version(self) -> str:
        if self.manifest is not None:
            return self.manifest.version
        return self.version or ""

    @property
    def type(self) -> str | None:
        return self.manifest.type if self.manifest else None


@dataclass(frozen=True, slots=True)
class StatusChange:
    tool_id: str
    version: str
    status: str
    error: str | None
    source: str
    #: False for a tool that loaded as the store already records it: listeners hear of it, the store is not written
    persist: bool = field(default=True, compare=False)


@dataclass(frozen=True, slots=True)
class Problem:
    """A file that cannot become a tool at all (duplicate id, bad file name)."""

    path: Path
    message: str


def read_statuses(store: Any) -> dict[tuple[str, str], StatusChange]:
    """Every version's load status as `tool_status` holds it (what the last load of any process recorded)."""
    return {(r[0], r[1]): StatusChange(r[0], r[1], r[2], r[3], r[4])
            for r in store.query("SELECT tool_id, version, status, error, source FROM tool_status")}


def last_loaded_version(store: Any, tool_id: str, source: str) -> str | None:
    """The version whose status a runtime last recorded for `tool_id` from `source`: the last manifest of it that
    loaded somewhere (a runtime holding it keeps serving it through a broken edit); None when none is recorded."""
    rows = store.query("SELECT version FROM tool_status WHERE tool_id=? AND source=? AND version<>'' ORDER BY updated DESC"
                       " LIMIT 1", (tool_id, source))
    return str(rows[0][0]) if rows else None


def write_status(store: Any, changes: list[StatusChange]) -> None:
    """Each changed version's load status in `tool_status`, where other processes and the dashboard read it.

    Rows go in key order (the last change of a version wins): two processes upserting the same versions
    in different orders deadlocked on PostgreSQL (each holding a row the other waited for)."""
    now, pid = time.time(), os.getpid()
    latest = {(c.tool_id, c.version): c for c in changes if c.persist}
    rows = [(c.tool_id, c.version, c.status, None, c.source, None, c.error, None, now, pid) for _k, c in sorted(latest.items())]
    if not rows:
        return
    with store.tx() as con:
        con.executemany(
            "INSERT INTO tool_status(tool_id, version, status, type, source, path, error, overrides, updated, pid)"
            " VALUES (?,?,?,?,?,?,?,?,?,?) ON CONFLICT (tool_id, version) DO UPDATE SET status=excluded.status,"
            " type=excluded.type, source=excluded.source, path=excluded.path, error=excluded.error,"
            " overrides=excluded.overrides, updated=excluded.updated, pid=excluded.pid",
            rows,
        )


@dataclass(frozen=True, slots=True)
class Resolution:
    """Which version serves a call to a tool (the runtime's resolver decides; every reader asks it).

    `scope` is where the choice came from: a session id or "global" (a promotion there), "base"
    (no usable promotion) or "explicit" (the caller named the version). `fell_back_from` lists the
    promoted versions that cannot serve (files gone or tampered, failed to load), newest first, each
    with why, so what a call runs and what the dashboard, the CLI and selection show agree.
    Answered without waiting, `entry` may still be loading, or None with `pending_version` set when
    the catalog has not seen that version's files yet."""

    entry: ToolEntry | None
    scope: str
    fell_back_from: tuple[tuple[str, str], ...] = ()
    #: the version that serves when `entry` is None because this node has not loaded it yet (a
    #: promotion approved elsewhere: the first call materialises and loads it)
    pending_version: str | None = None

    @property
    def version(self) -> str | None:
        return self.entry.served_version if self.entry is not None else self.pending_version

    @property
    def promoted(self) -> bool:
        return self.scope not in ("base", "explicit")

