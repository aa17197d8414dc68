"""Secrets never reach the database, the logs, the event stream or a tool.

The writers in `state` pass everything through `redact`; `tools.secrets` uses
the same names to scrub child environments.
"""

from __future__ import annotations

import os
import re
from typing import Any

#: Always secret, whatever their value looks like.
SECRET_ENV_NAMES = frozenset({"ANTHROPIC_API_KEY", "QDRANT_API_KEY", "ANTHROPIC_AUTH_TOKEN", "OPENAI_API_KEY"})
_SECRET_NAME = re.compile(r"(API_KEY|_TOKEN|SECRET|PASSWORD|PASSWD|CREDENTIAL)", re.IGNORECASE)
#: Shapes of keys that are secret wherever they appear.
_KEY_SHAPES = re.compile(r"sk-ant-[A-Za-z0-9_\-]{8,}|sk-[A-Za-z0-9]{20,}")
MASK = "***"


def is_secret_name(name: str) -> bool:
    return name in SECRET_ENV_NAMES or bool(_SECRET_NAME.search(name))


def _scan(env: Any) -> list[str]:
    values = [v for k, v in env.items() if is_secret_name(k) and v and len(v) >= 6]
    return sorted(set(values), key=len, reverse=True)


_cache: tuple[tuple[Any, ...], list[str]] = ((), [])


def secret_values(environ: dict[str, str] | None = None) -> list[str]:
    """Secret values in the environment; cached, since redaction runs on every call record."""
    global _cache
    if environ is not None:
        return _scan(environ)
    key = (len(os.environ), *(os.environ.get(name) for name in sorted(SECRET_ENV_NAMES)))
    if _cache[0] != key:
        _cache = (key, _scan(os.environ))
    return _cache[1]


def redact(text: str, environ: dict[str, str] | None = None) -> str:
    """Mask the value of every secret env var and anything shaped like an API key."""
    if not text:
        return text
    for value in secret_values(environ):
        if value in text:
            text = text.replace(value, MASK)
    return _KEY_SHAPES.sub(MASK, text)
