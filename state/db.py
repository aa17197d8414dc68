"""Opening the store: SQLite by default, PostgreSQL when a database URL is configured.

`TOOLDECK_DATABASE_URL=postgresql://...` (or `[state] database_url` in tooldeck.toml, the
environment winning) puts the shared state on PostgreSQL; psycopg is imported only then, so
neither `import tools` nor a SQLite workspace pays for it.
"""

from __future__ import annotations

import os
from pathlib import Path

from state.sqlite import SqliteStore
from state.store import (
    SCHEMA_VERSION,
    Dialect,
    SchemaTooNewError,
    Store,
    StoreBusyError,
    StoreError,
    StoreUnavailableError,
    dumps,
)
from state.url import check_configured_url, expand_url

__all__ = ["SCHEMA_VERSION", "Dialect", "SchemaTooNewError", "SqliteStore", "Store", "StoreBusyError", "StoreError",
           "StoreUnavailableError", "database_url", "dumps", "open_store"]

URL_ENV = "TOOLDECK_DATABASE_URL"


def database_url(configured: str | None = None) -> str | None:
    """The database URL in force: `TOOLDECK_DATABASE_URL`, else `[state] database_url` (no password
    in it: PGPASSWORD, ~/.pgpass or a `${VAR}` reference supply one); None means SQLite."""
    url = os.environ.get(URL_ENV, "").strip()
    if url:
        return url
    if configured:
        check_configured_url(configured)
        return expand_url(configured)
    return None


def open_store(home: Path, *, url: str | None = None, pool_size: int | None = None) -> Store:
    """The workspace's store: `<home>/tooldeck.db`, or the PostgreSQL database at `url`."""
    if url:
        try:
            from state.postgres import PgStore
        except ImportError as exc:
            raise StoreError(f"{URL_ENV} is set but PostgreSQL support is not installed ({exc.name} missing): "
                             "pip install 'tooldeck[postgres]'") from exc

        return PgStore(url, pool_size=pool_size)
    return SqliteStore(Path(home) / "tooldeck.db")
