"""The thin executable each builtin tool ships for non-Python callers.

`tools/builtins/<id>.py` reads one JSON object on stdin, calls the builtin through a
runtime over `TOOLDECK_WORKSPACE` (or the current directory) exactly as
`call_tool(<id>, ...)` would, and prints JSON on stdout. Exit codes: 0 success, 1 the
tool failed (its `{"error": ...}` on stdout), 2 bad usage.
"""

from __future__ import annotations

import json
import os
import sys

from tools.errors import ToolError, UsageError, parse_json


def run_builtin(tool_id: str) -> int:
    raw = sys.stdin.read()
    try:
        data = parse_json(raw, f"{tool_id}: input", tool_id=tool_id) if raw.strip() else {}
        from tools.runtime import Runtime

        with Runtime(os.environ.get("TOOLDECK_WORKSPACE") or os.getcwd(), label=f"{tool_id}-executable") as runtime:
            result = runtime.call(tool_id, data)
    except ToolError as exc:
        print(json.dumps(exc.to_dict()))
        return 2 if isinstance(exc, UsageError) else 1
    print(json.dumps(result))
    return 1 if isinstance(result, dict) and result.get("success") is False else 0
