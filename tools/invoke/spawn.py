"""Every child process tooldeck starts is started here, so that none outlives its runtime.

A child gets three things, each for a reason:

- **its own process group** (a new session), so a timeout, an output cap or a close kills it
  together with everything it spawned, and a Ctrl+C in the terminal does not reach it;
- **a parent-death signal** (SIGKILL), so it dies even when the runtime is killed with kill -9.
  Linux sends that signal when the *thread* that forked the child exits, not the process, and a
  uid change clears it. So every child is forked by one long-lived spawner thread (a python
  worker first called from a short-lived thread must not die with that thread), and the signal
  is set by `setpriv --pdeathsig KILL` (util-linux) after any uid change, just before the exec;
- **no `preexec_fn`**: running Python between fork and exec in a threaded process can deadlock
  on a lock another thread held at the fork. Resource limits go through `prlimit` instead.

Where util-linux is missing, a small Python launcher (`-I -S`, ~20 ms more per start) sets the
same limits and signal and checks that its parent is still the runtime before it execs.

The signal reaches the child only, not what it spawned (a shell script's commands). So a small
reaper process per runtime process is told every child's group and kills the groups still there
when the runtime's end of its pipe closes, which kill -9 does too.

An owner (a runtime) keeps its children in a `Children` set and closes it on the way out: every
group still running is killed. Code that must start a child through someone else's API (an MCP
client library) uses `child_argv` for the same wrapping, from a thread that lives as long as the
runtime.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from tools.errors import ToolUnavailableError

T = TypeVar("T")

#: The Python launcher: limits, uid, parent-death signal, a check that the parent still lives, exec.
_PY_LAUNCHER = r"""
import json, os, resource, signal, sys
spec = json.loads(sys.argv[1])
argv = sys.argv[2:]
try:
    for name, soft, hard in spec["rlimits"]:
        resource.setrlimit(getattr(resource, name), (soft, hard))
    if spec["uid"] is not None:
        os.setgroups([])
        os.setgid(spec["gid"])
        os.setuid(spec["uid"])
    if sys.platform.startswith("linux"):
        import ctypes
        if ctypes.CDLL(None, use_errno=True).prctl(1, int(signal.SIGKILL), 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG) failed")
        if os.getppid() != spec["parent"]:
            os._exit(137)
    os.execv(argv[0], argv)
except OSError as exc:
    sys.stderr.write(f"tooldeck launcher: cannot start {argv[0]}: {exc.strerror or exc}\n")
    os._exit(127)
