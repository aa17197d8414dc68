"""The endpoints one `tooldeck mcp serve` process serves: a ToolServer each, watched together.

Over HTTP every endpoint is served, the default one at `/mcp` and each `[mcp.serve.endpoints.NAME]`
at `/mcp/NAME`; over stdio, the one `--endpoint NAME` chooses (else the default). Each endpoint is
its own SDK server, with its own clients, sessions and subscriptions; one ChangeWatcher tails the
event log for all of them and compares each endpoint's own list signature, so a change to what one
endpoint serves notifies that endpoint's clients only.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Hashable
from typing import TYPE_CHECKING

import anyio

from state.db import StoreError
from tools.errors import ToolError
from tools.mcp import schema
from tools.mcp.changes import POLL_SECONDS, ChangeWatcher
from tools.mcp.config import ServeConfig
from tools.mcp.listing import exposes, signature
from tools.mcp.server import LIST_WAIT_SECONDS, ToolServer

if TYPE_CHECKING:
    from tools.host import RuntimeHost

log = logging.getLogger("tooldeck.mcp")


class Endpoints:
    """The served endpoints of one process (`config` is the top-level one, holding the named ones)."""

    def __init__(self, runtime: RuntimeHost, config: ServeConfig, chosen: tuple[ServeConfig, ...], *, transport: str,
                 pinned: str | None) -> None:
        self.runtime = runtime
        self.config = config
        self.servers = [ToolServer(runtime, c, transport=transport, pinned=pinned) for c in chosen]

    async def background(self) -> None:
        """Run beside the transport for the life of the server: list changes, each endpoint's heartbeats."""
        async with anyio.create_task_group() as tg:
            tg.start_soon(self._watch_changes)
            for server in self.servers:
                tg.start_soon(server.heartbeat)

    async def _watch_changes(self) -> None:
        runtime = self.runtime
        watcher = ChangeWatcher(runtime, {s.config.name: functools.partial(s.search.signature, s.registry.live) if s.search
                                          else functools.partial(signature, runtime, s.config, runtime.own_session)
                                          for s in self.servers}, self.fingerprint)

        # the first tools/list waits for the catalog too, so its loading is no change to announce
        def first_look() -> None:
            runtime.catalog.finished.wait(LIST_WAIT_SECONDS)
            watcher.prime()
            self.warn_idle_overrides()

        await anyio.to_thread.run_sync(first_look)
        while True:
            await anyio.sleep(POLL_SECONDS)
            try:
                changed = await anyio.to_thread.run_sync(watcher.poll)
            except (ToolError, StoreError) as exc:  # the store is busy or closing: the next poll retries
                log.error("mcp: watching for tool list changes: %s", exc)
                changed = set()
            for server in self.servers:
                if server.config.name in changed:
                    server.served.clear()  # the kept lists (tools.mcp.listing.ServedLists) are out of date
                    server.debounce.changed()
                if server.debounce.due():
                    await server.broadcast_list_changed()

    def fingerprint(self) -> Hashable:
        """What every endpoint's list depends on, cheaply (tools.mcp.changes): the catalog's changes (each endpoint's
        kept lists count them: ServedLists), promotions, and the tools calls are refused for now."""
        tracker = self.runtime.extensions.get("failures")
        return (tuple(s.served.generation for s in self.servers), tuple(sorted(self.runtime.promotions().items())),
                tracker.refusing() if tracker is not None else None)

    def warn_idle_overrides(self) -> None:
        """A `tools.ID` override (or a `pinned` id) of a tool its endpoint does not serve does nothing: say so (a warning, not an error:
        tags select tools only once their manifests are read, and a hot reload can bring the tool in)."""
        file = self.runtime.settings.path or "tooldeck.toml"
        for server in self.servers:
            config = server.config
            # (table, tool, what it means, whether a tool unknown yet that expose would serve is worth a warning too)
            idle = [(f"{config.where[:-1]}.tools.{tool_id}]", tool_id, "the override does nothing", False)
                    for tool_id, _o in config.tools]
            if config.tool_search:  # a pinned id is listed by name: one that names no tool is a typo to point out
                idle += [(f"{config.where} pinned", tool_id, "it is not listed", True) for tool_id in config.pinned]
            for where, tool_id, effect, unknown_too in idle:
                known = self.runtime.catalog.find(tool_id) is not None
                if exposes(self.runtime, config, tool_id) and (known or not unknown_too):
                    continue
                self._warn(f"{file}: {where}: {tool_id} is "
                           f"{'not served by this endpoint (expose / hide)' if known else 'no tool of the catalog'}; {effect}")
            for tool_id, override in config.tools:
                entry = self.runtime.catalog.find(tool_id)
                if not override.defaults or entry is None or entry.manifest is None or not exposes(self.runtime, config, tool_id):
                    continue
                served = schema.input_schema(entry.manifest)[0]
                for why in schema.refused_defaults(served, override.defaults).values():
                    self._warn(f"{file}: {config.where[:-1]}.tools.{tool_id}] defaults: {why}; this default is not applied")

    def _warn(self, warning: str) -> None:
        log.warning("%s", warning)
        try:
            self.runtime.events.emit("runtime.warning", warning=warning)
        except (ToolError, StoreError) as exc:
            log.error("mcp: could not record a warning: %s", exc)

    def close(self, reason: str) -> None:
        """End every client session of every endpoint; blocking."""
        for server in self.servers:
            server.close(reason)
