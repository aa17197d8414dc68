"""`[mcp.serve]` in tooldeck.toml: what `tooldeck mcp serve` offers MCP clients.

```toml
[mcp.serve]
expose = ["*", "!evolve_tool"]      # tool id patterns; "!" removes; the last match wins
buffer_operations = ["write", "write_many", "flush", "status", "configure", "dead_letters"]
page_size = 100                     # tools per tools/list page
allowed_origins = []                # browser origins allowed over HTTP besides loopback ones
allowed_hosts = []                  # Host header values allowed over HTTP besides the bound address
```

By default every tool but `evolve_tool` is served, and `buffer` is served without its
destructive operations (`clear` drops pending items, `replay` re-sends dead-lettered batches):
its input schema's `operation` enum leaves them out and a call naming one is refused. List them
in `buffer_operations` to serve them.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tools.errors import UsageError

DEFAULT_EXPOSE = ("*", "!evolve_tool")
DESTRUCTIVE_BUFFER_OPERATIONS = ("clear", "replay")
MAX_PAGE_SIZE = 1000
KEYS = ("expose", "buffer_operations", "page_size", "allowed_origins", "allowed_hosts", "file_roots")


def buffer_operations() -> tuple[str, ...]:
    from tools.buffers import OPERATIONS

    return tuple(OPERATIONS)


@dataclass(frozen=True)
class ServeConfig:
    expose: tuple[str, ...] = DEFAULT_EXPOSE
    buffer_operations: tuple[str, ...] = ()
    page_size: int = 100
    allowed_origins: tuple[str, ...] = ()
    allowed_hosts: tuple[str, ...] = ()
    #: workspace folders a builtin may read files from for an MCP client (tools.spec.files_within)
    file_roots: tuple[str, ...] = ("specs",)

    def exposed(self, tool_id: str) -> bool:
        """Whether `expose` selects the tool: the last pattern that matches decides."""
        chosen = False
        for pattern in self.expose:
            negated = pattern.startswith("!")
            if fnmatch.fnmatchcase(tool_id, pattern[1:] if negated else pattern):
                chosen = not negated
        return chosen

    @property
    def hidden_buffer_operations(self) -> tuple[str, ...]:
        return tuple(op for op in buffer_operations() if op not in self.buffer_operations)


def _strings(where: str, value: Any) -> tuple[str, ...]:
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) and v.strip() for v in value):
        raise UsageError(f"{where} must be a list of non-empty strings, got {value!r}"[:200])
    return tuple(v.strip() for v in value)


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


def load_serve_config(settings: Any) -> tuple[ServeConfig, list[str]]:
    """The checked `[mcp.serve]` section (over its defaults in tools.settings) and warnings for keys it does not know."""
    from tools.settings import DEFAULTS

    given = (settings.data.get("mcp") or {}).get("serve") or {}
    where = f"{settings.path or 'tooldeck.toml'}: [mcp.serve]"
    if not isinstance(given, dict):
        raise UsageError(f"{where} must be a table")
    warnings = [f"{where}: unknown setting {key!r} (known: {', '.join(KEYS)})" for key in given if key not in KEYS]
    raw = {**DEFAULTS["mcp"]["serve"], **given}
    known_ops = buffer_operations()
    ops = _strings(f"{where} buffer_operations", raw["buffer_operations"])
    unknown = [op for op in ops if op not in known_ops]
    if unknown:
        raise UsageError(f"{where} buffer_operations: unknown operation {unknown[0]!r} (known: {', '.join(known_ops)})")
    page_size = raw["page_size"]
    if isinstance(page_size, bool) or not isinstance(page_size, int) or not 1 <= page_size <= MAX_PAGE_SIZE:
        raise UsageError(f"{where} page_size must be an integer from 1 to {MAX_PAGE_SIZE}, got {page_size!r}")
    config = ServeConfig(
        expose=_strings(f"{where} expose", raw["expose"]),
        buffer_operations=ops,
        page_size=page_size,
        allowed_origins=_strings(f"{where} allowed_origins", raw["allowed_origins"]),
        allowed_hosts=_strings(f"{where} allowed_hosts", raw["allowed_hosts"]),
        file_roots=_roots(f"{where} file_roots", raw["file_roots"]),
    )
    return config, warnings
