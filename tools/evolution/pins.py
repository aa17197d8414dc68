"""Approved code pinned by sha256: a file changed after approval is not served.

`pin` records, in the approval's transaction, the sha256 and size of every file of the
approved version's folder (which holds only what the reviewer's diff showed). `Pins` is
the catalog's verifier: before an evolved version loads or serves, its files must be
exactly those pinned. The check is stat-cached (size, mtime, ctime, inode of each file and
of the folder), so serving a verified version costs a few stat calls; any change, even
one that restores the mtime, changes a ctime and is hashed again. A mismatch makes the
version `error` ("tampered: ..."), emits `tool.tampered`, and resolution serves the
version that served before it (tools.runtime.Runtime.resolve).

Versions approved before pins existed have none and are served as before.

Every node serves approved code: `pin` also stores each file's bytes in `approved_blobs`,
content-addressed by the same sha256, and `materialise` writes an approved version a node does
not have into its own `.tooldeck/evolved/<id>/<version>/` (each file checked against its pinned
hash, written to a temporary folder and renamed into place), so an approval on one node serves
on every node sharing the database. A folder that already exists is never overwritten: files
that differ from the pins are "tampered" as before.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import threading
import time
from pathlib import Path, PurePosixPath
from typing import Any

log = logging.getLogger("tooldeck.evolution")

SKIP_DIRS = frozenset({"__pycache__"})  # bytecode a worker writes beside the code it imports
_RECHECK_UNPINNED_SECONDS = 1.0


def folder_files(folder: Path) -> dict[str, Path]:
    """Every file under an evolved version's folder, by its path inside it (bytecode caches aside)."""
    out: dict[str, Path] = {}
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames[:] = sorted(d for d in dirnames if d not in SKIP_DIRS)
        for name in filenames:
            path = Path(dirpath) / name
            out[path.relative_to(folder).as_posix()] = path
    return out


def digest(path: Path) -> tuple[str, int]:
    sha = hashlib.sha256()
    size = 0
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 16), b""):
            sha.update(chunk)
            size += len(chunk)
    return sha.hexdigest(), size


def pinned(store_or_con: Any, tool_id: str, version: str) -> dict[str, tuple[str, int]]:
    rows = store_or_con.execute(
        "SELECT name, sha256, size FROM approved_files WHERE tool_id=? AND version=?", (tool_id, version)).fetchall()
    return {r[0]: (r[1], int(r[2])) for r in rows}


def pin(con: Any, tool_id: str, version: str, folder: Path, proposal_id: int | None) -> int:
    """Pin the folder's files in the approval's transaction; a version pinned once keeps its first pins."""
    if pinned(con, tool_id, version):
        return 0
    now = time.time()
    files = _store_blobs(con, folder)
    con.executemany("INSERT INTO approved_files(tool_id, version, name, sha256, size, proposal_id, approved_at)"
                    " VALUES (?,?,?,?,?,?,?)", [(tool_id, version, name, sha, size, proposal_id, now) for name, sha, size in files])
    return len(files)


def _store_blobs(con: Any, folder: Path) -> list[tuple[str, str, int]]:
    """Every file of the folder into approved_blobs (content-addressed); (name, sha256, size) of each."""
    files, blobs = [], []
    for name, path in folder_files(folder).items():
        data = path.read_bytes()
        sha = hashlib.sha256(data).hexdigest()
        files.append((name, sha, len(data)))
        blobs.append((sha, len(data), data))
    con.executemany("INSERT INTO approved_blobs(sha256, size, data) VALUES (?,?,?) ON CONFLICT DO NOTHING", blobs)
    return files


def _safe_name(name: str) -> bool:
    parts = PurePosixPath(name).parts
    return bool(parts) and not PurePosixPath(name).is_absolute() and all(p not in ("", ".", "..") for p in parts)


def materialise(store: Any, evolved: Path, tool_id: str, version: str) -> Path | None:
    """Write an approved version's files from the store into `evolved/<id>/<version>/`; the folder,
    or None when there is nothing to write (not approved, approved before blobs were kept, a file
    whose bytes do not match its pin, or a folder that is already there)."""
    return _write_version(store, evolved, tool_id, version, "approved_files f", "f.tool_id=? AND f.version=?",
                          (tool_id, version))


def keep_candidate(store: Any, proposal_id: int, folder: Path) -> int:
    """Store a proposal's candidate files (bytes in approved_blobs, names in proposal_files), so a node
    without its folder can show the diff and approve it. Serving still needs the approval's pins."""
    with store.tx() as con:
        files = _store_blobs(con, folder)
        con.execute("DELETE FROM proposal_files WHERE proposal_id=?", (proposal_id,))
        con.executemany("INSERT INTO proposal_files(proposal_id, name, sha256, size) VALUES (?,?,?,?)",
                        [(proposal_id, name, sha, size) for name, sha, size in files])
    return len(files)


