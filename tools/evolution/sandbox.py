"""The sandbox for code no person has approved (README.md, "Tool evolution", the sandbox part).

One child process per validation stage runs every case of that stage (start-up
dominates, so one process keeps a 5-test validation well under a second). The
child gets:

- rlimits set between fork and exec: CPU seconds, address space, file size,
  process count, no core files;
- a wall-clock timeout that kills the whole process tree;
- a throwaway working folder (tempfile) holding a copy of the candidate and the
  runner, and an environment from `clean_env` with nothing secret in it;
- when running as root: the unprivileged user 65534 (which cannot raise its
  limits back), a new network namespace with only a downed loopback, a new
  mount namespace whose /tmp, /var/tmp, /dev/shm and /run/lock are empty
  read-only tmpfs (so the only writable place is the sandbox folder), and a
  new PID namespace whose processes all die with the runner;
- an audit hook in every Python process inside (writes outside the sandbox
  folder and network sockets refused), a second wall behind the kernel's.

`probe()` finds once per process which of these the kernel allows here; every
result records which protections held.
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tools.secrets import clean_env

RUNNER = Path(__file__).with_name("sandbox_runner.py")
NOBODY = 65534
MAX_PROCESSES = 64
MAX_FILE_BYTES = 64 * 1024 * 1024

#: run inside the new namespaces as root, before dropping to the unprivileged user
_MOUNT_SCRIPT = (
    'set -e; sbx="$1"; shift; '
    'mount --bind "$sbx" /mnt; '
    'mount -t tmpfs -o size=1m,mode=755 tmpfs /tmp; '
    'mkdir -p "$sbx"; mount --move /mnt "$sbx"; '
    'for d in /var/tmp /dev/shm /run/lock; do if [ -d "$d" ]; then mount -t tmpfs -o size=1m,mode=755,ro tmpfs "$d"; fi; done; '
    'exec "$@"'
)
_NS_ARGS = ["--net", "--mount", "--pid", "--fork", "--kill-child", "--mount-proc", "--propagation", "private"]

_PROBE_CODE = """
import json, os, socket
out = {"uid": os.getuid()}
s = socket.socket()
s.settimeout(0.5)
try:
    s.connect(("1.1.1.1", 53)); out["net"] = True
except OSError:
    out["net"] = False
try:
    open("/tmp/.tooldeck-probe", "w").close(); out["tmp"] = True
except OSError:
    out["tmp"] = False
