#!/usr/bin/env python3
"""The `extract_spec_from_file` builtin for non-Python callers: JSON on stdin, JSON on stdout (tools/cli/shim.py)."""

import sys
from pathlib import Path

_REPO = Path(__file__).resolve().parents[2]
if (_REPO / "tools" / "cli" / "shim.py").is_file() and str(_REPO) not in sys.path:
    sys.path.insert(0, str(_REPO))  # run from a checkout: import this checkout's tools

from tools.cli.shim import run_builtin  # noqa: E402

if __name__ == "__main__":
    sys.exit(run_builtin("extract_spec_from_file"))
