"""Identifiers from input never reach a path unvalidated."""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Iterable
from pathlib import Path

from tools.errors import InvalidIdError, UsageError

TOOL_ID_RE = re.compile(r"^[a-z][a-z0-9_]{0,63}\Z")
#: buffer ids and similar names: a little more lenient (dashes, capitals), still no path parts
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,127}\Z")
VERSION_RE = re.compile(r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)\Z")


def _show(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def check_tool_id(value: object, what: str = "tool id") -> str:
    if not isinstance(value, str) or not TOOL_ID_RE.fullmatch(value):
        raise InvalidIdError(
            f"invalid {what} {_show(value)}: must match ^[a-z][a-z0-9_]{{0,63}}$ (lowercase letters, digits, underscore)"
        )
    return value


def check_name(value: object, what: str = "name") -> str:
    if not isinstance(value, str) or not NAME_RE.fullmatch(value) or ".." in value:
        raise InvalidIdError(
            f"invalid {what} {_show(value)}: use 1-128 letters, digits, '_', '-' or '.', starting with a letter or digit"
        )
    return value


def check_version(value: object) -> str:
    if not isinstance(value, str) or not VERSION_RE.fullmatch(value):
        raise InvalidIdError(f"invalid version {_show(value)}: expected MAJOR.MINOR.PATCH, e.g. 1.2.0")
    return value


def parse_version(value: str) -> tuple[int, int, int]:
    major, minor, patch = check_version(value).split(".")
    return int(major), int(minor), int(patch)


def inside(base: Path, candidate: Path) -> Path:
    """Resolve `candidate` (relative to `base`) and refuse anything outside `base`."""
    base = base.resolve()
    target = (base / candidate).resolve()
    if target != base and base not in target.parents:
        raise InvalidIdError(f"path {str(candidate)!r} resolves outside {base}")
    return target


def closest(name: str, choices: Iterable[str], n: int = 3) -> list[str]:
    return difflib.get_close_matches(name, list(choices), n=n, cutoff=0.5)


def resolve_workspace(workspace: str | os.PathLike[str] | None) -> Path:
    """The workspace folder; it must exist (a typo must not create a directory tree).

    Here, not in tools.runtime, so the dashboard checks its path without importing the runtime
    (the catalog, pydantic, yaml) on the way to its first frame."""
    raw = workspace or os.environ.get("TOOLDECK_WORKSPACE") or os.getcwd()
    path = Path(raw).expanduser().resolve()
    if not path.is_dir():
        what = "is not a directory" if path.exists() else "does not exist"
        raise UsageError(f"workspace {path} {what}")
    return path
