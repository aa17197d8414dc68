"""Approved code pinned by sha256: a file changed after approval is not served.

`pin` records, in the approval's transaction, the sha256 and size of every file of the
approved version's folder (which holds only what the reviewer's diff showed), from the bytes the
reviewed diff was made of (tools.evolution.candidate reads them once), never from a second read. `Pins` is
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

Every file in a pinned folder is covered, bytecode included: nothing runs bytecode beside
approved code (the python worker compiles the pinned source itself and writes none), so a
`__pycache__` in a pinned folder is a file the reviewer never saw, and tampering. Workers
before this change wrote `__pycache__` beside the code they imported; `drop_old_bytecode`
removes those once per node, at the first start of this code (see its docstring for the rule).
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import marshal
import os
import re
import shutil
import sys
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

from state import approved

if TYPE_CHECKING:
    from tools.host import RuntimeHost

log = logging.getLogger("tooldeck.evolution")

_RECHECK_UNPINNED_SECONDS = 1.0
#: beside `evolved/` (in .tooldeck/): this node's pinned folders were cleared of the bytecode older workers wrote
NO_BYTECODE_MARKER = ".evolved-no-bytecode"


def folder_files(folder: Path) -> dict[str, Path]:
    """Every file under an evolved version's folder, by its path inside it; bytecode caches included
    (nothing writes them any more) and a symlink to a folder counted as a file (it is not followed)."""
    out: dict[str, Path] = {}
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames.sort()
        for name in [*filenames, *(d for d in dirnames if os.path.islink(os.path.join(dirpath, d)))]:
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
    return approved.pins(store_or_con, tool_id, version)


def pin(con: Any, tool_id: str, version: str, contents: Mapping[str, bytes], proposal_id: int | None) -> int:
    """Pin `contents` (every file of the version's folder, by its path inside it: the bytes the approved diff was
    made of) in the approval's transaction; a version pinned once keeps its first pins."""
    if pinned(con, tool_id, version):
        return 0
    files = _store_blobs(con, contents)
    approved.add_pins(con, tool_id, version, files, proposal_id, time.time())
    return len(files)


def _store_blobs(con: Any, contents: Mapping[str, bytes]) -> list[tuple[str, str, int]]:
    """Each file's bytes into approved_blobs (content-addressed); (name, sha256, size) of each."""
    files, blobs = [], []
    for name, data in sorted(contents.items()):
        sha = hashlib.sha256(data).hexdigest()
        files.append((name, sha, len(data)))
        blobs.append((sha, len(data), data))
    approved.add_blobs(con, blobs)
    return files


def _safe_name(name: str) -> bool:
    parts = PurePosixPath(name).parts
    return bool(parts) and not PurePosixPath(name).is_absolute() and all(p not in ("", ".", "..") for p in parts)


def materialise(store: Any, evolved: Path, tool_id: str, version: str) -> Path | None:
    """Write an approved version's files from the store into `evolved/<id>/<version>/`; the folder,
    or None when there is nothing to write (not approved, approved before blobs were kept, a file
    whose bytes do not match its pin, or a folder that is already there)."""
    return _write_version(evolved, tool_id, version, lambda: approved.approved_contents(store, tool_id, version))


def keep_candidate(store: Any, proposal_id: int, contents: Mapping[str, bytes]) -> int:
    """Store a proposal's candidate files (bytes in approved_blobs, names in proposal_files: the bytes its validated
    diff was made of), so a node without its folder can show the diff and approve it. Serving still needs the
    approval's pins."""
    with store.tx() as con:
        files = _store_blobs(con, contents)
        approved.set_candidate_files(con, proposal_id, files)
    return len(files)


def materialise_candidate(store: Any, evolved: Path, tool_id: str, version: str, proposal_id: int) -> Path | None:
    """A proposal's candidate, made on another node, written into this node's `evolved/<id>/<version>/`
    (each file checked against its sha256); the folder, or None (nothing kept, a mismatch, already there)."""
    return _write_version(evolved, tool_id, version, lambda: approved.candidate_contents(store, proposal_id))


