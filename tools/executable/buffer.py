#!/usr/bin/env python3
"""The `buffer` tool for non-Python callers: JSON on stdin, JSON on stdout.

It builds a runtime over `TOOLDECK_WORKSPACE` (or the current directory) and
calls the builtin, so it writes the same buffers as `call_tool("buffer", ...)`.
On exit the runtime delivers what is due, and the partial batch too when no
other live runtime (e.g. `tooldeck serve`) flushes that buffer. A refused input
prints `{"error": ...}` and exits 1.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

_REPO = Path(__file__).resolve().parents[2]
if (_REPO / "tools" / "buffer.py").is_file() and str(_REPO) not in sys.path:
    sys.path.insert(0, str(_REPO))  # run as a script from a checkout: import this checkout's tools

from tools.errors import ToolError, ToolInputError  # noqa: E402


def main() -> int:
    """Read one JSON object, run the buffer tool against the workspace, print the result."""
    raw = sys.stdin.read()
    try:
        try:
            data = json.loads(raw) if raw.strip() else {}
        except json.JSONDecodeError as exc:
            raise ToolInputError(f"buffer: input is not JSON ({exc.msg}, line {exc.lineno})", tool_id="buffer") from exc
        from tools.runtime import Runtime

        runtime = Runtime(os.environ.get("TOOLDECK_WORKSPACE") or os.getcwd(), label="buffer-executable")
        try:
            result = runtime.call("buffer", data)
        finally:
            runtime.close()
    except ToolError as exc:
        print(json.dumps(exc.to_dict()))
        return 1
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
