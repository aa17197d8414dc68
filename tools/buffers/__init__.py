"""Buffers: durable, batched writes handed to a pass-through tool.

`engine` takes writes (one short transaction each) and is the `buffer` builtin; `flush`
schedules deliveries (timer, close, explicit flush and replay) onto the delivery threads of
`pool`, one buffer each; `deliver` hands one claimed batch to its pass-through tool and records
the outcome (delivered, failed: retry or dead-letter, refused: waiting for the tool's circuit);
`status` reads fill levels, rates and flushers for the CLI and the dashboard; `policy` is the one
rule of when a buffer or a batch is due, which all of them ask.
"""

from typing import TYPE_CHECKING, Any

from tools.buffers.settings import OPERATIONS

if TYPE_CHECKING:
    from tools.buffers.engine import UnknownBufferError, engine_for

__all__ = ["OPERATIONS", "UnknownBufferError", "engine_for"]


def __getattr__(name: str) -> Any:
    """The engine is imported on first use, not with the package: a thread asking for OPERATIONS (the
    MCP config) must not import the engine while the runtime's loader thread installs it (two first
    imports of one package cycle on two threads fail with "partially initialized module")."""
    if name in ("UnknownBufferError", "engine_for"):
        from tools.buffers import engine

        return getattr(engine, name)
    raise AttributeError(f"module 'tools.buffers' has no attribute {name!r}")