def _write_version(evolved: Path, tool_id: str, version: str, contents: Callable[[], list[Any]]) -> Path | None:
    from tools.ids import check_tool_id, check_version

    check_tool_id(tool_id)
    check_version(version)
    folder = evolved / tool_id / version
    if folder.exists():
        return None
    rows = contents()
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
    return differs(folder, present, lambda name: digest(present[name]), pins)


def differs(folder: Path, names: Iterable[str], digest_of: Callable[[str], tuple[str, int]],
            pins: dict[str, tuple[str, int]]) -> str | None:
    """Why the files `names` of `folder` (`digest_of(name)`: sha256 and size, or OSError) are not the approved
    ones, or None: on disk (`mismatch`), or as one read of a candidate saw them (tools.evolution.candidate)."""
    present = set(names)
    for name in sorted(present):
        if name not in pins:
            return f"tampered: {name} was added to {folder} after approval"
    for name, (sha, size) in sorted(pins.items()):
        path = folder / name
        if name not in present:
            return f"tampered: {path} is missing since approval"
        try:
            actual, actual_size = digest_of(name)
        except OSError as exc:
            return f"tampered: {path}: cannot read: {exc.strerror or exc}"
        if actual != sha:
            return (f"tampered: {path} changed after approval (sha256 {actual[:12]}..., {actual_size} bytes; "
                    f"approved {sha[:12]}..., {size} bytes)")
    return None


def _signature(folder: Path, names: list[str]) -> tuple[Any, ...] | None:
    """Stat of the folder, each folder inside it that holds a pinned file, and each pinned file: a
    file added anywhere changes one of those folders' ctime (a new folder changes its parent's)."""
    dirs = sorted({PurePosixPath(n).parent.as_posix() for n in names} - {"."})
    try:
        out = []
        for path in (folder, *(folder / d for d in dirs), *(folder / n for n in names)):
            st = os.stat(path)
            out.append((st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino))
        return tuple(out)
    except OSError:
        return None


class Pins:
    """The catalog's verifier for evolved versions (installed as `runtime.catalog.verifier`)."""

    def __init__(self, runtime: RuntimeHost) -> None:
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
                if entry.pinned is None:
                    entry.pinned = {name: sha for name, (sha, _size) in pins.items()}
                return None
        reason = mismatch(folder, pins)
        with self._lock:
            if reason is None and signature is not None:
                self._verified[key] = signature
            else:
                self._verified.pop(key, None)
        # the worker checks what it compiles against these: a file swapped after this check does not run
        entry.pinned = {name: sha for name, (sha, _size) in pins.items()} if reason is None else None
        return reason

    def drop_old_bytecode(self) -> None:
        """The one-time upgrade step (tools.evolution.evolve.install runs it at start); see the function.
        A failure (a read-only home) is recorded and retried at the next start: what it would have
        removed stays, and the pins report it."""
        try:
            cleaned = drop_old_bytecode(self.runtime.store, self.runtime.home / "evolved")
        except OSError as exc:
            log.error("removing old bytecode from pinned folders: %s", exc)
            self.runtime.events.emit("runtime.error", where="pins.drop_old_bytecode",
                                     error=f"{type(exc).__name__}: {exc}")
            return
        for tool_id, version, names in cleaned:
            self.runtime.events.emit("evolution.bytecode_removed", tool_id, version, files=names)


# -- the upgrade to bytecode-free pinned folders ---------------------------------------------

_PYC = re.compile(r"(?P<stem>[^.]+)\.(?P<tag>[^.]+)(?:\.opt-(?P<opt>[12]))?\.pyc")


