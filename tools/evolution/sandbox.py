"""The sandbox for code no person has approved (README.md, "Tool evolution", the sandbox part).

One child process per validation stage runs every case of that stage (start-up
dominates, so one process keeps a 5-test validation well under a second). The
child is started by a launcher (tools.evolution.launchers: bubblewrap, else the
hardened `unshare` fallback) and gets:

- a view of the host with nothing but the interpreter, the standard library and its
  own throwaway folder, a size-limited tmpfs that vanishes with it (the disk quota);
- new network, IPC, UTS and PID namespaces, the unprivileged uid 65534 with no
  capabilities, and death with the runtime;
- rlimits set between fork and exec: CPU seconds, address space, file size,
  process count, no core files; a wall-clock timeout that kills the whole tree;
- an environment built from scratch (nothing secret in it): LANG=C.UTF-8, HOME and
  TMPDIR inside the throwaway folder;
- an audit hook in every Python process inside (writes outside the sandbox folder,
  network sockets and Unix sockets refused), a second wall behind the kernel's.

Every result records which launcher ran and which protections its probe saw hold.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tools.errors import ToolError
from tools.evolution.launchers import DISK_MB, Launcher, limits, open_up, prepare_host, probe, remove_tree
from tools.invoke import OutputTooLarge, communicate, kill_group, spawn

RUNNER = Path(__file__).with_name("sandbox_runner.py")
#: what one sandbox run may print (its JSON-lines report and stderr) before it is killed
MAX_REPORT_BYTES = 16 * 1024 * 1024
__all__ = ["CaseResult", "Launcher", "SandboxRun", "probe", "run_cases"]


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


def _prepare(candidate_dir: Path, host: Path, launcher: Launcher) -> dict[str, str]:
    """Lay out the throwaway folder on the host side; the paths the candidate will see."""
    prepare_host(host)
    inside = launcher.root(host)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    runner_dir = host / "_runner"
    shutil.copy2(RUNNER, runner_dir / "sandbox_runner.py")
    (runner_dir / "sitecustomize.py").write_text(
        "import os\nimport sandbox_runner\nsandbox_runner.install_guard(os.environ['TOOLDECK_SANDBOX_ROOT'])\n")
    if launcher.isolated:  # the runner copies the candidate from its read-only bind onto the quota'd tmpfs
        shutil.copytree(candidate_dir, host / "_src", ignore=ignore, dirs_exist_ok=True, symlinks=True)
        return {"copy_from": f"{inside}/_src", "tool_dir": f"{inside}/tool", "work": f"{inside}/work",
                "tmp": f"{inside}/tmp", "root": str(inside), "runner": f"{inside}/_runner"}
    shutil.copytree(candidate_dir, host / "tool", ignore=ignore, symlinks=True)
    (host / "work").mkdir()
    (host / "tmp").mkdir()
    return {"tool_dir": str(host / "tool"), "work": str(host / "work"), "tmp": str(host / "tmp"), "root": str(host),
            "runner": str(runner_dir)}


PREFIX = "tooldeck-sbx-"
_swept = False


def sweep_orphans() -> list[str]:
    """Remove, once per process, the throwaway folders of runtimes that died mid-validation (kill -9)."""
    global _swept
    if _swept:
        return []
    _swept = True
    removed = []
    base = Path(tempfile.gettempdir())
    for entry in base.glob(f"{PREFIX}*"):
        pid = entry.name[len(PREFIX):].split("-", 1)[0]
        if not pid.isdigit() or int(pid) == os.getpid():
            continue
        try:
            os.kill(int(pid), 0)
            continue  # its runtime still runs
        except ProcessLookupError:
            pass
        except PermissionError:
            continue
        if remove_tree(entry) is None:
            removed.append(entry.name)
    return removed


def sandbox_env(paths: dict[str, str]) -> dict[str, str]:
    """The whole environment inside: built from nothing, so no secret can be in it."""
    return {
        "PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8", "HOME": paths["work"], "TMPDIR": paths["tmp"],
        "PYTHONPATH": paths["runner"], "PYTHONDONTWRITEBYTECODE": "1", "PYTHONNOUSERSITE": "1", "PYTHONUNBUFFERED": "1",
        "TOOLDECK_SANDBOX_ROOT": paths["root"], "TOOLDECK_WORKSPACE": paths["work"], "TOOLDECK_TOOL_DIR": paths["tool_dir"],
    }


def run_cases(candidate_dir: Path, manifest: Any, inputs: list[Any], *, timeout: float = 10.0, memory_mb: int = 512,
              disk_mb: int = DISK_MB, launcher: Launcher | None = None) -> SandboxRun:
    """Run every input through the candidate in one sandboxed process; never raises for the candidate's faults."""
    launcher = launcher or probe()
    protections = dict(launcher.protections, timeout=timeout, memory_mb=memory_mb)
    if launcher.isolated:
        protections["disk_quota_mb"] = disk_mb
    started = time.perf_counter()
    sweep_orphans()
    host = Path(tempfile.mkdtemp(prefix=f"{PREFIX}{os.getpid()}-{manifest.name}-"))
    cleanup: str | None = None
    try:
        paths = _prepare(candidate_dir, host, launcher)
        spec: dict[str, Any] = {"tool_id": manifest.name, "tool_dir": paths["tool_dir"], "work": paths["work"],
                                "cases": inputs, "case_timeout": min(float(manifest.call_timeout(timeout)), timeout)}
        if "copy_from" in paths:
            spec["copy_from"] = paths["copy_from"]
        if manifest.type == "python":
            file_name, func = manifest.entry.split(":", 1)
            spec.update(mode="python", file=file_name, func=func)
        else:
            argv = [part.replace("{tool_dir}", paths["tool_dir"]).replace("{workspace}", paths["work"])
                    for part in manifest.executable.argv()]
            if argv[0] in ("python", "python3", sys.executable):
                argv[0] = launcher.python
            spec.update(mode="exec", argv=argv)
        (host / "_runner" / "spec.json").write_text(json.dumps(spec))
        open_up(host, launcher)
        command = [launcher.python, f"{paths['runner']}/sandbox_runner.py", f"{paths['runner']}/spec.json"]
        cpu = int(timeout) + 1
        try:
            proc = spawn(launcher.argv(host, command, disk_mb=disk_mb), limits=limits(cpu, memory_mb),
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=host,
                         env=sandbox_env(paths))
        except (OSError, ToolError) as exc:
            message = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            return SandboxRun([], protections, _ms(started), fatal=f"cannot start the sandbox: {message}")
        killed = None
        try:
            out, err, finished = communicate(proc, b"", timeout=timeout + 2.0, limit=MAX_REPORT_BYTES)
            if not finished:
                killed = f"the sandbox killed it after {timeout:g} s (wall-clock timeout)"
        except OutputTooLarge as exc:
            out, err = b"", exc.stderr
            killed = f"the sandbox killed it: its {exc.stream} passed {exc.limit // (1 << 20)} MB"
        finally:
            if proc.poll() is None:
                kill_group(proc)
                proc.wait()
        run = _collect(out, err, len(inputs), proc.returncode, killed, protections, started)
    finally:
        cleanup = remove_tree(host)
    if cleanup:
        run.extra["cleanup"] = cleanup
    return run


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
