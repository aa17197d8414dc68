"""Which tools an MCP client sees, at which version, and how: the served catalog.

A tool is served when its endpoint's `expose` / `hide` select it (by id, glob, or a tag of its base
manifest: see `exposes`), it has loaded, an operator has not
disabled it and its circuit is not open. Its version is the one a call from that client
resolves to (session promotion, then global, then base), so a version awaiting review is
never listed: only promotions name evolved versions, and only approved ones are promoted. An
endpoint's `tools.ID` override changes its description, title and argument defaults here, once.
"""

from __future__ import annotations

import base64
import binascii
import bisect
import copy
import json
import logging
import threading
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from tools.catalog import ToolEntry, map_schema_text, schema_hidden
from tools.errors import UsageError
from tools.mcp import schema
from tools.mcp.config import DESTRUCTIVE_BUFFER_OPERATIONS, ServeConfig
from tools.visible import hidden_in, visible

if TYPE_CHECKING:
    from tools.host import RuntimeHost

BUFFER_TOOL = "buffer"
log = logging.getLogger("tooldeck.mcp")


@dataclass(frozen=True)
class ServedTool:
    """One tool as MCP clients see it."""

    tool_id: str
    version: str
    description: str
    input_schema: dict[str, Any]
    input_wrapped: bool
    output_schema: dict[str, Any] | None
    output_wrapped: bool
    annotations: dict[str, bool]
    #: the `operation` values served (buffer without its destructive ones); None: no restriction
    operations: tuple[str, ...] | None = None
    #: when the catalog (re)loaded this manifest: a hot reload is a change of the list
    loaded_at: float | None = None
    #: the endpoint's title for it (None: "<id> <version>")
    title: str | None = None
    #: arguments the endpoint fills in when the client leaves them out
    defaults: dict[str, Any] | None = None
    #: the endpoint's table, for messages
    where: str = "[mcp.serve]"

    @property
    def shown_title(self) -> str:
        """The title clients read: the endpoint's, else "<id> <version>"."""
        return self.title or f"{self.tool_id} {self.version}"

    def arguments(self, given: dict[str, Any] | None) -> dict[str, Any] | None:
        """What the client sent, over the endpoint's defaults for this tool."""
        if not self.defaults:
            return given
        return {**copy.deepcopy(self.defaults), **(given or {})}  # a tool may change what it is given

    def refused_operation(self, arguments: dict[str, Any] | None) -> str | None:
        """Why these arguments name an operation that is not served, or None."""
        if self.operations is None:
            return None
        op = (arguments or {}).get("operation")
        if op in self.operations or not isinstance(op, str):
            return None  # a missing or malformed operation is the tool's own input check to report
        return (f"{self.tool_id}: operation {op!r} is not served over MCP (served: {', '.join(self.operations)}; "
                f"{self.where} buffer_operations adds it)")


def tags_of(runtime: RuntimeHost, tool_id: str) -> tuple[str, ...]:
    """The tags of the tool's base manifest; () while it loads, when it failed, or for no such tool."""
    entry = runtime.catalog.find(tool_id)
    manifest = entry.manifest if entry is not None else None
    return tuple(manifest.tags) if manifest is not None else ()


def exposes(runtime: RuntimeHost, config: ServeConfig, tool_id: str) -> bool:
    """Whether the endpoint serves `tool_id`: the one check listing, calls, suggestions, a resilient call's hops
    and a buffer's pass-through all make. Tags are those of the base manifest, so every version of a tool
    is in or out together."""
    return config.exposed(tool_id, tags_of(runtime, tool_id) if config.uses_tags else ())


