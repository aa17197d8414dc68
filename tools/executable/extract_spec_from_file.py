#!/usr/bin/env python3
"""extract_spec_from_file for non-Python callers: JSON on stdin, JSON on stdout.

The workspace is `TOOLDECK_WORKSPACE` or the current directory, exactly as for
the builtin tool; a refused input prints `{"error": ...}` and exits 1.
"""

from __future__ import annotations

import json
import os
import sys
import types
from pathlib import Path

_REPO = Path(__file__).resolve().parents[2]
if (_REPO / "tools" / "spec.py").is_file() and str(_REPO) not in sys.path:
    sys.path.insert(0, str(_REPO))  # run as a script from a checkout: import this checkout's tools

from tools.errors import ToolError, ToolInputError  # noqa: E402
from tools.spec import tool_entry  # noqa: E402


def main() -> int:
    """Read one JSON object, run the tool against the workspace, print the result."""
    raw = sys.stdin.read()
    workspace = Path(os.environ.get("TOOLDECK_WORKSPACE") or os.getcwd()).resolve()
    try:
        try:
            data = json.loads(raw) if raw.strip() else {}
        except json.JSONDecodeError as exc:
            raise ToolInputError(f"extract_spec_from_file: input is not JSON ({exc.msg}, line {exc.lineno})",
                                 tool_id="extract_spec_from_file") from exc
        result = tool_entry(types.SimpleNamespace(workspace=workspace), data)
    except ToolError as exc:
        print(json.dumps(exc.to_dict()))
        return 1
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
