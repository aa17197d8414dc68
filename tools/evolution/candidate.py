"""A proposal's candidate, read once: the diff a person reviews, its sha256, and the bytes an approval pins.

A reviewer approves the sha256 of a diff; what serves is pinned by the sha256 of each file. Both are
made here from one read of each file, so a file swapped on disk between the diff and the pins is
never pinned unseen: an approval pins exactly the bytes its diff was made of (and serving checks the
files on disk against those pins). Validation keeps the same bytes (`proposal_files`), so a later
read says which files changed since.

The diff shows each file as UTF-8 text. A candidate whose files a reader of the diff would read
otherwise than the interpreter or the manifest loader does is named in `problems`; validation and
approval refuse it:

- a coding cookie on the code's first two lines (`# -*- coding: unicode_escape -*-` runs a line the
  diff shows as a comment; `latin-1` runs the bytes shown as `ÿ` as `Ã¿`): Python honours it, and so
  do other interpreters (Ruby's magic comment has the same form), so a code file may declare UTF-8 or
  nothing;
- bytes that are not UTF-8, in the code or the manifest: shown in the diff as `\\xNN` escapes under a
  note that names the file and its sha256 (the diff's hash then still binds the real bytes), never
  silently replaced by U+FFFD;
- a code file outside the candidate's folder, which the pins would not cover.

A UTF-8 byte order mark is read alike by all (Python, the YAML loader) and shown as `<U+FEFF>`.
"""

from __future__ import annotations

import codecs
import difflib
import hashlib
import io
import os
import re
import stat
import tokenize
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tools.catalog import Manifest, code_file, manifest_data_from_bytes, validate_manifest
from tools.errors import ToolError

#: how Python finds a coding cookie (tokenize.detect_encoding uses the same form), for the line a refusal quotes
_COOKIE = re.compile(rb"^[ \t\f]*#.*?coding[:=][ \t]*([-\w.]+)", re.ASCII)
_UTF8 = ("utf-8", "utf-8-sig")


@dataclass(frozen=True)
class Candidate:
    """One read of a candidate's folder and of its parent, and the diff made of exactly those bytes."""

    folder: Path
    files: dict[str, bytes]  # every file under the folder that could be read, by its path inside it
    unreadable: dict[str, str]  # the others (a FIFO, a symlink to a folder, no permission), with why
    shown: frozenset[str]  # the files an approval may pin: the manifest and the code file it runs, as the diff shows them
    diff: str
    sha256: str
    problems: tuple[str, ...]  # why a file would not run or load as the diff shows it
    manifest_error: str | None  # why the candidate's manifest does not load (None: it loads)

    def unshown(self) -> list[str]:
        """Files in the folder the reviewer's diff does not show (an approval refuses them)."""
        return sorted((set(self.files) | set(self.unreadable)) - self.shown)

    def names(self) -> set[str]:
        return set(self.files) | set(self.unreadable)

    def digest(self, name: str) -> tuple[str, int]:
        """sha256 and size of a file as this read saw it; OSError when it could not be read."""
        if name in self.unreadable:
            raise OSError(self.unreadable[name])
        data = self.files[name]
        return hashlib.sha256(data).hexdigest(), len(data)

    def changed_from(self, kept: Mapping[str, tuple[str, int]]) -> list[str]:
        """The files that differ from `kept` (name -> sha256, size): changed, added or gone."""
        out = []
        for name in sorted(self.names() | set(kept)):
            try:
                now = self.digest(name)[0] if name in self.names() else None
            except OSError:
                now = None
            if now is None or name not in kept or kept[name][0] != now:
                out.append(name)
        return out


def source_problem(name: str, data: bytes) -> str | None:
    """Why an interpreter would not read the code file `data` as the UTF-8 text its diff shows, or None."""
    problem = utf8_problem(name, data)
    if problem is not None:
        return problem
    try:
        encoding = tokenize.detect_encoding(io.BytesIO(data).readline)[0]
    except SyntaxError as exc:  # an unknown encoding, or a cookie that contradicts a byte order mark
        return f"{name}: {exc.msg}; Python would not read it as the UTF-8 text the diff shows"
    try:
        normal = codecs.lookup(encoding).name
    except LookupError:  # pragma: no cover - detect_encoding looked it up already
        normal = encoding
    if normal in _UTF8:
        return None
    line_no, line = next(((n, text) for n, text in enumerate(data.split(b"\n")[:2], 1) if _COOKIE.match(text)), (1, b""))
    cookie = line.rstrip(b"\r").decode("utf-8").strip()[:120]
    return (f"{name}:{line_no}: the coding cookie {cookie!r} makes Python read this file as {normal}, not as the UTF-8 "
            "text the diff shows; code must be UTF-8 without a cookie that says otherwise")


def utf8_problem(name: str, data: bytes) -> str | None:
    """Why `data` is not UTF-8 text (the only encoding the diff shows faithfully), or None."""
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        return (f"{name}:{line}: not UTF-8 (byte 0x{data[exc.start]:02x} at offset {exc.start}); the diff shows it as "
                "\\xNN escapes, and what would run or load is not that text")
    return None


