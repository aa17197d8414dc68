"""The imported MCP servers of one runtime: their links on one event loop, their tools in the catalog.

Installed by the runtime (EXTENSIONS) when tooldeck.toml names `[mcp.servers]`. It puts each
server's cached tool list in the catalog at once, so ids are known before anything connects;
serving runtimes (`serve`, `mcp serve`, the dashboard) connect every server in the background at
start, short-lived ones (a CLI call, `call_tool` in a script) a server on the first call to one of
its tools. A call to an id no tool has connects the servers whose names prefix it.

The SDK is asyncio: every link runs on one event loop thread per runtime, started when the first
server connects; calls from the runtime's threads cross with `run_coroutine_threadsafe`. A call
to a server that is not ready fails at once with class `unavailable` (recorded as a failure of
that tool), except while the server's first connection is under way, which it waits for. The
cache (`.tooldeck/mcp/<server>.tools.json`) holds what `tools/list` said, redacted, and the
server's fingerprint (never its `env` or `headers` values); a changed command or URL ignores it.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import logging
import os
import queue
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from state.db import StoreError
from state.redact import redact
from tools.errors import ToolCancelledError, ToolError, ToolTimeoutError, ToolUnavailableError
from tools.invoke import current_scope, killable
from tools.mcp.imported import VERSION, check_arguments, ids_for, manifest_for, output_of, tool_path
from tools.mcp.servers import ServerConfig, import_id, long_import_id

if TYPE_CHECKING:
    from tools.host import RuntimeHost

log = logging.getLogger("tooldeck.mcp")
CALL_MARGIN = 5.0  # past the server's own timeout (the SDK's), the bridge gives up on a lost answer
STOP_SECONDS = 5.0
CACHE_DIR = "mcp"


class Bridged:
    """One coroutine run on the hub's loop for a caller thread.

    Started with one wake-up of the loop, its outcome handed back through a SimpleQueue (a cheaper
    wait than a concurrent Future's condition: this is on every call's path); cancellable from any
    thread (an MCP client cancelling the call that called this tool).
    """

    __slots__ = ("_cancelled", "_outcome", "_task", "loop")

    def __init__(self, loop: asyncio.AbstractEventLoop, coro: Any) -> None:
        self.loop = loop
        self._task: asyncio.Task[Any] | None = None
        self._outcome: queue.SimpleQueue[asyncio.Task[Any] | None] = queue.SimpleQueue()
        self._cancelled = False
        try:
            loop.call_soon_threadsafe(self._start, coro)
        except RuntimeError:  # the loop is closed
            coro.close()
            self._outcome.put(None)

    def _start(self, coro: Any) -> None:
        if self._cancelled:
            coro.close()
            self._outcome.put(None)
            return
        self._task = self.loop.create_task(coro)
        self._task.add_done_callback(self._outcome.put)

    def cancel(self) -> None:
        self._cancelled = True
        try:
            self.loop.call_soon_threadsafe(self._cancel_task)
        except RuntimeError:
            self.abandon()

    def _cancel_task(self) -> None:
        if self._task is not None:
            self._task.cancel()

    def abandon(self) -> None:
        self._outcome.put(None)

    def result(self, timeout: float) -> Any:
        """The coroutine's value or exception; CancelledError when it was cancelled, TimeoutError past `timeout`."""
        try:
            task = self._outcome.get(timeout=timeout)
        except queue.Empty:
            raise TimeoutError from None
        if task is None or task.cancelled():
            raise concurrent.futures.CancelledError
        return task.result()


