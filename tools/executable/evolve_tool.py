#!/usr/bin/env python3
"""evolve_tool for non-Python callers: JSON on stdin, JSON on stdout.

Runs the same builtin against the workspace in `TOOLDECK_WORKSPACE` (or the
current directory) with a runtime of its own; a refused or failed evolution
prints `{"error": ...}` and exits 1.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

_REPO = Path(__file__).resolve().parents[2]
if (_REPO / "tools" / "evolution.py").is_file() and str(_REPO) not in sys.path:
    sys.path.insert(0, str(_REPO))  # run as a script from a checkout: import this checkout's tools

from tools.errors import ToolError, ToolInputError  # noqa: E402


def main() -> int:
    """Read one JSON object, evolve against the workspace, print the proposal's summary."""
    raw = sys.stdin.read()
    workspace = Path(os.environ.get("TOOLDECK_WORKSPACE") or os.getcwd()).resolve()
    try:
        try:
            data = json.loads(raw) if raw.strip() else {}
        except json.JSONDecodeError as exc:
            raise ToolInputError(f"evolve_tool: input is not JSON ({exc.msg}, line {exc.lineno})", tool_id="evolve_tool") from exc
        from tools.evolution import tool_entry
        from tools.runtime import Runtime

        with Runtime(workspace, label="evolve_tool") as runtime:
            result = tool_entry(runtime, data)
    except ToolError as exc:
        print(json.dumps(exc.to_dict()))
        return 1
    print(json.dumps(result))
    return 0 if result.get("success") else 1


if __name__ == "__main__":
    sys.exit(main())
