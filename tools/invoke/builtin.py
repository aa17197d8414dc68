"""`builtin` tools run in the caller's process: they are the runtime's own code.

Their entry must name a module inside the `tools` package, so a manifest can
never make the runtime import code from the workspace or from an evolution.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from tools.catalog import ToolEntry
from tools.errors import ManifestError

if TYPE_CHECKING:
    from tools.host import RuntimeHost

BuiltinFn = Callable[[Any, Any], Any]

#: Entry points from before tools/ was regrouped by capability, so a manifest written then
#: (a workspace's override of a builtin) keeps working.
MOVED_ENTRIES = {
    "tools.buffer": "tools.buffers.engine",
    "tools.evolution": "tools.evolution.evolve",
    "tools.spec": "tools.spec.extract",
    "tools.failures": "tools.recovery.ledger",
    "tools.resilient": "tools.recovery.resilient",
}


def resolve_builtin(entry: ToolEntry) -> BuiltinFn:
    fn = entry.cache.get("builtin")
    if fn is not None:
        return fn
    assert entry.manifest is not None and entry.manifest.entry is not None
    module_name, _, func_name = entry.manifest.entry.partition(":")
    module_name = MOVED_ENTRIES.get(module_name, module_name)
    if not (module_name == "tools" or module_name.startswith("tools.")):
        raise ManifestError(
            f"{entry.path}: field 'entry': builtin tools must live in the tools package, not {module_name!r}",
            tool_id=entry.tool_id,
        )
    try:
        module = importlib.import_module(module_name)
        fn = getattr(module, func_name)
    except (ImportError, AttributeError) as exc:
        raise ManifestError(f"{entry.path}: field 'entry': cannot import {entry.manifest.entry}: {exc}", tool_id=entry.tool_id) from exc
    entry.cache["builtin"] = fn
    return fn


def echo(runtime: RuntimeHost, data: Any) -> Any:
    """A builtin that returns its input: a health check, and the baseline for call overhead."""
    return data
