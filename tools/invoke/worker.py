"""Warm worker processes for `python` tools: started on first use, restarted if they die,
recycled when the tool reloads. A crash inside a tool fails that call, not the runtime.

Each (tool, version, files) gets a small pool: one warm worker, and more only while every one
is busy, up to the tool's limit (`executable.max_workers`, else `[calls] max_workers_per_tool`),
so a hung call holds its own worker and not the tool. Extra workers idle for a while are retired.
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
from tools.invoke.spawn import Children, kill_group, kill_holders, pipe_inodes, spawn
from tools.secrets import clean_env
from tools.settings import Settings

WORKER_MAIN = Path(__file__).with_name("worker_main.py")
START_TIMEOUT = 15.0
STDERR_KEEP = 16 << 10
#: `[calls] max_workers_per_tool` unless tooldeck.toml says otherwise
DEFAULT_MAX_WORKERS = 4
#: an extra worker (beyond a tool's first) idle this long is stopped
IDLE_RETIRE_SECONDS = 60.0
#: how often a call waiting for a free worker looks at its cancellation
WAIT_SLICE = 0.25

#: a worker's reply type for a result that is not JSON (worker_main.NOT_JSON; the worker runs as a script)
NOT_JSON = "ResultNotJSON"


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
        self._inodes = pipe_inodes(self.proc.stdout, self.proc.stderr)
        widen_pipe(self._fd)
        self._reader = LineReader(self._fd)
        self._next_id = 1
        self.killed = False  # by its call (timeout, cap, cancel) or the pool: never handed out again
        self.idle_since = time.monotonic()  # when it last finished a call (the pool retires idle extras)
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
        """Send one request and wait for its reply; the caller has the worker to itself (the pool
        hands a worker to one call at a time).

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
        if reply.get("type") == NOT_JSON:  # the tool ran; what it returned cannot be carried
            raise ToolOutputError(f"{self.tool_id}: its result is not JSON ({reply.get('error', '')})",
                                  tool_id=self.tool_id, version=self.version)
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
        """Kill the process group and let go of the pipes; once (a second kill could signal a
        group whose number was reused)."""
        if self.killed:
            return
        self.killed = True
        kill_group(self.proc)
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass
        self._drain.join(timeout=0.2)
        if self._drain.is_alive():  # stderr did not end with the group: a grandchild that left it (setsid) holds it
            kill_holders(self._inodes)
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


def worker_limit(entry: ToolEntry, settings: Settings) -> int:
    """How many warm workers a python tool may have: the manifest's `executable.max_workers`, else
    `[calls] max_workers_per_tool` of tooldeck.toml (checked)."""
    spec = entry.manifest.executable if entry.manifest is not None else None
    if spec is not None and spec.max_workers is not None:
        return spec.max_workers
    return settings.positive_int("calls", "max_workers_per_tool")


class _Workers:
    """The workers of one (tool, version, files): idle ones stacked (the most recently used on
    top, so a steady trickle of calls keeps reusing one and the others age out), busy ones, and
    how many are starting. `retired` once the tool reloaded: its workers finish their calls and stop."""

    __slots__ = ("idle", "busy", "starting", "retired")

    def __init__(self) -> None:
        self.idle: list[Worker] = []
        self.busy: set[Worker] = set()
        self.starting = 0
        self.retired = False

    @property
    def size(self) -> int:
        return len(self.idle) + len(self.busy) + self.starting