"""


@dataclass(frozen=True, slots=True)
class Limits:
    """Resource limits for one child (None: inherit the runtime's)."""

    memory_mb: int | None = None  # RLIMIT_AS
    cpu_seconds: int | None = None  # RLIMIT_CPU: SIGXCPU at the soft limit, SIGKILL one second later
    file_bytes: int | None = None  # RLIMIT_FSIZE
    processes: int | None = None  # RLIMIT_NPROC (counted per real uid)
    no_core: bool = False  # RLIMIT_CORE 0

    def rlimits(self) -> list[tuple[str, int, int]]:
        """(resource name, soft, hard) for each limit that is set."""
        out: list[tuple[str, int, int]] = []
        if self.memory_mb is not None:
            out.append(("RLIMIT_AS", self.memory_mb << 20, self.memory_mb << 20))
        if self.cpu_seconds is not None:
            out.append(("RLIMIT_CPU", self.cpu_seconds, self.cpu_seconds + 1))
        if self.file_bytes is not None:
            out.append(("RLIMIT_FSIZE", self.file_bytes, self.file_bytes))
        if self.processes is not None:
            out.append(("RLIMIT_NPROC", self.processes, self.processes))
        if self.no_core:
            out.append(("RLIMIT_CORE", 0, 0))
        return out


_PRLIMIT_FLAGS = {"RLIMIT_AS": "--as", "RLIMIT_CPU": "--cpu", "RLIMIT_FSIZE": "--fsize",
                  "RLIMIT_NPROC": "--nproc", "RLIMIT_CORE": "--core"}


@dataclass(frozen=True, slots=True)
class Launcher:
    """How a child's argv is wrapped: `setpriv` (util-linux) or `python` (the fallback)."""

    kind: str
    setpriv: str | None = None
    prlimit: str | None = None
    python: str = sys.executable

    @property
    def parent_death(self) -> bool:
        """Whether children get the parent-death signal here (Linux only)."""
        return sys.platform.startswith("linux")

    def wrap(self, argv: Sequence[str], *, limits: Limits | None = None, user: int | None = None,
             parent: int | None = None) -> list[str]:
        rlimits = limits.rlimits() if limits is not None else []
        if self.kind == "setpriv" and self.setpriv and self.prlimit:
            head: list[str] = []
            if rlimits:
                head += [self.prlimit, *(f"{_PRLIMIT_FLAGS[name]}={soft}:{hard}" for name, soft, hard in rlimits), "--"]
            head += [self.setpriv]
            if user is not None:  # in the same setpriv, which sets the death signal after the uid change
                head += [f"--reuid={user}", f"--regid={user}", "--clear-groups"]
            head += ["--pdeathsig", "KILL", "--"]
            return [*head, *argv]
        spec = {"rlimits": rlimits, "uid": user, "gid": user, "parent": parent or os.getpid()}
        return [self.python, "-I", "-S", "-c", _PY_LAUNCHER, json.dumps(spec), *argv]


def find_launcher() -> Launcher:
    """setpriv and prlimit when both are here and setpriv knows --pdeathsig, else the Python launcher."""
    setpriv, prlimit = shutil.which("setpriv"), shutil.which("prlimit")
    if setpriv and prlimit and sys.platform.startswith("linux"):
        try:
            probe = subprocess.run([setpriv, "--pdeathsig", "KILL", "--", "true"], capture_output=True, timeout=10)
        except (OSError, subprocess.SubprocessError):
            probe = None
        if probe is not None and probe.returncode == 0:
            return Launcher("setpriv", setpriv, prlimit)
    return python_launcher()


def python_launcher() -> Launcher:
    return Launcher("python")


class Children:
    """The live children of one owner (a runtime); `close` kills every group still running."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._procs: set[subprocess.Popen[bytes]] = set()
        self.closed = False

    def _add(self, proc: subprocess.Popen[bytes]) -> bool:
        with self._lock:
            if self.closed:
                return False
            self._procs.add(proc)
            return True

    def discard(self, proc: subprocess.Popen[bytes]) -> None:
        """Forget a child that finished (its owner killed its group already)."""
        with self._lock:
            self._procs.discard(proc)
        _reaper.untrack(proc.pid)

    def pids(self) -> list[int]:
        with self._lock:
            return sorted(p.pid for p in self._procs if p.returncode is None)

    def close(self) -> int:
        """Refuse new children and SIGKILL the process group of each one still known; how many."""
        with self._lock:
            self.closed = True
            procs, self._procs = list(self._procs), set()
        for proc in procs:
            kill_group(proc)
            _reaper.untrack(proc.pid)
        return len(procs)


def kill_group(proc: subprocess.Popen[Any]) -> None:
    """SIGKILL the child's process group (its pid: every child leads a new session)."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def pipe_inodes(*streams: Any) -> set[int]:
    """The inodes of a child's pipes, to find what still holds them after it (kill_holders)."""
    inodes = set()
    for stream in streams:
        if stream is not None:
            try:
                inodes.add(os.fstat(stream.fileno()).st_ino)
            except (OSError, ValueError):
                pass
    return inodes


def kill_holders(inodes: set[int]) -> int:
    """SIGKILL every other process that holds one of these pipes open, with its process group; how many.

    A tool's grandchild that left the tool's group (setsid, or a daemonising double fork) survives
    the group kill; while it holds the tool's stdout or stderr it can only be the tool's. Found in
    /proc (Linux); elsewhere nothing is found.
    """
    links = {f"pipe:[{inode}]" for inode in inodes}
    own_pid, own_group = os.getpid(), os.getpgrp()
    killed = 0
    try:
        pids = [int(name) for name in os.listdir("/proc") if name.isdigit()]
    except OSError:
        return 0
    for pid in pids:
        if pid == own_pid or not _holds(pid, links):
            continue
        with contextlib.suppress(OSError):
            group = os.getpgid(pid)
            if group != own_group:
                os.killpg(group, signal.SIGKILL)
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)
            killed += 1
    return killed


