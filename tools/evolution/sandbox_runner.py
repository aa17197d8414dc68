"""Runs unapproved candidate code inside the sandbox: stdlib only, copied into the sandbox.

The runtime never imports this module for a candidate; `tools.evolution.sandbox` copies
it into a throwaway folder and starts it as an unprivileged child process.
Imported as `sitecustomize` companion it also confines every Python process in
the sandbox (an audit hook refusing writes outside the sandbox folder, any network
socket and any Unix socket: a socketpair between its own processes still works),
a second wall behind the OS protections.

Usage: python sandbox_runner.py SPEC.json, with the run's nonce as the first line of stdin.

Before anything of the candidate exists the runner closes the kernel paths namespaces
do not cover: it joins a fresh anonymous session keyring (leaving the runtime's), then
loads the seccomp program libseccomp compiled in the runtime (keyctl, add_key, request_key,
mount, ptrace, ... denied), and makes itself non-dumpable (its /proc entries and memory
unreadable to the candidate, which runs as the same uid).

The runner keeps the channel to the runtime (a private copy of fd 1) and writes on it only
lines carrying the nonce: {"walls": ...}, {"ready": true} once the candidate imported, one
line per case, or {"fatal": ...}. A python candidate runs in a forked child that holds
neither that channel nor the nonce (read after the fork): the parent sends it one request
at a time over a pipe, each with a fresh nonce, and relays only the one reply that answers
it; a reply it did not ask for ends the run as forged. The child's stdout and stderr are
the runtime's stderr: output, never results.
"""

from __future__ import annotations

import importlib.util
import json
import os
import select
import signal
import subprocess
import sys
import threading
import time
import traceback
from typing import Any

_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC
_PATH_EVENTS = {"os.remove", "os.rename", "os.rmdir", "os.mkdir", "os.symlink", "os.link", "os.chmod", "os.chown",
                "os.truncate", "os.utime", "shutil.rmtree", "shutil.copyfile", "shutil.move"}
_NET_EVENTS = {"socket.connect", "socket.bind", "socket.sendto", "socket.getaddrinfo"}
_local = threading.local()


def install_guard(root: str) -> None:
    """Refuse writes outside `root` and any network use, for this interpreter's lifetime."""
    base = os.path.realpath(root)
    allowed = (base + os.sep, "/dev/null")

    def inside(path: Any) -> bool:
        if isinstance(path, int):
            return True
        if isinstance(path, bytes):
            path = os.fsdecode(path)
        full = os.path.realpath(os.path.join(os.getcwd(), os.fspath(path)))
        return full == base or full.startswith(allowed) or full == "/dev/null"

    def hook(event: str, args: tuple[Any, ...]) -> None:
        if getattr(_local, "busy", False):
            return
        _local.busy = True
        try:
            if event == "open" and len(args) >= 3:
                path, mode, flags = args[0], args[1], args[2]
                writes = (isinstance(mode, str) and any(c in mode for c in "wax+")) or (
                    isinstance(flags, int) and flags & _WRITE_FLAGS)
                if writes and path is not None and not inside(path):
                    raise PermissionError(f"sandbox: writing {path!r} outside the sandbox folder is not allowed")
            elif event in _PATH_EVENTS:
                for path in args[:2]:
                    if isinstance(path, (str, bytes, os.PathLike)) and not inside(path):
                        raise PermissionError(f"sandbox: {event} on {path!r} outside the sandbox folder is not allowed")
            elif event in _NET_EVENTS:
                sock = args[0] if args else None
                if getattr(sock, "family", None) == getattr(__import__("socket"), "AF_UNIX", -1):
                    raise PermissionError("sandbox: Unix sockets are not allowed")
                raise PermissionError("sandbox: network access is not allowed")
        finally:
            _local.busy = False

    sys.addaudithook(hook)


# -- the kernel walls: keyring, seccomp, dumpable ----------------------------------------------------

