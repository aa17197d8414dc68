"""The tool index persisted in the workspace: one file per node, written whole and atomically, checked on load.

Why: embedding and indexing 100,000 tools took ~90 s at every start; with the index on disk a
restart embeds only the tools whose embedded text changed (state/memory.py compares each
point's text hash with the one the file recorded).

Where: `<tooldeck home>/index/<host>-<catalog key>.tools`. One per node: the host, because a
workspace (or `TOOLDECK_HOME`) may be shared by several machines, each of which indexes its own
catalog files (on PostgreSQL the catalog is shared, the index is not); the catalog key (a hash
of the catalog's folders), because two runtimes of one workspace may load different folders
(`--demo`, extra roots) and would otherwise overwrite each other's file at every start. Two
processes with the same key write the same content; the last whole file wins.

Format (one file, so the vectors and the map of what they are about can never disagree):
`MAGIC`, then a header (format version, metadata length, blob length, sha256 of metadata and
blob), then the metadata (JSON) and the blob (usearch's own serialisation). A file that is
missing is no error; one that is torn, corrupt or of another format raises `IndexFileError`
naming the file and what is wrong, and the caller rebuilds from the catalog.

Writes go to a temporary file in the same folder, are fsynced, then `os.replace`d over the old
one, and the folder is fsynced: a crash leaves the old file or the new one, never half of one.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import secrets
import struct
from pathlib import Path
from typing import Any

MAGIC = b"TDINDEX\n"
#: Bumped whenever the layout of the file or the meaning of its metadata changes: older files are rebuilt.
FORMAT = 2
_HEADER = struct.Struct("<IQQ32s")


class IndexFileError(Exception):
    """A persisted index that cannot be used as it is (torn, corrupt, foreign); names the file and the cause."""


def index_path(home: Path, host: str, roots: list[str]) -> Path:
    """Where this node keeps its tool index (see the module docstring for the parts of the name)."""
    safe_host = re.sub(r"[^A-Za-z0-9_.-]+", "_", host)[:64] or "host"
    key = hashlib.sha256("\n".join(roots).encode()).hexdigest()[:12]
    return home / "index" / f"{safe_host}-{key}.tools"


def write(path: Path, meta: dict[str, Any], blob: bytes | bytearray) -> int:
    """Replace `path` with metadata and blob, atomically and durably; returns the bytes written."""
    body = json.dumps(meta, separators=(",", ":")).encode()
    digest = hashlib.sha256(body)
    digest.update(blob)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    try:
        with open(tmp, "wb") as out:
            out.write(MAGIC)
            out.write(_HEADER.pack(FORMAT, len(body), len(blob), digest.digest()))
            out.write(body)
            out.write(blob)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    folder = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(folder)
    finally:
        os.close(folder)
    return len(MAGIC) + _HEADER.size + len(body) + len(blob)


def read(path: Path) -> tuple[dict[str, Any], memoryview] | None:
    """(metadata, blob) of the file at `path`; None when there is none; IndexFileError when it is unusable."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise IndexFileError(f"{path}: cannot be read: {exc}") from exc
    start = len(MAGIC) + _HEADER.size
    if len(data) < start or not data.startswith(MAGIC):
        raise IndexFileError(f"{path}: not a tooldeck index file (or torn before its header), {len(data)} bytes")
    version, meta_len, blob_len, want = _HEADER.unpack_from(data, len(MAGIC))
    if version != FORMAT:
        raise IndexFileError(f"{path}: format {version}, this tooldeck reads format {FORMAT}")
    if len(data) != start + meta_len + blob_len:
        raise IndexFileError(f"{path}: torn: {len(data)} bytes, the header says {start + meta_len + blob_len}")
    view = memoryview(data)
    digest = hashlib.sha256(view[start:start + meta_len])
    digest.update(view[start + meta_len:])
    if digest.digest() != want:
        raise IndexFileError(f"{path}: corrupt: its checksum does not match its content")
    try:
        meta = json.loads(bytes(view[start:start + meta_len]))
    except ValueError as exc:
        raise IndexFileError(f"{path}: unreadable metadata: {exc}") from exc
    if not isinstance(meta, dict):
        raise IndexFileError(f"{path}: unreadable metadata: not an object")
    return meta, view[start + meta_len:]
