"""`[mcp.serve]` in tooldeck.toml: what `tooldeck mcp serve` offers MCP clients, at each endpoint.

```toml
[mcp.serve]
expose = ["*", "!evolve_tool"]      # tool ids, globs and tags ("tag:csv"); "!" removes; the last match wins
hide = []                           # the same patterns, removed after `expose`
buffer_operations = ["write", "write_many", "flush", "status", "configure", "dead_letters"]
page_size = 100                     # tools per tools/list page
allowed_origins = []                # browser origins allowed over HTTP besides loopback ones
allowed_hosts = []                  # Host header values allowed over HTTP besides the bound address

[mcp.serve.endpoints.data]          # served at /mcp/data (HTTP) and by `mcp serve --endpoint data` (stdio)
expose = ["tag:csv", "echo"]        # every key the endpoint leaves out is the top-level one
[mcp.serve.endpoints.data.tools.echo]
description = "Echo a row back"     # what this endpoint's clients read instead of the manifest's
title = "Echo"
defaults = { text = "hello" }       # arguments merged under what the client sends (no longer required)

[mcp.serve.endpoints.big]           # a client sees `search_tools` and what it found, not 100,000 tools
tool_search = true
pinned = ["resilient_tool_call"]    # listed from the start (while expose serves them)
```

By default every tool but `evolve_tool` is served, and `buffer` is served without its
destructive operations (`clear` drops pending items, `replay` re-sends dead-lettered batches):
its input schema's `operation` enum leaves them out and a call naming one is refused. List them
in `buffer_operations` to serve them.

An endpoint is a ServeConfig like the top-level one (the default endpoint, at `/mcp`): the
top-level `expose`, `hide`, `buffer_operations`, `file_roots`, `page_size`, `tools`, `tool_search` and `pinned`, each
replaced as a whole by the endpoint's own key when it sets one. `allowed_origins` and
`allowed_hosts` guard the HTTP listener every endpoint shares, so they are top-level only.
A `tools.ID` override for a tool the endpoint does not expose is a warning once the catalog has
loaded (a tag can select a tool only once its manifest is read, and a hot reload can change it).
Overrides are shown to the endpoint's clients (defaults in the input schema), so one that holds a
secret (by the one redaction's rules) is refused.
"""

from __future__ import annotations

import fnmatch
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from state.redact import holds_secret
from tools.errors import UsageError
from tools.ids import TOOL_ID_RE

DEFAULT_EXPOSE = ("*", "!evolve_tool")
DESTRUCTIVE_BUFFER_OPERATIONS = ("clear", "replay")
MAX_PAGE_SIZE = 1000
#: the HTTP path of the default endpoint; a named one is PATH/NAME
PATH = "/mcp"
#: how a pattern names a tag of the manifest (`tag:csv`, globs allowed: `tag:temp*`)
TAG_PREFIX = "tag:"
#: the keys an endpoint may set (the rest guard the one HTTP listener every endpoint shares)
ENDPOINT_KEYS = ("expose", "hide", "buffer_operations", "file_roots", "page_size", "tools", "tool_search", "pinned")
KEYS = ("expose", "hide", "buffer_operations", "page_size", "allowed_origins", "allowed_hosts", "file_roots", "tools",
        "tool_search", "pinned", "endpoints")
TOOL_KEYS = ("description", "title", "defaults")
ENDPOINT_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,39}$")


def buffer_operations() -> tuple[str, ...]:
    from tools.buffers import OPERATIONS

    return tuple(OPERATIONS)


@dataclass(frozen=True)
class ToolOverride:
    """How one endpoint shows and calls one tool (`[mcp.serve.endpoints.NAME.tools.ID]`)."""

    description: str | None = None
    title: str | None = None
    #: the argument defaults as canonical JSON: the config stays hashable (it keys the served-tool cache)
    defaults_json: str = "{}"

    @property
    def defaults(self) -> dict[str, Any]:
        """A fresh copy each time: a call merging the client's arguments over it cannot change it."""
        out: dict[str, Any] = json.loads(self.defaults_json)
        return out