_SYS_KEYCTL = {"x86_64": 250, "aarch64": 219, "i686": 288, "armv7l": 311}
_KEYCTL_JOIN_SESSION_KEYRING = 1
_PR_SET_DUMPABLE = 4
_PR_SET_SECCOMP = 22
_PR_SET_NO_NEW_PRIVS = 38
_SECCOMP_MODE_FILTER = 2


def _libc() -> Any:
    import ctypes  # here, not at the top: every Python process in the sandbox imports this module (sitecustomize)

    return ctypes.CDLL(None, use_errno=True)


def _errno() -> str:
    import ctypes

    return os.strerror(ctypes.get_errno())


def join_fresh_keyring() -> str:
    """Leave the runtime's session keyring for a new anonymous one (keyctl JOIN_SESSION_KEYRING, NULL name)."""
    import ctypes

    machine = os.uname().machine
    number = _SYS_KEYCTL.get(machine)
    if number is None:
        return f"none: no keyctl syscall number known for {machine}"
    libc = _libc()
    libc.syscall.restype = ctypes.c_long
    serial = libc.syscall(ctypes.c_long(number), ctypes.c_long(_KEYCTL_JOIN_SESSION_KEYRING), ctypes.c_void_p(None))
    if serial < 0:
        return f"none: keyctl(JOIN_SESSION_KEYRING) failed: {_errno()}"
    return "fresh anonymous session keyring"


