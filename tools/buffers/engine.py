"""Durable write buffers: turn a flood of small writes into a few pass-through calls, losing nothing.

A write returns once its item is committed (WAL, synchronous=NORMAL) in one
short transaction; batches go out from a background flusher (by size and by a
real timer), are claimed under a lease so several processes can flush one
buffer, and are deleted only after the pass-through tool succeeded. A failed
batch keeps its items and its batch id, retries with capped exponential
backoff, and is parked as dead-letter after `[buffers] max_attempts`. A delivery the
pass-through tool refused without running (open circuit, disabled) spends no attempt: the
batch waits for the tool. Up to `[buffers] max_parallel_deliveries` buffers deliver at once.

The engine lives in `runtime.extensions["buffers"]` (see `install`); the
`buffer` builtin tool and `tooldeck buffer` are thin faces of it.
"""

from __future__ import annotations

import itertools
import json
import logging
import threading
import time
from typing import TYPE_CHECKING, Any

from state.buffers import CONFIG_FIELDS, BufferConfig, BufferTables, Cleared, WriteResult
from state.redact import redact, secret_values
from tools.buffers import settings as buffer_settings
from tools.buffers.flush import Flusher
from tools.buffers.policy import full_batch_waiting
from tools.buffers.settings import OPERATIONS
from tools.buffers.status import BufferStatus, compute_status
from tools.errors import NotFoundError, ToolError, ToolInputError
from tools.ids import check_name

log = logging.getLogger("tooldeck.buffers")

if TYPE_CHECKING:
    from tools.host import RuntimeHost

MAX_ITEM_BYTES = 1 << 20
#: operations that apply explicit settings given alongside them
_CONFIGURING = frozenset({"write", "write_many", "flush", "configure"})
DRAIN_LIMIT = 10_000
#: built once: json.dumps with non-default options builds a new encoder on every call
_ENCODE = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode


class BufferFullError(ToolError):
    """A `when_full: block` write waited `block_timeout_seconds` and the buffer stayed full."""

    error_class = "buffer_full"


class UnknownBufferError(NotFoundError):
    """An operation on a buffer nothing has written to or configured."""


def check_buffer_id(value: object) -> str:
    return check_name(value, "buffer_id")


