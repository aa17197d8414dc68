"""Run the real `tooldeck` in a pseudo-terminal: what a person's terminal (or tmux) gives it.

Used by the signal tests and the first-frame benchmark. The child is a session leader with the pty
as its controlling terminal (pty.fork), so closing the master sends it SIGHUP as closing a terminal does.
"""

from __future__ import annotations

import fcntl
import os
import pty
import re
import select
import signal
import struct
import sys
import termios
import time
from pathlib import Path

ANSI = re.compile(rb"\x1b\[[0-9;?<>=]*[ -/]*[@-~]|\x1b[()][A-Za-z0-9]|\x1b[=>]|\x1b\][^\x07\x1b]*(\x07|\x1b\\)")


class PtyProcess:
    def __init__(self, argv: list[str], *, env: dict[str, str] | None = None, cols: int = 160, rows: int = 50,
                 cwd: str | Path | None = None) -> None:
        self.output = bytearray()
        self.started = time.perf_counter()
        pid, fd = pty.fork()
        if pid == 0:  # the child: the pty is its controlling terminal
            try:
                if cwd is not None:
                    os.chdir(cwd)
                os.execve(argv[0], argv, {**os.environ, "TERM": "xterm-256color", **(env or {})})
            finally:
                os._exit(127)
        self.pid, self.fd = pid, fd
        fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
        os.kill(pid, signal.SIGWINCH)
        self.status: int | None = None

    def read(self, timeout: float = 0.05) -> bytes:
        """What the program wrote since the last read (answers its terminal queries so it does not wait)."""
        chunk = b""
        if self.fd < 0:
            return chunk
        ready, _, _ = select.select([self.fd], [], [], timeout)
        if ready:
            try:
                chunk = os.read(self.fd, 65536)
            except OSError:  # EIO: the child closed the terminal
                return b""
            self.output += chunk
            if b"\x1b[c" in chunk or b"\x1b[0c" in chunk:
                self.write(b"\x1b[?62;22c")
        return chunk

    def text(self) -> str:
        return ANSI.sub(b"", bytes(self.output)).decode("utf-8", "replace")

    def wait_for_text(self, needles: list[str], timeout: float = 60.0) -> float:
        """Seconds from launch until every needle has been drawn."""
        deadline = time.perf_counter() + timeout
        while time.perf_counter() < deadline:
            self.read()
            text = self.text()
            if all(n in text for n in needles):
                return time.perf_counter() - self.started
            if self.poll() is not None:
                break
        raise AssertionError(f"{needles} not on screen after {timeout:.0f} s; exit {self.status}; last output: {self.text()[-2000:]!r}")

    def write(self, data: bytes) -> None:
        os.write(self.fd, data)

    def poll(self) -> int | None:
        if self.status is None:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                self.status = os.waitstatus_to_exitcode(status)
        return self.status

    def wait(self, timeout: float) -> int:
        deadline = time.perf_counter() + timeout
        while time.perf_counter() < deadline:
            self.read(0.05)
            if self.poll() is not None:
                return self.status  # type: ignore[return-value]
        raise AssertionError(f"still running after {timeout:.0f} s; last output: {self.text()[-1500:]!r}")

    def hang_up(self) -> None:
        """Close the terminal, as closing its window does: the kernel sends the session SIGHUP."""
        os.close(self.fd)
        self.fd = -1

    def kill(self) -> None:
        """SIGKILL its process group (the child leads its session), then reap it."""
        if self.poll() is None:
            try:
                os.killpg(self.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            os.waitpid(self.pid, 0)
            self.status = -9
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


def tooldeck_argv(*args: str) -> list[str]:
    return [sys.executable, "-m", "tui", *args]


def children(pid: int) -> list[int]:
    """Every live descendant of `pid` (by /proc), however deep and in whatever session."""
    parents: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
            except (FileNotFoundError, ProcessLookupError, IndexError):
                continue
            if fields[0] != "Z":
                parents[int(entry)] = int(fields[1])
    out, todo = [], [pid]
    while todo:
        parent = todo.pop()
        for child, ppid in parents.items():
            if ppid == parent:
                out.append(child)
                todo.append(child)
    return out


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except (FileNotFoundError, ProcessLookupError):
        return ""