def materialise_candidate(store: Any, evolved: Path, tool_id: str, version: str, proposal_id: int) -> Path | None:
    """A proposal's candidate, made on another node, written into this node's `evolved/<id>/<version>/`
    (each file checked against its sha256); the folder, or None (nothing kept, a mismatch, already there)."""
    return _write_version(store, evolved, tool_id, version, "proposal_files f", "f.proposal_id=?", (proposal_id,))


def _write_version(store: Any, evolved: Path, tool_id: str, version: str, table: str, where: str,
                   params: tuple[Any, ...]) -> Path | None:
    from tools.ids import check_tool_id, check_version

    check_tool_id(tool_id)
    check_version(version)
    folder = evolved / tool_id / version
    if folder.exists():
        return None
    rows = store.query(f"SELECT f.name, f.sha256, b.data FROM {table} LEFT JOIN approved_blobs b ON b.sha256 = f.sha256"
                       f" WHERE {where} ORDER BY f.name", params)
    if not rows or any(r[2] is None for r in rows):
        return None
    tmp = evolved / tool_id / f".{version}.tmp-{os.getpid()}-{threading.get_ident()}"
    try:
        for name, sha, data in rows:
            data = bytes(data)
            if not _safe_name(name) or hashlib.sha256(data).hexdigest() != sha:
                log.error("file %s of %s %s does not match its sha256 in the store; not written", name, tool_id, version)
                return None
            path = tmp / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
        try:
            os.rename(tmp, folder)
        except OSError:  # another thread or process on this node was faster
            return folder if folder.is_dir() else None
        return folder
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def mismatch(folder: Path, pins: dict[str, tuple[str, int]]) -> str | None:
    """Why the folder's files are not the approved ones, or None."""
    present = folder_files(folder) if folder.is_dir() else {}
    for name in sorted(present):
        if name not in pins:
            return f"tampered: {name} was added to {folder} after approval"
    for name, (sha, size) in sorted(pins.items()):
        path = present.get(name)
        if path is None:
            return f"tampered: {folder / name} is missing since approval"
        try:
            actual, actual_size = digest(path)
        except OSError as exc:
            return f"tampered: {path}: cannot read: {exc.strerror or exc}"
        if actual != sha:
            return (f"tampered: {path} changed after approval (sha256 {actual[:12]}..., {actual_size} bytes; "
                    f"approved {sha[:12]}..., {size} bytes)")
    return None


def _signature(folder: Path, names: list[str]) -> tuple[Any, ...] | None:
    try:
        out = []
        for path in (folder, *(folder / n for n in names)):
            st = os.stat(path)
            out.append((st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino))
        return tuple(out)
    except OSError:
        return None


class Pins:
    """The catalog's verifier for evolved versions (installed as `runtime.catalog.verifier`)."""

    def __init__(self, runtime: Any) -> None:
        self.runtime = runtime
        self._lock = threading.Lock()
        self._pins: dict[tuple[str, str], dict[str, tuple[str, int]]] = {}
        self._unpinned: dict[tuple[str, str], float] = {}
        self._verified: dict[tuple[str, str], tuple[Any, ...]] = {}

    def invalidate(self) -> None:
        with self._lock:
            self._unpinned.clear()

    def materialise(self, tool_id: str, version: str) -> bool:
        """An approved version this node lacks, written from the store and loaded; True when it loaded."""
        evolved = self.runtime.home / "evolved"
        folder = materialise(self.runtime.store, evolved, tool_id, version)
        written = folder is not None
        if folder is None:
            # already here though not loaded: this node's own candidate, approved on another node
            # (loading checks its files against the approval's pins like any evolved version)
            folder = evolved / tool_id / version
            if not pinned(self.runtime.store, tool_id, version) or not folder.is_dir():
                return False
        manifest = folder / f"{tool_id}.yaml"
        self.runtime.catalog.reload_path(manifest if manifest.exists() else folder)
        if written:
            self.runtime.events.emit("evolution.materialised", tool_id, version, folder=str(folder))
        return True

    def _pins_for(self, key: tuple[str, str]) -> dict[str, tuple[str, int]]:
        with self._lock:
            if key in self._pins:
                return self._pins[key]
            checked = self._unpinned.get(key)
            if checked is not None and time.monotonic() - checked < _RECHECK_UNPINNED_SECONDS:
                return {}
        found = pinned(self.runtime.store, *key)
        with self._lock:
            if found:
                self._pins[key] = found  # pins never change once written
            else:
                self._unpinned[key] = time.monotonic()
        return found

    def __call__(self, entry: Any) -> str | None:
        """None when `entry` may serve; else why not ("tampered: ...")."""
        if entry.source != "evolved":
            return None
        key = (entry.tool_id, entry.version or entry.served_version)
        pins = self._pins_for(key)
        if not pins:
            return None  # not approved (the guard refuses it), or approved before pins existed
        folder = entry.tool_dir
        signature = _signature(folder, sorted(pins))
        with self._lock:
            if signature is not None and self._verified.get(key) == signature:
                return None
        reason = mismatch(folder, pins)
        with self._lock:
            if reason is None and signature is not None:
                self._verified[key] = signature
            else:
                self._verified.pop(key, None)
        return reason