def _read_regular(path: Path) -> bytes:
    """A regular file's bytes (a symlink followed, as the loaders do); a FIFO or a device is refused without
    blocking on it."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise OSError(f"{path}: not a regular file")
        with os.fdopen(fd, "rb", closefd=False) as fh:
            return fh.read()
    finally:
        os.close(fd)


def _read_folder(folder: Path) -> tuple[dict[str, bytes], dict[str, str]]:
    from tools.evolution.pins import folder_files

    files: dict[str, bytes] = {}
    unreadable: dict[str, str] = {}
    for name, path in folder_files(folder).items():
        try:
            files[name] = _read_regular(path)
        except OSError as exc:
            unreadable[name] = f"{path}: cannot read: {exc.strerror or exc}"
    return files, unreadable


def _manifest(raw: bytes | None, path: Path) -> tuple[Manifest | None, str | None]:
    if raw is None:
        return None, f"{path}: missing"
    try:
        return validate_manifest(manifest_data_from_bytes(raw, path), path), None
    except ToolError as exc:
        return None, exc.message


def _shown(data: bytes) -> tuple[str, bool]:
    """The text the diff shows for `data`, and whether it is exact: UTF-8 as it is, anything else with its
    undecodable bytes spelled `\\xNN` (never replaced by U+FFFD, which would make two files one diff)."""
    try:
        return data.decode("utf-8"), True
    except UnicodeDecodeError:
        return data.decode("utf-8", errors="backslashreplace"), False


def _lines(text: str) -> list[str]:
    """`text`'s lines, each with its newline, split at `\\n` only: `splitlines` would also break at \\r, \\x0b,
    \\x0c, \\x1c-\\x1e, \\x85 and U+2028/U+2029, and the diff would show a line break the file does not have
    (the same rule as `tools.visible.marked_lines`, which shows the diff)."""
    parts = text.split("\n")
    lines = [part + "\n" for part in parts[:-1]]
    if parts[-1]:
        lines.append(parts[-1])
    return lines


def _parent(manifest_path: Path | None) -> tuple[bytes, str | None, bytes]:
    """The parent's manifest bytes, its code file's name and bytes (b"" for what is not there)."""
    if manifest_path is None:
        return b"", None, b""
    try:
        raw = _read_regular(manifest_path)
    except OSError:
        return b"", None, b""
    manifest, _error = _manifest(raw, manifest_path)
    path = code_file(manifest, manifest_path.parent)
    if path is None:
        return raw, None, b""
    try:
        return raw, path.name, _read_regular(path)
    except OSError:
        return raw, path.name, b""


def name_inside(folder: Path, path: Path) -> str | None:
    """`path`'s name inside `folder` (lexically: the pins name files so), or None when it is outside."""
    rel = os.path.normpath(os.path.relpath(path, folder))
    return None if rel == os.curdir or rel.startswith(os.pardir) or os.path.isabs(rel) else Path(rel).as_posix()


def read_candidate(proposal: Mapping[str, Any]) -> Candidate:
    """Read the candidate's folder (`proposal["path"]` is its manifest) and its parent once; the diff (manifest,
    then code) of the candidate against its parent made of those bytes, and the diff's sha256."""
    manifest_path = Path(proposal["path"])
    folder = manifest_path.parent
    files, unreadable = _read_folder(folder)
    manifest_name = manifest_path.name
    raw_manifest = files.get(manifest_name)
    manifest, manifest_error = _manifest(raw_manifest, manifest_path)
    problems: list[str] = []
    if raw_manifest is not None:
        problem = utf8_problem(manifest_name, raw_manifest)
        if problem is not None:
            problems.append(problem)
    code_path = code_file(manifest, folder)
    runs = name_inside(folder, code_path) if code_path is not None else None  # the code file the manifest runs
    if code_path is not None and runs is None:
        problems.append(f"{manifest_name}: runs {code_path}, a file outside {folder} (its approval would not cover it)")
    code_name = runs
    if code_path is None:  # an invalid candidate manifest, or one that names no code file: show its .py file
        found = sorted(n for n in files if "/" not in n and n.endswith(".py"))
        code_name = found[0] if found else None
    code = files.get(code_name, b"") if code_name is not None else b""
    if code_name is not None and code_name in files:
        problem = source_problem(code_name, code)
        if problem is not None:
            problems.append(problem)

    parent_path = Path(proposal["parent_path"]) if proposal.get("parent_path") else None
    old_manifest, old_code_name, old_code = _parent(parent_path)
    parent = proposal.get("parent_version") or "none"
    version = proposal.get("version")
    name = f"{proposal['tool_id']}.yaml"
    new_label = f"b/{Path(code_name).name if code_name else '/dev/null'} ({version})"
    old_label = f"a/{old_code_name or '/dev/null'} ({parent})"
    sides = [(f"a/{name} ({parent})", old_manifest), (f"b/{name} ({version})", raw_manifest or b""),
             (old_label, old_code), (new_label, code)]
    texts = [_shown(data) for _label, data in sides]
    parts: list[str] = []
    parts.extend(difflib.unified_diff(_lines(texts[0][0]), _lines(texts[1][0]), sides[0][0], sides[1][0]))
    parts.extend(difflib.unified_diff(_lines(texts[2][0]), _lines(texts[3][0]), sides[2][0], sides[3][0]))
    for (label, data), (_text, exact) in zip(sides, texts, strict=True):
        if not exact:  # the note binds the real bytes into the diff's hash, and says what the escapes are
            parts.append(f"\\ {label}: not UTF-8; its undecodable bytes are shown as \\xNN escapes "
                         f"(sha256 of the file: {hashlib.sha256(data).hexdigest()})")
    text = "".join(p if p.endswith("\n") else p + "\n" for p in parts)
    shown = {manifest_name} | ({runs} if runs is not None else set())
    return Candidate(folder, files, unreadable, frozenset(shown), text, hashlib.sha256(text.encode("utf-8")).hexdigest(),
                     tuple(problems), manifest_error)