def load_filter(path: str | None, label: str) -> str:
    """Load the compiled seccomp program at `path` for this process and all it starts."""
    if not path:
        return label  # "none: why", from the runtime
    try:
        with open(path, "rb") as fh:
            program = fh.read()
    except OSError as exc:
        return f"none: cannot read the filter: {exc}"
    if not program or len(program) % 8:
        return f"none: {path}: not a BPF program ({len(program)} bytes)"
    import ctypes

    class SockFprog(ctypes.Structure):
        _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_char_p)]

    libc = _libc()
    if libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
        return f"none: prctl(PR_SET_NO_NEW_PRIVS) failed: {_errno()}"
    fprog = SockFprog(len(program) // 8, program)
    if libc.prctl(_PR_SET_SECCOMP, _SECCOMP_MODE_FILTER, ctypes.byref(fprog), 0, 0) != 0:
        return f"none: prctl(PR_SET_SECCOMP) failed: {_errno()}"
    return label


def _set_dumpable(on: bool) -> None:
    _libc().prctl(_PR_SET_DUMPABLE, 1 if on else 0, 0, 0, 0)


# -- running one case -------------------------------------------------------------------------------------


class CaseTimeout(Exception):
    pass


def _alarm(signum: int, frame: Any) -> None:
    raise CaseTimeout("timed out")


def _run_exec(spec: dict[str, Any], data: Any) -> dict[str, Any]:
    tool_id = spec["tool_id"]
    try:
        proc = subprocess.Popen(spec["argv"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                cwd=spec["tool_dir"], env=os.environ.copy(), process_group=0)
    except OSError as exc:
        return {"ok": False, "class": "crash", "error": f"{tool_id}: cannot start {spec['argv'][0]!r}: {exc}"}
    try:
        out, err = proc.communicate(json.dumps(data).encode(), timeout=spec["case_timeout"])
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        return {"ok": False, "class": "timeout", "error": f"{tool_id}: timed out after {spec['case_timeout']:g} s"}
    tail = err.decode("utf-8", "replace")[-2000:].strip()
    if proc.returncode != 0:
        reason = f"killed by signal {-proc.returncode}" if proc.returncode < 0 else f"exited with code {proc.returncode}"
        last = tail.splitlines()[-1] if tail else ""
        return {"ok": False, "class": "exit_code", "error": f"{tool_id}: {reason}" + (f": {last}" if last else ""),
                "stderr": tail}
    return {"ok": True, "stdout": out.decode("utf-8", "replace")}  # the runtime parses it as it parses a call's


def _run_python(func: Any, tool_id: str, data: Any, timeout: float) -> dict[str, Any]:
    signal.setitimer(signal.ITIMER_REAL, timeout)
    try:
        result = func(data)
        json.dumps(result)
        return {"ok": True, "result": result}
    except CaseTimeout:
        return {"ok": False, "class": "timeout", "error": f"{tool_id}: timed out after {timeout:g} s"}
    except MemoryError:
        return {"ok": False, "class": "crash", "error": f"{tool_id}: MemoryError: the sandbox memory limit stopped it"}
    except (TypeError, ValueError) as exc:
        return {"ok": False, "class": "crash", "error": f"{tool_id}: {type(exc).__name__}: {exc}"[:2000],
                "stderr": traceback.format_exc(limit=6)[-3000:]}
    except BaseException as exc:  # SystemExit or anything else from the candidate fails this case only
        return {"ok": False, "class": "crash", "error": f"{tool_id}: {type(exc).__name__}: {exc}"[:2000],
                "stderr": traceback.format_exc(limit=6)[-3000:]}
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)


def _copy_into(src: str, dst: str) -> None:
    """Copy a folder's entries into an existing folder (whose own mode and owner stay as they are)."""
    import shutil

    for name in os.listdir(src):
        source, target = os.path.join(src, name), os.path.join(dst, name)
        if os.path.isdir(source) and not os.path.islink(source):
            shutil.copytree(source, target, symlinks=True)
        else:
            shutil.copy(source, target, follow_symlinks=False)


def _encode(reply: dict[str, Any]) -> str:
    try:
        return json.dumps(reply)
    except (TypeError, ValueError) as exc:
        return json.dumps({"i": reply.get("i"), "nonce": reply.get("nonce"), "ok": False, "class": "bad_output",
                           "error": f"output is not JSON: {exc}"})


# -- the child: the only process the candidate's python code runs in ---------------------------------------


def _child(spec: dict[str, Any], requests: int, replies: int) -> None:
    """Import the candidate and answer the parent's requests; never returns."""
    try:
        _set_dumpable(True)  # its own /proc entries, for multiprocessing and the like
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        os.close(null)
        signal.signal(signal.SIGALRM, _alarm)
        reader = os.fdopen(requests, "r", encoding="utf-8")
        writer = os.fdopen(replies, "w", buffering=1, encoding="utf-8")
    except BaseException:
        os._exit(70)
    code = 0
    try:
        load = json.loads(reader.readline())
        sys.path.insert(0, spec["tool_dir"])
        os.chdir(spec["tool_dir"])
        started = time.perf_counter()
        signal.setitimer(signal.ITIMER_REAL, spec["case_timeout"])
        try:
            module_spec = importlib.util.spec_from_file_location("tooldeck_candidate",
                                                                 os.path.join(spec["tool_dir"], spec["file"]))
            if module_spec is None or module_spec.loader is None:
                raise ImportError(f"cannot load {spec['file']}")
            module = importlib.util.module_from_spec(module_spec)
            sys.modules[module_spec.name] = module  # its functions pickle (multiprocessing) by this name
            module_spec.loader.exec_module(module)
            func = getattr(module, spec["func"])
        except BaseException as exc:  # the candidate failed to import: report it and stop
            signal.setitimer(signal.ITIMER_REAL, 0)
            writer.write(json.dumps({"nonce": load["nonce"], "fatal": True,
                                     "error": f"{spec['tool_id']}: cannot load {spec['file']}:{spec['func']}: "
                                              f"{type(exc).__name__}: {exc}"[:2000],
                                     "stderr": traceback.format_exc(limit=6)[-3000:]}) + "\n")
            os._exit(3)
        signal.setitimer(signal.ITIMER_REAL, 0)
        writer.write(json.dumps({"nonce": load["nonce"], "ready": True,
                                 "import_ms": round((time.perf_counter() - started) * 1000, 2)}) + "\n")
        for line in reader:
            request = json.loads(line)
            started = time.perf_counter()
            reply = _run_python(func, spec["tool_id"], request["data"], spec["case_timeout"])
            reply.update(i=request["i"], nonce=request["nonce"], ms=round((time.perf_counter() - started) * 1000, 2))
            writer.write(_encode(reply) + "\n")
    except BaseException:
        code = 70
    os._exit(code)


class Forged(Exception):
    """A line on the child's reply pipe that answers no request of the parent."""


class _Child:
    """The parent's side of the child: one request out, exactly one reply back."""

    def __init__(self, pid: int, requests: int, replies: int) -> None:
        self.pid, self.requests, self.replies = pid, requests, replies
        self.buffer = b""
        self.status: int | None = None

    def ask(self, message: dict[str, Any], timeout: float) -> dict[str, Any] | None:
        """Send `message` with a fresh nonce; its reply, or None when the child died or ran out of time."""
        nonce = os.urandom(16).hex()
        line = self.line(0)  # anything already waiting answers nothing
        if line is not None:
            raise Forged(f"a line before any request: {line[:200]!r}")
        try:
            os.write(self.requests, (json.dumps({**message, "nonce": nonce}) + "\n").encode())
        except (BrokenPipeError, OSError):
            return None
        line = self.line(timeout)
        if line is None:
            return None
        try:
            reply = json.loads(line)
        except ValueError:
            raise Forged(f"not a reply: {line[:200]!r}") from None
        if not isinstance(reply, dict) or reply.get("nonce") != nonce or reply.get("i") != message.get("i"):
            raise Forged(f"a reply to no request: {line[:200]!r}")
        return reply

    def line(self, timeout: float) -> str | None:
        """The next whole line from the child within `timeout` s, or None (nothing yet, or it closed)."""
        deadline = time.monotonic() + timeout
        while b"\n" not in self.buffer:
            left = deadline - time.monotonic()
            ready, _, _ = select.select([self.replies], [], [], max(left, 0))
            if not ready:
                return None
            chunk = os.read(self.replies, 1 << 16)
            if not chunk:
                return None
            self.buffer += chunk
        line, _, self.buffer = self.buffer.partition(b"\n")
        return line.decode("utf-8", "replace")

    def stop(self) -> str:
        """Kill the child; how it ended, in words."""
        os.close(self.requests)
        if self.status is None:
            try:
                os.kill(self.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            _, self.status = os.waitpid(self.pid, 0)
        return _ended(self.status)

    def exited(self, grace: float = 0.5) -> str | None:
        """How the child ended, when it has (waiting up to `grace` s), else None."""
        deadline = time.monotonic() + grace
        while True:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                self.status = status
                return _ended(status)
            if time.monotonic() >= deadline:
                return None
            time.sleep(0.01)


_REPLY_KEYS = ("i", "ok", "result", "class", "error", "stderr", "ms")
_SIGNALS: dict[int, str] = {signal.SIGXCPU: "the CPU-time limit stopped it", signal.SIGKILL: "killed (resource limit)",
            signal.SIGXFSZ: "the file-size limit stopped it"}


def _ended(status: int) -> str:
    code = os.waitstatus_to_exitcode(status)
    if code < 0:
        return _SIGNALS.get(-code, f"killed by signal {-code}")
    return f"exited with code {code}"


def _serve_python(spec: dict[str, Any], send: Any) -> int:
    """Fork the child, then relay: the nonce is read from stdin only after the fork."""
    requests_r, requests_w = os.pipe()
    replies_r, replies_w = os.pipe()
    pid = os.fork()
    if pid == 0:
        for fd in (requests_w, replies_r, send.fileno()):
            os.close(fd)
        _child(spec, requests_r, replies_w)
    os.close(requests_r)
    os.close(replies_w)
    child = _Child(pid, requests_w, replies_r)
    send.open(_read_nonce())
    tool_id, count, timeout = spec["tool_id"], len(spec["cases"]), spec["case_timeout"]
    grace = timeout + 2.0  # the child's own alarm ends a case first; this is for one that ignores it
    try:
        ready = child.ask({"op": "load"}, grace)
        if ready is None:
            why = child.exited()
            if why is None:
                child.stop()
                why = f"timed out after {timeout:g} s (the runner stopped it)"
            send({"fatal": True, "error": f"{tool_id}: cannot load {spec['file']}: the candidate's process {why}"})
            return 3
        if ready.get("fatal"):
            send({"fatal": True, "error": str(ready.get("error")), "stderr": str(ready.get("stderr", ""))})
            return 3
        send({"ready": True, "import_ms": ready.get("import_ms")})
        for index, data in enumerate(spec["cases"]):
            reply = child.ask({"op": "case", "i": index, "data": data}, grace)
            if reply is None:
                why = child.exited()
                if why is None:
                    child.stop()
                    send({"i": index, "ok": False, "class": "timeout",
                          "error": f"{tool_id}: timed out after {timeout:g} s (the runner stopped it)"})
                    send({"fatal": True, "error": f"the runner stopped the candidate after case {index + 1} of {count} timed out"})
                else:
                    send({"fatal": True, "error": f"the candidate's process {why} after {index} of {count} cases"})
                return 4
            send({key: reply[key] for key in _REPLY_KEYS if key in reply})
    except Forged as exc:
        child.stop()
        send({"forged": f"the runner's reply pipe carried {exc}"})
        return 5
    leftover = child.line(0)
    child.stop()
    if leftover is not None or child.buffer:
        send({"forged": f"the runner's reply pipe carried a line after the last case: {(leftover or '')[:200]!r}"})
        return 5
    return 0


class _Channel:
    """The runner's channel to the runtime: a private copy of fd 1; every line carries the run's nonce."""

    def __init__(self) -> None:
        self.out = os.fdopen(os.dup(1), "w", buffering=1, encoding="utf-8")
        self.nonce = ""
        self.pending: list[dict[str, Any]] = []

    def fileno(self) -> int:
        return self.out.fileno()

    def open(self, nonce: str) -> None:
        self.nonce = nonce
        for line in self.pending:
            self(line)
        self.pending = []

    def __call__(self, line: dict[str, Any]) -> None:
        if not self.nonce:
            self.pending.append(line)
            return
        self.out.write(_encode({**line, "n": self.nonce}) + "\n")


def _read_nonce() -> str:
    raw = b""
    while not raw.endswith(b"\n") and len(raw) < 256:
        chunk = os.read(0, 256)
        if not chunk:
            break
        raw += chunk
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    return raw.decode("ascii", "replace").strip()


def main() -> int:
    with open(sys.argv[1], encoding="utf-8") as fh:
        spec = json.load(fh)
    walls = {"keyring": join_fresh_keyring()}  # before the filter: it denies keyctl
    walls["seccomp"] = load_filter(spec.get("seccomp"), spec.get("seccomp_label", "none: the runtime sent no filter"))
    _set_dumpable(False)
    if spec.get("copy_from"):  # the candidate as written is a read-only bind; it runs from a copy on its tmpfs
        _copy_into(spec["copy_from"], spec["tool_dir"])
    send = _Channel()
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    send({"walls": walls})
    if spec["mode"] == "python":
        return _serve_python(spec, send)
    send.open(_read_nonce())
    send({"ready": True})
    for index, data in enumerate(spec["cases"]):
        started = time.perf_counter()
        reply = _run_exec(spec, data)
        reply.update(i=index, ms=round((time.perf_counter() - started) * 1000, 2))
        send(reply)
    return 0


if __name__ == "__main__":
    sys.exit(main())
