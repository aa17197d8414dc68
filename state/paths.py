"""Where a workspace keeps what the runtime writes."""

from __future__ import annotations

import os
from pathlib import Path


def tooldeck_home(workspace: Path) -> Path:
    """`<workspace>/.tooldeck`, or `TOOLDECK_HOME` when set."""
    override = os.environ.get("TOOLDECK_HOME")
    home = Path(override).expanduser() if override else workspace / ".tooldeck"
    return home.resolve()
