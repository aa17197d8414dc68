#!/usr/bin/env python3
"""mark_tool_failure for non-Python callers: JSON on stdin, JSON on stdout.

Opens the workspace (`TOOLDECK_WORKSPACE` or the current directory) as the
builtin does, records the failure in its database, and exits; a refused input
prints `{"error": ...}` and exits 1 (2 for bad usage).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

_REPO = Path(__file__).resolve().parents[2]
if (_REPO / "tools" / "failures.py").is_file() and str(_REPO) not in sys.path:
    sys.path.insert(0, str(_REPO))  # run as a script from a checkout: import this checkout's tools

from tools.errors import ToolError, ToolInputError, UsageError  # noqa: E402


def main() -> int:
    """Read one JSON object, record the failure against the workspace, print the record."""
    raw = sys.stdin.read()
    workspace = Path(os.environ.get("TOOLDECK_WORKSPACE") or os.getcwd()).resolve()
    try:
        try:
            data = json.loads(raw) if raw.strip() else {}
        except json.JSONDecodeError as exc:
            raise ToolInputError(f"mark_tool_failure: input is not JSON ({exc.msg}, line {exc.lineno})",
                                 tool_id="mark_tool_failure") from exc
        from tools.failures import tool_mark_failure
        from tools.runtime import Runtime

        with Runtime(workspace, label="mark_tool_failure") as runtime:
            result = tool_mark_failure(runtime, data)
    except ToolError as exc:
        print(json.dumps(exc.to_dict()))
        return 2 if isinstance(exc, UsageError) else 1
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