class WorkerPool:
    """The warm workers of every python tool, per (tool, version, path); thread-safe.

    A call takes an idle worker of its tool, or starts one when every worker is busy and the
    tool's limit allows, or waits for one to come back. A worker serves one call at a time; one
    that timed out, crashed or passed its output cap is killed by its call and not given back.
    """

    def __init__(self, workspace: Path, *, children: Children | None = None,
                 idle_seconds: float = IDLE_RETIRE_SECONDS) -> None:
        self.workspace = workspace
        self.children = children
        #: an extra worker idle this long is stopped (a tool keeps its first)
        self.idle_seconds = idle_seconds
        self._groups: dict[tuple[str, str, str], _Workers] = {}
        self._cond = threading.Condition()
        self._waiting = 0  # calls waiting for a worker (nothing to notify without them)
        self._closed = False
        self._closing = threading.Event()
        self._reaper: threading.Thread | None = None

    @staticmethod
    def _key(entry: ToolEntry) -> tuple[str, str, str]:
        return (entry.tool_id, entry.served_version, str(entry.path))

    def call(self, entry: ToolEntry, data: Any, timeout: float, max_output: int = DEFAULT_MAX_OUTPUT,
             max_workers: int = DEFAULT_MAX_WORKERS) -> Any:
        """Run one call on a warm worker of the tool; a worker recycled meanwhile is replaced, not used."""
        for _ in range(3):
            taken = self._acquire(entry, max_output, max_workers)
            if taken is None:
                continue  # the tool reloaded while its worker started
            group, worker = taken
            try:
                return worker.call(data, timeout, max_output)
            finally:
                self._release(group, worker)
        raise ToolCrashError(f"{entry.tool_id}: its worker kept being replaced (reloading?); try again",
                             tool_id=entry.tool_id, version=entry.served_version)

    def _acquire(self, entry: ToolEntry, max_output: int, limit: int) -> tuple[_Workers, Worker] | None:
        """An idle worker of `entry`, else a new one while the tool has fewer than `limit`, else
        wait (cancellable) for one to come back. None: the tool reloaded while its worker started."""
        key = self._key(entry)
        scope = current_scope()
        stale: list[Worker] = []
        try:
            with self._cond:
                while True:
                    if self._closed:
                        raise ToolCrashError(f"{entry.tool_id}: runtime is shutting down", tool_id=entry.tool_id)
                    group = self._groups.get(key)
                    if group is None:
                        group = self._groups[key] = _Workers()
                    while group.idle:
                        worker = group.idle.pop()
                        if worker.alive and worker.entry is entry:
                            group.busy.add(worker)
                            return group, worker
                        stale.append(worker)  # died while idle, or serves an entry reloaded since
                    if group.size < limit:
                        group.starting += 1
                        break
                    self._waiting += 1
                    try:
                        self._cond.wait(WAIT_SLICE)
                    finally:
                        self._waiting -= 1
                    check_cancelled(scope, entry.tool_id, entry.served_version)
        finally:
            for worker in stale:
                worker.stop()
        try:
            worker = Worker(entry, self.workspace, children=self.children, max_output=max_output)
        except BaseException:
            with self._cond:
                group.starting -= 1
                if self._waiting:
                    self._cond.notify()  # a waiter may start one in its place
            raise
        with self._cond:
            group.starting -= 1
            usable = not (self._closed or group.retired)
            if usable:
                group.busy.add(worker)
                if group.size > 1:
                    self._start_reaper()
        if not usable:
            worker.stop()
            return None
        return group, worker

    def _release(self, group: _Workers, worker: Worker) -> None:
        """Give a worker back after its call: idle again if it lives and its tool did not reload,
        otherwise stopped; either way one waiting call is woken."""
        # no poll(): a worker its call killed or saw die was waited for (its returncode is set); one
        # that dies while idle is noticed when it is taken
        keep = worker.proc.returncode is None and not worker.killed
        with self._cond:
            group.busy.discard(worker)
            keep = keep and not group.retired and not self._closed
            if keep:
                worker.idle_since = time.monotonic()
                group.idle.append(worker)
            if self._waiting:
                self._cond.notify()
        if not keep:
            worker.stop()

    def _start_reaper(self) -> None:
        """Under the lock: the thread that retires idle extra workers, while any tool has more than one."""
        if self._reaper is None:
            self._reaper = threading.Thread(target=self._reap, name="worker-reaper", daemon=True)
            self._reaper.start()

    def _reap(self) -> None:
        while not self._closing.wait(max(self.idle_seconds / 4, 0.05)):
            cutoff = time.monotonic() - self.idle_seconds
            victims: list[Worker] = []
            with self._cond:
                for group in self._groups.values():
                    # idle[0] is the longest idle; a tool keeps one worker
                    while group.idle and group.size > 1 and group.idle[0].idle_since <= cutoff:
                        victims.append(group.idle.pop(0))
                if not victims and all(group.size <= 1 for group in self._groups.values()):
                    self._reaper = None
                    return
            for worker in victims:
                worker.stop()

    def recycle(self, tool_id: str) -> int:
        """Stop every worker of a tool (it reloaded); the next call starts a fresh one.

        Idle workers stop now; a busy one stops when its call ends, so a call in flight finishes
        instead of failing as a crash (and a hung one does not hold up the reload).
        """
        with self._cond:
            groups = [self._groups.pop(k) for k in [k for k in self._groups if k[0] == tool_id]]
            idle: list[Worker] = []
            count = 0
            for group in groups:
                group.retired = True
                count += len(group.idle) + len(group.busy)
                idle.extend(group.idle)
                group.idle.clear()
            self._cond.notify_all()  # calls waiting for a worker of the old files start on the new ones
        for worker in idle:
            worker.stop()
        return count

    def pids(self) -> list[int]:
        with self._cond:
            workers = [w for group in self._groups.values() for w in (*group.idle, *group.busy)]
        return [w.proc.pid for w in workers if w.alive]

    def sizes(self) -> dict[str, int]:
        """Live workers per tool id (every version and path of it together)."""
        with self._cond:
            out: dict[str, int] = {}
            for (tool_id, _, _), group in self._groups.items():
                out[tool_id] = out.get(tool_id, 0) + sum(w.alive for w in (*group.idle, *group.busy))
            return out

    def close(self) -> None:
        with self._cond:
            self._closed = True
            workers = [w for group in self._groups.values() for w in (*group.idle, *group.busy)]
            self._groups.clear()
            self._cond.notify_all()
        self._closing.set()
        for worker in workers:
            worker.stop()