def _holds(pid: int, links: set[str]) -> bool:
    try:
        fds = os.listdir(f"/proc/{pid}/fd")
    except OSError:  # gone, or not ours to read
        return False
    for fd in fds:
        try:
            if os.readlink(f"/proc/{pid}/fd/{fd}") in links:
                return True
        except OSError:
            continue
    return False


#: The group reaper: one small process per runtime process, told the process group of every
#: child. When the runtime dies, even by kill -9, its end of the pipe closes; the reaper then kills
#: every group still known, so what a tool spawned (a shell script's commands, a grandchild) dies
#: too, which the parent-death signal alone cannot do. Empty groups are forgotten every half
#: second, so a recycled pid is not mistaken for one of ours.
_REAPER_CODE = r"""
import os, select, signal, sys, time
signal.signal(signal.SIGINT, signal.SIG_IGN)
groups, rest, pruned = set(), b"", time.monotonic()
fd = sys.stdin.fileno()
while True:
    ready, _, _ = select.select([fd], [], [], 0.5)
    data = os.read(fd, 65536) if ready else None
    if data == b"":
        break
    if data:
        *lines, rest = (rest + data).split(b"\n")
        for line in lines:
            if line[:1] == b"+":
                groups.add(int(line[1:]))
            elif line[:1] == b"-":
                groups.discard(int(line[1:]))
    if time.monotonic() - pruned >= 0.5:
        for group in list(groups):
            try:
                os.killpg(group, 0)
            except ProcessLookupError:
                groups.discard(group)
            except PermissionError:
                pass
        pruned = time.monotonic()
for group in groups:
    try:
        os.killpg(group, signal.SIGKILL)
    except OSError:
        pass
"""


class _Reaper:
    """The runtime process's side of the group reaper (see _REAPER_CODE)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._proc: subprocess.Popen[bytes] | None = None
        self._groups: set[int] = set()
        self._failed = False

    def track(self, group: int) -> None:
        with self._lock:
            self._groups.add(group)
            if len(self._groups) > 256:
                self._groups = {g for g in self._groups if _group_alive(g)}
            self._send(f"+{group}\n".encode())

    def untrack(self, group: int) -> None:
        with self._lock:
            if group in self._groups:
                self._groups.discard(group)
                self._send(f"-{group}\n".encode())

    def pid(self) -> int | None:
        with self._lock:
            return self._proc.pid if self._proc is not None and self._proc.poll() is None else None

    def _send(self, line: bytes) -> None:
        for _attempt in range(2):
            if self._proc is None or self._proc.poll() is not None:
                if not self._start():
                    return
                line = b"".join(f"+{g}\n".encode() for g in self._groups)  # a new reaper learns them all
            assert self._proc is not None and self._proc.stdin is not None
            try:
                os.write(self._proc.stdin.fileno(), line)
                return
            except OSError:
                self._proc = None

    def _start(self) -> bool:
        try:
            self._proc = subprocess.Popen([sys.executable, "-I", "-S", "-c", _REAPER_CODE], stdin=subprocess.PIPE,
                                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                          start_new_session=True, close_fds=True)
        except OSError as exc:
            if not self._failed:  # said once; the parent-death signal still covers the children themselves
                import logging

                logging.getLogger("tooldeck").error("cannot start the process-group reaper: %s", exc)
            self._failed = True
            return False
        return True

    def forget_after_fork(self) -> None:
        """In a forked child: let go of the parent's pipe, or the reaper would wait for us too."""
        if self._proc is not None and self._proc.stdin is not None:
            try:
                self._proc.stdin.close()
            except OSError:
                pass


