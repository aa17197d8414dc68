"""The PostgreSQL backend (psycopg 3): imported only when a database URL is configured."""

from state.postgres.store import PgStore

__all__ = ["PgStore"]
