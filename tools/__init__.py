"""tooldeck's runtime: load tools in the background, call them, buffer, recover, evolve.

Importing this package is cheap and pulls in neither Textual, anthropic nor
qdrant-client; the names below are imported on first use.
"""

from __future__ import annotations

import json
import threading
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tools.runtime import Runtime

__all__ = ["Runtime", "call_tool", "call_tool_resilient", "default_runtime", "mark_tool_failure"]

_default: Runtime | None = None
_default_lock = threading.Lock()


def __getattr__(name: str) -> Any:
    if name == "Runtime":
        from tools.runtime import Runtime

        return Runtime
    raise AttributeError(f"module 'tools' has no attribute {name!r}")


def default_runtime() -> Runtime:
    """One lazily created runtime per process, for the module-level functions."""
    global _default
    if _default is None:
        with _default_lock:
            if _default is None:
                from tools.runtime import Runtime

                _default = Runtime()
    return _default


def call_tool(tool_id: str, input_data: Any = None, **options: Any) -> str:
    """Call a tool as the original system did: JSON (or a dict) in, a JSON string out."""
    return json.dumps(default_runtime().call(tool_id, input_data, **options))


def call_tool_resilient(scenario: str, input_data: Any, tags: list[str] | None = None, max_attempts: int = 5,
                        mark_failures: bool = True) -> Any:
    from tools.recovery import call_tool_resilient as run

    return run(default_runtime(), scenario, input_data, tags=tags, max_attempts=max_attempts, mark_failures=mark_failures)


def mark_tool_failure(tool_id: str, scenario: str, error_message: str, severity: str = "medium",
                      error_class: str | None = None) -> dict[str, Any]:
    from tools.recovery import mark_tool_failure as mark

    return mark(default_runtime(), tool_id, scenario, error_message, severity, error_class=error_class)
