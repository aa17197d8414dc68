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
  network sockets and Unix sockets refused), a second wall behind the kernel's;
- the kernel paths namespaces do not cover, closed by the runner before the candidate exists:
  a fresh anonymous session keyring, then a seccomp filter libseccomp compiled here
  (tools.evolution.seccomp);
- a memory and pids cgroup per run (tools.evolution.cgroups), so the run is bounded as a whole,
  and a throwaway tmpfs with an inode limit;
- a result channel only the runner writes: every line carries a nonce the runtime hands the
  runner on stdin, and the candidate's python code runs in a child of the runner that has
  neither; a line without it fails the run as forged.

Every result records which launcher ran, which protections its probe saw hold, and which walls
the run itself reported (`seccomp`, `keyring`, `cgroup`).
"""

from __future__ import annotations

import json
import os
import secrets
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
from tools.evolution import cgroups, seccomp
from tools.evolution.launchers import DISK_MB, MAX_PROCESSES, Launcher, limits, open_up, prepare_host, probe, remove_tree
from tools.invoke import OutputTooLarge, communicate, kill_group, parse_stdout, spawn

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
    program = seccomp.compiled().program
    if program:
        (runner_dir / "seccomp.bpf").write_bytes(program)
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
        if not pid.isdigit() or int(pid) == os.getpid() or not _dead(int(pid)):
            continue
        if remove_tree(entry) is None:
            removed.append(entry.name)
    return removed + cgroups.sweep(_dead)


def _dead(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        pass
    return False  # its runtime still runs


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
    group = cgroups.create(memory_mb, MAX_PROCESSES)
    protections["cgroup"] = group.label
    cleanup: str | None = None
    try:
        paths = _prepare(candidate_dir, host, launcher)
        program = seccomp.compiled()
        spec: dict[str, Any] = {"tool_id": manifest.name, "tool_dir": paths["tool_dir"], "work": paths["work"],
                                "cases": inputs, "case_timeout": min(float(manifest.call_timeout(timeout)), timeout),
                                "seccomp": f"{paths['runner']}/seccomp.bpf" if program.program else None,
                                "seccomp_label": program.label}
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
        nonce = secrets.token_hex(16)
        try:
            proc = spawn(launcher.argv(host, command, disk_mb=disk_mb, cgroup_procs=group.procs_files()),
                         limits=limits(cpu, memory_mb),
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=host,
                         env=sandbox_env(paths))
        except (OSError, ToolError) as exc:
            message = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            return SandboxRun([], protections, _ms(started), fatal=f"cannot start the sandbox: {message}")
        killed = None
        try:
            out, err, finished, _held = communicate(proc, f"{nonce}\n".encode(), timeout=timeout + 2.0, limit=MAX_REPORT_BYTES)
            if not finished:
                killed = f"the sandbox killed it after {timeout:g} s (wall-clock timeout)"
        except OutputTooLarge as exc:
            out, err = b"", exc.stderr
            killed = f"the sandbox killed it: its {exc.stream} passed {exc.limit // (1 << 20)} MB"
        finally:
            if proc.poll() is None:
                kill_group(proc)
                proc.wait()
        run = _collect(out, err, nonce, len(inputs), proc.returncode, killed, protections, started)
        _bounded(run, group, memory_mb)
    finally:
        cleanup = "; ".join(p for p in (group.remove(), remove_tree(host)) if p)
    if cleanup:
        run.extra["cleanup"] = cleanup
    return run


def _bounded(run: SandboxRun, group: cgroups.RunCgroup, memory_mb: int) -> None:
    """A run that met its cgroup's limits fails whole, whatever its cases said: a killed helper skews every answer."""
    oom, refused = group.oom_kills(), group.pids_refused()
    reasons = []
    if oom:
        reasons.append(f"the sandbox's memory limit ({memory_mb} MB for the whole run) stopped it: "
                       f"the kernel killed {oom} process{'es' if oom > 1 else ''}")
    if refused:
        reasons.append(f"the sandbox's process limit ({MAX_PROCESSES} for the whole run) refused {refused} "
                       f"new process{'es' if refused > 1 else ''}")
    if not reasons:
        return
    run.fatal = "; ".join(reasons)
    run.extra["resource_limit"] = run.fatal
    run.results = [CaseResult(False, None, "crash", run.fatal, r.ms) for r in run.results]


def _ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 1)


def _returned(reply: dict[str, Any]) -> Any:
    """What a case returned. An executable's stdout comes as its text and is parsed by the code a call's is (JSON, or
    the text kept as not JSON), so output validation says of it what it says outside the sandbox."""
    stdout = reply.get("stdout")
    return parse_stdout(stdout) if isinstance(stdout, str) else reply.get("result")


def _collect(out: bytes, err: bytes, nonce: str, count: int, returncode: int | None, killed: str | None,
             protections: dict[str, Any], started: float) -> SandboxRun:
    """The runner's lines; any line it did not write (no nonce, a second answer to a case) fails the whole run."""
    from tools.secrets import redact

    results: dict[int, CaseResult] = {}
    fatal = forged = None
    protections.update(seccomp="none: the runner did not report", keyring="none: the runner did not report")
    text = out.decode("utf-8", "replace")
    lines = text.split("\n")
    if lines and lines[-1] and killed:
        lines.pop()  # the runner was killed mid-line
    for line in filter(None, lines):
        try:
            reply = json.loads(line)
        except json.JSONDecodeError:
            reply = None
        if not isinstance(reply, dict) or reply.get("n") != nonce:
            forged = forged or f"a line the runner did not write: {line[:120]!r}"
            continue
        if reply.get("forged"):
            forged = forged or str(reply["forged"])
        elif isinstance(reply.get("walls"), dict):
            protections.update({k: str(v) for k, v in reply["walls"].items() if k in ("seccomp", "keyring")})
        elif reply.get("fatal"):
            fatal = str(reply.get("error"))
        elif isinstance(reply.get("i"), int) and not isinstance(reply["i"], bool):
            if reply["i"] in results:
                forged = forged or f"a second result for case {reply['i']}"
            results[reply["i"]] = CaseResult(bool(reply.get("ok")), _returned(reply), reply.get("class"),
                                             reply.get("error"), float(reply.get("ms", 0.0)))
    tail = redact(err.decode("utf-8", "replace")[-2000:].strip())
    if forged:
        fatal = f"forged result: {forged}; the run fails whole"
        failed = [CaseResult(False, None, "forged", "not trusted: the run's result channel carried a forged line")
                  for _ in range(count)]
        return SandboxRun(failed, protections, _ms(started), fatal=fatal, stderr_tail=tail)
    if fatal is None and len(results) < count:
        if killed:
            fatal = killed
        elif returncode is not None and returncode < 0:
            sig = -returncode
            known: dict[int, str] = {signal.SIGXCPU: "the CPU-time limit stopped it", signal.SIGKILL: "killed (resource limit)",
                                     signal.SIGXFSZ: "the file-size limit stopped it"}
            fatal = known.get(sig, f"killed by signal {sig}")
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
