"""`executable` tools: a child process per call, argv from the manifest, no shell.

The child is started by `spawn` (its own process group, dead with the runtime), so a timeout,
an output past `max_output_bytes` or the runtime closing kills it and everything it spawned;
its environment has every secret removed.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

from tools.catalog import ToolEntry
from tools.errors import (
    ToolCancelledError,
    ToolCrashError,
    ToolError,
    ToolExitError,
    ToolInputError,
    ToolOutputTooLargeError,
    ToolTimeoutError,
    ToolUnavailableError,
)
from tools.ids import inside
from tools.invoke.cancel import check_cancelled, current_scope, killable
from tools.invoke.capture import OutputTooLarge, communicate
from tools.invoke.spawn import Children, Limits, kill_group, kill_holders, pipe_inodes, spawn
from tools.secrets import clean_env, redact
from tools.settings import Settings

STDERR_TAIL = 2000
DEFAULT_MAX_OUTPUT = 16 << 20


def stderr_tail(raw: bytes | str, limit: int = STDERR_TAIL) -> str:
    text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw
    return redact(text[-limit:].strip())


class StdoutText(str):
    """A tool's stdout that is not JSON, kept as its text: a schema that wants JSON names it as such."""


def parse_stdout(raw: bytes | str) -> Any:
    """JSON when the output is JSON, otherwise the text itself. `NaN` and `Infinity` are not JSON (Python's parser
    takes them, and what it read back out would not be JSON again), nor is nesting past the parser's depth.
    Calls and the evolution sandbox (which relays a candidate's stdout as text) both parse it here."""
    text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw
    stripped = text.strip()
    if stripped[:1] in ("{", "[", '"') or stripped in ("true", "false", "null") or _looks_numeric(stripped):
        try:
            return json.loads(stripped, parse_constant=_not_json)
        except (ValueError, RecursionError):  # JSONDecodeError is a ValueError
            pass
    return StdoutText(text)


def _not_json(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


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


def output_cap(entry: ToolEntry, settings: Settings) -> int:
    """The output cap of one call: the manifest's `executable.max_output_bytes`, else
    `[calls] max_output_bytes` in tooldeck.toml."""
    spec = entry.manifest.executable if entry.manifest is not None else None
    if spec is not None and spec.max_output_bytes is not None:
        return spec.max_output_bytes
    return default_output_cap(settings)


def default_output_cap(settings: Settings) -> int:
    """`[calls] max_output_bytes` of tooldeck.toml, checked: the cap of every tool that sets none of its own."""
    return settings.positive_int("calls", "max_output_bytes", "bytes")


def run_executable(entry: ToolEntry, data: Any, *, workspace: Path, timeout: float, children: Children | None = None,
                   max_output: int = DEFAULT_MAX_OUTPUT) -> Any:
    manifest = entry.manifest
    assert manifest is not None and manifest.executable is not None
    try:
        payload = json.dumps(data).encode()
    except (TypeError, ValueError) as exc:
        raise ToolInputError(f"{entry.tool_id}: input is not JSON-serialisable: {exc}", tool_id=entry.tool_id) from exc
    env = clean_env(manifest.executable.environment)
    env["TOOLDECK_WORKSPACE"] = str(workspace)
    env["TOOLDECK_TOOL_DIR"] = str(entry.tool_dir)
    env["PYTHONDONTWRITEBYTECODE"] = "1"  # no bytecode left beside a tool's files (pinned folders hold none)
    argv = build_argv(entry, workspace)
    memory = manifest.executable.memory_limit_mb
    scope = current_scope()
    check_cancelled(scope, entry.tool_id, entry.served_version)
    try:
        proc = spawn(argv, children=children, limits=Limits(memory_mb=memory) if memory else None,
                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                     cwd=working_dir(entry, workspace), env=env)
    except OSError as exc:
        raise ToolCrashError(
            f"{entry.tool_id}: cannot start {argv[0]!r}: {exc.strerror or exc}",
            tool_id=entry.tool_id, version=entry.served_version,
        ) from exc
    except ToolError as exc:
        exc.tool_id, exc.version = entry.tool_id, entry.served_version
        raise
    inodes = pipe_inodes(proc.stdout, proc.stderr)
    held = True  # until the pipes are known to have ended
    try:
        with killable(scope, lambda: kill_group(proc)):
            out, err, finished, held = communicate(proc, payload, timeout=timeout, limit=max_output)
    except OutputTooLarge as exc:
        kill_group(proc)
        raise ToolOutputTooLargeError(
            f"{entry.tool_id}: {exc.stream} passed max_output_bytes ({max_output} bytes); the tool was killed",
            tool_id=entry.tool_id, version=entry.served_version, stderr_tail=stderr_tail(exc.stderr),
        ) from None
    finally:
        kill_group(proc)  # nothing the tool spawned outlives the call
        if held:  # a grandchild that left the group (setsid) with the tool's pipes open
            kill_holders(inodes)
        if proc.poll() is None:
            proc.wait()
        for stream in (proc.stdin, proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()
        if children is not None:
            children.discard(proc)
    if scope is not None and scope.cancelled:
        raise ToolCancelledError(f"{entry.tool_id}: cancelled by the caller (process group killed)",
                                 tool_id=entry.tool_id, version=entry.served_version)
    if not finished:
        raise ToolTimeoutError(
            f"{entry.tool_id}: timed out after {timeout:g} s (process group killed)",
            tool_id=entry.tool_id, version=entry.served_version, stderr_tail=stderr_tail(err),
        )
    if proc.returncode != 0:
        tail = stderr_tail(err)
        if children is not None and children.closed and proc.returncode == -signal.SIGKILL:
            raise ToolUnavailableError(f"{entry.tool_id}: killed: the runtime is closing", tool_id=entry.tool_id,
                                       version=entry.served_version, exit_code=proc.returncode, stderr_tail=tail)
        reason = f"killed by signal {-proc.returncode}" if proc.returncode < 0 else f"exited with code {proc.returncode}"
        last = tail.rsplit("\n", 1)[-1]  # its last line, ended at \n only (splitlines() also ends one at a CR)
        raise ToolExitError(
            f"{entry.tool_id}: {reason}" + (f": {last}" if tail else ""),
            tool_id=entry.tool_id, version=entry.served_version, exit_code=proc.returncode, stderr_tail=tail,
        )
    return parse_stdout(out)
