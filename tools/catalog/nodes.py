"""Catalogs stay per node; the same (id, version) must be the same files on every live node.

Each node loads its own catalog folder. When several nodes share one database, each records, for
every (id, version) of its catalog, the sha256 of the manifest it loaded and of the code file that
manifest runs (`catalog_manifests`, one row per node: two runtimes on one host may load different
folders). A tool whose manifest or code differs from what another live node (`state.runtimes`)
loaded is an error here, and there: calls are refused until the files agree, since one id and
version running two programs would mix their scores, circuits, promotions and recorded calls.
Rows of nodes no longer live are dropped as this node writes its own.

The `sha256` column holds the manifest's hash, then, when the manifest runs a code file in its
folder (`code_file`: a python entry's file, an executable's `{tool_dir}/...` script), that file's
hash and its name: `<manifest sha256> <code sha256> <name>`. A node that published the manifest's
hash alone (tooldeck before code was compared) is compared on the manifest only.
"""

from __future__ import annotations

import hashlib
import os
import stat
import threading
import time
from pathlib import Path
from typing import Any

from state import StoreError
from state.runtimes import live_runtimes
from tools.catalog.manifest import Manifest, code_file

REFRESH_SECONDS = 2.0
#: rows of nodes gone are dropped at most this often (a scan of the table: each flush of a full
#: load of 100,000 manifests did it, ~10 ms each)
SWEEP_SECONDS = 30.0
#: after a manifest was (re)loaded here, the other hosts' rows are read again once they are this old
FRESH_AFTER_NOTE_SECONDS = 0.25


def manifest_sha(text: str) -> str:
    """The hash of a manifest as loaded (its parsed data as JSON, so formatting alone does not differ)."""
    return hashlib.sha256(text.encode()).hexdigest()


def published_sha(manifest_text: str, manifest: Manifest, tool_dir: Path) -> str:
    """What this node publishes for one (id, version): the manifest's hash and, when it runs a code file
    in `tool_dir` that can be read, that file's hash and name (one small file read per tool)."""
    sha = manifest_sha(manifest_text)
    path = code_file(manifest, tool_dir)
    code = _file_sha(path) if path is not None else None
    if path is None or code is None:
        return sha  # no code file, or none to read: the load or the call says why
    where, folder = str(path), str(tool_dir) + os.sep  # string work: pathlib's relative_to costs ~6 us a tool
    return f"{sha} {code} {where[len(folder):] if where.startswith(folder) else path.name}"


def _file_sha(path: Path) -> str | None:
    """sha256 of a regular file's bytes; None when it is not one or cannot be read (a FIFO is not waited on)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except OSError:
        return None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        digest = hashlib.sha256()  # plain reads: hashlib.file_digest's 256 KB buffer costs ~15 us a small file
        while chunk := os.read(fd, 1 << 20):
            digest.update(chunk)
        return digest.hexdigest()
    except OSError:
        return None
    finally:
        os.close(fd)


def _split(published: str) -> tuple[str, tuple[str, str] | None]:
    """A published value as (manifest sha256, (code sha256, code file name) or None)."""
    parts = published.split(" ", 2)
    return parts[0], (parts[1], parts[2]) if len(parts) == 3 else None


def differs(node: str, theirs: str, mine: str) -> str | None:
    """Which file differs between another node's published value and this node's, as a sentence; None if none."""
    their_manifest, their_code = _split(theirs)
    my_manifest, my_code = _split(mine)
    if their_manifest != my_manifest:
        return (f"manifest differs from node {node}'s (sha256 {their_manifest[:12]}... there, {my_manifest[:12]}... here): "
                "every node needs the same catalog files")
    if their_code is not None and my_code is not None and their_code != my_code:
        return (f"code file {my_code[1]} differs from node {node}'s (sha256 {their_code[0][:12]}... there, "
                f"{my_code[0][:12]}... here): every node needs the same catalog files")
    return None


class NodeManifests:
    """This host's manifest hashes in the shared store, and the other live hosts' for comparison."""

    def __init__(self, store: Any, host: str, node: str) -> None:
        self.store = store
        self.host = host
        self.node = node
        self._lock = threading.Lock()
        self._pending: dict[tuple[str, str], tuple[str, str]] = {}
        self._others: dict[tuple[str, str], dict[str, str]] = {}
        self._at = -1e9
        self._noted_since = False  # a manifest was (re)loaded since the last read of the other hosts
        self._swept_at = -1e9  # when rows of nodes gone were last dropped (time.monotonic)

    def note(self, tool_id: str, version: str, sha: str, path: str) -> None:
        with self._lock:
            self._pending[(tool_id, version)] = (sha, path)
            self._noted_since = True  # compare against rows at most FRESH_AFTER_NOTE_SECONDS old

    def flush(self) -> None:
        with self._lock:
            pending, self._pending = self._pending, {}
        if not pending:
            return
        now = self.store.now()
        sweep = time.monotonic() - self._swept_at >= SWEEP_SECONDS
        live = sorted({r["node"] for r in live_runtimes(self.store)} | {self.node}) if sweep else []
        with self.store.tx() as con:
            con.executemany(
                "INSERT INTO catalog_manifests(tool_id, version, node, host, sha256, path, updated) VALUES (?,?,?,?,?,?,?)"
                " ON CONFLICT (tool_id, version, node) DO UPDATE SET sha256=excluded.sha256, path=excluded.path,"
                " updated=excluded.updated",
                [(t, v, self.node, self.host, sha, path, now) for (t, v), (sha, path) in sorted(pending.items())])
            if sweep:  # rows of nodes gone (a restart is a new node), left a minute for a node starting up
                con.execute(f"DELETE FROM catalog_manifests WHERE updated < ? AND node NOT IN ({','.join('?' * len(live))})",
                            (now - 60, *live))
        if sweep:
            self._swept_at = time.monotonic()

    def _other_hosts(self) -> dict[tuple[str, str], dict[str, str]]:
        # A reloaded manifest is compared against fresh rows; a full load of many manifests (each
        # noted) reads them once per FRESH_AFTER_NOTE_SECONDS, not once per manifest.
        if time.monotonic() - self._at < (FRESH_AFTER_NOTE_SECONDS if self._noted_since else REFRESH_SECONDS):
            return self._others
        self._noted_since = False
        live = {r["node"] for r in live_runtimes(self.store)} - {self.node}
        rows = self.store.query("SELECT m.tool_id, m.version, m.node, m.sha256 FROM catalog_manifests m WHERE m.node <> ?",
                                (self.node,)) if live else []
        others: dict[tuple[str, str], dict[str, str]] = {}
        for r in rows:
            if r[2] not in live:
                continue
            others.setdefault((r[0], r[1]), {})[r[2]] = r[3]
        self._others, self._at = others, time.monotonic()
        return others

    def conflict(self, tool_id: str, version: str, sha: str | None) -> str | None:
        """Why this tool may not serve (another live node loaded another manifest or code file for it), or None."""
        if sha is None:
            return None
        for node, theirs in sorted(self._other_hosts().get((tool_id, version), {}).items()):
            if theirs != sha and (reason := differs(node, theirs, sha)):
                return reason
        return None

    def check(self, tool_id: str, version: str, sha: str | None, path: str, *, note: bool = False) -> str | None:
        """`conflict`, after recording this node's hash when `note`; None while the store cannot answer
        (this node's files serve, and are compared again at the next check)."""
        if note and sha is not None:
            self.note(tool_id, version, sha, path)
        try:
            return self.conflict(tool_id, version, sha)
        except StoreError:
            return None
