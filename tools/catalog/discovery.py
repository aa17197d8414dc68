"""Finding tool manifests on disk: the catalog roots and the evolved versions.

Discovery only lists files (the id is the file stem), so it is fast enough to run
before anything is parsed, and `get_tool` can find one tool without parsing all.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from tools.catalog.entry import Problem, ToolEntry
from tools.ids import TOOL_ID_RE, VERSION_RE

PACKAGE_DIR = Path(__file__).resolve().parents[1]  # tools/
BUILTIN_DIR = PACKAGE_DIR / "builtins"
DEMO_DIR = PACKAGE_DIR / "demo"
MANIFEST_SUFFIXES = (".yaml", ".yml")

@dataclass(frozen=True, slots=True)
class Root:
    path: Path
    source: str  # builtin | demo | workspace


def is_own_package(path: Path) -> bool:
    try:
        return path.resolve() == PACKAGE_DIR
    except OSError:
        return False


def escapes(path: Path, folder: Path) -> str | None:
    """The one-line refusal of a path under `folder` that resolves outside it (it, or a folder on
    the way, is a symlink pointing out of the catalog folder being scanned); None if it stays inside."""
    base = folder.resolve()
    try:
        target = path.resolve()
    except (OSError, RuntimeError) as exc:  # a symlink loop
        return f"{path}: cannot resolve: {exc}"
    if target == base or base in target.parents:
        return None
    what = "folder" if target.is_dir() else "manifest"
    return f"{path}: symlinked {what} resolves to {target}, outside the catalog folder {base}; refused"


def discover_root(root: Root) -> tuple[list[ToolEntry], list[Problem]]:
    """`root/<id>.yaml` and `root/<folder>/<id>.yaml`; the id is the file stem. A manifest or a
    folder that is a symlink pointing outside `root` is refused (a Problem), not followed."""
    entries: dict[str, ToolEntry] = {}
    problems: list[Problem] = []
    if not root.path.is_dir():
        return [], []
    candidates: list[Path] = []

    def outside(item: os.DirEntry[str]) -> bool:
        problem = escapes(Path(item.path), root.path) if item.is_symlink() else None
        if problem is not None:
            problems.append(Problem(Path(item.path), problem))
        return problem is not None

    def kind(item: os.DirEntry[str]) -> str | None:
        """The entry's kind: "file", "dir" or None (neither, or unreadable). `DirEntry.is_file` raises for a symlink loop, and one
        such manifest stopped the whole catalog: a manifest's name that cannot be read is a Problem instead."""
        try:
            return "file" if item.is_file() else "dir" if item.is_dir() else None
        except OSError as exc:
            if item.name.endswith(MANIFEST_SUFFIXES) and not outside(item):  # a loop is named by `escapes`
                problems.append(Problem(Path(item.path), f"{item.path}: cannot read: {exc.strerror or exc}"))
            return None

    def scan(folder: str) -> list[os.DirEntry[str]]:
        try:
            with os.scandir(folder) as it:
                return sorted(it, key=lambda d: d.name)
        except OSError as exc:
            problems.append(Problem(Path(folder), f"{folder}: cannot list: {exc.strerror or exc}"))
            return []

    for item in scan(str(root.path)):
        found = kind(item)
        if found == "file" and item.name.endswith(MANIFEST_SUFFIXES):
            if not outside(item):
                candidates.append(Path(item.path))
        elif found == "dir" and not item.name.startswith((".", "_")):
            if outside(item):
                continue
            candidates.extend(Path(s.path) for s in scan(item.path)
                              if s.name.endswith(MANIFEST_SUFFIXES) and kind(s) == "file" and not outside(s))
    for path in candidates:
        stem = path.name.rsplit(".", 1)[0]
        if stem.startswith(".") or stem.endswith("~"):
            continue
        if not TOOL_ID_RE.fullmatch(stem):
            problems.append(Problem(path, f"{path}: file name {stem!r} is not a valid tool id (^[a-z][a-z0-9_]{{0,63}}$)"))
            continue
        if stem in entries:
            problems.append(Problem(path, f"{path}: duplicate tool id {stem!r} (first defined in {entries[stem].path})"))
            continue
        entries[stem] = ToolEntry(stem, path, root.source)
    return list(entries.values()), problems


def discover_evolved(evolved_dir: Path) -> tuple[list[ToolEntry], list[Problem]]:
    """`evolved/<id>/<version>/<id>.yaml`: versions that exist beside their base tool (none of
    them, nor a folder on the way, may be a symlink pointing outside the evolved folder)."""
    entries: list[ToolEntry] = []
    problems: list[Problem] = []
    if not evolved_dir.is_dir():
        return entries, problems
    for tool_dir in sorted(p for p in evolved_dir.iterdir() if p.is_dir()):
        if not TOOL_ID_RE.fullmatch(tool_dir.name):
            problems.append(Problem(tool_dir, f"{tool_dir}: not a valid tool id"))
            continue
        for vdir in sorted(p for p in tool_dir.iterdir() if p.is_dir()):
            if not VERSION_RE.fullmatch(vdir.name):
                continue
            path = vdir / f"{tool_dir.name}.yaml"
            if path.is_file():
                problem = escapes(path, evolved_dir)
                if problem is not None:
                    problems.append(Problem(path, problem))
                    continue
                entries.append(ToolEntry(tool_dir.name, path, "evolved", version=vdir.name))
    return entries, problems


def roots_for(workspace: Path, *, demo: bool, extra: Iterable[Path] = ()) -> list[Root]:
    roots = [Root(BUILTIN_DIR, "builtin")]
    if demo:
        roots.append(Root(DEMO_DIR, "demo"))
    ws_tools = workspace / "tools"
    if ws_tools.is_dir() and not is_own_package(ws_tools):
        roots.append(Root(ws_tools, "workspace"))
    roots.extend(Root(Path(p), "workspace") for p in extra)
    return roots