def _matches(pattern: str, tool_id: str, tags: Iterable[str]) -> bool:
    if pattern.startswith(TAG_PREFIX):
        wanted = pattern[len(TAG_PREFIX):]
        return any(fnmatch.fnmatchcase(tag, wanted) for tag in tags)
    return fnmatch.fnmatchcase(tool_id, pattern)


@dataclass(frozen=True)
class ServeConfig:
    """One endpoint: what its clients see and may call. The top-level `[mcp.serve]` is the default endpoint
    (name ""), and holds the named ones in `endpoints`."""

    expose: tuple[str, ...] = DEFAULT_EXPOSE
    buffer_operations: tuple[str, ...] = ()
    page_size: int = 100
    allowed_origins: tuple[str, ...] = ()
    allowed_hosts: tuple[str, ...] = ()
    #: workspace folders a builtin may read files from for an MCP client (tools.spec.files_within)
    file_roots: tuple[str, ...] = ("specs",)
    #: patterns removed after `expose` (ids, globs, `tag:` patterns)
    hide: tuple[str, ...] = ()
    #: "" for the default endpoint (`/mcp`), else the NAME of `[mcp.serve.endpoints.NAME]`
    name: str = ""
    tools: tuple[tuple[str, ToolOverride], ...] = ()
    #: list `search_tools` and what each client session has found with it, not the whole catalog (tools/mcp/search.py)
    tool_search: bool = False
    #: tool ids a `tool_search` endpoint always lists (still only while its expose / hide serve them)
    pinned: tuple[str, ...] = ()
    #: the named endpoints (on the default one only); not part of an endpoint's identity
    endpoints: tuple[ServeConfig, ...] = field(default=(), compare=False, repr=False)

    @property
    def where(self) -> str:
        """How errors and warnings name this endpoint's table."""
        return f"[mcp.serve.endpoints.{self.name}]" if self.name else "[mcp.serve]"

    @property
    def path(self) -> str:
        return f"{PATH}/{self.name}" if self.name else PATH

    @property
    def uses_tags(self) -> bool:
        """Whether deciding needs the tool's tags (its manifest), not only its id."""
        return any(p.lstrip("!").startswith(TAG_PREFIX) for p in (*self.expose, *self.hide))

    def exposed(self, tool_id: str, tags: Iterable[str] = ()) -> bool:
        """Whether this endpoint serves the tool: the last `expose` pattern that matches decides, then `hide` removes."""
        tags = tuple(tags)
        chosen = False
        for pattern in self.expose:
            negated = pattern.startswith("!")
            if _matches(pattern[1:] if negated else pattern, tool_id, tags):
                chosen = not negated
        return chosen and not any(_matches(pattern, tool_id, tags) for pattern in self.hide)

    def override(self, tool_id: str) -> ToolOverride | None:
        return next((o for t, o in self.tools if t == tool_id), None)

    def endpoint(self, name: str | None) -> ServeConfig:
        """The named endpoint (None or "": the default one); an unknown name is an error naming those that exist."""
        if not name:
            return self
        found = next((e for e in self.endpoints if e.name == name), None)
        if found is None:
            known = ", ".join(e.name for e in self.endpoints)
            raise UsageError(f"unknown MCP endpoint {name[:60]!r} (" + (f"endpoints: {known}" if known else
                             "none configured: add [mcp.serve.endpoints.NAME] to tooldeck.toml") + ")")
        return found

    def all_endpoints(self) -> tuple[ServeConfig, ...]:
        """The default endpoint, then the named ones."""
        return (self, *self.endpoints)

    @property
    def hidden_buffer_operations(self) -> tuple[str, ...]:
        return tuple(op for op in buffer_operations() if op not in self.buffer_operations)


