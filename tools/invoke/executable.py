"""`executable` tools: a child process per call, argv from the manifest, no shell.

The child gets its own process group so a timeout kills it and everything it
spawned; its environment has every secret removed.
"""

from __future__ import annotations

import json
import os
import resource
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

from tools.catalog import ToolEntry
from tools.errors import ToolCancelledError, ToolCrashError, ToolExitError, ToolInputError, ToolTimeoutError
from tools.ids import inside
from tools.invoke.cancel import check_cancelled, current_scope, killable
from tools.secrets import clean_env, redact

STDERR_TAIL = 2000


def stderr_tail(raw: bytes | str, limit: int = STDERR_TAIL) -> str:
    text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw
    return redact(text[-limit:].strip())


def parse_stdout(raw: bytes) -> Any:
    """JSON when the output is JSON, otherwise the text itself."""
    text = raw.decode("utf-8", "replace")
    stripped = text.strip()
    if stripped[:1] in ("{", "[", '"') or stripped in ("true", "false", "null") or _looks_numeric(stripped):
        try:
            return json.loads(stripped)
        except json.JSONDecodeError:
            pass
    return text


def _looks_numeric(text: str) -> bool:
    return bool(text) and text.lstrip("-").replace(".", "", 1).isdigit()


def build_argv(entry: ToolEntry, workspace: Path) -> list[str]:
    assert entry.manifest is not None and entry.manifest.executable is not None
    subst = {"{tool_dir}": str(entry.tool_dir), "{workspace}": str(workspace)}
    argv = []
    for part in entry.manifest.executable.argv():
        for key, value in subst.items():
            part = part.replace(key, value)
        argv.append(part)
    if argv[0] in ("python", "python3"):
        argv[0] = sys.executable  # the interpreter tooldeck runs on, with its packages
    return argv


def working_dir(entry: ToolEntry, workspace: Path) -> Path:
    assert entry.manifest is not None and entry.manifest.executable is not None
    wd = entry.manifest.executable.working_dir
    if not wd:
        return entry.tool_dir
    return inside(workspace, Path(wd.replace("{workspace}", str(workspace))))


def _limits(memory_mb: int | None) -> Any:
    if memory_mb is None:
        return None

    def apply() -> None:  # runs in the child between fork and exec
        limit = memory_mb * 1024 * 1024
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))

    return apply


def kill_group(proc: subprocess.Popen[bytes]) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def run_executable(entry: ToolEntry, data: Any, *, workspace: Path, timeout: float) -> Any:
    manifest = entry.manifest
    assert manifest is not None and manifest.executable is not None
    try:
        payload = json.dumps(data).encode()
    except (TypeError, ValueError) as exc:
        raise ToolInputError(f"{entry.tool_id}: input is not JSON-serialisable: {exc}", tool_id=entry.tool_id) from exc
    env = clean_env(manifest.executable.environment)
    env["TOOLDECK_WORKSPACE"] = str(workspace)
    env["TOOLDECK_TOOL_DIR"] = str(entry.tool_dir)
    argv = build_argv(entry, workspace)
    scope = current_scope()
    check_cancelled(scope, entry.tool_id, entry.served_version)
    try:
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            cwd=working_dir(entry, workspace),
            env=env,
            start_new_session=True,
            preexec_fn=_limits(manifest.executable.memory_limit_mb),
        )
    except OSError as exc:
        raise ToolCrashError(
            f"{entry.tool_id}: cannot start {argv[0]!r}: {exc.strerror or exc}",
            tool_id=entry.tool_id, version=entry.served_version,
        ) from exc
    try:
        with killable(scope, lambda: kill_group(proc)):
            out, err = proc.communicate(payload, timeout=timeout)
    except subprocess.TimeoutExpired:
        kill_group(proc)
        out, err = proc.communicate()
        raise ToolTimeoutError(
            f"{entry.tool_id}: timed out after {timeout:g} s (process group killed)",
            tool_id=entry.tool_id, version=entry.served_version, stderr_tail=stderr_tail(err),
        ) from None
    finally:
        if proc.poll() is None:
            kill_group(proc)
            proc.wait()
    kill_group(proc)  # nothing the tool spawned outlives the call
    if scope is not None and scope.cancelled:
        raise ToolCancelledError(f"{entry.tool_id}: cancelled by the caller (process group killed)",
                                 tool_id=entry.tool_id, version=entry.served_version)
    if proc.returncode != 0:
        tail = stderr_tail(err)
        reason = f"killed by signal {-proc.returncode}" if proc.returncode < 0 else f"exited with code {proc.returncode}"
        raise ToolExitError(
            f"{entry.tool_id}: {reason}" + (f": {tail.splitlines()[-1]}" if tail else ""),
            tool_id=entry.tool_id, version=entry.served_version, exit_code=proc.returncode, stderr_tail=tail,
        )
    return parse_stdout(out)