def served_texts(tool_id: str, config: ServeConfig, description: str, title: str | None, in_schema: dict[str, Any],
                 out_schema: dict[str, Any] | None) -> tuple[str, str | None, dict[str, Any], dict[str, Any] | None]:
    """The tool's free text as clients get it: control, bidi and invisible characters spelled out (tools.visible), in
    its description, its title and the texts of its schemas (tools.catalog.texts: never their data). A client shows
    them to a person, whose terminal or UI would obey an escape sequence or reorder text around U+202E, and hands
    them to a model, which should read what the person sees. Logged once per load of the manifest (`describe`
    caches); `tooldeck tools` warns of the manifest itself."""
    shown = (visible(description), visible(title) if title is not None else None,
             map_schema_text(in_schema, visible), map_schema_text(out_schema, visible))
    if shown != (description, title, in_schema, out_schema):  # unchanged texts are the same objects: a cheap test
        held = dict.fromkeys([*hidden_in(description), *hidden_in(title or ""), *schema_hidden(in_schema),
                              *schema_hidden(out_schema)])
        log.warning("%s %s: its description, title or schema texts hold %s; MCP clients are served them spelled out",
                    config.where, tool_id, ", ".join(held))
    return shown


def describe(entry: ToolEntry, config: ServeConfig) -> ServedTool:
    """The served form of a loaded entry, cached with its manifest (a reload clears `entry.cache`)."""
    key = ("mcp.tool", config)
    cached = entry.cache.get(key)  # type: ignore[call-overload]
    if cached is not None:
        return cached
    manifest = entry.manifest
    assert manifest is not None
    in_schema, in_wrapped = schema.input_schema(manifest)
    out_schema, out_wrapped = schema.output_schema(manifest)
    operations: tuple[str, ...] | None = None
    destructive: bool | None = None
    if entry.tool_id == BUFFER_TOOL and manifest.type == "builtin" and config.hidden_buffer_operations:
        operations = config.buffer_operations
        in_schema = schema.restrict_operations(in_schema, operations)
        destructive = manifest.destructive and any(op in config.buffer_operations for op in DESTRUCTIVE_BUFFER_OPERATIONS)
    override = config.override(entry.tool_id)
    defaults = override.defaults if override is not None else {}
    if defaults and (refused := schema.refused_defaults(in_schema, defaults)):  # warned of at start (tools/mcp/endpoints.py)
        defaults = {k: v for k, v in defaults.items() if k not in refused}
    if defaults:
        in_schema = schema.with_defaults(in_schema, defaults)
    description = (override.description if override is not None else None) or manifest.description or entry.tool_id
    title = override.title if override is not None else None
    description, title, in_schema, out_schema = served_texts(entry.tool_id, config, description, title, in_schema, out_schema)
    served = ServedTool(entry.tool_id, entry.served_version, description, in_schema, in_wrapped,
                        out_schema, out_wrapped, schema.tool_annotations(manifest, destructive=destructive), operations,
                        entry.loaded_at, title, defaults or None, config.where)
    entry.cache[key] = served  # type: ignore[index]
    return served


def resolve_ready(runtime: RuntimeHost, tool_id: str, session: str, promotions: dict[tuple[str, str], str]) -> ToolEntry | None:
    """The loaded entry a call from `session` runs now, without waiting; None while it loads or when it failed."""
    catalog = runtime.catalog
    version = promotions.get((tool_id, session)) or promotions.get((tool_id, "global"))
    if version is not None:
        entry = catalog.find(tool_id, version)
        if entry is not None and entry.manifest is not None and entry.done.is_set():
            return entry
        # a promotion whose files are gone: calls serve the base (Runtime.resolve), so list the base
    entry = catalog.find(tool_id)
    if entry is None or entry.manifest is None or not entry.done.is_set():
        return None
    return entry


def blocked(runtime: RuntimeHost, tool_id: str, version: str) -> str | None:
    """Why calls to this version are refused now (disabled, circuit open), or None."""
    tracker = runtime.extensions.get("failures")
    if tracker is None:
        return None
    control = tracker.disabled(tool_id, version)
    if control is not None:
        return "disabled"
    health = tracker.view(tool_id, version)
    if health is not None and tracker.circuit_state(health) == "open":
        return "circuit open"
    return None


def served_tools(runtime: RuntimeHost, config: ServeConfig, session: str, tool_ids: Iterable[str] | None = None) -> list[ServedTool]:
    """Every tool a client of `session` may call now, sorted by id; or of `tool_ids` only, in their order (each once):
    those the endpoint serves, loaded, neither disabled nor with an open circuit."""
    promotions = runtime.promotions()
    out = []
    for tool_id in runtime.catalog.ids() if tool_ids is None else dict.fromkeys(tool_ids):
        if not exposes(runtime, config, tool_id):
            continue
        entry = resolve_ready(runtime, tool_id, session, promotions)
        if entry is None or blocked(runtime, tool_id, entry.served_version):
            continue
        out.append(describe(entry, config))
    return out


