"""Everything durable: the SQLite store, the event log, call records, semantic memory.

`state` imports neither `tools` nor `tui`.
"""

from state.db import SCHEMA_VERSION, SchemaTooNewError, Store, StoreBusyError
from state.paths import tooldeck_home

__all__ = ["SCHEMA_VERSION", "SchemaTooNewError", "Store", "StoreBusyError", "tooldeck_home"]
