"""The Runtime: returns at once, loads the catalog behind, and calls tools.

Everything else (buffers, failure tracking, evolution, hot reload) plugs in
through `install(runtime)` functions named in EXTENSIONS, run by the loader
thread, so none of their imports sit on the path to `Runtime(...)`.
"""

from __future__ import annotations

import atexit
import contextvars
import importlib
import os
import secrets as _secrets
import socket
import threading
import time
import weakref
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from state import promotions as promotion_rows
from state.calls import CallRecord, CallRecorder
from state.db import Store, StoreError, database_url, open_store
from state.events import EventLog
from state.paths import tooldeck_home
from state.redact import adopt_environ
from state.runtimes import leave, live_runtimes
from tools import presence
from tools.catalog import Catalog, Resolution, StatusChange, ToolEntry, roots_for
from tools.errors import StateError, ToolCrashError, ToolError, UnknownToolError, UsageError, parse_json
from tools.ids import check_name, check_tool_id, resolve_workspace
from tools.settings import Settings, load_settings

#: `module:function` called with the runtime once the store is open, before tools load.
#: Each capability keeps its engine in `runtime.extensions[name]`.
EXTENSIONS: list[str] = [
    "tools.evolution.evolve:install",
    "tools.catalog.watcher:install",
    "tools.mcp.extension:install",  # before buffers: services stop in reverse, so a buffer's last flush can reach an MCP sink
    "tools.buffers.engine:install",
    "tools.recovery.ledger:install",
    "tools.recovery.selection:install",
    "tools.evolution.auto:install",  # after failure tracking, whose failures wake it
]


class CallHook(Protocol):
    """Observes every call: may refuse one before it runs, sees every outcome after.

    A hook with `guard = True` (refusing unapproved code) runs before every call, even the
    unobserved ones `run_tests` makes; the others only see observed calls.
    """

    def before_call(self, runtime: Runtime, entry: ToolEntry) -> None: ...

    def after_call(self, runtime: Runtime, entry: ToolEntry, outcome: str, duration_ms: float,
                   error: ToolError | None, data: Any) -> None: ...


class Service(Protocol):
    def stop(self, timeout: float) -> None: ...


_checks: tuple[Callable[..., Any], Callable[..., Any]] | None = None


def _schema_checks() -> tuple[Callable[..., Any], Callable[..., Any]]:
    """invoke's input and output checks, imported on the first call (not with this module)."""
    global _checks
    if _checks is None:
        from tools.invoke import check_input, check_output

        _checks = (check_input, check_output)
    return _checks


def new_session_id() -> str:
    return "s-" + _secrets.token_hex(4)


def parse_input(tool_id: str, input_data: Any) -> Any:
    """Accept a dict or a JSON string, as the original callers passed it."""
    if isinstance(input_data, (bytes, bytearray)):
        input_data = input_data.decode("utf-8", "replace")
    if isinstance(input_data, str):
        if not input_data.strip():
            return {}
        return parse_json(input_data, f"{tool_id}: input", tool_id=tool_id)
    return {} if input_data is None else input_data


