"""Buffers: durable, batched writes handed to a pass-through tool.

`engine` takes writes (one short transaction each) and is the `buffer` builtin; `flush`
delivers batches under a lease with retries and dead-letter; `status` reads fill levels,
rates and flushers for the CLI and the dashboard.
"""

from tools.buffers.engine import OPERATIONS, UnknownBufferError, engine_for

__all__ = ["OPERATIONS", "UnknownBufferError", "engine_for"]