class McpHub:
    """`runtime.extensions["mcp"]`: every `[mcp.servers.NAME]` of the workspace, and calls to their tools."""

    def __init__(self, runtime: RuntimeHost, configs: list[ServerConfig]) -> None:
        from tools.mcp.client import ServerLink

        self.runtime = runtime
        self.settings_path: Path | None = runtime.settings.path
        self.cache_dir = runtime.home / CACHE_DIR
        self.links: dict[str, Any] = {
            c.name: ServerLink(c, children=runtime.children, cwd=str(runtime.workspace), publish=self._publish,
                               on_status=self._status_changed)
            for c in configs
        }
        self.cached: set[str] = set()  # servers whose tools came from the cache in this process
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._calls: set[Bridged] = set()
        self._stopped = False
        self._told: set[str] = set()  # ids whose keeping of the long form was said in this process
        self._moved: set[str] = set()  # long ids whose records were moved to the short one (or had none)
        #: the one thread that writes server statuses to the store, in the order they changed (`_off_loop`)
        self._writes = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="mcp-status")

    # -- the event loop ------------------------------------------------------------

    def _ensure_loop(self) -> asyncio.AbstractEventLoop:
        """The loop thread, started on first use; it lives until the runtime closes."""
        with self._lock:
            if self._stopped:
                raise ToolUnavailableError("MCP servers: the runtime is closing")
            if self._loop is None:
                loop = asyncio.new_event_loop()
                ready = threading.Event()

                def run() -> None:
                    asyncio.set_event_loop(loop)
                    loop.call_soon(ready.set)
                    loop.run_forever()

                self._thread = threading.Thread(target=run, name="tooldeck-mcp", daemon=True)
                self._thread.start()
                ready.wait(30)
                self._loop = loop
            return self._loop

    def start(self, name: str) -> None:
        """Connect a server in the background (once per process; it then reconnects by itself)."""
        link = self.links[name]
        loop = self._ensure_loop()
        with self._lock:
            if link.started or self._stopped:
                return
            link.started = True
            if link.status != "error":
                link.settled.clear()

        def create() -> None:
            self._tasks.append(loop.create_task(link.run(), name=f"mcp-{name}"))

        loop.call_soon_threadsafe(create)

    def connect_all(self) -> None:
        for name in self.links:
            self.start(name)

    def wait(self, names: list[str], timeout: float) -> None:
        """Start these servers and wait (up to `timeout` in all) until each is ready or in error."""
        for name in names:
            self.start(name)
        deadline = time.monotonic() + timeout
        for name in names:
            self.links[name].settled.wait(max(0.0, deadline - time.monotonic()))

    def wait_listed(self, timeout: float) -> None:
        """`tooldeck tools --wait`: connect the servers whose tools are not known yet (no cache) and wait for them."""
        self.wait([n for n, link in self.links.items() if n not in self.cached and not link.config.problem], timeout)

    def resolve_unknown(self, tool_id: str, timeout: float) -> bool:
        """The catalog has no `tool_id`: connect the servers whose name prefixes it and have not listed here yet."""
        names = [n for n, link in self.links.items() if tool_id.startswith(link.config.prefix + "_")
                 and link.listed_at is None and not link.config.problem]
        if not names:
            return False
        self.wait(names, timeout)
        if any(self.links[n].status == "ready" for n in names):
            return True
        link = self.links[names[0]]
        raise ToolUnavailableError(f"unknown tool {tool_id!r}: MCP server {link.name!r}, whose tools it would be, "
                                   f"{'is in error: ' + (link.error or '') if link.status == 'error' else 'did not connect in time'}",
                                   tool_id=tool_id, details={"server": link.name, "server_status": link.status})

    def stop(self, timeout: float) -> None:
        """Service stop: end every connection (stdio servers get their stdin closed, then are killed), stop the loop."""
        with self._lock:
            self._stopped = True
            loop, thread = self._loop, self._thread
        self._writes.shutdown(wait=False, cancel_futures=True)  # a status written after `forget` would outlive us
        if self.runtime.serve:
            from state.mcp_servers import forget

            try:
                forget(self.runtime.store, self.runtime.own_session, self.runtime.node)
            except (StoreError, ToolError) as exc:
                log.error("mcp: could not remove this runtime's server statuses: %s", exc)
        for call in list(self._calls):
            call.cancel()
        if loop is None or thread is None:
            return

        async def shutdown() -> None:
            for task in self._tasks:
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)

        try:
            asyncio.run_coroutine_threadsafe(shutdown(), loop).result(max(timeout, STOP_SECONDS))
        except (concurrent.futures.TimeoutError, concurrent.futures.CancelledError, RuntimeError) as exc:
            log.error("mcp: servers did not stop within %.0f s: %s", max(timeout, STOP_SECONDS), exc or "timeout")
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout)
        for call in list(self._calls):
            call.abandon()  # the loop is gone: a caller still waiting gets `unavailable` now
        if not thread.is_alive():
            loop.close()

    # -- calls ---------------------------------------------------------------------

    def call(self, entry: Any, data: Any, timeout: float) -> Any:
        """Run one call of an imported tool from any runtime thread; its output, or its failure as a ToolError."""
        manifest = entry.manifest
        ref = manifest.mcp
        tool_id, version = entry.tool_id, entry.served_version
        link = self.links.get(ref.server)
        if link is None:
            raise ToolUnavailableError(f"{tool_id}: no MCP server {ref.server!r} in tooldeck.toml [mcp.servers]",
                                       tool_id=tool_id, version=version)
        arguments = check_arguments(tool_id, version, data)
        scope = current_scope()
        if scope is not None and scope.cancelled:
            raise ToolCancelledError(f"{tool_id}: cancelled by the caller", tool_id=tool_id, version=version)
        if link.status != "ready":
            first = not link.started or (link.status == "connecting" and link.connected_at is None and link.attempts == 0)
            self.start(ref.server)
            if first:
                link.settled.wait(timeout)
            if link.status != "ready":
                raise link.unavailable(tool_id, version)
        call = Bridged(self._loop or self._ensure_loop(), link.call(tool_id, version, ref.tool, arguments, timeout))
        self._calls.add(call)
        if self._stopped:  # stop() may have let go of the calls it knew before this one was added
            call.cancel()
            call.abandon()
        try:
            with killable(scope, call.cancel):
                result = call.result(timeout + CALL_MARGIN)
        except concurrent.futures.CancelledError:
            if scope is not None and scope.cancelled:
                raise ToolCancelledError(f"{tool_id}: cancelled by the caller", tool_id=tool_id, version=version) from None
            raise ToolUnavailableError(f"{tool_id}: the runtime is closing", tool_id=tool_id, version=version) from None
        except TimeoutError:
            call.cancel()
            raise ToolTimeoutError(f"{tool_id}: no answer from MCP server {ref.server!r} within {timeout + CALL_MARGIN:g} s",
                                   tool_id=tool_id, version=version) from None
        finally:
            self._calls.discard(call)
        return output_of(tool_id, version, result, ref.result_wrapped)

    # -- the catalog and the cache -------------------------------------------------

    def _manifests(self, config: ServerConfig, tools: list[dict[str, Any]]) -> tuple[list[tuple[str, Path, Any]], dict[str, str]]:
        """The catalog's manifests of a tool list, and the aliases (long id -> id) of tools whose id is the short form."""
        names = [str(t.get("name")) for t in tools]
        ids, kept = ids_for(config, names, self._holder(config), self._pinned(config, names))
        out, aliases = [], {}
        for tool in tools:
            name = str(tool.get("name"))
            try:
                manifest = manifest_for(config, tool, ids[name])
            except (ValidationError, KeyError, TypeError) as exc:
                log.warning("mcp %s: tool %r not imported: %s", config.name, name[:80], str(exc).splitlines()[0])
                continue
            out.append((manifest.name, tool_path(config, self.settings_path, manifest.name), manifest))
            long = long_import_id(config.prefix, name)
            if long != manifest.name:
                aliases[long] = manifest.name
        self._say_kept(config, ids, kept)
        self._move_records(aliases)
        return out, aliases

    def _holder(self, config: ServerConfig) -> Any:
        """Who else has an id in the catalog (a local or built-in tool, another server's), for `ids_for`."""
        own = "mcp:" + config.name

        def holder(tool_id: str) -> str | None:
            entry = self.runtime.catalog.find(tool_id)
            if entry is None or entry.source == own:
                return None
            return f"the {entry.source} tool at {entry.path}"

        return holder

    def _pinned(self, config: ServerConfig, names: list[str]) -> set[str]:
        from state.tool_ids import pinned_ids

        longs = [long_import_id(config.prefix, n) for n in names if import_id(config.prefix, n) != long_import_id(config.prefix, n)]
        try:
            return pinned_ids(self.runtime.store, longs)
        except (StoreError, ToolError) as exc:  # unknown: keep every long form rather than orphan an approval
            log.error("mcp %s: cannot read which ids approvals are keyed on: %s", config.name, exc)
            return set(longs)

    def _say_kept(self, config: ServerConfig, ids: dict[str, str], kept: dict[str, str]) -> None:
        """A tool that keeps its long id: a warning and an event, once per process."""
        for name, why in kept.items():
            if ids[name] in self._told:
                continue
            self._told.add(ids[name])
            log.warning("mcp %s: tool %r keeps the id %r: %s", config.name, name[:80], ids[name], why)
            try:
                self.runtime.events.emit("mcp.tool_id_kept", tool_id=ids[name], server=config.name, tool=name[:200],
                                         reason=why)
            except (StoreError, ToolError) as exc:
                log.error("mcp %s: %s", config.name, exc)

    def _move_records(self, aliases: dict[str, str]) -> None:
        """Calls, failures, scores, circuits and controls recorded under a long id move to its short id (once)."""
        from state.tool_ids import rename_records, with_records

        todo = [old for old in aliases if old not in self._moved]
        if not todo:
            return
        try:
            for old in with_records(self.runtime.store, todo):
                moved = rename_records(self.runtime.store, old, aliases[old])
                log.info("mcp: the records of %s are now %s's: %s", old, aliases[old], moved)
                self.runtime.events.emit("mcp.tool_renamed", tool_id=aliases[old], old_id=old,
                                         moved={k: v for k, v in moved.items() if v})
        except (StoreError, ToolError) as exc:
            log.error("mcp: cannot move records to the shorter ids: %s", exc)
            return
        self._moved.update(todo)

    def _publish(self, link: Any, tools: list[dict[str, Any]]) -> None:
        """A server's tools/list, in the catalog and in the cache (a worker thread of the loop)."""
        self.runtime.catalog.discovered.wait(link.timeout)  # the local tools' ids are known before a short id is chosen
        manifests, aliases = self._manifests(link.config, tools)
        self.runtime.catalog.set_imported(link.name, manifests, aliases)
        self._write_cache(link.config, tools)
        if link.status == "ready":  # a list_changed: the same status, another tool count
            self._record(link)

    def load_caches(self) -> None:
        for name, link in self.links.items():
            if link.config.problem:
                continue
            tools = self._read_cache(link.config)
            if tools is not None:
                self.cached.add(name)
                link.tool_count = len(tools)
                manifests, aliases = self._manifests(link.config, tools)
                self.runtime.catalog.set_imported(name, manifests, aliases)

    def _cache_path(self, config: ServerConfig) -> Path:
        return self.cache_dir / f"{config.prefix}.tools.json"

    def _read_cache(self, config: ServerConfig) -> list[dict[str, Any]] | None:
        path = self._cache_path(config)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            log.warning("mcp %s: ignoring the tool-list cache %s: %s", config.name, path, exc)
            return None
        if not isinstance(data, dict) or data.get("fingerprint") != config.fingerprint() or not isinstance(data.get("tools"), list):
            return None
        return [t for t in data["tools"] if isinstance(t, dict) and isinstance(t.get("name"), str)]

    def _write_cache(self, config: ServerConfig, tools: list[dict[str, Any]]) -> None:
        path = self._cache_path(config)
        text = redact(json.dumps({"server": config.name, "fingerprint": config.fingerprint(), "updated": time.time(),
                                  "tools": tools}, ensure_ascii=False))
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
            tmp.write_text(text, encoding="utf-8")
            os.replace(tmp, path)
        except OSError as exc:
            log.error("mcp %s: cannot write the tool-list cache %s: %s", config.name, path, exc)

    # -- status --------------------------------------------------------------------

    def _own(self, link: Any) -> dict[str, Any]:
        """This process's view of one server, as `statuses()` and the `mcp_servers` table have it."""
        return {"server": link.name, "transport": link.config.transport, "target": link.config.target,
                "status": "not connected" if link.status == "idle" else link.status, "tools": link.tool_count,
                "error": link.error, "pid": link.pid, "server_info": link.server_info, "protocol": link.protocol}

    def _record(self, link: Any) -> None:
        """A serving runtime's view of a server, in the store for other processes (`mcp list`, dashboards)."""
        if not self.runtime.serve or self._stopped:
            return
        from state.mcp_servers import record

        try:
            record(self.runtime.store, self.runtime.own_session, self.runtime.node, link.name, self._own(link))
        except (StoreError, ToolError) as exc:
            log.error("mcp %s: could not record its status: %s", link.name, exc)

    def _status_changed(self, link: Any) -> None:
        """In the loop thread: every status goes to the store (serving runtimes), ready and error are events too;
        both written by a worker thread, never blocking the loop."""
        if link.status not in ("ready", "error"):
            self._off_loop(lambda: self._record(link))
            return
        payload: dict[str, Any] = {"server": link.name, "transport": link.config.transport, "status": link.status}
        if link.status == "ready":
            payload.update(tools=link.tool_count, server_info=link.server_info, protocol=link.protocol)
        else:
            payload.update(error=link.error, attempts=link.attempts)
        kind = "mcp.server_ready" if link.status == "ready" else "mcp.server_error"

        def emit() -> None:
            self._record(link)
            try:
                self.runtime.events.emit(kind, **payload)
            except (StoreError, ToolError) as exc:
                log.error("mcp %s: could not record its status: %s", link.name, exc)

        self._off_loop(emit)

    def _off_loop(self, fn: Any) -> None:
        """Run a status write on the hub's one writer thread, after the writes before it. On the loop's shared
        executor, two writes of one server ran side by side: a `connecting` read before an `error` could be
        written after it, and the store then said `connecting` to every other process until the next change."""
        try:
            done = self._writes.submit(fn)
        except RuntimeError:  # the hub stopped: nothing more is recorded
            return
        try:
            asyncio.get_running_loop()
        except RuntimeError:  # not in the loop (a server that never started): written before this returns
            done.result()

    def held_elsewhere(self) -> dict[str, dict[str, Any]]:
        """Per server, the row of the live runtime (not this one) holding it: ready first, then the newest."""
        from state.mcp_servers import held

        rank = {"ready": 0, "connecting": 1, "error": 2}
        best: dict[str, dict[str, Any]] = {}
        for row in held(self.runtime.store):
            if (row["session"], row["node"]) == (self.runtime.own_session, self.runtime.node) or row["server"] not in self.links:
                continue
            current = best.get(row["server"])
            if current is None or rank.get(row["status"], 3) < rank.get(current["status"], 3):
                best[row["server"]] = row  # rows come newest first: a tie keeps the newer
        return best

    def every_holder(self) -> list[dict[str, Any]]:
        """Each server as this process sees it, then as every other live runtime holding it recorded it (the
        dashboard's sessions view: one row per server and holder)."""
        from state.mcp_servers import held

        own = self.statuses(others=False)
        mine = (self.runtime.own_session, self.runtime.node)
        for row in held(self.runtime.store):
            if (row["session"], row["node"]) != mine and row["server"] in self.links:
                own.append({**row, "held_by": f"session {row['session']} on {row['node']}"})
        return own

    def statuses(self, *, others: bool = True) -> list[dict[str, Any]]:
        """Each server as `tooldeck mcp list` and the dashboard show it: this process's connection when it has one,
        else (`others`) what the live runtime holding it recorded, else `not connected`."""
        elsewhere = self.held_elsewhere() if others else {}
        out = []
        for name, link in self.links.items():
            row = {**self._own(link), "cached": name in self.cached, "timeout_seconds": link.timeout,
                   "node": self.runtime.node, "held_by": "this process"}
            remote = elsewhere.get(name)
            if link.status == "idle" and remote is not None:
                row.update({k: remote[k] for k in ("status", "tools", "error", "pid", "server_info", "protocol")},
                           node=remote["node"], held_by=f"session {remote['session']} on {remote['node']}",
                           updated=remote["updated"])
            elif link.status == "idle":
                row.update(node=None, held_by=None)
            out.append(row)
        return out


def install(runtime: RuntimeHost, configs: list[ServerConfig]) -> McpHub:
    """The hub of these servers (`tools.mcp.servers.install`, the EXTENSIONS hook, calls it when
    `[mcp.servers]` names any): the cached tools, and (serving) every connection."""
    hub = McpHub(runtime, configs)
    runtime.extensions["mcp"] = hub
    runtime.add_service("mcp", hub)
    runtime.catalog.set_import_order([c.name for c in configs])
    hub.load_caches()
    runtime.catalog.resolver = hub.resolve_unknown
    for link in hub.links.values():
        if link.config.problem:
            hub._status_changed(link)
    if runtime.serve:
        hub.connect_all()
    return hub


__all__ = ["VERSION", "McpHub", "install"]