def drop_old_bytecode(store: Any, evolved: Path) -> list[tuple[str, str, list[str]]]:
    """Remove, once per node, the `__pycache__` that workers before this change wrote into pinned
    folders; (tool id, version, files removed) for each folder cleaned.

    The rule: until `.tooldeck/.evolved-no-bytecode` exists, a `__pycache__` inside a pinned version's folder
    is removed when every file in it is bytecode the old worker would have written for a pinned
    `.py` beside it: named `<stem>.<this interpreter's cache tag>[.opt-N].pyc`, timestamp-based
    (what Python's loader writes; `py_compile`'s hash-based kind is not), recording the pinned
    size, and holding the very code object the pinned source compiles to. Anything else stays
    and is reported as tampering (a planted `.pyc` does not pass the last test). The marker is
    then written, and from then on every `__pycache__` in a pinned folder is tampering. Removing
    what passes hides nothing: it is the approved code, and no worker reads bytecode any more.
    """
    from tools.errors import ToolError
    from tools.ids import check_tool_id, check_version

    marker = evolved.parent / NO_BYTECODE_MARKER
    if marker.exists():
        return []
    cleaned = []
    for tool_id, version in sorted(approved.pinned_versions(store)):
        try:
            check_tool_id(tool_id)
            check_version(version)
        except ToolError:
            continue
        folder = evolved / tool_id / version
        if folder.is_dir() and not folder.is_symlink():
            removed = _drop_in(folder, pinned(store, tool_id, version))
            if removed:
                cleaned.append((tool_id, version, removed))
    marker.parent.mkdir(parents=True, exist_ok=True)
    marker.write_text("Pinned folders under evolved/ hold no bytecode: a __pycache__ in one is tampering.\n")
    return cleaned


def _drop_in(folder: Path, pins: dict[str, tuple[str, int]]) -> list[str]:
    removed: list[str] = []
    for dirpath, dirnames, _filenames in os.walk(folder):
        dirnames[:] = sorted(d for d in dirnames if not os.path.islink(os.path.join(dirpath, d)))
        if "__pycache__" not in dirnames:
            continue
        cache = Path(dirpath) / "__pycache__"
        files = sorted(cache.iterdir())
        if not files:
            cache.rmdir()
            dirnames.remove("__pycache__")
        elif all(_old_bytecode(folder, pyc, pins) for pyc in files):
            shutil.rmtree(cache)
            removed += [pyc.relative_to(folder).as_posix() for pyc in files]
            dirnames.remove("__pycache__")
        else:
            log.warning("%s holds files that are not the bytecode of its approved code; left for the pins to report",
                        cache)
    return removed


def _old_bytecode(folder: Path, pyc: Path, pins: dict[str, tuple[str, int]]) -> bool:
    """Is `pyc` what Python's loader wrote for a pinned source beside its folder? (see drop_old_bytecode)"""
    match = _PYC.fullmatch(pyc.name)
    if match is None or match["tag"] != sys.implementation.cache_tag or pyc.is_symlink() or not pyc.is_file():
        return False
    source = (pyc.parent.parent / f"{match['stem']}.py").relative_to(folder).as_posix()
    if source not in pins:
        return False
    try:
        data = pyc.read_bytes()
        code = (folder / source).read_bytes()
    except OSError:
        return False
    sha, size = pins[source]
    if (len(data) < 16 or data[:4] != importlib.util.MAGIC_NUMBER or int.from_bytes(data[4:8], "little") != 0
            or int.from_bytes(data[12:16], "little") != size & 0xFFFFFFFF or hashlib.sha256(code).hexdigest() != sha):
        return False
    try:
        found = marshal.loads(data[16:])
        expected = compile(code, str(folder / source), "exec", dont_inherit=True, optimize=int(match["opt"] or 0))
    except Exception:  # noqa: BLE001 - malformed or planted bytes: not ours, so left for the pins to report
        return False
    return bool(found == expected)  # code objects compare by their bytecode, constants and names
