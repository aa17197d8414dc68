"""The demo workspace: a throwaway folder (or `--workspace`) set up for `tooldeck demo`."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

from tools.catalog import DEMO_DIR
from tools.errors import UsageError

DEMO_SETTINGS = """\
# tooldeck demo workspace settings
[model]
# The demo has no API key: evolution is served by recorded responses, and says so.
provider = "replay"

[circuit]
window = 10
min_calls = 4
failure_rate = 0.5
consecutive_failures = 5
significance = 1   # the plain share rule, so the demo's 50%-failing flaky_tool trips its circuit often
cooldown_seconds = 15

[retention]
events_days = 1
calls_days = 1
"""

DEMO_SPEC = """\
# Usage ledger service

A small service that stores usage counters for tools.

## Requirements

The service MUST accept batches of at most 500 items.
Each item MUST carry a `tool_id` and an `increment`.
The service SHOULD answer within 200 ms.

## Constraints

Batch ids MUST be unique; a repeated batch id SHALL be acknowledged and ignored.

## Examples

```json
{"buffered_items": [{"tool_id": "translator", "increment": 1}], "buffer_metadata": {"batch_id": "b-1"}}
```
"""


def is_workspace(path: Path) -> bool:
    """A folder tooldeck has already set up: its settings file or its data folder is there."""
    return (path / "tooldeck.toml").is_file() or (path / ".tooldeck").is_dir()


def demo_folder(workspace: str) -> tuple[Path, bool]:
    """The folder for `demo --workspace`, and whether it is new: created only inside an existing
    parent (a typo must not build a tree from the root), reused only when empty or already a
    tooldeck workspace (never a folder of other files)."""
    path = Path(workspace).expanduser().resolve()
    if path.exists():
        if not path.is_dir():
            raise UsageError(f"demo workspace {path} is not a directory")
        if any(path.iterdir()) and not is_workspace(path):
            raise UsageError(f"demo workspace {path} is not empty and not a tooldeck workspace (no tooldeck.toml or .tooldeck/): "
                             "pick an empty or new folder")
        return path, False
    if not path.parent.is_dir():
        raise UsageError(f"demo workspace {path}: its parent folder {path.parent} does not exist")
    path.mkdir()
    return path, True


def prepare_demo_workspace(workspace: str | None, *, keep: bool = False) -> tuple[Path, Callable[[], None]]:
    """Create (or reuse) a demo workspace; the cleanup removes a throwaway one."""
    throwaway = workspace is None
    path = Path(tempfile.mkdtemp(prefix="tooldeck-demo-")) if workspace is None else demo_folder(workspace)[0]
    settings = path / "tooldeck.toml"
    if not settings.exists():
        settings.write_text(DEMO_SETTINGS)
    tools_dir = path / "tools"
    if not tools_dir.exists():  # a copy, so hot reload and other processes see the same tools
        shutil.copytree(DEMO_DIR, tools_dir, ignore=shutil.ignore_patterns("__pycache__", "replay"))
    spec = path / "specs" / "usage_ledger.md"
    if not spec.exists():
        spec.parent.mkdir(exist_ok=True)
        spec.write_text(DEMO_SPEC)

    def cleanup() -> None:
        if throwaway and not keep:
            shutil.rmtree(path, ignore_errors=True)

    return path, cleanup
