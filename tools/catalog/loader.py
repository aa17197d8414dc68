"""Discovering and loading tool manifests in the background, with per-tool status.

The catalog is a dict of entries guarded by one lock. Nothing is parsed while
the lock is held and no listener runs while it is held: changes are collected
and delivered after the lock is released.
"""

from __future__ import annotations

import gc
import json
import logging
import os
import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from state.db import Store, StoreError, dumps
from state.events import EventLog, PendingEvent
from state.redact import json_holds_secret
from tools.catalog.discovery import (
    MANIFEST_SUFFIXES,
    Root,
    discover_evolved,
    discover_root,
    escapes,
)
from tools.catalog.entry import ERROR, LOADING, PENDING, READY, Problem, StatusChange, ToolEntry, read_statuses, write_status
from tools.catalog.imported import IMPORTED, ImportedTools
from tools.catalog.manifest import Manifest, code_problem, read_manifest_data, validate_manifest
from tools.catalog.nodes import NodeManifests, published_sha
from tools.errors import ManifestError, ToolError, ToolNotReadyError, UnknownToolError
from tools.ids import TOOL_ID_RE, VERSION_RE, closest
from tools.reach import reachable

Listener = Callable[[list[StatusChange]], None]
#: A cold load writes the manifests it parsed to the cache this many at a time, not all at the end: at 100,000
#: tools the rows (each manifest's JSON) held until then were hundreds of megabytes.
CACHE_WRITE_ROWS = 2000
#: manifests loaded between two `gc.freeze()` calls of a full load (`Catalog.load_all`)
FREEZE_EVERY = 2000


