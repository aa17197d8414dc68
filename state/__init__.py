"""Everything durable: the store (SQLite, or PostgreSQL for several nodes), the event log, call
records, buffers, approved code and semantic memory.

`state` imports neither `tools` nor `tui`; psycopg is imported only when a database URL is set.
"""

from state.db import (
    SCHEMA_VERSION,
    SchemaTooNewError,
    SqliteStore,
    Store,
    StoreBusyError,
    StoreError,
    StoreUnavailableError,
    database_url,
    open_store,
)
from state.paths import tooldeck_home

__all__ = ["SCHEMA_VERSION", "SchemaTooNewError", "SqliteStore", "Store", "StoreBusyError", "StoreError",
           "StoreUnavailableError", "database_url", "open_store", "tooldeck_home"]