print(json.dumps(out))
"""


def _others_can_run(path: str) -> bool:
    """Whether a user who is neither owner nor group (the sandbox user) can execute `path`."""
    real = Path(os.path.realpath(path))
    try:
        if not real.is_file() or real.stat().st_mode & 0o005 != 0o005:
            return False
        return all(parent.stat().st_mode & 0o001 for parent in real.parents)
    except OSError:
        return False


def interpreter(drop_user: bool) -> str:
    """This Python, or (when it lives where the sandbox user cannot reach, e.g. under /root)
    a system interpreter of the same major.minor version. Candidates use the standard library only."""
    if not drop_user or _others_can_run(sys.executable):
        return sys.executable
    minor = f"{sys.version_info[0]}.{sys.version_info[1]}"
    for candidate in (getattr(sys, "_base_executable", ""), f"/usr/bin/python{minor}", f"/usr/local/bin/python{minor}"):
        if candidate and _others_can_run(candidate):
            return os.path.realpath(candidate)
    return sys.executable


@dataclass(frozen=True)
class Launcher:
    """How a sandboxed process is started here, and what that protects."""

    mode: str  # namespaces | user | none
    protections: dict[str, Any]
    python: str = sys.executable

    def argv(self, root: Path, command: list[str]) -> list[str]:
        drop = ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups", "--"]
        if self.mode == "namespaces":
            return ["unshare", *_NS_ARGS, "--", "sh", "-c", _MOUNT_SCRIPT, "sh", str(root), *drop, *command]
        if self.mode == "user":
            return [*drop, *command]
        return command


_launcher: Launcher | None = None
_launcher_lock = threading.Lock()


def _limits(cpu_seconds: int, memory_mb: int) -> Any:
    def apply() -> None:  # in the child, between fork and exec
        memory = memory_mb * 1024 * 1024
        resource.setrlimit(resource.RLIMIT_CPU, (cpu_seconds, cpu_seconds + 1))
        resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
        resource.setrlimit(resource.RLIMIT_FSIZE, (MAX_FILE_BYTES, MAX_FILE_BYTES))
        resource.setrlimit(resource.RLIMIT_NPROC, (MAX_PROCESSES, MAX_PROCESSES))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))

    return apply


def _try(launcher: Launcher) -> dict[str, Any] | None:
    root = Path(tempfile.mkdtemp(prefix="tooldeck-probe-"))
    try:
        os.chmod(root, 0o755)
        proc = subprocess.run(launcher.argv(root, [launcher.python, "-I", "-c", _PROBE_CODE]), capture_output=True,
                              timeout=10, env=clean_env(), cwd=root, preexec_fn=_limits(10, 1024))
        if proc.returncode != 0:
            return None
        return json.loads(proc.stdout.decode().strip().splitlines()[-1])
    except (OSError, subprocess.SubprocessError, ValueError, IndexError):
        return None
    finally:
        shutil.rmtree(root, ignore_errors=True)


def probe(refresh: bool = False) -> Launcher:
    """Find, once per process, the strongest launcher this kernel allows."""
    global _launcher
    with _launcher_lock:
        if _launcher is not None and not refresh:
            return _launcher
        is_root = os.geteuid() == 0
        chosen: Launcher | None = None
        python = interpreter(is_root)
        if is_root and shutil.which("setpriv"):
            if shutil.which("unshare") and Path("/mnt").is_dir():
                seen = _try(Launcher("namespaces", {}, python))
                if seen is not None and seen.get("uid") == NOBODY:
                    chosen = Launcher("namespaces", {
                        "unprivileged_user": True, "no_network": not seen.get("net"), "private_tmp": not seen.get("tmp"),
                        "pid_namespace": True}, python)
            if chosen is None:
                seen = _try(Launcher("user", {}, python))
                if seen is not None and seen.get("uid") == NOBODY:
                    chosen = Launcher("user", {"unprivileged_user": True, "no_network": False, "private_tmp": False,
                                               "pid_namespace": False}, python)
        if chosen is None:
            chosen = Launcher("none", {"unprivileged_user": not is_root, "no_network": False, "private_tmp": False,
                                       "pid_namespace": False})
        chosen.protections.update({"rlimits": True, "clean_env": True, "audit_hook": True, "throwaway_dir": True,
                                   "python": chosen.python})
        _launcher = chosen
        return chosen


@dataclass
class CaseResult:
    ok: bool
    result: Any = None
    error_class: str | None = None
    error: str | None = None
    ms: float = 0.0


@dataclass
class SandboxRun:
    results: list[CaseResult]
    protections: dict[str, Any]
    ms: float
    fatal: str | None = None  # the candidate could not start, or the sandbox killed it
    stderr_tail: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


def _prepare(candidate_dir: Path, root: Path) -> Path:
    """Copy the candidate and the runner into the throwaway folder, owned by the sandbox user."""
    tool_dir = root / "tool"
    shutil.copytree(candidate_dir, tool_dir, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    runner_dir = root / "_runner"
    runner_dir.mkdir()
    shutil.copy2(RUNNER, runner_dir / "sandbox_runner.py")
    (runner_dir / "sitecustomize.py").write_text(
        "import os\nimport sandbox_runner\nsandbox_runner.install_guard(os.environ['TOOLDECK_SANDBOX_ROOT'])\n")
    (root / "work").mkdir()
    return tool_dir


def _own(root: Path) -> None:
    """Give the tree to the sandbox user (root only) so it can read its code and write its folder."""
    os.chmod(root, 0o755)
    if os.geteuid() != 0:
        return
    for dirpath, _dirnames, filenames in os.walk(root):
        os.chown(dirpath, NOBODY, NOBODY)
        for name in filenames:
            os.chown(os.path.join(dirpath, name), NOBODY, NOBODY)
    for dirpath, _dirs, filenames in os.walk(root / "_runner"):  # the runner and its guard stay read-only to it
        os.chown(dirpath, 0, 0)
        os.chmod(dirpath, 0o755)
        for fname in filenames:
            os.chown(os.path.join(dirpath, fname), 0, 0)
            os.chmod(os.path.join(dirpath, fname), 0o644)
    os.chown(root, 0, 0)


def _kill(proc: subprocess.Popen[bytes]) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def run_cases(candidate_dir: Path, manifest: Any, inputs: list[Any], *, timeout: float = 10.0,
              memory_mb: int = 512) -> SandboxRun:
    """Run every input through the candidate in one sandboxed process; never raises for the candidate's faults."""
    launcher = probe()
    protections = dict(launcher.protections, timeout=timeout, memory_mb=memory_mb)
    started = time.perf_counter()
    root = Path(tempfile.mkdtemp(prefix="tooldeck-sbx-"))
    try:
        tool_dir = _prepare(candidate_dir, root)
        spec: dict[str, Any] = {"tool_id": manifest.name, "tool_dir": str(tool_dir), "cases": inputs,
                                "case_timeout": min(float(manifest.call_timeout(timeout)), timeout)}
        if manifest.type == "python":
            file_name, func = manifest.entry.split(":", 1)
            spec.update(mode="python", file=file_name, func=func)
        else:
            argv = [part.replace("{tool_dir}", str(tool_dir)).replace("{workspace}", str(root / "work"))
                    for part in manifest.executable.argv()]
            if argv[0] in ("python", "python3", sys.executable):
                argv[0] = launcher.python
            spec.update(mode="exec", argv=argv)
        spec_path = root / "spec.json"
        spec_path.write_text(json.dumps(spec))
        _own(root)
        keep = ("PATH", "LANG", "LC_ALL", "LC_CTYPE", "TZ")
        env = clean_env(base={k: v for k, v in os.environ.items() if k in keep})
        env.update({
            "HOME": str(root / "work"), "TMPDIR": str(root / "work"), "PYTHONPATH": str(root / "_runner"),
            "PYTHONDONTWRITEBYTECODE": "1", "PYTHONNOUSERSITE": "1", "TOOLDECK_SANDBOX_ROOT": str(root),
            "TOOLDECK_WORKSPACE": str(root / "work"), "TOOLDECK_TOOL_DIR": str(tool_dir), "PYTHONUNBUFFERED": "1",
        })
        command = [launcher.python, str(root / "_runner" / "sandbox_runner.py"), str(spec_path)]
        cpu = int(timeout) + 1
        try:
            proc = subprocess.Popen(launcher.argv(root, command), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                    stderr=subprocess.PIPE, cwd=root / "work", env=env, start_new_session=True,
                                    preexec_fn=_limits(cpu, memory_mb))
        except OSError as exc:
            return SandboxRun([], protections, _ms(started), fatal=f"cannot start the sandbox: {exc.strerror or exc}")
        killed = None
        try:
            out, err = proc.communicate(timeout=timeout + 1.0)
        except subprocess.TimeoutExpired:
            _kill(proc)
            out, err = proc.communicate()
            killed = f"the sandbox killed it after {timeout:g} s (wall-clock timeout)"
        finally:
            if proc.poll() is None:
                _kill(proc)
                proc.wait()
        return _collect(out, err, len(inputs), proc.returncode, killed, protections, started)
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 1)


