"""Buffers: durable, batched writes handed to a pass-through tool.

`engine` takes writes (one short transaction each) and is the `buffer` builtin; `flush`
schedules deliveries (timer, close, explicit flush and replay) onto the delivery threads of
`pool`, one buffer each; `deliver` hands one claimed batch to its pass-through tool and records
the outcome (delivered, failed: retry or dead-letter, refused: waiting for the tool's circuit);
`status` reads fill levels, rates and flushers for the CLI and the dashboard; `policy` is the one
rule of when a buffer or a batch is due, which all of them ask.
"""

from tools.buffers.engine import OPERATIONS, UnknownBufferError, engine_for

__all__ = ["OPERATIONS", "UnknownBufferError", "engine_for"]
