#!/usr/bin/env python3
"""resilient_tool_call for non-Python callers: JSON on stdin, JSON on stdout.

Opens the workspace (`TOOLDECK_WORKSPACE` or the current directory), builds its
semantic memory, runs the resilient call and prints the result with its trace;
when every candidate fails it prints the error with the whole trace and exits 1.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

_REPO = Path(__file__).resolve().parents[2]
if (_REPO / "tools" / "resilient.py").is_file() and str(_REPO) not in sys.path:
    sys.path.insert(0, str(_REPO))  # run as a script from a checkout: import this checkout's tools

from tools.errors import ToolError, ToolInputError, UsageError  # noqa: E402


def main() -> int:
    """Read one JSON object, run the resilient call in the workspace, print result and trace."""
    raw = sys.stdin.read()
    workspace = Path(os.environ.get("TOOLDECK_WORKSPACE") or os.getcwd()).resolve()
    try:
        try:
            data = json.loads(raw) if raw.strip() else {}
        except json.JSONDecodeError as exc:
            raise ToolInputError(f"resilient_tool_call: input is not JSON ({exc.msg}, line {exc.lineno})",
                                 tool_id="resilient_tool_call") from exc
        from tools.resilient import tool_entry
        from tools.runtime import Runtime

        with Runtime(workspace, label="resilient_tool_call") as runtime:
            result = tool_entry(runtime, data)
    except ToolError as exc:
        print(json.dumps(exc.to_dict(), default=str))
        return 2 if isinstance(exc, UsageError) else 1
    print(json.dumps(result, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