def _strings(where: str, value: Any) -> tuple[str, ...]:
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) and v.strip() for v in value):
        raise UsageError(f"{where} must be a list of non-empty strings, got {value!r}"[:200])
    return tuple(v.strip() for v in value)


def _patterns(where: str, value: Any, *, negation: bool) -> tuple[str, ...]:
    patterns = _strings(where, value)
    for pattern in patterns:
        bare = pattern[1:] if negation and pattern.startswith("!") else pattern
        if not negation and bare.startswith("!"):
            raise UsageError(f"{where}: {pattern!r}: hide lists what to remove, so it takes no '!'")
        if bare.startswith(TAG_PREFIX) and not bare[len(TAG_PREFIX):]:
            raise UsageError(f"{where}: {pattern!r} names no tag (write tag:NAME, e.g. tag:csv)")
    return patterns


def _roots(where: str, value: Any) -> tuple[str, ...]:
    """Folders relative to the workspace, never a dot-folder nor one climbing out of it."""
    if isinstance(value, (list, tuple)) and not value:
        return ()
    roots = _strings(where, value)
    for root in roots:
        parts = Path(root).parts
        if Path(root).is_absolute() or any(p == ".." or p.startswith(".") for p in parts):
            raise UsageError(f"{where}: {root!r} must be a folder inside the workspace (relative, no '..', no dot-folder)")
    return roots


