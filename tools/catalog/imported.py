"""Tools imported from MCP servers, among the catalog's own: the Catalog's part that tools.mcp publishes into.

A server's tool list replaces that server's entries as a whole; an entry whose manifest did not
change keeps its object (its compiled validators, its status). Ids are shared with the local
catalog: local and built-in tools keep theirs, and among servers the first in tooldeck.toml
does; a loser is a Problem, shown like a broken manifest. The Catalog's lock guards all of it.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from state.events import PendingEvent
from tools.catalog.entry import READY, Problem, StatusChange, ToolEntry
from tools.catalog.manifest import Manifest

#: the source of a tool imported from an MCP server is `mcp:<server>`
IMPORTED = "mcp:"


class ImportedTools:
    """Mixed into Catalog (whose state, lock and publication these methods use)."""

    _lock: Any
    _base: dict[str, ToolEntry]
    _versions: dict[str, dict[str, ToolEntry]]
    _pending_changes: list[StatusChange]
    _imported: dict[str, list[ToolEntry]]
    _import_order: list[str]
    _import_problems: list[Problem]
    _aliases: dict[str, str]  # an imported tool's old id -> its id
    _alias_group: dict[str, str]  # an old id -> the server whose list gave it
    total: int

    if TYPE_CHECKING:  # Catalog's own
        def _queue_event(self, event: PendingEvent) -> None: ...
        def _finish(self, entry: ToolEntry, manifest: Manifest | None, error: str | None) -> None: ...
        def flush(self, force: bool = False) -> None: ...

    def set_import_order(self, groups: list[str]) -> None:
        """The MCP servers in tooldeck.toml order: on an id collision among them, the first wins."""
        with self._lock:
            self._import_order = list(groups)

    def set_imported(self, group: str, tools: list[tuple[str, Path, Manifest]],
                     aliases: dict[str, str] | None = None) -> list[StatusChange]:
        """Replace the tools imported from one MCP server with `(tool id, path, manifest)` of its current list, and
        its aliases (an old id -> the id, see `alias`).

        An entry whose manifest did not change is left as it is (its compiled validators, its status); a new
        or changed one is published ready, a dropped one removed. Local and built-in tools keep their ids,
        and among servers the first in tooldeck.toml does: the loser is a problem, shown like a broken manifest.
        """
        source = IMPORTED + group
        with self._lock:
            old = {e.tool_id: e for e in self._imported.get(group, [])}
            entries: list[ToolEntry] = []
            fresh: list[tuple[ToolEntry, Manifest]] = []
            for tool_id, path, manifest in tools:
                entry = old.pop(tool_id, None)
                if entry is None or entry.path != path:
                    entry = ToolEntry(tool_id, path, source, claimed=True)
                if entry.manifest != manifest:
                    fresh.append((entry, manifest))
                entries.append(entry)
            served_before = {e.tool_id for e in old.values() if self._base.get(e.tool_id) is e}
            self._imported[group] = entries
            self._aliases = {k: v for k, v in self._aliases.items() if self._alias_group.get(k) != group}
            self._alias_group = {k: g for k, g in self._alias_group.items() if k in self._aliases}
            for former, current in (aliases or {}).items():
                self._aliases[former] = current
                self._alias_group[former] = group
            known = {(p.path, p.message) for p in self._import_problems}
            problems = [p for p in self._merge_imported() if (p.path, p.message) not in known]
            changes = []
            for entry in old.values():
                if entry.tool_id in served_before:
                    change = StatusChange(entry.tool_id, entry.served_version, "removed", None, source)
                    self._pending_changes.append(change)
                    changes.append(change)
        for entry in old.values():
            if entry.tool_id in served_before:
                self._queue_event(PendingEvent("tool.removed", entry.tool_id, entry.served_version or None, {"path": str(entry.path)}))
        for problem in problems:
            self._queue_event(PendingEvent("tool.problem", None, None, {"path": str(problem.path), "error": problem.message}))
        for entry, manifest in fresh:
            self._finish(entry, manifest, None)
            changes.append(StatusChange(entry.tool_id, entry.served_version, READY, None, source))
        self.flush()
        return changes

    def alias(self, tool_id: str) -> str | None:
        """The id an old id of an imported tool now resolves to (`git_git_status` -> `git_status`), if any; an id a
        tool holds itself is never an alias. Lock held by the caller (Catalog.find)."""
        new = self._aliases.get(tool_id)
        return new if new is not None and tool_id not in self._base else None

    def imported(self, group: str) -> list[ToolEntry]:
        """The tools a server listed (those that lost their id to another tool included)."""
        with self._lock:
            return list(self._imported.get(group, []))

    def _merge_imported(self) -> list[Problem]:
        """Rebuild the imported tools' place among the local ones (lock held); returns the collisions."""
        for tool_id in [k for k, e in self._base.items() if e.source.startswith(IMPORTED)]:
            del self._base[tool_id]
        problems: list[Problem] = []
        groups = self._import_order + [g for g in self._imported if g not in self._import_order]
        for group in groups:
            for entry in self._imported.get(group, []):
                holder = self._base.get(entry.tool_id)
                if holder is None:
                    self._base[entry.tool_id] = entry
                    continue
                if not holder.source.startswith(IMPORTED):
                    what = f"the {holder.source} tool at {holder.path}"
                elif holder.source == entry.source:
                    ref = holder.manifest.mcp if holder.manifest is not None else None
                    what = f"another tool of the same server ({ref.tool if ref is not None else '?'!r})"
                else:
                    what = f"the tool of MCP server {holder.source[len(IMPORTED):]!r}, earlier in tooldeck.toml"
                problems.append(Problem(entry.path, f"{entry.path}: tool id {entry.tool_id!r} is taken by {what}; "
                                                    f"not imported"))
        self._import_problems = problems
        self.total = len(self._base) + sum(len(v) for v in self._versions.values())
        return problems