class ServedLists:
    """`served_tools` of one endpoint, per session, kept from one `tools/list` page to the next.

    Walking the catalog costs about 10 us a tool: 1 s a page at 100,000 tools, for a client paging through 1,000
    pages. The list is kept until it may have changed: the catalog tells its listeners of every load, reload and
    removal (they clear it at once), a promotion changes the key, and what has no catalog change (a circuit, a
    disable, a cooldown ending) reaches the endpoint's change watcher, which clears it when it finds the list changed
    (within its recheck, as the clients' `list_changed` is). Bounded: the lists of at most MAX_SESSIONS sessions, the
    least recently listed dropped first."""

    MAX_SESSIONS = 64

    def __init__(self, runtime: RuntimeHost, config: ServeConfig) -> None:
        self.runtime = runtime
        self.config = config
        self._lock = threading.Lock()
        self._lists: OrderedDict[str, tuple[tuple[Any, ...], list[ServedTool]]] = OrderedDict()
        self._generation = 0
        self._unsubscribe = runtime.catalog.subscribe(self._catalog_changed)

    def _catalog_changed(self, changes: list[Any]) -> None:
        if changes:
            self.clear()

    def clear(self) -> None:
        with self._lock:
            self._generation += 1
            self._lists.clear()

    @property
    def generation(self) -> int:
        """Counts the clears: the catalog's changes (its listeners hear every one) and the watcher's."""
        return self._generation

    def get(self, session: str) -> list[ServedTool]:
        with self._lock:
            key = (self._generation, tuple(sorted(self.runtime.promotions().items())))
            kept = self._lists.get(session)
            if kept is not None and kept[0] == key:
                self._lists.move_to_end(session)
                return kept[1]
        tools = served_tools(self.runtime, self.config, session)
        with self._lock:
            if key[0] == self._generation:  # not cleared while it was walked
                self._lists[session] = (key, tools)
                self._lists.move_to_end(session)
                while len(self._lists) > self.MAX_SESSIONS:
                    self._lists.popitem(last=False)
        return tools

    def close(self) -> None:
        self._unsubscribe()
        self.clear()


def signature(runtime: RuntimeHost, config: ServeConfig, session: str) -> tuple[Any, ...]:
    """Changes whenever what some client would list changes, a hot reload included."""
    tools = tuple((t.tool_id, t.version, t.loaded_at) for t in served_tools(runtime, config, session))
    return tools, tuple(sorted(runtime.promotions().items()))


# -- paging ---------------------------------------------------------------------------

def encode_cursor(after: str) -> str:
    return base64.urlsafe_b64encode(json.dumps({"a": after}).encode()).decode()


def decode_cursor(cursor: str | None) -> str | None:
    """The id of the last tool the previous page served (None: the first page)."""
    if not cursor:
        return None
    try:
        after = json.loads(base64.urlsafe_b64decode(cursor.encode()))["a"]
    except (binascii.Error, ValueError, KeyError, TypeError) as exc:
        raise UsageError(f"invalid tools/list cursor {cursor[:40]!r}: pass back a nextCursor this server returned") from exc
    if not isinstance(after, str):
        raise UsageError(f"invalid tools/list cursor {cursor[:40]!r}: pass back a nextCursor this server returned")
    return after


def page(tools: list[ServedTool], cursor: str | None, size: int) -> tuple[list[ServedTool], str | None]:
    """One page of a list sorted by id, and the cursor of the next (None on the last page).

    The cursor names the last tool served, and the next page starts past it, so a tool added or gone
    between two pages (its clients are sent `list_changed`) neither repeats a tool nor skips one."""
    after = decode_cursor(cursor)
    start = 0 if after is None else bisect.bisect_right(tools, after, key=lambda t: t.tool_id)
    chunk = tools[start:start + size]
    return chunk, (encode_cursor(chunk[-1].tool_id) if chunk and start + len(chunk) < len(tools) else None)
