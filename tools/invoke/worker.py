"""Warm worker processes for `python` tools: started on first use, restarted if they die,
recycled when the tool reloads. A crash inside a tool fails that call, not the runtime.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from tools.catalog import ToolEntry
from tools.errors import (
    ToolCancelledError,
    ToolCrashError,
    ToolInputError,
    ToolOutputError,
    ToolOutputTooLargeError,
    ToolTimeoutError,
    ToolUnavailableError,
)
from tools.invoke.cancel import CallScope, check_cancelled, current_scope, killable
from tools.invoke.capture import CHUNK, LineReader, OutputTooLarge, widen_pipe
from tools.invoke.executable import DEFAULT_MAX_OUTPUT, stderr_tail
from tools.invoke.spawn import Children, kill_group, spawn
from tools.secrets import clean_env

WORKER_MAIN = Path(__file__).with_name("worker_main.py")
START_TIMEOUT = 15.0
STDERR_KEEP = 16 << 10


class Worker:
    """One child process serving one (tool, version); one request in flight at a time."""

    def __init__(self, entry: ToolEntry, workspace: Path, *, children: Children | None = None,
                 max_output: int = DEFAULT_MAX_OUTPUT) -> None:
        assert entry.manifest is not None and entry.manifest.entry is not None
        self.entry = entry
        self.tool_id = entry.tool_id
        self.version = entry.served_version
        self.children = children
        file_name, func = entry.manifest.entry.split(":", 1)
        env = clean_env(entry.manifest.executable.environment if entry.manifest.executable else None)
        env["TOOLDECK_WORKSPACE"] = str(workspace)
        env["TOOLDECK_TOOL_DIR"] = str(entry.tool_dir)
        env["PYTHONUNBUFFERED"] = "1"
        env["PYTHONDONTWRITEBYTECODE"] = "1"  # nothing the tool runs leaves bytecode beside its files
        pins = json.dumps(entry.pinned, sort_keys=True) if entry.pinned else ""
        try:
            # -B: no bytecode written; worker_main compiles the tool's files from source (checked
            # against `pins` when the version is approved) and never reads a `.pyc` beside them
            self.proc = spawn(
                [sys.executable, "-B", str(WORKER_MAIN), str(entry.tool_dir), file_name, func, pins], children=children,
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                cwd=entry.tool_dir, env=env, bufsize=0,
            )
        except OSError as exc:
            raise ToolCrashError(f"{self.tool_id}: cannot start its worker: {exc.strerror or exc}",
                                 tool_id=self.tool_id, version=self.version) from exc
        self._fd = self.proc.stdout.fileno()  # type: ignore[union-attr]
        widen_pipe(self._fd)
        self._reader = LineReader(self._fd)
        self._next_id = 1
        self.lock = threading.Lock()
        #: stderr: a bounded tail for error messages, and a per-call byte count against the cap
        self._err_lock = threading.Lock()
        self._err_tail = bytearray()
        self._err_bytes = 0
        self._err_limit: int | None = None  # set while a call is in flight
        self.overflow: str | None = None  # which stream passed the cap (the worker was killed for it)
        self._drain = threading.Thread(target=self._drain_stderr, name=f"worker-stderr-{self.tool_id}", daemon=True)
        self._drain.start()
        try:
            hello = self._read(time.monotonic() + START_TIMEOUT, max_output)
        except (TimeoutError, OutputTooLarge, json.JSONDecodeError) as exc:
            self.kill()
            raise ToolCrashError(f"{self.tool_id}: worker did not start ({type(exc).__name__})", tool_id=self.tool_id,
                                 version=self.version, stderr_tail=self.stderr_tail()) from None
        if hello is None or not hello.get("ok"):
            self.kill()
            detail = hello.get("error") if hello else "worker exited during start"
            raise ToolCrashError(
                f"{self.tool_id}: {detail}", tool_id=self.tool_id, version=self.version,
                stderr_tail=self.stderr_tail(), exit_code=self.proc.poll(),
            )

    def _drain_stderr(self) -> None:
        """Keep the last STDERR_KEEP bytes; kill the worker when a call's stderr passes the cap."""
        assert self.proc.stderr is not None
        fd = self.proc.stderr.fileno()
        while True:
            try:
                chunk = os.read(fd, CHUNK)
            except OSError:
                return
            if not chunk:
                return
            with self._err_lock:
                self._err_tail += chunk
                del self._err_tail[:-STDERR_KEEP]
                self._err_bytes += len(chunk)
                over = self._err_limit is not None and self._err_bytes > self._err_limit
                if over and self.overflow is None:
                    self.overflow = "stderr"
            if over:
                kill_group(self.proc)

    def stderr_tail(self) -> str:
        with self._err_lock:
            return stderr_tail(bytes(self._err_tail))

    @property
    def alive(self) -> bool:
        return self.proc.poll() is None

    def _read(self, deadline: float, limit: int) -> dict[str, Any] | None:
        """One reply, or None if the worker died; raises TimeoutError at the deadline and
        OutputTooLarge past `limit` bytes."""
        line = self._reader.read_line(deadline, limit)
        return None if line is None else json.loads(line)

    def call(self, data: Any, timeout: float, max_output: int = DEFAULT_MAX_OUTPUT) -> Any:
        """Send one request and wait for its reply; the caller holds `self.lock`.

        The reply line and the stderr written during the call are each capped at `max_output`
        bytes; past it the worker is killed (it restarts on the next call)."""
        scope = current_scope()
        check_cancelled(scope, self.tool_id, self.version)
        rid = self._next_id
        self._next_id += 1
        try:
            line = json.dumps({"id": rid, "input": data}).encode() + b"\n"
        except (TypeError, ValueError) as exc:
            raise ToolInputError(f"{self.tool_id}: input is not JSON-serialisable: {exc}", tool_id=self.tool_id) from exc
        with self._err_lock:
            self._err_bytes = 0
            self._err_limit = max_output
        try:
            return self._exchange(line, timeout, max_output, scope)
        finally:
            with self._err_lock:
                self._err_limit = None

    def _exchange(self, line: bytes, timeout: float, max_output: int, scope: CallScope | None) -> Any:
        try:
            self.proc.stdin.write(line)  # type: ignore[union-attr]
        except (BrokenPipeError, OSError):
            return self._died()
        try:
            with killable(scope, lambda: kill_group(self.proc)):
                reply = self._read(time.monotonic() + timeout, max_output)
        except OutputTooLarge as exc:
            self.overflow = exc.stream
            self.kill()
            raise self._too_large(max_output) from None
        except TimeoutError:
            self.kill()
            raise ToolTimeoutError(
                f"{self.tool_id}: timed out after {timeout:g} s (worker killed, restarts on next call)",
                tool_id=self.tool_id, version=self.version, stderr_tail=self.stderr_tail(),
            ) from None
        except json.JSONDecodeError as exc:
            self.kill()
            raise ToolOutputError(f"{self.tool_id}: worker protocol broken: {exc}", tool_id=self.tool_id, version=self.version) from exc
        if reply is None:
            if scope is not None and scope.cancelled:
                self.kill()
                raise ToolCancelledError(f"{self.tool_id}: cancelled by the caller (worker killed, restarts on next call)",
                                         tool_id=self.tool_id, version=self.version)
            if self.overflow is not None:
                self.kill()
                raise self._too_large(max_output)
            return self._died()
        if reply.get("ok"):
            return reply.get("result")
        message = f"{self.tool_id}: {reply.get('type', 'Error')}: {reply.get('error', '')}"
        raise ToolCrashError(
            message, tool_id=self.tool_id, version=self.version,
            stderr_tail=stderr_tail(reply.get("traceback", "") or self.stderr_tail()),
            details={"exception": reply.get("type")},
        )

    def _too_large(self, max_output: int) -> ToolOutputTooLargeError:
        stream = "reply (stdout)" if self.overflow == "reply" else self.overflow
        return ToolOutputTooLargeError(
            f"{self.tool_id}: {stream} passed max_output_bytes ({max_output} bytes); the worker was killed"
            " and restarts on the next call",
            tool_id=self.tool_id, version=self.version, stderr_tail=self.stderr_tail(),
        )

    def _died(self) -> Any:
        code = self.proc.wait(timeout=5)
        kill_group(self.proc)  # what the worker spawned dies with it (and lets go of its stderr)
        self._drain.join(timeout=1)  # the last lines of stderr
        if self.children is not None and self.children.closed:
            raise ToolUnavailableError(f"{self.tool_id}: worker killed: the runtime is closing", tool_id=self.tool_id,
                                       version=self.version, exit_code=code)
        raise ToolCrashError(
            f"{self.tool_id}: worker process died (exit code {code}) during the call; it restarts on the next call",
            tool_id=self.tool_id, version=self.version, exit_code=code, stderr_tail=self.stderr_tail(),
        )

    def kill(self) -> None:
        kill_group(self.proc)
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass
        if self.children is not None:
            self.children.discard(self.proc)
        for stream in (self.proc.stdin, self.proc.stdout):
            try:
                if stream is not None:
                    stream.close()
            except OSError:
                pass

    def stop(self) -> None:
        """Ask politely (close stdin), then kill."""
        try:
            if self.proc.stdin is not None:
                self.proc.stdin.close()
            self.proc.wait(timeout=1)
        except (subprocess.TimeoutExpired, OSError):
            pass
        self.kill()