class Runtime:
    """The runtime under every tool call. Construction does no I/O; a loader thread does it."""

    def __init__(
        self,
        workspace: str | os.PathLike[str] | None = None,
        *,
        session: str | None = None,
        serve: bool = False,
        demo: bool = False,
        extra_roots: list[Path] | None = None,
        label: str | None = None,
        kind: str = "library",
    ) -> None:
        adopt_environ()  # the tools it runs cannot read the secrets in /proc/<this pid>/environ
        self.workspace = resolve_workspace(workspace)
        self.home = tooldeck_home(self.workspace)
        self.own_session = session or os.environ.get("TOOLDECK_SESSION") or new_session_id()
        #: the session of the call running in this context (an MCP client's), see `call(session=...)`
        self._call_session: contextvars.ContextVar[str | None] = contextvars.ContextVar("tooldeck_call_session", default=None)
        self.serve = serve
        self.demo = demo
        self.label = label
        self.kind = kind  # dashboard | serve | cli | mcp serve | library; MCP clients: mcp client
        self.pid = os.getpid()
        self.host = socket.gethostname()
        #: this runtime on every machine: host, pid and a start token (a pid alone repeats across
        #: containers and restarts); runtimes are keyed by (session, node), buffer leases name it
        self.node = f"{self.host}:{self.pid}:{_secrets.token_hex(3)}"
        self.tracking_disabled = os.environ.get("TOOLDECK_DISABLE_USAGE_TRACKING", "") not in ("", "0", "false")
        self.catalog = Catalog(roots_for(self.workspace, demo=demo, extra=extra_roots or []), self.home / "evolved")
        self.hooks: list[CallHook] = []
        self.services: dict[str, Service] = {}
        self.extensions: dict[str, Any] = {}
        self._default_timeout_s: float | None = None
        self._store: Store | None = None
        self._events: EventLog | None = None
        self._calls: CallRecorder | None = None
        self._settings: Settings | None = None
        self._workers: Any = None
        self._children: Any = None
        self._children_lock = threading.Lock()
        self._children_closed = False
        self._start_error: BaseException | None = None
        self._store_ready = threading.Event()
        self._closing = threading.Event()
        self._closed = False
        self._release_log: Callable[[], None] | None = None
        self._close_lock = threading.Lock()
        self._promotions: dict[tuple[str, str], str] = {}
        self._promotions_at = 0.0
        self._loader = threading.Thread(target=self._load, name="tooldeck-loader", daemon=True)
        self._loader.start()
        _live_runtimes.add(self)

    @property
    def session(self) -> str:
        """The session calls are made for: the one given to the call in progress, else the runtime's own."""
        return self._call_session.get() or self.own_session

    # -- background start ----------------------------------------------------------

    def _load(self) -> None:
        try:
            self._settings = load_settings(self.workspace)
            self.home.mkdir(parents=True, exist_ok=True)
            (self.home / "logs").mkdir(exist_ok=True)
            from tools.logs import setup_logging

            self._release_log = setup_logging(self.home / "logs")
            if self._closed:  # closed while this thread was starting: close() may have looked before this line
                self._release_log()
            url = database_url(self._settings.get("state", "database_url", None))
            pool = int(self._settings.get("state", "pool_size") or (1 if self.kind == "cli" else 8))
            self._store = open_store(self.home, url=url, pool_size=pool)
            self._events = EventLog(self._store, lambda: self.session)
            self._calls = CallRecorder(self._store, session=self.own_session,
                                       max_queued=int(self._settings.get("calls", "max_queued_records", 10_000)))
            self._calls.start()
            self.catalog.attach(self._store, self._events, self.node)
            self._heartbeat()
            self._events.emit("runtime.started", serve=self.serve, workspace=str(self.workspace))
            for warning in self._settings.warnings:
                self._events.emit("runtime.warning", warning=warning)
        except BaseException as exc:  # surfaced by every accessor, never swallowed
            self._start_error = exc
            self.catalog.discovered.set()
            self.catalog.finished.set()
            self._store_ready.set()
            return
        self._store_ready.set()
        for spec in EXTENSIONS:
            module_name, _, func = spec.partition(":")
            # installed under the close lock: a runtime closed meanwhile gets no service that
            # starts after close() stopped the others (and would outlive the store)
            with self._close_lock:
                if self._closed:
                    return
                try:
                    getattr(importlib.import_module(module_name), func)(self)
                except Exception as exc:  # an extension that fails must not stop tools loading
                    self.events.emit("runtime.error", where=spec, error=f"{type(exc).__name__}: {exc}")
        try:
            self.catalog.discover()
            self.catalog.load_all()
        except Exception as exc:  # never a loader thread dead in silence, with every caller waiting on it
            self.catalog.failed(exc)
            self.events.emit("runtime.error", where="catalog", error=f"{type(exc).__name__}: {exc}")
        threading.Thread(target=presence.housekeeping, args=(self, self._closing), name="tooldeck-housekeeping",
                         daemon=True).start()

    def _require_store(self, timeout: float = 30.0) -> None:
        if self._store is not None and self._start_error is None and self._store_ready.is_set():
            return  # the hot path: every call passes here (no lock taken)
        if not self._store_ready.wait(timeout):
            raise StateError(f"state store at {self.home} did not open within {timeout:.0f} s")
        if self._start_error is not None:
            exc = self._start_error
            if isinstance(exc, ToolError):
                raise exc
            if isinstance(exc, StoreError):
                raise StateError(str(exc)) from exc
            raise StateError(f"runtime failed to start: {type(exc).__name__}: {exc}") from exc

    def require_store(self, timeout: float = 30.0) -> Store:
        """The store once it is open, waiting up to `timeout` s. Raises StateError when it failed to
        open (the reason), or did not open in time."""
        self._require_store(timeout)
        assert self._store is not None
        return self._store

    def recycle_workers(self, tool_id: str) -> int:
        """Restart the warm workers of a tool whose files changed; how many were stopped (0 while
        no worker pool exists yet)."""
        return int(self._workers.recycle(tool_id)) if self._workers is not None else 0

    def extension(self, name: str, timeout: float = 30.0) -> Any:
        """An installed extension (None if it failed to install); extensions are installed
        before discovery starts, so this waits for that."""
        self._require_store(timeout)
        self.catalog.discovered.wait(timeout)
        return self.extensions.get(name)

    @property
    def store(self) -> Store:
        self._require_store()
        assert self._store is not None
        return self._store

    @property
    def events(self) -> EventLog:
        self._require_store()
        assert self._events is not None
        return self._events

    @property
    def settings(self) -> Settings:
        self._require_store()
        assert self._settings is not None
        return self._settings

    @property
    def calls(self) -> CallRecorder:
        self._require_store()
        assert self._calls is not None
        return self._calls

    @property
    def children(self) -> Any:
        """Every child process this runtime started and that still runs (tools.invoke.Children):
        killed, process group and all, when the runtime closes."""
        with self._children_lock:
            if self._children is None:
                from tools.invoke import Children

                self._children = Children()
                if self._children_closed:  # a call racing with (or after) close starts nothing
                    self._children.close()
            return self._children

    @property
    def workers(self) -> Any:
        if self._workers is None:
            from tools.invoke import WorkerPool

            self._workers = WorkerPool(self.workspace, children=self.children)
        return self._workers

    def wait_ready(self, timeout: float = 60.0) -> bool:
        """Wait for the whole catalog (most callers want `get_tool` instead)."""
        done = self.catalog.finished.wait(timeout)
        self._require_store(0)
        return done

    def summary(self) -> str:
        if self._start_error is not None:
            return f"Failed: {self._start_error}"
        return self.catalog.summary()

    def subscribe(self, listener: Callable[[list[StatusChange]], None]) -> Callable[[], None]:
        return self.catalog.subscribe(listener)

    # -- presence (tools.presence) ---------------------------------------------------

    def _heartbeat(self) -> None:
        assert self._store is not None
        presence.heartbeat(self, self._store)

    def prune(self) -> dict[str, int]:
        """Rows older than `[retention]` allows; counts removed per table."""
        return presence.prune(self)

    def live_runtimes(self) -> list[dict[str, Any]]:
        """Every runtime, on any node, with a fresh heartbeat."""
        return live_runtimes(self.store)

    def _log_error(self, where: str, exc: BaseException) -> None:
        presence.log.error("%s: %s", where, exc)

    # -- resolution ----------------------------------------------------------------

    def promotions(self, max_age: float = 0.5) -> dict[tuple[str, str], str]:
        """(tool_id, scope) -> version, refreshed from the shared store at most every `max_age` s."""
        now = time.monotonic()
        if now - self._promotions_at > max_age:
            self._promotions = promotion_rows.all_promotions(self.store)
            self._promotions_at = now
        return self._promotions

    def invalidate_promotions(self) -> None:
        self._promotions_at = 0.0

    def resolved_version(self, tool_id: str) -> tuple[str | None, str]:
        """(version, scope) a call would use now: a usable session promotion, then global, then the base
        (None); the resolver's answer without waiting for a load."""
        res = self.resolution(tool_id, wait=False)
        return (res.version, res.scope) if res.promoted else (None, "base")

    def get_tool(self, tool_id: str, *, version: str | None = None, wait: bool = True, timeout: float = 10.0) -> ToolEntry:
        check_tool_id(tool_id)
        self._require_store(timeout)
        return self.catalog.get(tool_id, version, wait=wait, timeout=timeout)

    def resolve(self, tool_id: str, version: str | None = None, *, timeout: float = 10.0) -> ToolEntry:
        """The entry a call to `tool_id` runs: an explicit version, or the promoted one, or the base."""
        entry = self.resolution(tool_id, version, timeout=timeout).entry
        assert entry is not None  # waiting, the base is found or UnknownToolError was raised
        return entry

    def resolution(self, tool_id: str, version: str | None = None, *, session: str | None = None, wait: bool = True,
                   timeout: float = 10.0) -> Resolution:
        """Which version serves a call to `tool_id` from `session` (default: this runtime's): the one resolver.

        A promotion of the session, then a global one; a promoted version that cannot serve (its files
        gone or tampered, approved elsewhere and not verifiable here) gives way to the version that
        scope served before it, then to the next scope, then to the base; each one passed over is in
        `fell_back_from`. `wait`: load (and materialise) what is needed, raising when nothing serves
        (calls); without it, answer from what the catalog knows now (selection, listings, the
        dashboard): an entry may still be loading (`entry.done` unset), and `entry` is None when
        nothing serves.
        """
        check_tool_id(tool_id)
        if wait:
            self._require_store(timeout)
        if version is not None:
            entry = self.catalog.get(tool_id, version, timeout=timeout) if wait else _usable(self.catalog.find(tool_id, version))
            return Resolution(entry, "explicit")
        promos = self.promotions()
        passed: list[tuple[str, str]] = []
        for scope in dict.fromkeys((session or self.session, "global")):
            promoted, seen = promos.get((tool_id, scope)), set()
            while promoted is not None and promoted not in seen:
                seen.add(promoted)
                entry, why = self._promoted_entry(tool_id, promoted, wait, timeout)
                if entry is not None:
                    return Resolution(entry, scope, tuple(passed))
                if not why:  # not seen here yet (approved on another node): a call materialises and loads it
                    return Resolution(None, scope, tuple(passed), pending_version=promoted)
                passed.append((promoted, why))
                promoted = self._served_before(tool_id, scope, promoted)
        base = self.catalog.get(tool_id, timeout=timeout) if wait else _usable(self.catalog.find(tool_id))
        return Resolution(base, "base", tuple(passed))

    def _promoted_entry(self, tool_id: str, version: str, wait: bool, timeout: float) -> tuple[ToolEntry | None, str]:
        """A promoted version's entry if it can serve, else (None, why not); without waiting, (None, "")
        when the catalog has not seen the version yet."""
        if not wait:
            entry = self.catalog.find(tool_id, version)
            if entry is None:
                return None, ""
            if entry.done.is_set() and entry.manifest is None:
                return None, entry.error or entry.status
            return entry, ""  # loaded, or not yet: a call loads it
        try:
            try:
                return self.catalog.get(tool_id, version, timeout=timeout), ""
            except UnknownToolError:  # approved on another node: its files come from the store
                if not self._materialise(tool_id, version):
                    raise
                return self.catalog.get(tool_id, version, timeout=timeout), ""
        except ToolError as exc:  # files gone or tampered: the version that served before it serves
            self._log_error(f"promotion of {tool_id} {version}", exc)
            return None, str(exc)

    def _materialise(self, tool_id: str, version: str) -> bool:
        """Write a version approved elsewhere (another node) into this node's evolved folder, verified."""
        pins = self.extensions.get("evolution_pins")
        if pins is None or self.catalog.find(tool_id, version) is not None:
            return False
        try:
            return bool(pins.materialise(tool_id, version))
        except (ToolError, StoreError, OSError) as exc:
            self._log_error(f"materialising {tool_id} {version}", exc)
            return False

    def _served_before(self, tool_id: str, scope: str, version: str) -> str | None:
        """The version a scope served before `version` was promoted there (None: the next scope, then the base)."""
        return promotion_rows.served_before(self.store, tool_id, scope, version)

    # -- calls ---------------------------------------------------------------------

    def call(self, tool_id: str, input_data: Any = None, *, version: str | None = None, timeout: float | None = None,
             disable_tracking: bool = False, wait_timeout: float = 30.0, session: str | None = None) -> Any:
        """Call a tool with a dict or JSON string; returns its output (parsed JSON or text).

        `session` makes the call (its resolution, call record, events and nested calls) one of that
        session's instead of the runtime's own: a serving runtime calls for many clients.
        """
        if session is not None:
            token = self._call_session.set(check_name(session, "session"))
            try:
                return self.call(tool_id, input_data, version=version, timeout=timeout, disable_tracking=disable_tracking,
                                 wait_timeout=wait_timeout)
            finally:
                self._call_session.reset(token)
        if timeout is not None and not (isinstance(timeout, (int, float)) and 0 < timeout < float("inf")):
            raise UsageError(f"{tool_id}: timeout must be a positive number of seconds, not {timeout!r}")
        data = parse_input(tool_id, input_data)
        entry = self.resolve(tool_id, version, timeout=wait_timeout)
        return self.call_entry(entry, data, timeout=timeout, disable_tracking=disable_tracking)

    def call_entry(self, entry: ToolEntry, data: Any, *, timeout: float | None = None,
                   disable_tracking: bool = False, observe: bool = True) -> Any:
        manifest = entry.manifest
        if manifest is None:
            raise ToolError(f"tool {entry.tool_id!r} is not loaded: {entry.error}", tool_id=entry.tool_id)
        for hook in self.hooks:
            # observation hooks (scores, circuits) skip unobserved calls; guards (security) never do
            if observe or getattr(hook, "guard", False):
                hook.before_call(self, entry)
        limit = timeout or manifest.call_timeout(self._default_timeout())
        error: ToolError | None = None
        result: Any = None
        check_input, check_output = _schema_checks()
        started = time.perf_counter()
        try:
            data = check_input(entry, data)
            result = self._invoke(entry, data, limit)
            check_output(entry, result)
        except ToolError as exc:
            error = exc
        except StoreError as exc:  # the shared state refused (a database down, locked): not the tool's fault
            error = StateError(f"{entry.tool_id}: {exc}", tool_id=entry.tool_id, version=entry.served_version)
        except Exception as exc:  # a bug inside a builtin tool is that tool's crash, recorded like any other
            error = ToolCrashError(f"{entry.tool_id}: {type(exc).__name__}: {exc}", tool_id=entry.tool_id,
                                   version=entry.served_version)
        duration_ms = (time.perf_counter() - started) * 1000
        if error is not None and error.tool_id is None:
            error.tool_id = entry.tool_id
        if error is not None and error.version is None:
            error.version = entry.served_version
        outcome = "ok" if error is None else error.error_class
        if observe:
            tracked = manifest.track_usage and not disable_tracking and not self.tracking_disabled
            if tracked or error is not None:
                self.calls.record(CallRecord(
                    entry.tool_id, entry.served_version, self.session, duration_ms, outcome,
                    data if tracked else None, result if tracked else None,
                    error.message if error else None, time.time(),
                ))
            elif outcome == "ok":  # an untracked success (a buffer write): the running counters only, no row
                self.calls.count(entry.tool_id, entry.served_version, time.time())
            if outcome != "cancelled":  # a call its caller cancelled has no outcome: neither the tool's failure nor a success
                for hook in self.hooks:
                    hook.after_call(self, entry, outcome, duration_ms, error, data)
        if error is not None:
            raise error
        return result

    def _default_timeout(self) -> float:
        """`[calls] default_timeout_seconds`, read once (settings do not change while a runtime lives)."""
        value = self._default_timeout_s
        if value is None:
            value = self._default_timeout_s = float(self.settings.get("calls", "default_timeout_seconds", 30))
        return value

    def _invoke(self, entry: ToolEntry, data: Any, timeout: float) -> Any:
        kind = entry.manifest.type if entry.manifest else None
        if kind == "builtin":
            from tools.invoke import resolve_builtin

            return resolve_builtin(entry)(self, data)
        if kind == "python":
            from tools.invoke import output_cap, worker_limit

            settings = self.settings
            return self.workers.call(entry, data, timeout, output_cap(entry, settings), worker_limit(entry, settings))
        if kind == "executable":
            from tools.invoke import output_cap, run_executable

            return run_executable(entry, data, workspace=self.workspace, timeout=timeout, children=self.children,
                                  max_output=output_cap(entry, self.settings))
        if kind == "llm":
            from tools.invoke import run_llm_tool

            return run_llm_tool(self, entry, data, timeout)
        if kind == "mcp":
            from tools.invoke import run_mcp_tool

            return run_mcp_tool(self, entry, data, timeout)
        raise ToolError(f"{entry.tool_id}: unknown tool type {kind!r}", tool_id=entry.tool_id)

    def run_tests(self, tool_id: str, *, version: str | None = None) -> list[dict[str, Any]]:
        from tools.catalog import run_manifest_tests

        entry = self.resolve(tool_id, version)
        return run_manifest_tests(lambda data: self.call_entry(entry, data, observe=False), entry)

    # -- lifecycle -----------------------------------------------------------------

    def add_service(self, name: str, service: Service) -> None:
        self.services[name] = service

    def close(self, timeout: float = 5.0) -> None:
        """Stop services (finishing in-flight flushes within `timeout`), workers, and the store."""
        with self._close_lock:
            if self._closed:
                return
            self._closed = True
        self._closing.set()
        for name, service in list(self.services.items())[::-1]:
            try:
                service.stop(timeout)
            except Exception as exc:  # one service failing to stop must not strand the others
                self._log_error(f"stopping {name}", exc)
        if self._workers is not None:
            self._workers.close()
        with self._children_lock:  # after the services' last deliveries, before the store closes
            self._children_closed = True
            children = self._children
        if children is not None:
            killed = children.close()  # calls still in flight (a hung sink, a slow tool): their groups die
            if killed and self._events is not None and self._start_error is None:
                try:
                    self._events.emit("runtime.children_killed", count=killed)
                except StoreError as exc:
                    self._log_error("close", exc)
        self._loader.join(timeout=timeout)
        if self._store is not None and self._start_error is None:
            try:
                if self._calls is not None:
                    self._calls.close()
                self.catalog.flush()
                leave(self._store, self.own_session, self.node)
                self._store.close()
            except StoreError as exc:
                self._log_error("close", exc)
        _live_runtimes.discard(self)
        if self._release_log is not None:
            self._release_log()  # after the store's last words: its close may log

    def __enter__(self) -> Runtime:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


_live_runtimes: weakref.WeakSet[Runtime] = weakref.WeakSet()


@atexit.register
def _close_all() -> None:
    for runtime in list(_live_runtimes):
        runtime.close(timeout=5.0)


def _usable(entry: ToolEntry | None) -> ToolEntry | None:
    """An entry that serves (loaded, or still to load: a call loads it), else None (unknown, or failed to load)."""
    return None if entry is None or (entry.done.is_set() and entry.manifest is None) else entry



if TYPE_CHECKING:
    from tools.host import RuntimeHost

    def _is_a_host(runtime: Runtime) -> RuntimeHost:
        """mypy checks here that Runtime is the RuntimeHost its rooms are typed against."""
        return runtime
