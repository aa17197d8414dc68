"""One exception hierarchy for everything the runtime can refuse or fail at.

Every error carries enough for an operator to act on: the tool, the file or the
field at fault, and for a failed call the failure class, exit code and a
redacted tail of stderr.
"""

from __future__ import annotations

import json
from typing import Any

from state.redact import redact


class ToolError(Exception):
    """Root of every error tooldeck raises on purpose."""

    #: failure class recorded in `calls` / `failures` (bad_input, timeout, exit_code, ...)
    error_class: str = "error"

    def __init__(
        self,
        message: str,
        *,
        tool_id: str | None = None,
        version: str | None = None,
        exit_code: int | None = None,
        stderr_tail: str = "",
        error_class: str | None = None,
        details: dict[str, Any] | None = None,
    ) -> None:
        message = redact(message)  # an error is shown, logged and stored: never with a secret in it
        super().__init__(message)
        self.message = message
        self.tool_id = tool_id
        self.version = version
        self.exit_code = exit_code
        self.stderr_tail = redact(stderr_tail)
        if error_class is not None:
            self.error_class = error_class
        self.details = details or {}

    def __str__(self) -> str:
        return self.message

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "error": self.message,
            "error_class": self.error_class,
        }
        if self.tool_id:
            out["tool_id"] = self.tool_id
        if self.version:
            out["version"] = self.version
        if self.exit_code is not None:
            out["exit_code"] = self.exit_code
        if self.stderr_tail:
            out["stderr_tail"] = self.stderr_tail
        if self.details:
            out.update(self.details)
        return out


class UsageError(ToolError):
    """The caller asked for something malformed (bad id, bad JSON, bad option)."""

    error_class = "bad_usage"


class InvalidIdError(UsageError):
    """An identifier that is not a plain identifier (and so may never reach a path)."""

    error_class = "bad_id"


class ManifestError(ToolError):
    """A manifest that cannot be parsed or validated; names the file and the field."""

    error_class = "bad_manifest"


class UnknownToolError(ToolError):
    """No tool with that id; the message names the closest ids."""

    error_class = "unknown_tool"


class ToolNotReadyError(ToolError):
    """The tool did not finish loading within the wait timeout, or failed to load."""

    error_class = "not_ready"


class ToolInputError(ToolError):
    """Input rejected before the tool ran (not JSON, or against `input_schema`)."""

    error_class = "bad_input"


def parse_json(text: str | bytes, what: str, *, tool_id: str | None = None, hint: str = "") -> Any:
    """JSON from outside (an argument, stdin, a tool's input), or a `ToolInputError` saying why not. Nesting past the
    parser's depth is malformed input like any other: Python's parser raises RecursionError there, which would
    otherwise escape as a crash. `hint` is appended to the reason (e.g. how to quote a string on a command line).

    Empty text (or only whitespace) is no JSON either, said so: it is what an empty pipe or an unset shell variable
    gives, and reading it as `{}` would call a tool with input nobody wrote. A caller for which "nothing" means `{}`
    (`call_tool("x", "")`, a builtin's executable with nothing on stdin) decides that before asking."""
    if not text.strip():
        raise ToolInputError(f"{what} is empty: no JSON was given{hint}", tool_id=tool_id)
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        reason = f"{exc.msg} at line {exc.lineno} column {exc.colno}"
    except RecursionError:
        reason = "nested too deeply"
    raise ToolInputError(f"{what} is not valid JSON: {reason}{hint}", tool_id=tool_id)


class NotFoundError(ToolInputError):
    """An id or a file that names nothing there: an unknown buffer, a missing file.

    Still the caller's bad input when it reaches a tool; the CLI reports it as bad usage (exit 2).
    """


class ToolOutputError(ToolError):
    """The tool's output violates its `output_schema`."""

    error_class = "bad_output"


class ToolOutputTooLargeError(ToolOutputError):
    """The tool wrote more than its `max_output_bytes` to stdout or stderr and was killed."""

    error_class = "output_too_large"


class ToolTimeoutError(ToolError):
    """The tool ran past its timeout and was killed (with its whole process group)."""

    error_class = "timeout"


class ToolExitError(ToolError):
    """The tool process exited non-zero."""

    error_class = "exit_code"


class ToolCrashError(ToolError):
    """The tool raised, or its worker process died, during the call."""

    error_class = "crash"


class ToolUnavailableError(ToolError):
    """The tool is disabled or its circuit is open, so it was not run."""

    error_class = "unavailable"


class ToolCancelledError(ToolError):
    """The caller cancelled the call (an MCP client's `notifications/cancelled`); its processes were killed."""

    error_class = "cancelled"


class CallRefusedError(ToolUnavailableError):
    """The runtime refused the call before running anything: the tool's circuit is open, or an operator disabled it.

    `details` says which (`circuit`: open | half_open, or `disabled`) and, when known, `retry_at` (epoch seconds
    when a call may be admitted), so a caller can wait instead of counting a failure.
    """


class StateError(ToolError):
    """The state database cannot be used (newer schema, locked, corrupt)."""

    error_class = "state"


class StaleReviewError(ToolUnavailableError):
    """An approval named the sha256 of a diff that is no longer the candidate's: review it again."""

    error_class = "stale_review"


#: How a command line run ends, by error class: 2 when the request itself must change (malformed, or
#: naming nothing that exists, or stale), 1 when the tool or the runtime failed doing what was asked.
#: The one table `tooldeck --help`, the README and the CLI read (tests check every class).
EXIT_CODES: dict[str, int] = {
    "bad_usage": 2, "bad_id": 2, "unknown_tool": 2, "bad_input": 2, "stale_review": 2,
    "bad_manifest": 1, "not_ready": 1, "bad_output": 1, "output_too_large": 1, "timeout": 1, "exit_code": 1,
    "crash": 1, "unavailable": 1, "cancelled": 1, "state": 1, "buffer_full": 1, "model_error": 1, "tool_error": 1,
    "all_failed": 1, "no_candidates": 1, "catalog_mismatch": 1, "tampered": 1, "test_failed": 1,
}


def exit_code(error_class: str) -> int:
    """The exit code of an error class (1 for a class not in EXIT_CODES: a failure, not the caller's fault)."""
    return EXIT_CODES.get(error_class, 1)

