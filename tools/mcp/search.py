"""Tool search for MCP clients: an endpoint with `tool_search = true` lists a handful of tools, not the catalog.

Models choose worse past a few dozen tools in their context, and a gateway may hold 100,000. On such an
endpoint `tools/list` serves one tool of its own, `search_tools(query, limit)`, then the endpoint's `pinned`
tools, then those this client session has found so far (tools.mcp.sessions.FoundTools: bounded, oldest
found dropped first). A search ranks tools with the runtime's own selection (tools.recovery.selection:
the semantic memory's embedding query fused with the lexical index), narrowed to what the endpoint serves
(tools.reach, `exposes`: a hidden tool is never considered, so never named), answers with each tool as
the listing serves it (the endpoint's description and title overrides, its input schema), adds them to
the session's found set, and tells that session alone `notifications/tools/list_changed` when the set
grew. Finding is a matter of listing only: a call of a tool the endpoint serves is accepted whether or
not the client found it first (the call path checks `exposes`, as on any endpoint).

2026-07-28 clients have no connection to send a notification on; they read the search's answer (and
list again). The name `search_tools` is the endpoint's own on such an endpoint: a catalog tool of that
id is neither listed nor found there.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Awaitable, Callable, Hashable
from typing import TYPE_CHECKING, Any

import anyio
import mcp_types as types

from state.db import StoreError
from tools.errors import StateError, UsageError
from tools.mcp import schema
from tools.mcp.config import ServeConfig
from tools.mcp.listing import ServedTool, exposes, served_tools
from tools.mcp.sessions import ClientSession
from tools.reach import limited_to

if TYPE_CHECKING:
    from tools.host import RuntimeHost

SEARCH_TOOL = "search_tools"
DEFAULT_LIMIT = 5
MAX_LIMIT = 50
MAX_QUERY = 2000
#: the selection's candidate pool for a search of `limit` tools: at least the runtime's own `[resilient]
#: candidate_pool`, and this many per tool asked for (hits that cannot serve now drop out; those the endpoint
#: hides are not in the pool: the selection's queries answer from the tools it serves, selection.top_reachable)
POOL_PER_RESULT = 4
ARGUMENTS = ("query", "limit")

INPUT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "query": {"type": "string", "minLength": 1, "maxLength": MAX_QUERY,
                  "description": "What you want to do, in words (e.g. 'convert a temperature to celsius')"},
        "limit": {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT, "default": DEFAULT_LIMIT,
                  "description": "How many tools to return at most, best first"},
    },
    "required": ["query"],
    "additionalProperties": False,
}
_FOUND_TOOL: dict[str, Any] = {
    "type": "object",
    "properties": {
        "name": {"type": "string"}, "title": {"type": "string"}, "description": {"type": "string"},
        "version": {"type": "string"}, "input_schema": {"type": "object"},
    },
    "required": ["name", "title", "description", "version", "input_schema"],
}
OUTPUT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "query": {"type": "string"},
        "tools": {"type": "array", "items": _FOUND_TOOL},
        "found": {"type": "integer", "description": "how many tools this session has found so far (the newest 1,000)"},
    },
    "required": ["query", "tools", "found"],
}
DESCRIPTION = (
    "Search this server's tools by what you want to do; returns the best matches with their input schemas, and "
    "adds them to your tool list (a tools/list_changed notification follows). Any tool it returns can be called "
    "by name."
)


class ListState:
    """What a `tool_search` endpoint's clients list, per watched tool: (version, loaded_at), or None when not served now.

    Equal when every tool both hold is in the same state and promotions are the same: a tool added to (or dropped
    from) some session's found set changes no other session's list, so it is no news to broadcast."""

    def __init__(self, tools: dict[str, tuple[str, float | None] | None], promotions: tuple[Any, ...]) -> None:
        self.tools = tools
        self.promotions = promotions

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ListState) or other.promotions != self.promotions:
            return False
        return all(other.tools[i] == state for i, state in self.tools.items() if i in other.tools)

    def __hash__(self) -> int:
        return hash(self.promotions)


def search_tool() -> ServedTool:
    """`search_tools` as the listing serves it (first, on a `tool_search` endpoint)."""
    return ServedTool(SEARCH_TOOL, "builtin", DESCRIPTION, INPUT_SCHEMA, False, OUTPUT_SCHEMA, False,
                      {"read_only_hint": True, "idempotent_hint": True}, title="Search tools")


def check_arguments(arguments: dict[str, Any] | None) -> tuple[str, int]:
    """(query, limit), or a UsageError naming the argument and what it must be."""
    arguments = arguments or {}
    unknown = [k for k in arguments if k not in ARGUMENTS]
    if unknown:
        raise UsageError(f"{SEARCH_TOOL}: unknown argument {unknown[0][:60]!r} (arguments: query, limit)", tool_id=SEARCH_TOOL)
    query = arguments.get("query")
    if not isinstance(query, str) or not query.strip():
        raise UsageError(f"{SEARCH_TOOL}: query must be a non-empty string, got {query!r}"[:200], tool_id=SEARCH_TOOL)
    if len(query) > MAX_QUERY:
        raise UsageError(f"{SEARCH_TOOL}: query must be at most {MAX_QUERY} characters, got {len(query)}", tool_id=SEARCH_TOOL)
    limit = arguments.get("limit", DEFAULT_LIMIT)
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_LIMIT:
        raise UsageError(f"{SEARCH_TOOL}: limit must be an integer from 1 to {MAX_LIMIT}, got {limit!r}"[:200],
                         tool_id=SEARCH_TOOL)
    return query.strip(), limit


class ToolSearch:
    """The search and the short listing of one `tool_search` endpoint; its methods but `call` block (run them in a thread)."""

    def __init__(self, runtime: RuntimeHost, config: ServeConfig) -> None:
        self.runtime = runtime
        self.config = config
        self.tool = search_tool()
        self.exposes = functools.partial(exposes, runtime, config)

    def _served(self, tool_ids: list[str], session: str) -> list[ServedTool]:
        """These tools as the listing serves them to `session`, in this order (listing.served_tools' rules); a catalog
        tool named `search_tools` is not served here, where the name is the endpoint's own."""
        return served_tools(self.runtime, self.config, session, (i for i in tool_ids if i != SEARCH_TOOL))

    def signature(self, sessions: Callable[[], list[ClientSession]]) -> Hashable:
        """For the change watcher (tools.mcp.changes): the state of the tools some client of this endpoint lists, never
        the whole catalog (listing.signature walks every tool: at 100,000, every second). A tool found since the last
        look is no change (its session was told when it found it): see ListState."""
        runtime = self.runtime
        watched = [*self.config.pinned, *(i for s in sessions() for i in s.found.ids())]
        served = {t.tool_id: (t.version, t.loaded_at) for t in self._served(watched, runtime.own_session)}
        return ListState({i: served.get(i) for i in watched}, tuple(sorted(runtime.promotions().items())))

    def listing(self, client: ClientSession) -> list[ServedTool]:
        """What `tools/list` serves this client: `search_tools`, the pinned tools and what it found, sorted by id (pages
        resume past the last id served, tools/mcp/listing.py)."""
        return sorted([self.tool, *self._served([*self.config.pinned, *client.found.ids()], client.session)],
                      key=lambda t: t.tool_id)

    def search(self, client: ClientSession, query: str, limit: int) -> tuple[list[ServedTool], bool]:
        """(the best `limit` tools this endpoint serves for `query`, whether the client's found set grew)."""
        from tools.recovery import SelectionSettings, select_candidates

        settings = SelectionSettings.from_runtime(self.runtime)
        settings = dataclasses.replace(settings, pool=max(settings.pool, POOL_PER_RESULT * limit))
        try:
            with limited_to(self.exposes):  # the selection never considers a tool this endpoint hides
                selection = select_candidates(self.runtime, query, limit=limit, settings=settings, any_role=True)
        except StoreError as exc:  # the workspace's database: an answer to the client, not a protocol error
            raise StateError(str(exc), tool_id=SEARCH_TOOL) from None
        found = self._served([c.tool_id for c in selection.candidates], client.session)[:limit]
        return found, client.found.add(t.tool_id for t in found)

    async def call(self, client: ClientSession, arguments: dict[str, Any] | None,
                   tell_list_changed: Callable[[], Awaitable[None]]) -> types.CallToolResult:
        """One `search_tools` call; a bad argument or a search that cannot run raises ToolError (the caller answers
        `isError`)."""
        ok = False
        try:
            query, limit = check_arguments(arguments)
            found, grew = await anyio.to_thread.run_sync(self.search, client, query, limit, abandon_on_cancel=True)
            ok = True
        finally:
            client.called(SEARCH_TOOL, ok)
        if grew:
            await tell_list_changed()
        result = {"query": query, "found": len(client.found),
                  "tools": [{"name": t.tool_id, "title": t.shown_title, "description": t.description, "version": t.version,
                             "input_schema": t.input_schema} for t in found]}
        return types.CallToolResult(content=[types.TextContent(text=schema.result_text(result))], structured_content=result)