def _group_alive(group: int) -> bool:
    try:
        os.killpg(group, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class _Spawner:
    """One long-lived daemon thread that forks every child (see the module docstring)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._jobs: list[tuple[Callable[[], Any], _Result]] = []
        self._wake = threading.Condition(self._lock)
        self.launcher: Launcher | None = None

    def run(self, fn: Callable[[], T]) -> T:
        if threading.current_thread() is self._thread:
            return fn()
        result = _Result()
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._serve, name="tooldeck-spawner", daemon=True)
                self._thread.start()
            self._jobs.append((fn, result))
            self._wake.notify()
        return result.get()

    def _serve(self) -> None:
        while True:
            with self._lock:
                while not self._jobs:
                    self._wake.wait()
                fn, result = self._jobs.pop(0)
            try:
                result.value = fn()
            except BaseException as exc:  # handed to the caller, never lost, never fatal to this thread
                result.error = exc
            result.done.set()


class _Result:
    __slots__ = ("done", "error", "value")

    def __init__(self) -> None:
        self.done = threading.Event()
        self.value: Any = None
        self.error: BaseException | None = None

    def get(self) -> Any:
        self.done.wait()
        if self.error is not None:
            raise self.error
        return self.value


_spawner = _Spawner()
_reaper = _Reaper()


def _after_fork_in_child() -> None:
    global _spawner, _reaper
    _spawner = _Spawner()  # the thread did not survive the fork
    _reaper.forget_after_fork()
    _reaper = _Reaper()


os.register_at_fork(after_in_child=_after_fork_in_child)


def launcher() -> Launcher:
    """The launcher this process uses (found once, in the spawner thread)."""
    if _spawner.launcher is None:
        found = _spawner.run(find_launcher)
        _spawner.launcher = _spawner.launcher or found
    return _spawner.launcher


def resolve_command(argv0: str, *, env: Mapping[str, str] | None, cwd: str | os.PathLike[str] | None) -> str:
    """The program's path, found as exec would (so "no such program" is an OSError here, not an
    exit code from the launcher)."""
    if "/" in argv0:
        path = Path(argv0) if os.path.isabs(argv0) else Path(cwd or os.getcwd()) / argv0
        if not path.exists():
            raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), argv0)
        if path.is_dir() or not os.access(path, os.X_OK):
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), argv0)
        return str(path)
    search = (env if env is not None else os.environ).get("PATH", os.defpath)
    found = shutil.which(argv0, path=search)
    if found is None:
        raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), argv0)
    return found


def child_argv(argv: Sequence[str], *, limits: Limits | None = None, user: int | None = None,
               env: Mapping[str, str] | None = None, cwd: str | os.PathLike[str] | None = None) -> list[str]:
    """`argv` wrapped so the child gets its limits and the parent-death signal when exec'd."""
    if not argv:
        raise ValueError("empty argv")
    program = resolve_command(str(argv[0]), env=env, cwd=cwd)
    return launcher().wrap([program, *map(str, argv[1:])], limits=limits, user=user)


def spawn(argv: Sequence[str], *, children: Children | None = None, limits: Limits | None = None,
          user: int | None = None, stdin: Any = None, stdout: Any = None, stderr: Any = None,
          cwd: str | os.PathLike[str] | None = None, env: Mapping[str, str] | None = None,
          bufsize: int = -1, using: Launcher | None = None) -> subprocess.Popen[bytes]:
    """Start one child the way every child is started; see the module docstring.

    Raises OSError when the program cannot be started, and ToolUnavailableError when `children`
    is closed (the runtime is shutting down). `user` drops the child to that uid and gid.
    """
    if children is not None and children.closed:
        raise ToolUnavailableError(f"cannot start {argv[0]!r}: the runtime is closing")
    program = resolve_command(str(argv[0]), env=env, cwd=cwd)
    wrapped = (using or launcher()).wrap([program, *map(str, argv[1:])], limits=limits, user=user)

    def start() -> subprocess.Popen[bytes]:
        proc = subprocess.Popen(wrapped, stdin=stdin, stdout=stdout, stderr=stderr, cwd=cwd, env=env,
                                bufsize=bufsize, start_new_session=True, close_fds=True)
        _reaper.track(proc.pid)
        return proc

    proc = _spawner.run(start)
    if children is not None and not children._add(proc):
        kill_group(proc)
        proc.wait()
        raise ToolUnavailableError(f"cannot start {argv[0]!r}: the runtime is closing")
    return proc
