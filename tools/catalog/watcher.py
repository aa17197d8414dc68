"""Hot reload: watch every catalog folder and the evolved folder, reload exactly the tool that changed.

Runs in serving runtimes (`tooldeck serve`, the dashboard). watchfiles with
`debounce=50, step=10` reports a write in ~15 ms. Added and modified are
treated alike (an overwrite is reported as `added`); temp files of atomic saves,
editor swap files and bytecode are ignored; a deleted manifest removes its tool.
A code file belongs to the tool in the same folder whose manifest runs it. A
broken edit keeps the last good manifest serving (Catalog.reload_path) and is
recorded as `tool.reload_failed`; the tool's warm worker is recycled either way
so the next call runs the code now on disk.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from tools.catalog.discovery import MANIFEST_SUFFIXES
from tools.errors import ToolError

log = logging.getLogger("tooldeck.watcher")
IGNORED_DIRS = {"__pycache__", ".git", ".hg", ".svn", ".mypy_cache", ".pytest_cache", ".ruff_cache", "node_modules"}
IGNORED_SUFFIXES = (".pyc", ".pyo", ".swp", ".swo", ".swx", ".tmp", ".temp", ".bak", ".orig", ".part", "~")


def ignored(path: Path) -> bool:
    """Temp files of atomic saves (`.x.tmp`, `x.tmp.123`, `.#x`, vim's `4913`), swap files, bytecode."""
    name = path.name
    if any(part in IGNORED_DIRS for part in path.parts):
        return True
    if name.startswith((".#", "#")) or name.endswith(IGNORED_SUFFIXES) or name == "4913":
        return True
    if name.startswith(".") and name not in (".",):
        return True  # hidden files: editors' and our own atomic-save temp files (".x.yaml.tmp")
    return ".tmp" in name or name.endswith(".crdownload")


def _watch_filter(change: Any, path: str) -> bool:
    return not ignored(Path(path))


class Watcher:
    """One thread over watchfiles.watch; `handle` is also callable directly (tests, benchmarks)."""

    def __init__(self, runtime: Any, *, debounce: int = 50, step: int = 10) -> None:
        self.runtime = runtime
        self.debounce = debounce
        self.step = step
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.ready = threading.Event()
        self.reloads = 0
        #: in-process subscribers, called (in the watcher thread) with each reload's result
        self.listeners: list[Callable[[dict[str, Any]], None]] = []

    def folders(self) -> list[Path]:
        evolved = self.runtime.home / "evolved"
        evolved.mkdir(parents=True, exist_ok=True)
        out: list[Path] = []
        for path in [*(root.path for root in self.runtime.catalog.roots), evolved]:
            resolved = Path(path).resolve()
            if resolved.is_dir() and resolved not in out:
                out.append(resolved)
        return out

    def start(self) -> None:
        logging.getLogger("watchfiles").setLevel(logging.WARNING)  # our events say what changed; no per-batch INFO lines
        self._thread = threading.Thread(target=self._run, name="tooldeck-watcher", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        import watchfiles

        folders = self.folders()
        try:
            for changes in watchfiles.watch(*folders, watch_filter=_watch_filter, debounce=self.debounce, step=self.step,
                                            stop_event=self._stop, yield_on_timeout=True, rust_timeout=200,
                                            ignore_permission_denied=True):
                self.ready.set()
                if changes:
                    self.handle((Path(p) for _change, p in changes))
        except (OSError, RuntimeError) as exc:
            log.error("watcher stopped: %s", exc)
            self.runtime.events.emit("runtime.error", where="watcher", error=f"{type(exc).__name__}: {exc}")
        finally:
            self.ready.set()

    def stop(self, timeout: float) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    # -- mapping a changed path to the tool it belongs to --------------------------------------

    def manifest_for(self, path: Path) -> Path | None:
        """The manifest to reload for a changed path (itself, or the manifest whose code it is).

        A manifest's path stays as reported (under a watched folder), not resolved, so that the
        catalog can refuse one that a symlink takes outside its folder."""
        if ignored(path):
            return None
        if path.suffix in MANIFEST_SUFFIXES:
            return path
        path = path.resolve() if path.exists() else path.parent.resolve() / path.name
        entry = self.runtime.catalog.entry_for_path(path)
        return entry.path if entry is not None else None

    def handle(self, paths: Iterable[Path]) -> list[dict[str, Any]]:
        """Reload each tool touched by `paths` once; returns what happened per manifest."""
        started = time.perf_counter()
        touched: dict[Path, list[str]] = {}
        for path in paths:
            path = Path(path)
            if path.is_dir() and not ignored(path):
                # a new folder (an evolved version landing): files written into it before the
                # OS watch on it existed raise no event of their own, so look inside
                for manifest in sorted(p for pattern in ("*.y*ml", "*/*.y*ml") for p in path.glob(pattern)):
                    if manifest.suffix in MANIFEST_SUFFIXES and not ignored(manifest):
                        touched.setdefault(manifest, []).append(manifest.name)
                continue
            owner = self.manifest_for(path)
            if owner is not None:
                touched.setdefault(owner, []).append(path.name)
        results = []
        for manifest, files in touched.items():
            result = self._reload(manifest, files, started)
            results.append(result)
            for listener in list(self.listeners):
                listener(result)
        return results

    def _reload(self, manifest: Path, files: list[str], started: float) -> dict[str, Any]:
        runtime = self.runtime
        try:
            changes = runtime.catalog.reload_path(manifest)
        except (ToolError, OSError) as exc:
            runtime.events.emit("tool.reload_failed", manifest.stem, None, path=str(manifest), files=files,
                                error=f"{type(exc).__name__}: {exc}")
            return {"path": str(manifest), "ok": False, "error": str(exc)}
        out: dict[str, Any] = {"path": str(manifest), "ok": True, "changes": []}
        for change in changes:
            recycled = runtime.workers.recycle(change.tool_id) if runtime._workers is not None else 0
            ms = round((time.perf_counter() - started) * 1000, 2)
            payload = {"path": str(manifest), "files": files, "source": change.source, "ms": ms,
                       "workers_recycled": recycled}
            if change.status == "removed":
                runtime.events.emit("tool.reloaded", change.tool_id, change.version or None, removed=True, **payload)
            elif change.error:
                out["ok"] = False
                runtime.events.emit("tool.reload_failed", change.tool_id, change.version or None, error=change.error,
                                    serving=self._serving(change.tool_id, change.version), **payload)
            else:
                runtime.events.emit("tool.reloaded", change.tool_id, change.version or None, **payload)
            out["changes"].append({"tool_id": change.tool_id, "version": change.version, "status": change.status,
                                   "error": change.error})
        self.reloads += 1
        return out

    def _serving(self, tool_id: str, version: str) -> str | None:
        entry = self.runtime.catalog.find(tool_id, version or None)
        return entry.served_version if entry is not None and entry.manifest is not None else None


def install(runtime: Any) -> None:
    """EXTENSIONS hook: serving runtimes watch their catalog."""
    if not runtime.serve:
        return
    watcher = Watcher(runtime)
    runtime.extensions["watcher"] = watcher
    runtime.add_service("watcher", watcher)
    watcher.start()
