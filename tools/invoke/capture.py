"""Reading a child's output with a bound on size and time, in linear time.

`subprocess.communicate` reads until the child closes its pipes, however much it writes: a tool
running `yes` grew the runtime to 6 GB in 5 s. Here each stream stops at `limit` bytes (the
caller then kills the tool) and a worker's reply line is assembled from its chunks once, instead
of re-copying and re-scanning a growing buffer for every chunk (quadratic: 109 s for 100 MB).
"""

from __future__ import annotations

import contextlib
import os
import select
import selectors
import subprocess
import time
from collections.abc import Iterator
from typing import NamedTuple

CHUNK = 1 << 16
#: a pipe's capacity is 64 KiB by default; a larger one means fewer wake-ups for big replies
PIPE_SIZE = 1 << 20
_F_SETPIPE_SZ = 1031
#: after a tool exits, how long its stdout and stderr may take to end before reading stops
EXIT_GRACE = 0.25


class OutputTooLarge(Exception):
    """A stream passed its byte limit; `stream` says which."""

    def __init__(self, stream: str, limit: int, stderr: bytes = b"") -> None:
        super().__init__(f"{stream} passed {limit} bytes")
        self.stream = stream
        self.limit = limit
        self.stderr = stderr  # what stderr held so far, for the error's tail


def widen_pipe(fd: int) -> None:
    """Ask for a larger pipe buffer (Linux); silently keeps the default elsewhere or when refused."""
    try:
        import fcntl

        fcntl.fcntl(fd, _F_SETPIPE_SZ, PIPE_SIZE)
    except (ImportError, OSError):
        pass


class Captured(NamedTuple):
    stdout: bytes
    stderr: bytes
    finished: bool  # the process exited before the deadline
    held: bool  # its stdout or stderr was still open when reading stopped: something it started holds them


def communicate(proc: subprocess.Popen[bytes], payload: bytes, *, timeout: float, limit: int) -> Captured:
    """Write `payload` to stdin and read stdout and stderr, each up to `limit` bytes.

    Reading ends when both pipes end, at the deadline, or EXIT_GRACE after the process exits:
    a grandchild that left its group (setsid) with the pipes open would otherwise hold the
    tool's answer until the deadline. Raises OutputTooLarge as soon as a stream passes `limit`
    (with what stderr held so far in `.stderr`). The caller kills the process group in every
    case, and whatever still holds the pipes when `held` (kill_holders).
    """
    assert proc.stdin is not None and proc.stdout is not None and proc.stderr is not None
    deadline = time.monotonic() + timeout
    names = {proc.stdout.fileno(): "stdout", proc.stderr.fileno(): "stderr"}
    chunks: dict[int, list[bytes]] = {fd: [] for fd in names}
    sizes = dict.fromkeys(names, 0)
    view = memoryview(payload)
    offset = 0
    exited_at: float | None = None

    def captured(finished: bool) -> Captured:
        held = any(fd in names for fd in (key.fd for key in sel.get_map().values()))
        return Captured(b"".join(chunks[proc.stdout.fileno()]), b"".join(chunks[proc.stderr.fileno()]),  # type: ignore[union-attr]
                        finished, held)

    with selectors.DefaultSelector() as sel, _exit_watch(proc) as watch:
        if payload:
            os.set_blocking(proc.stdin.fileno(), False)
            sel.register(proc.stdin, selectors.EVENT_WRITE)
        else:
            _close(proc.stdin)
        sel.register(proc.stdout, selectors.EVENT_READ)
        sel.register(proc.stderr, selectors.EVENT_READ)
        if watch is not None:
            sel.register(watch, selectors.EVENT_READ)
        while any(key.fd != watch for key in sel.get_map().values()):
            now = time.monotonic()
            remaining = deadline - now
            if remaining <= 0:
                return captured(False)
            if exited_at is not None:
                remaining = min(remaining, exited_at + EXIT_GRACE - now)
                if remaining <= 0:
                    break
            for key, _events in sel.select(remaining):
                if key.fd == watch:  # the process exited: its pipes get EXIT_GRACE to end
                    sel.unregister(watch)
                    exited_at = time.monotonic()
                    continue
                if key.fileobj is proc.stdin:
                    try:
                        offset += os.write(key.fd, view[offset:offset + CHUNK])
                    except BlockingIOError:
                        continue
                    except BrokenPipeError:  # the tool stopped reading its input: not our failure
                        offset = len(view)
                    if offset >= len(view):
                        sel.unregister(proc.stdin)
                        _close(proc.stdin)
                    continue
                chunk = os.read(key.fd, CHUNK)
                if not chunk:
                    sel.unregister(key.fileobj)
                    continue
                sizes[key.fd] += len(chunk)
                if sizes[key.fd] > limit:
                    raise OutputTooLarge(names[key.fd], limit, b"".join(chunks[proc.stderr.fileno()]))
                chunks[key.fd].append(chunk)
        try:
            proc.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            return captured(False)
        return captured(True)


@contextlib.contextmanager
def _exit_watch(proc: subprocess.Popen[bytes]) -> Iterator[int | None]:
    """A descriptor that becomes readable when `proc` exits (a pidfd, Linux 5.3+); None where there is none."""
    try:
        fd = os.pidfd_open(proc.pid)
    except (AttributeError, OSError):
        yield None
        return
    try:
        yield fd
    finally:
        os.close(fd)


def _close(stream: object) -> None:
    try:
        stream.close()  # type: ignore[attr-defined]
    except OSError:
        pass


class LineReader:
    """Newline-terminated lines from a pipe, each read in time linear in its length."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self._parts: list[bytes] = []  # the current line so far; no part holds a newline
        self._size = 0
        self._rest = b""  # what followed the last newline

    def read_line(self, deadline: float, limit: int) -> bytes | None:
        """The next line without its newline; None at end of file. Raises TimeoutError at the
        deadline and OutputTooLarge("reply", limit) when the line passes `limit` bytes."""
        data, self._rest = self._rest, b""
        while True:
            if data:
                cut = data.find(b"\n")
                if cut >= 0:
                    self._parts.append(data[:cut])
                    line = b"".join(self._parts)
                    self._parts, self._size, self._rest = [], 0, data[cut + 1:]
                    return line
                self._parts.append(data)
                self._size += len(data)
                if self._size > limit:
                    raise OutputTooLarge("reply", limit)
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError
            ready, _, _ = select.select([self.fd], [], [], remaining)
            if not ready:
                data = b""
                continue
            data = os.read(self.fd, PIPE_SIZE)
            if not data:
                return None
