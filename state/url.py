"""Database URLs: checked, expanded and redacted without importing a driver.

A URL is a secret (it may hold a password): `TOOLDECK_DATABASE_URL` is on the secret list, so
it is masked wherever it appears and never reaches a tool's environment; the password inside
any URL in use is registered as a secret of its own.
"""

from __future__ import annotations

import os
import re
from urllib.parse import unquote, urlsplit

from state.redact import register_secret
from state.store import StoreError

_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
SCHEMES = ("postgresql", "postgres")


def check_configured_url(url: str) -> None:
    """A URL written in tooldeck.toml must not carry a literal password (a `${VAR}` reference is fine)."""
    parts = urlsplit(url)
    if parts.scheme not in SCHEMES:
        raise StoreError(f"tooldeck.toml [state] database_url: scheme must be postgresql://, not {parts.scheme or 'none'!r}")
    if parts.password and not _VAR.fullmatch(unquote(parts.password)):
        raise StoreError("tooldeck.toml [state] database_url: holds a password; give it by PGPASSWORD, ~/.pgpass "
                         "or a ${VAR} reference instead")
    if "password=" in (parts.query or "") and not re.search(r"password=\$\{", parts.query):
        raise StoreError("tooldeck.toml [state] database_url: holds a password parameter; give it by PGPASSWORD, "
                         "~/.pgpass or a ${VAR} reference instead")


def expand_url(url: str) -> str:
    """Replace `${VAR}` references with the environment's values (an unset one is an error naming it)."""
    def sub(match: re.Match[str]) -> str:
        value = os.environ.get(match.group(1))
        if value is None:
            raise StoreError(f"tooldeck.toml [state] database_url: ${{{match.group(1)}}} is not set in the environment")
        return value

    return _VAR.sub(sub, url)


def safe_url(url: str) -> str:
    """The URL without its password (and without a password query parameter), for messages."""
    parts = urlsplit(url)
    if parts.scheme not in SCHEMES:
        raise StoreError(f"database URL: scheme must be postgresql://, not {parts.scheme or 'none'!r}")
    netloc = parts.netloc
    if parts.password is not None:
        user = parts.username or ""
        host = netloc.rpartition("@")[2]
        netloc = f"{user}:***@{host}" if user else f"***@{host}"
    query = re.sub(r"(password=)[^&]*", r"\1***", parts.query or "")
    return parts._replace(netloc=netloc, query=query).geturl()


def register_url_secrets(url: str) -> None:
    """Mask the URL and its password wherever they would be written."""
    register_secret("TOOLDECK_DATABASE_URL", url)
    parts = urlsplit(url)
    if parts.password:
        register_secret("TOOLDECK_DATABASE_URL:password", unquote(parts.password))
    match = re.search(r"password=([^&]*)", parts.query or "")
    if match:
        register_secret("TOOLDECK_DATABASE_URL:password", unquote(match.group(1)))
