"""Runs unapproved candidate code inside the sandbox: stdlib only, copied into the sandbox.

The runtime never imports this module for a candidate; `tools.evolution.sandbox` copies
it into a throwaway folder and starts it as an unprivileged child process.
Imported as `sitecustomize` companion it also confines every Python process in
the sandbox (an audit hook refusing writes outside the sandbox folder, any network
socket and any Unix socket: a socketpair between its own processes still works),
a second wall behind the OS protections.

Usage: python sandbox_runner.py SPEC.json. Writes JSON lines on a private copy
of fd 1: {"ready": true} once the candidate imported, then one line per case.
"""

from __future__ import annotations

import importlib.util
import json
import os
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


class CaseTimeout(Exception):
    pass


def _alarm(signum: int, frame: Any) -> None:
    raise CaseTimeout("timed out")


def _parse_stdout(raw: bytes) -> Any:
    text = raw.decode("utf-8", "replace")
    stripped = text.strip()
    if stripped[:1] in ("{", "[", '"') or stripped in ("true", "false", "null"):
        try:
            return json.loads(stripped)
        except json.JSONDecodeError:
            return text
    try:
        return json.loads(stripped) if stripped and stripped.lstrip("-").replace(".", "", 1).isdigit() else text
    except json.JSONDecodeError:
        return text


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
    return {"ok": True, "result": _parse_stdout(out)}


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


def main() -> int:
    with open(sys.argv[1], encoding="utf-8") as fh:
        spec = json.load(fh)
    if spec.get("copy_from"):  # the candidate as written is a read-only bind; it runs from a copy on its tmpfs
        _copy_into(spec["copy_from"], spec["tool_dir"])
    proto = os.fdopen(os.dup(1), "w", buffering=1, encoding="utf-8")
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    signal.signal(signal.SIGALRM, _alarm)
    func = None
    if spec["mode"] == "python":
        sys.path.insert(0, spec["tool_dir"])
        os.chdir(spec["tool_dir"])
        started = time.perf_counter()
        signal.setitimer(signal.ITIMER_REAL, spec["case_timeout"])
        try:
            module_spec = importlib.util.spec_from_file_location("tooldeck_candidate", os.path.join(spec["tool_dir"], spec["file"]))
            if module_spec is None or module_spec.loader is None:
                raise ImportError(f"cannot load {spec['file']}")
            module = importlib.util.module_from_spec(module_spec)
            sys.modules[module_spec.name] = module  # its functions pickle (multiprocessing) by this name
            module_spec.loader.exec_module(module)
            func = getattr(module, spec["func"])
        except BaseException as exc:  # the candidate failed to import: report it and stop
            signal.setitimer(signal.ITIMER_REAL, 0)
            proto.write(json.dumps({"fatal": True, "error": f"{spec['tool_id']}: cannot load {spec['file']}:{spec['func']}: "
                                                           f"{type(exc).__name__}: {exc}"[:2000],
                                    "stderr": traceback.format_exc(limit=6)[-3000:]}) + "\n")
            return 3
        signal.setitimer(signal.ITIMER_REAL, 0)
        proto.write(json.dumps({"ready": True, "import_ms": round((time.perf_counter() - started) * 1000, 2)}) + "\n")
    else:
        proto.write(json.dumps({"ready": True}) + "\n")
    for index, data in enumerate(spec["cases"]):
        started = time.perf_counter()
        reply = _run_python(func, spec["tool_id"], data, spec["case_timeout"]) if func is not None else _run_exec(spec, data)
        reply["i"] = index
        reply["ms"] = round((time.perf_counter() - started) * 1000, 2)
        try:
            line = json.dumps(reply)
        except (TypeError, ValueError) as exc:
            line = json.dumps({"i": index, "ok": False, "class": "bad_output", "error": f"{spec['tool_id']}: output is not JSON: {exc}"})
        proto.write(line + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