class Catalog(ImportedTools):
    """Every tool the runtime can call, and the loader that fills it in the background."""

    def __init__(self, roots: list[Root], evolved_dir: Path | None) -> None:
        self.roots = roots
        self.evolved_dir = evolved_dir
        self._lock = threading.Lock()
        self._base: dict[str, ToolEntry] = {}
        self._versions: dict[str, dict[str, ToolEntry]] = {}
        self._problems: list[Problem] = []
        self._listeners: list[Listener] = []
        self.discovered = threading.Event()
        self.finished = threading.Event()
        #: why discovery or the load stopped before the end (`failed`), or None: callers are told, never left waiting
        self.load_error: str | None = None
        self.total = 0
        self.started_at = time.perf_counter()
        self.finished_at: float | None = None
        self._store: Store | None = None
        self._events: EventLog | None = None
        self._pending_events: list[PendingEvent] = []
        self._pending_changes: list[StatusChange] = []
        #: during a full load, the statuses the store already holds: a tool that loads as it was is not news
        #: (no event, no write; a restart over 100,000 unchanged tools writes nothing)
        self._known: dict[tuple[str, str], StatusChange] | None = None
        self._flush_lock = threading.Lock()
        self._last_flush = 0.0
        self.cache_hits = 0
        self.parsed = 0
        #: checks an evolved version's files before it loads or serves (evolution's pins); why not, or None
        self.verifier: Callable[[ToolEntry], str | None] | None = None
        #: tools imported from MCP servers (tools.mcp publishes them), by server, servers in tooldeck.toml order
        self._imported: dict[str, list[ToolEntry]] = {}
        self._import_order: list[str] = []
        self._import_problems: list[Problem] = []
        self._aliases: dict[str, str] = {}
        self._alias_group: dict[str, str] = {}
        #: asked for an id no tool has: `(tool_id, timeout) -> whether to look again` (an MCP server whose name
        #: prefixes the id may list it once connected)
        self.resolver: Callable[[str, float], bool] | None = None
        #: this node's manifest hashes against the other live nodes' (several nodes sharing a database)
        self.nodes: NodeManifests | None = None

    # -- listeners -----------------------------------------------------------------

    def subscribe(self, listener: Listener) -> Callable[[], None]:
        with self._lock:
            self._listeners.append(listener)

        def unsubscribe() -> None:
            with self._lock:
                if listener in self._listeners:
                    self._listeners.remove(listener)

        return unsubscribe

    # -- discovery and loading (the loader thread) ---------------------------------

    def discover(self) -> None:
        base: dict[str, ToolEntry] = {}
        problems: list[Problem] = []
        for root in self.roots:
            found, bad = discover_root(root)
            problems.extend(bad)
            for entry in found:
                previous = base.get(entry.tool_id)
                if previous is not None:
                    entry.overrides = previous.path
                base[entry.tool_id] = entry
        versions: dict[str, dict[str, ToolEntry]] = {}
        if self.evolved_dir is not None:
            found, bad = discover_evolved(self.evolved_dir)
            problems.extend(bad)
            for entry in found:
                versions.setdefault(entry.tool_id, {})[entry.version or ""] = entry
        with self._lock:
            self._base = base
            self._versions = versions
            self._problems = problems
            problems = problems + self._merge_imported()
        self.discovered.set()
        for problem in problems:
            self._queue_event(PendingEvent("tool.problem", None, None, {"path": str(problem.path), "error": problem.message}))

    def failed(self, exc: BaseException) -> None:
        """Discovery or the load raised (a bug, or a file system error no check foresaw): what was found stays, what
        was not is named as not loaded for this reason, and nothing waits on a load that will not come."""
        self.load_error = f"{type(exc).__name__}: {exc}"
        logging.getLogger("tooldeck.catalog").error("catalog load stopped: %s", self.load_error, exc_info=exc)
        with self._lock:
            self._problems.append(Problem(Path("<catalog>"), f"the catalog stopped loading: {self.load_error}"))
        self.discovered.set()
        self.finished.set()

    def all_entries(self) -> list[ToolEntry]:
        with self._lock:
            return list(self._base.values()) + [e for vs in self._versions.values() for e in vs.values()]

    def attach(self, store: Store, events: EventLog, node: str | None = None) -> None:
        """Start using the shared store; `node` is this runtime's identity (host:pid:token)."""
        self._store = store
        self._events = events
        host = socket.gethostname()
        self.nodes = NodeManifests(store, host, node or f"{host}:{os.getpid()}")

    def load_all(self) -> None:
        """Parse every discovered manifest not yet claimed by a waiting caller."""
        entries = self.all_entries()
        cache = self._read_cache()
        self._known = self._read_statuses()
        fresh: list[tuple[str, int, int, str]] = []
        # Python's full collections walk every object alive, and a bulk load triggers one each time
        # the heap grew by a quarter: ~5 walks of the final catalog, a third of a warm load at
        # 100,000 tools. What is loaded is frozen as the load goes (out of those walks; young
        # collections still run) and unfrozen at the end, unless the host froze objects itself.
        freezing = gc.get_freeze_count() == 0
        try:
            for loaded, entry in enumerate(entries, 1):
                if not self._claim(entry):
                    continue
                fresh_row = self._load_entry(entry, cache)
                if freezing and loaded % FREEZE_EVERY == 0:
                    gc.freeze()
                if fresh_row is not None:
                    fresh.append(fresh_row)
                    if len(fresh) >= CACHE_WRITE_ROWS:
                        self._write_cache(fresh)
                        fresh = []
                self._maybe_flush()
        finally:
            if freezing:
                gc.unfreeze()
        self._write_cache(fresh)
        self._known = None
        self.finished_at = time.perf_counter()
        summary = self.summary(final=True)
        seconds = round(self.finished_at - self.started_at, 3)
        self._queue_event(PendingEvent("load.finished", None, None, {"summary": summary, "seconds": seconds}))
        self.flush(force=True)
        self.finished.set()

    def _claim(self, entry: ToolEntry) -> bool:
        with self._lock:
            if entry.claimed:
                return False
            entry.claimed = True
            entry.status = LOADING
        return True

    def _load_entry(self, entry: ToolEntry, cache: dict[str, tuple[int, int, str]] | None) -> tuple[str, int, int, str] | None:
        """Parse one manifest (from the cache when size and mtime match) and publish its status."""
        fresh_row = None
        manifest: Manifest | None = None
        error: str | None = None
        try:
            st = entry.path.stat()
            key = str(entry.path)
            hit = cache.pop(key, None) if cache else None  # its text is dropped once read: the cache is not held twice
            if hit is not None and hit[0] == st.st_size and hit[1] == st.st_mtime_ns:
                data = json.loads(hit[2])
                text = hit[2]
                self.cache_hits += 1
            else:
                data = read_manifest_data(entry.path)
                self.parsed += 1
                text = dumps(data)
                if not json_holds_secret(text, data):  # a manifest holding a secret is re-read, never cached in the database
                    fresh_row = (key, st.st_size, st.st_mtime_ns, text)
            manifest = validate_manifest(data, entry.path, expected_id=entry.tool_id, expected_version=entry.version)
            self._publish(entry, text, manifest)
        except ManifestError as exc:
            error = exc.message
        except OSError as exc:
            error = f"{entry.path}: cannot read: {exc.strerror or exc}"
        self._finish(entry, manifest, error)
        return fresh_row

    def _finish(self, entry: ToolEntry, manifest: Manifest | None, error: str | None) -> None:
        if manifest is not None and (missing := code_problem(manifest, entry.tool_dir)):
            manifest, error = None, f"{entry.path}: {missing}"
        tampered = self._tampered(entry) if manifest is not None else None
        if tampered:
            manifest, error = None, tampered
        conflict = self._conflict(entry, manifest, note=True) if manifest is not None else None
        with self._lock:
            if tampered:
                entry.manifest = None  # its files changed after approval: not even the last good manifest serves
            if manifest is not None:
                entry.manifest = manifest
                entry.cache = {}
                entry.status = READY
                entry.error = None
                entry.conflict = False
            else:
                entry.status = ERROR if entry.manifest is None else READY  # keep the last good version
                entry.error = error
            entry.loaded_at = time.time()
            if conflict:  # it loaded, but another node loaded other files for it: shown, and refused by get()
                entry.status, entry.error, entry.conflict, error = ERROR, conflict, True, conflict
            change = StatusChange(entry.tool_id, entry.served_version, ERROR if manifest is None or conflict else READY, error,
                                  entry.source)
            known = self._known
            unchanged = known is not None and known.get((change.tool_id, change.version)) == change and not tampered
            if unchanged:
                change = StatusChange(change.tool_id, change.version, change.status, change.error, change.source, persist=False)
            self._pending_changes.append(change)
        entry.done.set()
        if unchanged:  # no event either: Activity and MCP clients hear of changes, not of a restart
            return
        payload: dict[str, Any] = {"source": entry.source, "path": str(entry.path)}
        if error:
            payload["error"] = error
        if entry.overrides is not None:
            payload["overrides"] = str(entry.overrides)
        kind = "tool.tampered" if tampered else "tool.error" if error else "tool.ready"
        self._queue_event(PendingEvent(kind, entry.tool_id, entry.served_version or None, payload))

    def _publish(self, entry: ToolEntry, text: str, manifest: Manifest) -> None:
        """Set the hash this node publishes for `entry` (its manifest's JSON `text` and its code file), where other
        nodes compare it. Evolved versions are not compared (their files are pinned by hash at approval)."""
        if self.nodes is not None and entry.source != "evolved":
            entry.published_sha = published_sha(text, manifest, entry.tool_dir)

    def _tampered(self, entry: ToolEntry) -> str | None:
        return self.verifier(entry) if self.verifier is not None and entry.source == "evolved" else None

    def _conflict(self, entry: ToolEntry, manifest: Manifest | None, *, note: bool = False) -> str | None:
        if self.nodes is None or manifest is None or entry.source == "evolved":
            return None
        return self.nodes.check(entry.tool_id, manifest.version, entry.published_sha, str(entry.path), note=note)

    def _recheck_conflict(self, entry: ToolEntry) -> None:
        """At serve time: refuse while another node's files differ; back to ready once they agree."""
        reason = self._conflict(entry, entry.manifest)
        if reason is None and not entry.conflict:
            return
        with self._lock:
            entry.conflict = reason is not None
            entry.status, entry.error = (ERROR, reason) if reason else (READY, None)
            self._pending_changes.append(StatusChange(entry.tool_id, entry.served_version, entry.status, reason, entry.source))
        self._queue_event(PendingEvent("tool.error" if reason else "tool.ready", entry.tool_id, entry.served_version,
                                       {"source": entry.source, "path": str(entry.path), **({"error": reason} if reason else {})}))
        self.flush()
        if reason:
            raise ToolNotReadyError(f"tool {entry.tool_id!r} {entry.served_version}: {reason}", tool_id=entry.tool_id,
                                    error_class="catalog_mismatch")

    def _read_statuses(self) -> dict[tuple[str, str], StatusChange] | None:
        if self._store is None:
            return None
        try:
            return read_statuses(self._store)
        except StoreError as exc:  # every status is then written and said again, as on a first load
            logging.getLogger("tooldeck.catalog").error("reading tool statuses: %s", exc)
            return None

    def _read_cache(self) -> dict[str, tuple[int, int, str]] | None:
        if self._store is None:
            return None
        rows = self._store.query("SELECT path, size, mtime_ns, data FROM manifest_cache")
        return {r[0]: (r[1], r[2], r[3]) for r in rows}

    def _write_cache(self, rows: list[tuple[str, int, int, str]]) -> None:
        if self._store is None or not rows:
            return
        with self._store.tx() as con:
            con.executemany("INSERT INTO manifest_cache(path, size, mtime_ns, data) VALUES (?,?,?,?) ON CONFLICT (path)"
                            " DO UPDATE SET size=excluded.size, mtime_ns=excluded.mtime_ns, data=excluded.data",
                            sorted(rows))  # in key order, as every upsert of rows other processes write too (no deadlock)

    # -- batched publication -------------------------------------------------------

    def _queue_event(self, event: PendingEvent) -> None:
        with self._lock:
            self._pending_events.append(event)

    def _maybe_flush(self) -> None:
        now = time.perf_counter()
        if now - self._last_flush > 0.05 or len(self._pending_events) >= 500:
            self.flush()

    def flush(self, force: bool = False) -> None:
        """Commit queued status events in one transaction, then tell listeners (no lock held)."""
        with self._flush_lock:
            with self._lock:
                events, self._pending_events = self._pending_events, []
                changes, self._pending_changes = self._pending_changes, []
                listeners = list(self._listeners)
            self._last_flush = time.perf_counter()
            if self._events is not None and events:
                self._events.emit_many(events)
            if self._events is not None and self._store is not None:
                write_status(self._store, changes)
            if self.nodes is not None:
                try:
                    self.nodes.flush()
                except StoreError as exc:  # hashes are compared again at the next flush; logged
                    logging.getLogger("tooldeck.catalog").error("recording manifest hashes: %s", exc)
        if changes or force:
            for listener in listeners:
                listener(changes)

    # -- lookups -------------------------------------------------------------------

    def ids(self) -> list[str]:
        with self._lock:
            return sorted(self._base)

    def problems(self) -> list[Problem]:
        with self._lock:
            return list(self._problems) + list(self._import_problems)

    def find(self, tool_id: str, version: str | None = None) -> ToolEntry | None:
        with self._lock:
            base = self._base.get(tool_id)
            if base is None and (new := self.alias(tool_id)) is not None:  # an imported tool's old id
                tool_id, base = new, self._base.get(new)
            if version is None or (base is not None and base.manifest is not None and base.manifest.version == version):
                return base
            return self._versions.get(tool_id, {}).get(version)

    def versions(self, tool_id: str) -> dict[str, ToolEntry]:
        with self._lock:
            return dict(self._versions.get(tool_id, {}))

    def _unknown(self, tool_id: str) -> ToolError:
        """`unknown tool`, suggesting only ids the caller may reach; a manifest of that name that cannot become a tool
        (refused, say, for a symlink out of the folder) says why instead."""
        if reachable(tool_id):
            problem = next((p for p in self.problems() if p.path.stem == tool_id), None)
            if problem is not None:
                return ManifestError(f"tool {tool_id!r}: {problem.message}", tool_id=tool_id)
        near = closest(tool_id, [i for i in self.ids() if reachable(i)])
        hint = f"; did you mean {', '.join(near)}?" if near else ""
        return UnknownToolError(f"unknown tool {tool_id!r}{hint}", tool_id=tool_id)

    def get(self, tool_id: str, version: str | None = None, *, wait: bool = True, timeout: float = 10.0) -> ToolEntry:
        """The entry for one tool, loading it now if the loader has not reached it yet."""
        deadline = time.monotonic() + timeout
        if not self.discovered.is_set() and not self.discovered.wait(timeout if wait else 0):
            raise ToolNotReadyError(f"tool {tool_id!r}: catalog discovery did not finish within {timeout:.1f} s", tool_id=tool_id)
        if not reachable(tool_id):  # out of a narrowed caller's reach (tools/reach.py): answered as a tool that does not
            raise self._unknown(tool_id)  # exist, so a hidden tool is neither acted on nor told apart from a missing one
        entry = self.find(tool_id, version)
        if entry is None and version is None and self.resolver is not None \
                and self.resolver(tool_id, max(0.0, deadline - time.monotonic())):
            entry = self.find(tool_id)
        if entry is None and version is not None and (base := self.find(tool_id)) is not None and base.manifest is None:
            # the base version is known only from its manifest, read when it loads: load it, then ask again
            self._await_load(base, tool_id, wait, deadline, timeout)
            entry = self.find(tool_id, version)
        if entry is None and self.load_error is not None:
            raise ToolNotReadyError(f"tool {tool_id!r}: the catalog stopped loading: {self.load_error}", tool_id=tool_id)
        if entry is None:
            if version is not None and (base := self.find(tool_id)) is not None:
                known = sorted(self.versions(tool_id))
                listed = f"base version {base.manifest.version}, " if base.manifest is not None else ""
                raise UnknownToolError(
                    f"tool {tool_id!r} has no version {version} ({listed}known evolved versions: {', '.join(known) or 'none'})",
                    tool_id=tool_id,
                )
            raise self._unknown(tool_id)
        self._await_load(entry, tool_id, wait, deadline, timeout)
        if entry.manifest is not None and (tampered := self._tampered(entry)):  # changed on disk since it loaded
            self._finish(entry, entry.manifest, None)
            self.flush()
            raise ToolNotReadyError(f"tool {tool_id!r} {entry.version}: {tampered}", tool_id=tool_id, error_class="tampered")
        if entry.manifest is None:
            raise ToolNotReadyError(f"tool {tool_id!r} failed to load: {entry.error}", tool_id=tool_id, error_class="bad_manifest")
        if self.nodes is not None and entry.source != "evolved":
            self._recheck_conflict(entry)
        return entry

    def _await_load(self, entry: ToolEntry, tool_id: str, wait: bool, deadline: float, timeout: float) -> None:
        """Return once `entry` finished loading (loaded here if no loader thread has claimed it yet)."""
        if entry.done.is_set():
            return
        if not wait:
            raise ToolNotReadyError(f"tool {tool_id!r} is still {entry.status}", tool_id=tool_id)
        if self._claim(entry):
            self._load_entry(entry, None)  # load it ourselves: wait for exactly this tool
            self.flush()
        elif not entry.done.wait(max(0.0, deadline - time.monotonic())):
            raise ToolNotReadyError(f"tool {tool_id!r} did not load within {timeout:.1f} s", tool_id=tool_id)

    def counts(self) -> dict[str, int]:
        out = {PENDING: 0, LOADING: 0, READY: 0, ERROR: 0}
        with self._lock:
            for entry in list(self._base.values()) + [e for vs in self._versions.values() for e in vs.values()]:
                out[entry.status] += 1
            out["problems"] = len(self._problems) + len(self._import_problems)
        return out

    def summary(self, final: bool = False) -> str:
        if not self.discovered.is_set():
            return "Discovering tools..."
        c = self.counts()
        errors = c[ERROR] + c["problems"]
        if not (final or self.finished.is_set()):
            return f"Loading {c[READY] + c[ERROR]}/{self.total}"
        err = f", {errors} error{'s' if errors != 1 else ''}" if errors else ""
        return f"Ready: {c[READY]} tools{err}"

    # -- hot reload ----------------------------------------------------------------

    def reload_path(self, path: Path) -> list[StatusChange]:
        """Re-read the manifest at `path`, or of the tool a changed code file belongs to
        (added, modified or deleted).

        A broken edit keeps the last good manifest serving and records the error.
        Returns the entries that changed (the caller recycles their workers).
        """
        problem = self._escapes(path)
        if problem is not None:
            return self._refuse(path, problem)
        path = path.resolve()
        if self._named_badly(path):
            return []
        entry = self.entry_for_path(path)
        if entry is None:
            entry = self._new_entry_for(path)
            if entry is None:
                return []
        path = entry.path  # a code file reloads its tool's manifest; only a deleted manifest removes the tool
        if not path.exists():
            return self._remove(entry)
        manifest: Manifest | None = None
        error: str | None = None
        try:
            data = read_manifest_data(path)
            manifest = validate_manifest(data, path, expected_id=entry.tool_id, expected_version=entry.version)
            self._publish(entry, dumps(data), manifest)  # what this node publishes: the files as they are now
        except ManifestError as exc:
            error = exc.message
        with self._lock:
            entry.claimed = True
        self._finish(entry, manifest, error)
        change = StatusChange(entry.tool_id, entry.served_version, READY if manifest else ERROR, error, entry.source)
        self.flush()
        return [change]

    def _named_badly(self, path: Path) -> bool:
        """A manifest in a catalog folder whose file name is not a tool id: listed as a problem while it exists,
        as a full load lists it, and no longer once it is gone or renamed. True when `path` is such a file."""
        stem = path.name.rsplit(".", 1)[0]
        if (path.suffix not in MANIFEST_SUFFIXES or TOOL_ID_RE.fullmatch(stem) or stem.startswith(".") or stem.endswith("~")
                or not any(root.path.resolve() in (path.parent, path.parent.parent) for root in self.roots)):
            return False
        problem = Problem(path, f"{path}: file name {stem!r} is not a valid tool id (^[a-z][a-z0-9_]{{0,63}}$)")
        with self._lock:
            kept = [p for p in self._problems if p.path.parent.resolve() / p.path.name != path]
            self._problems = kept + ([problem] if path.exists() else [])
        if path.exists():
            self._queue_event(PendingEvent("tool.problem", None, None, {"path": str(path), "error": problem.message}))
        self.flush(force=True)
        return True

    def _escapes(self, path: Path) -> str | None:
        """The refusal of a changed path under a catalog folder (or the evolved folder) that a
        symlink takes outside it; the path is as the watcher saw it, not resolved."""
        folders = [root.path for root in self.roots] + ([self.evolved_dir] if self.evolved_dir is not None else [])
        for folder in folders:
            for base in {folder, folder.resolve()}:
                if base in path.parents:
                    return escapes(path, base)
        return None

    def _refuse(self, path: Path, problem: str) -> list[StatusChange]:
        """A manifest that became a symlink pointing outside keeps its last good version serving and
        shows the error; a new one is not loaded (ManifestError, reported by the watcher)."""
        here = path.parent.resolve() / path.name
        entry = next((e for e in self.all_entries() if e.path.parent.resolve() / e.path.name == here), None)
        if entry is None:
            raise ManifestError(problem)
        with self._lock:
            entry.claimed = True
        self._finish(entry, None, problem)
        self.flush()
        return [StatusChange(entry.tool_id, entry.served_version, ERROR, problem, entry.source)]

    def entry_for_path(self, path: Path) -> ToolEntry | None:
        """The entry a changed file belongs to: its manifest; the only tool in that folder; or
        the tool whose manifest runs that code file (a flat folder holds many tools), else the
        tool named like the file."""
        entries = self.all_entries()
        for entry in entries:
            if entry.path == path:
                return entry
        if path.suffix in MANIFEST_SUFFIXES:
            return None
        same_dir = [e for e in entries if e.tool_dir == path.parent]
        if len(same_dir) == 1:
            return same_dir[0]
        for entry in same_dir:
            if entry.manifest is not None and _runs(entry.manifest, path.name):
                return entry
        return next((e for e in same_dir if e.tool_id == path.stem), None)

    def _new_entry_for(self, path: Path) -> ToolEntry | None:
        if path.suffix not in MANIFEST_SUFFIXES or not path.exists():
            return None
        stem = path.stem
        if not TOOL_ID_RE.fullmatch(stem):
            return None
        if self.evolved_dir is not None and self.evolved_dir.resolve() in path.parents:
            version = path.parent.name
            if not VERSION_RE.fullmatch(version) or path.parent.parent.name != stem:
                return None
            entry = ToolEntry(stem, path, "evolved", version=version)
            with self._lock:
                self._versions.setdefault(stem, {})[version] = entry
                self.total += 1
            return entry
        for root in self.roots:
            r = root.path.resolve()
            if path.parent == r or path.parent.parent == r:
                entry = ToolEntry(stem, path, root.source)
                with self._lock:
                    previous = self._base.get(stem)
                    if previous is not None and previous.source == root.source:
                        return None  # a duplicate in the same catalog: the first file wins
                    if previous is not None and not previous.source.startswith(IMPORTED):
                        entry.overrides = previous.path
                    self._base[stem] = entry
                    self.total += previous is None
                    if previous is not None and previous.source.startswith(IMPORTED):
                        self._merge_imported()  # the imported tool it displaced is a collision now
                return entry
        return None

    def _remove(self, entry: ToolEntry) -> list[StatusChange]:
        with self._lock:
            if entry.version is not None:
                self._versions.get(entry.tool_id, {}).pop(entry.version, None)
            elif self._base.get(entry.tool_id) is entry:
                del self._base[entry.tool_id]
            self.total -= 1
            if self._imported:
                self._merge_imported()  # an imported tool of that id takes its place
            change = StatusChange(entry.tool_id, entry.served_version, "removed", None, entry.source)
            self._pending_changes.append(change)
        self._queue_event(PendingEvent("tool.removed", entry.tool_id, entry.served_version or None, {"path": str(entry.path)}))
        self.flush()
        return [change]


def _runs(manifest: Manifest, file_name: str) -> bool:
    """Whether a manifest's entry or argv names `file_name`."""
    if manifest.entry and manifest.entry.split(":", 1)[0] == file_name:
        return True
    if manifest.executable is not None:
        return any(part == file_name or part.endswith("/" + file_name) for part in manifest.executable.argv())
    return False