class WorkerPool:
    """At most one warm worker per (tool, version) path; thread-safe."""

    def __init__(self, workspace: Path, *, children: Children | None = None) -> None:
        self.workspace = workspace
        self.children = children
        self._workers: dict[tuple[str, str, str], Worker] = {}
        self._lock = threading.Lock()
        self._starting: dict[tuple[str, str, str], threading.Lock] = {}
        self._closed = False

    @staticmethod
    def _key(entry: ToolEntry) -> tuple[str, str, str]:
        return (entry.tool_id, entry.served_version, str(entry.path))

    def _get(self, entry: ToolEntry, max_output: int) -> Worker:
        key = self._key(entry)
        with self._lock:
            worker = self._workers.get(key)
            if worker is not None and worker.alive and worker.entry is entry:
                return worker
            start_lock = self._starting.setdefault(key, threading.Lock())
        with start_lock:
            with self._lock:
                worker = self._workers.get(key)
                if worker is not None and worker.alive and worker.entry is entry:
                    return worker
                if self._closed:
                    raise ToolCrashError(f"{entry.tool_id}: runtime is shutting down", tool_id=entry.tool_id)
            if worker is not None:
                worker.kill()
            worker = Worker(entry, self.workspace, children=self.children, max_output=max_output)
            with self._lock:
                self._workers[key] = worker
            return worker

    def call(self, entry: ToolEntry, data: Any, timeout: float, max_output: int = DEFAULT_MAX_OUTPUT) -> Any:
        """Run one call on the tool's warm worker; a worker recycled meanwhile is replaced, not used."""
        for _ in range(3):
            worker = self._get(entry, max_output)
            with worker.lock:
                if worker.alive and self._current(worker):
                    return worker.call(data, timeout, max_output)
        raise ToolCrashError(f"{entry.tool_id}: its worker kept being replaced (reloading?); try again",
                             tool_id=entry.tool_id, version=entry.served_version)

    def _current(self, worker: Worker) -> bool:
        with self._lock:
            return self._workers.get(self._key(worker.entry)) is worker

    def recycle(self, tool_id: str) -> int:
        """Stop every worker of a tool (it reloaded); the next call starts a fresh one.

        Each worker is stopped under its own call lock, so a call in flight finishes first
        instead of failing as a crash.
        """
        with self._lock:
            victims = [k for k in self._workers if k[0] == tool_id]
            workers = [self._workers.pop(k) for k in victims]
        for worker in workers:
            with worker.lock:
                worker.stop()
        return len(workers)

    def pids(self) -> list[int]:
        with self._lock:
            return [w.proc.pid for w in self._workers.values() if w.alive]

    def close(self) -> None:
        with self._lock:
            self._closed = True
            workers = list(self._workers.values())
            self._workers.clear()
        for worker in workers:
            worker.stop()