class BufferEngine:
    """Named durable buffers over the runtime's store; one per runtime."""

    def __init__(self, runtime: RuntimeHost) -> None:
        self.runtime = runtime
        self.tables = BufferTables(runtime.store, runtime.session, runtime.node)
        section = runtime.settings.section("buffers")
        self.max_attempts = max(1, int(section["max_attempts"]))
        self.backoff_base = float(section["backoff_base_seconds"])
        self.backoff_max = float(section["backoff_max_seconds"])
        self.lease_seconds = float(section["lease_seconds"])
        self.poll_seconds = float(section.get("poll_seconds", 0.1))
        self.max_parallel = max(1, int(section.get("max_parallel_deliveries", 4)))
        self._configs: dict[str, BufferConfig] = {}
        #: per buffer, the explicit settings of the last write, the config they were checked against and their
        #: checked form: a write repeating them skips checking and comparing them again
        self._applied: dict[str, tuple[dict[str, Any], BufferConfig, dict[str, Any]]] = {}
        self._mine: set[str] = set()
        self._lock = threading.Lock()
        self._rates: dict[tuple[str, int], list[int]] = {}
        self._drops: dict[str, int] = {}
        self._space = threading.Condition()
        self._owner_ids = itertools.count(1)
        self._secrets: list[str] = []
        self._secrets_at = 0.0
        self.flusher = Flusher(self, all_buffers=bool(runtime.serve))

    # -- configuration ----------------------------------------------------------------

    def clean_settings(self, buffer_id: str, raw: dict[str, Any]) -> dict[str, Any]:
        """Type- and range-check explicit settings (None means 'not given'); unknown keys are ignored."""
        out = buffer_settings.clean(buffer_id, raw) if raw else {}
        if out.get("pass_through_input") is not None:
            self._serialise(buffer_id, out["pass_through_input"], "pass_through_input")
        return out

    def _check_tool_exists(self, buffer_id: str, tool_id: str) -> None:
        try:
            self.runtime.get_tool(tool_id, timeout=10.0)
        except ToolError as exc:
            raise ToolInputError(f"buffer {buffer_id!r}: pass_through_tool: {exc.message}", tool_id="buffer") from exc

    def _persist(self, buffer_id: str, current: BufferConfig | None, changes: dict[str, Any]) -> BufferConfig:
        merged = dict(current.settings()) if current is not None else {}
        merged.update(changes)
        if merged.get("flush_strategy") == "immediate" and not merged.get("pass_through_tool"):
            raise ToolInputError(f"buffer {buffer_id!r}: flush_strategy immediate needs a pass_through_tool",
                                 tool_id="buffer")
        tool = changes.get("pass_through_tool")
        if tool and (current is None or current.pass_through_tool != tool):
            self._check_tool_exists(buffer_id, tool)
        config = self.tables.configure(buffer_id, changes)
        self._configs[buffer_id] = config
        return config

    def config(self, buffer_id: str, changes: dict[str, Any] | None = None, *, create: bool = True,
               fresh: bool = False) -> BufferConfig | None:
        """The buffer's config, applying `changes` when they differ from what is persisted."""
        config = None if fresh else self._configs.get(buffer_id)
        if config is None:
            config = self.tables.load(buffer_id)
            if config is not None:
                self._configs[buffer_id] = config
        if changes:
            if config is None or any(getattr(config, k) != v for k, v in changes.items()):
                return self._persist(buffer_id, config, changes)
            return config
        if config is None and create:
            config = self.tables.ensure(buffer_id)
            self._configs[buffer_id] = config
        return config

    def configure(self, buffer_id: str, **settings: Any) -> BufferConfig:
        """Create or change a buffer; every given setting is persisted."""
        check_buffer_id(buffer_id)
        changes = self.clean_settings(buffer_id, settings)
        config = self.config(buffer_id, fresh=True, create=not changes)
        if changes:
            config = self._persist(buffer_id, config, changes)
        assert config is not None
        return config

    def _require(self, buffer_id: str) -> BufferConfig:
        check_buffer_id(buffer_id)
        config = self.config(buffer_id, create=False, fresh=True)
        if config is None:
            raise UnknownBufferError(f"unknown buffer {buffer_id!r}: nothing has written to or configured it",
                                     tool_id="buffer")
        return config

    # -- writes -----------------------------------------------------------------------

    def _secret_values(self) -> list[str]:
        now = time.monotonic()
        if now - self._secrets_at > 1.0:
            self._secrets = secret_values()
            self._secrets_at = now
        return self._secrets

    def _serialise(self, buffer_id: str, data: Any, what: str = "data") -> str:
        try:
            text = _ENCODE(data)
        except (TypeError, ValueError, RecursionError) as exc:
            raise ToolInputError(f"buffer {buffer_id!r}: {what} is not JSON-serialisable: {exc}", tool_id="buffer") from exc
        size = len(text)
        if not text.isascii():
            try:
                size = len(text.encode("utf-8"))
            except UnicodeEncodeError as exc:
                raise ToolInputError(f"buffer {buffer_id!r}: {what} is not valid Unicode ({exc.reason})",
                                     tool_id="buffer") from exc
        if size > MAX_ITEM_BYTES:
            raise ToolInputError(f"buffer {buffer_id!r}: {what} is {size} bytes as JSON; the limit is {MAX_ITEM_BYTES}",
                                 tool_id="buffer")
        if "sk-" in text or any(v in text for v in self._secret_values()):
            text = redact(text)  # secrets never reach the database
        return text

    def _adopt(self, buffer_id: str) -> None:
        """The first write here makes this runtime a flusher of the buffer and starts the flusher thread."""
        with self._lock:
            if buffer_id in self._mine:
                return
            self._mine.add(buffer_id)
        self.tables.register_flusher(buffer_id)
        self.flusher.start()

    def mine(self) -> set[str]:
        with self._lock:
            return set(self._mine)

    def _count(self, buffer_id: str, res: WriteResult) -> None:
        key = (buffer_id, int(self.tables.store.now()))
        with self._lock:
            slot = self._rates.get(key)
            if slot is None:
                slot = self._rates[key] = [0, 0]
            slot[0] += res.written
            if res.dropped:
                slot[1] += res.dropped
                self._drops[buffer_id] = self._drops.get(buffer_id, 0) + res.dropped
        if res.dropped:
            self.flusher.wake()

    def take_counts(self) -> tuple[list[tuple[str, int, int, int]], dict[str, int]]:
        """Per-second counts and drop bursts gathered since the last call (the flusher persists them)."""
        with self._lock:
            rates, self._rates = self._rates, {}
            drops, self._drops = self._drops, {}
        return [(b, s, v[0], v[1]) for (b, s), v in rates.items()], drops

    def _after_write(self, buffer_id: str, config: BufferConfig, changes: dict[str, Any], res: WriteResult) -> bool:
        """Re-apply explicit settings another process overwrote; deliver an immediate write. True if delivered."""
        if res.config_version != config.config_version:
            self._configs.pop(buffer_id, None)
            if changes:
                self.config(buffer_id, changes, fresh=True)
        if res.flush_strategy == "immediate" and res.written and res.last_seq is not None:
            try:
                return self.flusher.deliver_through(buffer_id, res.last_seq, config.pass_through_tool)
            except Exception as exc:  # the item is committed, so acknowledged: a write that raised now would be
                # written again by its caller. Its delivery is the flusher's, which retries it as any other batch.
                log.warning("buffer %s: immediate delivery failed after the write committed (%s: %s); the flusher "
                            "delivers it", buffer_id, type(exc).__name__, exc)
                self.flusher.wake()
                return False
        if full_batch_waiting(pass_through_tool=config.pass_through_tool, flush_strategy=res.flush_strategy,
                              unclaimed=res.unclaimed, max_size=res.max_size):
            self.flusher.wake()
        return False

    def _wait_for_space(self, buffer_id: str, deadline: float, timeout: float) -> None:
        self.flusher.press(buffer_id)
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise BufferFullError(
                f"buffer {buffer_id!r} is full (max_pending reached) and stayed full for {timeout:g} s "
                "(when_full: block); nothing was written", tool_id="buffer")
        with self._space:
            self._space.wait(min(remaining, 0.02))

    def note_space(self) -> None:
        with self._space:
            self._space.notify_all()

    def _pending(self, buffer_id: str) -> int:
        rows = self.tables.rows(buffer_id)
        return int(rows[0]["pending"]) if rows else 0

    def write(self, buffer_id: str, data: Any, **settings: Any) -> dict[str, Any]:
        """Append one item; returns once it is committed (or dropped, by `when_full`)."""
        config = self._configs.get(buffer_id)  # the hot path: a known buffer, no settings given
        applied = self._applied.get(buffer_id) if settings else None
        if applied is not None and applied[1] is config and applied[0] == settings:
            # the same settings as the last write, already in this config (callers repeat them on every write)
            changes = applied[2]
            text = self._serialise(buffer_id, data)
        else:
            changes = self.clean_settings(buffer_id, settings) if settings else {}
            if config is None or changes:
                check_buffer_id(buffer_id)
            text = self._serialise(buffer_id, data)
            if config is None or changes:
                config = self.config(buffer_id, changes)
                assert config is not None
                if settings and all(isinstance(v, (str, int, float, type(None))) for v in settings.values()):
                    self._applied[buffer_id] = (dict(settings), config, changes)  # values a caller cannot change in place
        if buffer_id not in self._mine:
            self._adopt(buffer_id)
        res, written, dropped, flushed = self._append(buffer_id, config, changes, [text])
        pending = self._pending(buffer_id) if flushed else res.pending
        out: dict[str, Any] = {
            "success": written == 1, "buffer_id": buffer_id, "buffered": pending, "flushed": flushed,
            "flush_due": res.flush_strategy == "batched" and res.unclaimed >= res.max_size,
        }
        if dropped:
            out["dropped"] = dropped
            out["when_full"] = config.when_full
        return out

    def write_many(self, buffer_id: str, items: object, **settings: Any) -> dict[str, Any]:
        """Append a list of items in one transaction (several when `block` has to wait for room)."""
        check_buffer_id(buffer_id)
        if not isinstance(items, list):
            raise ToolInputError(f"buffer {buffer_id!r}: items must be a list, got {type(items).__name__}", tool_id="buffer")
        texts = [self._serialise(buffer_id, item, f"items[{i}]") for i, item in enumerate(items)]
        changes = self.clean_settings(buffer_id, settings)
        config = self.config(buffer_id, changes)
        assert config is not None
        self._adopt(buffer_id)
        res, written, dropped, flushed = self._append(buffer_id, config, changes, texts, many=True)
        pending = self._pending(buffer_id) if flushed else res.pending
        out: dict[str, Any] = {"success": True, "buffer_id": buffer_id, "written": written, "buffered": pending,
                               "flushed": flushed}
        if dropped:
            out["dropped"] = dropped
            out["when_full"] = config.when_full
        return out

    def _append(self, buffer_id: str, config: BufferConfig, changes: dict[str, Any], texts: list[str], *,
                many: bool = False) -> tuple[WriteResult, int, int, bool]:
        """The one append path of `write` and `write_many`: commit `texts`, waiting for room (when_full:
        block) up to `block_timeout_seconds`; returns (last result, written, dropped, delivered inline)."""
        total = len(texts)
        written = dropped = 0
        flushed = False
        deadline = 0.0
        res: WriteResult | None = None
        while texts or res is None:
            now = self.tables.store.now()
            res = self.tables.append_many(config.bkey, texts, now) if many else self.tables.append(config.bkey, texts[0], now)
            texts = texts[res.written:] if res.full else []
            if res.written or res.dropped or not res.full:
                self._count(buffer_id, res)
                written += res.written
                dropped += res.dropped
                flushed = self._after_write(buffer_id, config, changes, res) or flushed
            if texts:
                if not deadline:
                    deadline = time.monotonic() + config.block_timeout_seconds
                try:
                    self._wait_for_space(buffer_id, deadline, config.block_timeout_seconds)
                except BufferFullError as exc:
                    if many:
                        exc.message = (f"buffer {buffer_id!r} stayed full for {config.block_timeout_seconds:g} s "
                                       f"(when_full: block): {written} of {total} items were written")
                        exc.details = {"written": written}
                    raise
        return res, written, dropped, flushed

    # -- flushing and maintenance ------------------------------------------------------

    def new_owner(self) -> str:
        return f"{self.runtime.session}:{self.tables.node}:{next(self._owner_ids)}"

    def backoff(self, attempts: int) -> float:
        """Capped exponential backoff with equal jitter: d = min(max, base * 2**(attempts-1)); wait d/2 + U(0, d/2)."""
        import random

        delay = min(self.backoff_max, self.backoff_base * (2 ** max(0, attempts - 1)))
        return delay / 2 + random.uniform(0, delay / 2)

    def flush(self, buffer_id: str, **settings: Any) -> dict[str, Any]:
        """Deliver every pending item now, in this process (retry batches too, ignoring their backoff)."""
        check_buffer_id(buffer_id)
        changes = self.clean_settings(buffer_id, settings)
        if changes:
            self.config(buffer_id, changes)
        config = self._require(buffer_id)
        if config.pass_through_tool is None:
            items, left = self.tables.drain(buffer_id, DRAIN_LIMIT)
            self.note_space()
            return {"success": True, "buffer_id": buffer_id, "flushed": bool(items), "items": items,
                    "count": len(items), "remaining": left, "pass_through_tool": None}
        return self.flusher.flush_now(buffer_id)

    def clear(self, buffer_id: str) -> Cleared:
        """Discard a buffer's waiting items and its retry, waiting and dead-letter batches.

        A batch being delivered right now is left to its delivery (see `state.buffer_records.Cleared`).
        """
        self._require(buffer_id)
        cleared = self.tables.clear(buffer_id)
        self.note_space()
        return cleared if cleared is not None else Cleared(0, 0)

    def dead_letters(self, buffer_id: str) -> list[dict[str, Any]]:
        self._require(buffer_id)
        return self.tables.dead_batches(buffer_id)

    def replay(self, buffer_id: str, batch_id: str | None = None) -> dict[str, Any]:
        """Send dead-letter batches again now (same batch ids); a failure puts them back on the retry path.

        A batch the pass-through tool refuses (circuit open, disabled) is queued, not failed: it waits for the
        tool with a fresh attempt count, and this runtime flushes the buffer while it lives.
        """
        self._require(buffer_id)
        if batch_id is not None and not isinstance(batch_id, str):
            raise ToolInputError(f"buffer {buffer_id!r}: batch_id must be a string", tool_id="buffer")
        dead = [batch_id] if batch_id is not None else [b["batch_id"] for b in self.tables.dead_batches(buffer_id)]
        replayed: list[str] = []
        delivered: list[str] = []
        queued: list[str] = []
        failed: list[str] = []
        for b in dead:
            claim = self.tables.revive(buffer_id, b, self.new_owner(), self.lease_seconds)
            if claim is None:
                continue
            replayed.append(b)
            outcome = self.flusher.deliver(claim)
            (delivered if outcome.ok else queued if outcome.state == "waiting" else failed).append(b)
        if batch_id is not None and not replayed:
            raise ToolInputError(f"buffer {buffer_id!r}: no dead-letter batch {batch_id!r}", tool_id="buffer")
        if queued or failed:
            self._adopt(buffer_id)  # this runtime flushes what is left while it lives
        return {"success": not failed, "buffer_id": buffer_id, "replayed": replayed, "delivered": delivered,
                "queued": queued, "failed": failed}

    def status(self, buffer_id: str | None = None) -> list[BufferStatus]:
        """Live figures for every buffer (or one), from the shared store: cheap enough for a 4 Hz dashboard."""
        if buffer_id is not None:
            check_buffer_id(buffer_id)
        return compute_status(self.runtime, self.tables, buffer_id)

    def buffer_ids(self) -> list[str]:
        return [r["buffer_id"] for r in self.tables.rows()]

    def stop(self, timeout: float) -> None:
        self.flusher.stop(timeout)