def _collect(out: bytes, err: bytes, count: int, returncode: int | None, killed: str | None,
             protections: dict[str, Any], started: float) -> SandboxRun:
    from tools.secrets import redact

    results: dict[int, CaseResult] = {}
    fatal = None
    for line in out.decode("utf-8", "replace").splitlines():
        try:
            reply = json.loads(line)
        except json.JSONDecodeError:
            continue
        if not isinstance(reply, dict):
            continue
        if reply.get("fatal"):
            fatal = str(reply.get("error"))
        elif "i" in reply and isinstance(reply["i"], int):
            results[reply["i"]] = CaseResult(bool(reply.get("ok")), reply.get("result"), reply.get("class"),
                                             reply.get("error"), float(reply.get("ms", 0.0)))
    tail = redact(err.decode("utf-8", "replace")[-2000:].strip())
    if fatal is None and len(results) < count:
        if killed:
            fatal = killed
        elif returncode is not None and returncode < 0:
            sig = -returncode
            fatal = {signal.SIGXCPU: "the CPU-time limit stopped it", signal.SIGKILL: "killed (resource limit)",
                     signal.SIGXFSZ: "the file-size limit stopped it"}.get(sig, f"killed by signal {sig}")
        elif returncode == 137:
            fatal = "killed (resource limit)"
        else:
            last = tail.splitlines()[-1] if tail else ""
            fatal = f"the sandbox process exited with code {returncode} after {len(results)} of {count} cases" + (
                f": {last}" if last else "")
    ordered = []
    for i in range(count):
        ordered.append(results.get(i) or CaseResult(False, None, "crash", fatal or "not run"))
    return SandboxRun(ordered, protections, _ms(started), fatal=fatal, stderr_tail=tail)