def _table(where: str, value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise UsageError(f"{where} must be a table, got {value!r}"[:200])
    return value


def _overrides(where: str, value: Any) -> tuple[tuple[str, ToolOverride], ...]:
    """`tools.ID` tables: description, title, defaults; anything else is an error naming what is known."""
    out = []
    for tool_id, raw in sorted(_table(f"{where} tools", value).items()):
        here = f"{where[:-1]}.tools.{tool_id}]"
        if not TOOL_ID_RE.match(tool_id):
            raise UsageError(f"{here}: {tool_id[:80]!r} is not a tool id")
        table = _table(here, raw)
        unknown = [k for k in table if k not in TOOL_KEYS]
        if unknown:
            raise UsageError(f"{here}: unknown key {unknown[0]!r} (known: {', '.join(TOOL_KEYS)})")
        texts = {}
        for key in ("description", "title"):
            if key in table and (not isinstance(table[key], str) or not table[key].strip()):
                raise UsageError(f"{here} {key} must be a non-empty string, got {table[key]!r}"[:200])
            texts[key] = table[key].strip() if key in table else None
        defaults = _table(f"{here} defaults", table.get("defaults", {}))
        try:
            defaults_json = json.dumps(defaults, sort_keys=True, ensure_ascii=False)
        except (TypeError, ValueError):  # a TOML date or time: not JSON
            raise UsageError(f"{here} defaults must hold JSON values (strings, numbers, booleans, arrays, tables)") from None
        if holds_secret([texts, defaults]):  # the value stays out of the message: it is the secret
            raise UsageError(f"{here}: holds a secret (a key, or a secret-named argument); an endpoint's overrides are "
                             "shown to its clients, so a tool reads secrets from its environment instead")
        out.append((tool_id, ToolOverride(texts["description"], texts["title"], defaults_json)))
    return tuple(out)


def _ops(where: str, value: Any) -> tuple[str, ...]:
    known_ops = buffer_operations()
    ops = _strings(f"{where} buffer_operations", value)
    unknown = [op for op in ops if op not in known_ops]
    if unknown:
        raise UsageError(f"{where} buffer_operations: unknown operation {unknown[0]!r} (known: {', '.join(known_ops)})")
    return ops


def _page_size(where: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_PAGE_SIZE:
        raise UsageError(f"{where} page_size must be an integer from 1 to {MAX_PAGE_SIZE}, got {value!r}")
    return value


def _tool_search(where: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise UsageError(f"{where} tool_search must be true or false, got {value!r}"[:200])
    return value


def _pinned(where: str, value: Any) -> tuple[str, ...]:
    """Tool ids (no globs, no tags: what is pinned is listed by name), each once."""
    if isinstance(value, (list, tuple)) and not value:
        return ()
    ids = _strings(f"{where} pinned", value)
    for tool_id in ids:
        if not TOOL_ID_RE.match(tool_id):
            raise UsageError(f"{where} pinned: {tool_id[:80]!r} is not a tool id (pinned names tools, without globs or tags)")
    return tuple(dict.fromkeys(ids))


def _endpoint(top: ServeConfig, name: str, raw: Any, file: str) -> ServeConfig:
    """A named endpoint: the top-level config with the keys this table sets replaced."""
    where = f"{file}: [mcp.serve.endpoints.{name}]"
    if not ENDPOINT_NAME_RE.match(name):
        raise UsageError(f"{where}: an endpoint name is 1-40 letters, digits, '_' or '-' (it is a URL path segment)")
    given = _table(where, raw)
    unknown = [k for k in given if k not in ENDPOINT_KEYS]
    if unknown:
        top_only = " (it applies to every endpoint: set it in [mcp.serve])" if unknown[0] in KEYS else ""
        raise UsageError(f"{where}: unknown key {unknown[0]!r}{top_only} (an endpoint sets: {', '.join(ENDPOINT_KEYS)})")
    changes: dict[str, Any] = {"name": name}
    if "expose" in given:
        changes["expose"] = _patterns(f"{where} expose", given["expose"], negation=True)
    if "hide" in given:
        changes["hide"] = _patterns(f"{where} hide", given["hide"], negation=False)
    if "buffer_operations" in given:
        changes["buffer_operations"] = _ops(where, given["buffer_operations"])
    if "file_roots" in given:
        changes["file_roots"] = _roots(f"{where} file_roots", given["file_roots"])
    if "page_size" in given:
        changes["page_size"] = _page_size(where, given["page_size"])
    if "tools" in given:
        changes["tools"] = _overrides(where, given["tools"])
    if "tool_search" in given:
        changes["tool_search"] = _tool_search(where, given["tool_search"])
    if "pinned" in given:
        changes["pinned"] = _pinned(where, given["pinned"])
    return replace(top, **changes)


def load_serve_config(settings: Any) -> tuple[ServeConfig, list[str]]:
    """The checked `[mcp.serve]` section (over its defaults in tools.settings), its endpoints, and warnings for keys it
    does not know (a typo at the top level warns, as it always did; in an endpoint's table it is an error)."""
    from tools.settings import DEFAULTS

    given = (settings.data.get("mcp") or {}).get("serve") or {}
    file = str(settings.path or "tooldeck.toml")
    where = f"{file}: [mcp.serve]"
    if not isinstance(given, dict):
        raise UsageError(f"{where} must be a table")
    warnings = [f"{where}: unknown setting {key!r} (known: {', '.join(KEYS)})" for key in given if key not in KEYS]
    raw = {**DEFAULTS["mcp"]["serve"], **given}
    config = ServeConfig(
        expose=_patterns(f"{where} expose", raw["expose"], negation=True),
        hide=_patterns(f"{where} hide", raw.get("hide", []), negation=False) if raw.get("hide") else (),
        buffer_operations=_ops(where, raw["buffer_operations"]),
        page_size=_page_size(where, raw["page_size"]),
        allowed_origins=_strings(f"{where} allowed_origins", raw["allowed_origins"]),
        allowed_hosts=_strings(f"{where} allowed_hosts", raw["allowed_hosts"]),
        file_roots=_roots(f"{where} file_roots", raw["file_roots"]),
        tools=_overrides(where, raw.get("tools", {})),
        tool_search=_tool_search(where, raw.get("tool_search", False)),
        pinned=_pinned(where, raw.get("pinned", [])),
    )
    endpoints = _table(f"{where} endpoints", raw.get("endpoints", {}))
    named = tuple(_endpoint(config, name, table, file) for name, table in endpoints.items())
    return replace(config, endpoints=named), warnings