_install_lock = threading.Lock()


def install(runtime: RuntimeHost) -> BufferEngine:
    """Extension hook: one engine per runtime; a serving runtime starts flushing every buffer at once."""
    with _install_lock:
        engine = runtime.extensions.get("buffers")
        if engine is None:
            engine = BufferEngine(runtime)
            runtime.extensions["buffers"] = engine
            runtime.add_service("buffers", engine)
            if runtime.serve:
                engine.flusher.start()
    return engine


def engine_for(runtime: RuntimeHost) -> BufferEngine:
    engine = runtime.extensions.get("buffers")
    return engine if engine is not None else install(runtime)


def tool_entry(runtime: RuntimeHost, data: dict[str, Any]) -> dict[str, Any]:
    """The `buffer` builtin: the original system's JSON in, JSON out."""
    if not isinstance(data, dict):
        raise ToolInputError("buffer: input must be a JSON object", tool_id="buffer")
    op = data.get("operation")
    if op not in OPERATIONS:
        raise ToolInputError(f"buffer: unknown operation {op!r}; use one of {', '.join(OPERATIONS)}", tool_id="buffer")
    engine = engine_for(runtime)
    buffer_id = data.get("buffer_id")
    if op == "status" and buffer_id is None:
        return {"success": True, "buffers": [s.to_dict() for s in engine.status()]}
    if buffer_id is None:
        raise ToolInputError(f"buffer: operation {op!r} needs a buffer_id", tool_id="buffer")
    check_buffer_id(buffer_id)
    settings = {k: data[k] for k in CONFIG_FIELDS if k in data} if op in _CONFIGURING else {}
    if op == "write":
        if "data" not in data:
            raise ToolInputError(f"buffer {buffer_id!r}: operation 'write' needs 'data'", tool_id="buffer")
        return engine.write(buffer_id, data["data"], **settings)
    if op == "write_many":
        return engine.write_many(buffer_id, data.get("items"), **settings)
    if op == "flush":
        return engine.flush(buffer_id, **settings)
    if op == "configure":
        config = engine.configure(buffer_id, **settings)
        return {"success": True, "buffer_id": buffer_id, "config": config.settings(), "config_version": config.config_version}
    if op == "status":
        found = engine.status(buffer_id)
        if not found:
            return {"success": True, "buffer_id": buffer_id, "exists": False, "buffered": 0}
        return {"success": True, "exists": True, "buffered": found[0].pending, **found[0].to_dict()}
    if op == "clear":
        cleared = engine.clear(buffer_id)
        return {"success": True, "buffer_id": buffer_id, "cleared": cleared.removed, "in_flight": cleared.in_flight}
    if op == "dead_letters":
        return {"success": True, "buffer_id": buffer_id, "dead_letters": engine.dead_letters(buffer_id)}
    return engine.replay(buffer_id, data.get("batch_id"))
