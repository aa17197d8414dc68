"""One memory and pids cgroup per sandboxed run: the run bounded as a whole.

rlimits bound each process (`RLIMIT_AS` per process, up to 64 processes: six children held
2.4 GB under a 512 MB setting). A cgroup bounds the run: memory (swap included) and the number
of tasks of every process in it, and the memory the kernel spends on its behalf (tmpfs pages,
inodes, dentries) is charged to it too.

cgroup v2 (`memory.max`, `memory.swap.max` 0, `pids.max`) where the host mounts it with both
controllers, else the v1 `memory` (`memory.limit_in_bytes`, `memory.memsw.limit_in_bytes`) and
`pids` hierarchies. The run's cgroup is made below the runtime's own (so an outer limit on the
runtime still applies), named `tooldeck-sbx-<runtime pid>-<n>`; the launcher's first process
writes itself into it before it starts anything (every later process of the run is born
inside), and it is removed after the run, its leftovers killed. A runtime that cannot make one
(not root, no controller, a v2 cgroup that holds processes itself) says why in the result.
"""

from __future__ import annotations

import itertools
import os
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path("/sys/fs/cgroup")
PREFIX = "tooldeck-sbx-"
_serial = itertools.count(1)


@dataclass
class RunCgroup:
    """The cgroup directories of one run (empty when there is none) and what they enforce."""

    dirs: list[Path] = field(default_factory=list)
    label: str = ""  # "cgroup v1: memory 512 MB (swap 0), pids 64" or "none: why"
    version: int = 0

    @property
    def held(self) -> bool:
        return bool(self.dirs)

    def procs_files(self) -> list[str]:
        """Where the launcher's first process writes its pid."""
        return [str(d / "cgroup.procs") for d in self.dirs]

    def oom_kills(self) -> int:
        """How many processes the kernel killed for the run's memory limit."""
        name = "memory.events" if self.version == 2 else "memory.oom_control"
        return sum(_counter(d / name, "oom_kill") for d in self.dirs)

    def pids_refused(self) -> int:
        """How many forks the run's pids limit refused."""
        return sum(_counter(d / "pids.events", "max") for d in self.dirs if (d / "pids.events").exists())

    def remove(self) -> str | None:
        """Kill what is left in the run's cgroups and remove them; why not, or None."""
        problems = [p for p in (_remove(d) for d in self.dirs) if p]
        self.dirs = []
        return "; ".join(problems) or None


def _counter(path: Path, key: str) -> int:
    try:
        for line in path.read_text().splitlines():
            name, _, value = line.partition(" ")
            if name == key:
                return int(value)
    except (OSError, ValueError):
        pass
    return 0


def _own(controller: str) -> str | None:
    """This process's cgroup path in the hierarchy of `controller` ("" for v2's unified one)."""
    try:
        lines = Path("/proc/self/cgroup").read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        _id, names, path = line.split(":", 2)
        if controller in names.split(","):
            return path
    return None


def create(memory_mb: int, max_pids: int) -> RunCgroup:
    """A fresh cgroup for one run, or an empty one that says why there is none."""
    if (ROOT / "cgroup.controllers").exists():
        return _create_v2(memory_mb, max_pids)
    if (ROOT / "memory" / "cgroup.procs").exists():
        return _create_v1(memory_mb, max_pids)
    return RunCgroup(label=f"none: no cgroup v2 with memory and pids, nor a v1 memory hierarchy, under {ROOT}")


def _name() -> str:
    return f"{PREFIX}{os.getpid()}-{next(_serial)}"


def _create_v1(memory_mb: int, max_pids: int) -> RunCgroup:
    made: list[Path] = []
    limit = str(memory_mb << 20)
    name = _name()
    try:
        memory = ROOT / "memory" / (_own("memory") or "/").lstrip("/") / name
        memory.mkdir()
        made.append(memory)
        (memory / "memory.limit_in_bytes").write_text(limit)
        swap = "swap not counted (no memory.memsw)"
        if (memory / "memory.memsw.limit_in_bytes").exists():
            (memory / "memory.memsw.limit_in_bytes").write_text(limit)
            swap = "swap 0"
        pids_root = ROOT / "pids"
        pids = "no pids hierarchy"
        if (pids_root / "cgroup.procs").exists():
            group = pids_root / (_own("pids") or "/").lstrip("/") / name
            group.mkdir()
            made.append(group)
            (group / "pids.max").write_text(str(max_pids))
            pids = f"pids {max_pids}"
    except OSError as exc:
        for path in made:
            _remove(path)
        return RunCgroup(label=f"none: cannot make a v1 cgroup: {exc.strerror or exc} ({exc.filename})")
    return RunCgroup(made, f"cgroup v1: memory {memory_mb} MB ({swap}), {pids}", 1)


def _create_v2(memory_mb: int, max_pids: int) -> RunCgroup:
    available = set((ROOT / "cgroup.controllers").read_text().split())
    if not {"memory", "pids"} <= available:
        return RunCgroup(label=f"none: cgroup v2 without the memory and pids controllers ({' '.join(sorted(available))})")
    parent = ROOT / (_own("") or "/").lstrip("/")
    group = parent / _name()
    try:
        enabled = set((parent / "cgroup.subtree_control").read_text().split())
        if not {"memory", "pids"} <= enabled:
            (parent / "cgroup.subtree_control").write_text("+memory +pids")
        group.mkdir()
        (group / "memory.max").write_text(str(memory_mb << 20))
        if (group / "memory.swap.max").exists():
            (group / "memory.swap.max").write_text("0")
        (group / "pids.max").write_text(str(max_pids))
    except OSError as exc:
        _remove(group)
        return RunCgroup(label=f"none: cannot make a v2 cgroup below {parent}: {exc.strerror or exc} "
                               "(not root, or that cgroup holds processes itself)")
    return RunCgroup([group], f"cgroup v2: memory {memory_mb} MB (swap 0), pids {max_pids}", 2)


def _remove(path: Path) -> str | None:
    if not path.exists():
        return None
    deadline = time.monotonic() + 5
    while True:
        try:
            path.rmdir()
            return None
        except OSError as exc:
            if time.monotonic() > deadline:
                return f"{path}: cannot remove: {exc.strerror or exc}"
        if (path / "cgroup.kill").exists():
            try:
                (path / "cgroup.kill").write_text("1")
            except OSError:
                pass
        for pid in _pids(path):
            try:
                os.kill(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        time.sleep(0.002)


def _pids(path: Path) -> list[int]:
    try:
        return [int(p) for p in (path / "cgroup.procs").read_text().split()]
    except (OSError, ValueError):
        return []


def sweep(dead: Callable[[int], bool]) -> list[str]:
    """Remove the run cgroups of runtimes that died mid-validation (`dead(pid)` says which)."""
    removed = []
    bases = [ROOT] if (ROOT / "cgroup.controllers").exists() else [ROOT / "memory", ROOT / "pids"]
    for base in bases:
        controller = "" if base == ROOT else base.name
        own = base / (_own(controller) or "/").lstrip("/")
        for entry in own.glob(f"{PREFIX}*") if own.is_dir() else []:
            pid = entry.name[len(PREFIX):].split("-", 1)[0]
            if pid.isdigit() and int(pid) != os.getpid() and dead(int(pid)) and _remove(entry) is None:
                removed.append(str(entry))
    return removed
