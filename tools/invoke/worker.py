"""Warm worker processes for `python` tools: started on first use, restarted if they die,
recycled when the tool reloads. A crash inside a tool fails that call, not the runtime.
"""

from __future__ import annotations

import collections
import json
import os
import select
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from tools.catalog import ToolEntry
from tools.errors import ToolCancelledError, ToolCrashError, ToolInputError, ToolOutputError, ToolTimeoutError
from tools.invoke.cancel import check_cancelled, current_scope, killable
from tools.invoke.executable import kill_group, stderr_tail
from tools.secrets import clean_env

WORKER_MAIN = Path(__file__).with_name("worker_main.py")
START_TIMEOUT = 15.0


class Worker:
    """One child process serving one (tool, version); one request in flight at a time."""

    def __init__(self, entry: ToolEntry, workspace: Path) -> None:
        assert entry.manifest is not None and entry.manifest.entry is not None
        self.entry = entry
        self.tool_id = entry.tool_id
        self.version = entry.served_version
        file_name, func = entry.manifest.entry.split(":", 1)
        env = clean_env(entry.manifest.executable.environment if entry.manifest.executable else None)
        env["TOOLDECK_WORKSPACE"] = str(workspace)
        env["TOOLDECK_TOOL_DIR"] = str(entry.tool_dir)
        env["PYTHONUNBUFFERED"] = "1"
        self.proc = subprocess.Popen(
            [sys.executable, str(WORKER_MAIN), str(entry.tool_dir), file_name, func],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            cwd=entry.tool_dir, env=env, start_new_session=True, bufsize=0,
        )
        self._fd = self.proc.stdout.fileno()  # type: ignore[union-attr]
        self._buf = b""
        self._next_id = 1
        self.lock = threading.Lock()
        self._stderr: collections.deque[bytes] = collections.deque(maxlen=64)
        threading.Thread(target=self._drain_stderr, name=f"worker-stderr-{self.tool_id}", daemon=True).start()
        hello = self._read(time.monotonic() + START_TIMEOUT)
        if hello is None or not hello.get("ok"):
            self.kill()
            detail = hello.get("error") if hello else "worker exited during start"
            raise ToolCrashError(
                f"{self.tool_id}: {detail}", tool_id=self.tool_id, version=self.version,
                stderr_tail=self.stderr_tail(), exit_code=self.proc.poll(),
            )

    def _drain_stderr(self) -> None:
        stream = self.proc.stderr
        assert stream is not None
        for line in iter(stream.readline, b""):
            self._stderr.append(line)

    def stderr_tail(self) -> str:
        return stderr_tail(b"".join(self._stderr))

    @property
    def alive(self) -> bool:
        return self.proc.poll() is None

    def _read(self, deadline: float) -> dict[str, Any] | None:
        """One reply line, or None if the worker died; raises TimeoutError at the deadline."""
        while b"\n" not in self._buf:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError
            ready, _, _ = select.select([self._fd], [], [], remaining)
            if not ready:
                continue
            chunk = os.read(self._fd, 1 << 16)
            if not chunk:
                return None
            self._buf += chunk
        line, self._buf = self._buf.split(b"\n", 1)
        return json.loads(line)

    def call(self, data: Any, timeout: float) -> Any:
        """Send one request and wait for its reply; the caller holds `self.lock`."""
        scope = current_scope()
        check_cancelled(scope, self.tool_id, self.version)
        rid = self._next_id
        self._next_id += 1
        try:
            line = json.dumps({"id": rid, "input": data}).encode() + b"\n"
        except (TypeError, ValueError) as exc:
            raise ToolInputError(f"{self.tool_id}: input is not JSON-serialisable: {exc}", tool_id=self.tool_id) from exc
        try:
            self.proc.stdin.write(line)  # type: ignore[union-attr]
        except (BrokenPipeError, OSError):
            return self._died()
        try:
            with killable(scope, lambda: kill_group(self.proc)):  # type: ignore[arg-type]
                reply = self._read(time.monotonic() + timeout)
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
            return self._died()
        if reply.get("ok"):
            return reply.get("result")
        message = f"{self.tool_id}: {reply.get('type', 'Error')}: {reply.get('error', '')}"
        raise ToolCrashError(
            message, tool_id=self.tool_id, version=self.version,
            stderr_tail=stderr_tail(reply.get("traceback", "") or self.stderr_tail()),
            details={"exception": reply.get("type")},
        )

    def _died(self) -> Any:
        code = self.proc.wait(timeout=5)
        time.sleep(0.01)  # let the stderr drain thread catch the last lines
        raise ToolCrashError(
            f"{self.tool_id}: worker process died (exit code {code}) during the call; it restarts on the next call",
            tool_id=self.tool_id, version=self.version, exit_code=code, stderr_tail=self.stderr_tail(),
        )

    def kill(self) -> None:
        kill_group(self.proc)  # type: ignore[arg-type]
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass
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

    def __init__(self, workspace: Path) -> None:
        self.workspace = workspace
        self._workers: dict[tuple[str, str, str], Worker] = {}
        self._lock = threading.Lock()
        self._starting: dict[tuple[str, str, str], threading.Lock] = {}
        self._closed = False

    @staticmethod
    def _key(entry: ToolEntry) -> tuple[str, str, str]:
        return (entry.tool_id, entry.served_version, str(entry.path))

    def _get(self, entry: ToolEntry) -> Worker:
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
            worker = Worker(entry, self.workspace)
            with self._lock:
                self._workers[key] = worker
            return worker

    def call(self, entry: ToolEntry, data: Any, timeout: float) -> Any:
        """Run one call on the tool's warm worker; a worker recycled meanwhile is replaced, not used."""
        for _ in range(3):
            worker = self._get(entry)
            with worker.lock:
                if worker.alive and self._current(worker):
                    return worker.call(data, timeout)
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
