"""Secrets never reach the database, the logs, the event stream, a prompt or a tool.

`redact` is the one redaction function: every writer in `state`, the log handler,
the error hierarchy, the model providers and evolution's prompt and lineage pass
what they store, log, emit or send through it. It masks

- the value of every secret the process knows: the registry (secrets adopted from
  the environment when a runtime starts) and any secret-named variable set since;
- anything shaped like an API key, wherever it appears;
- in structured data (dicts, lists), the value of every secret-named key.

`adopt_environ` registers the environment's secrets and scrubs them from the
process's initial environment block, the memory `/proc/<pid>/environ` shows to
any process of the same user: `os.unsetenv` alone leaves that block as it was.
`os.environ` keeps the values (as heap copies), so the embedding program and
`${VAR}` references still resolve; `secret(name)` reads them for code that must.
"""

from __future__ import annotations

import os
import re
import sys
import threading
from typing import Any

#: Always secret, whatever their value looks like.
SECRET_ENV_NAMES = frozenset({"ANTHROPIC_API_KEY", "QDRANT_API_KEY", "ANTHROPIC_AUTH_TOKEN", "OPENAI_API_KEY",
                              "TOOLDECK_DATABASE_URL", "PGPASSWORD"})
#: a name holding any of these (any case) is secret
_NAME_WORDS = ("API_KEY", "_TOKEN", "SECRET", "PASSWORD", "PASSWD", "CREDENTIAL", "APIKEY")
_SECRET_NAME = re.compile("|".join(_NAME_WORDS), re.IGNORECASE)
#: what a secret name contains, lower case: each of those words and each always-secret name
_SECRET_WORDS = tuple(word.lower() for word in (*_NAME_WORDS, *sorted(SECRET_ENV_NAMES)))
#: Shapes of keys that are secret wherever they appear.
_KEY_SHAPES = re.compile(r"sk-ant-[A-Za-z0-9_\-]{8,}|sk-[A-Za-z0-9]{20,}")
MASK = "***"
MIN_SECRET_LENGTH = 6  # shorter values would mask ordinary words

_registry: dict[str, str] = {}
_lock = threading.Lock()
_generation = 0


def is_secret_name(name: str) -> bool:
    return name in SECRET_ENV_NAMES or bool(_SECRET_NAME.search(name))


def _scan(env: Any) -> list[str]:
    return [v for k, v in env.items() if is_secret_name(k) and v and len(v) >= MIN_SECRET_LENGTH]


def register_secret(name: str, value: str) -> None:
    """Remember a secret value so it is masked everywhere, even after it leaves the environment."""
    global _generation
    if not value or len(value) < MIN_SECRET_LENGTH:
        return
    with _lock:
        if _registry.get(name) != value:
            _registry[name] = value
            _generation += 1


def secret(name: str) -> str | None:
    """A secret by name: the live environment first (a value set since wins), then the registry."""
    value = os.environ.get(name)
    if value:
        return value
    with _lock:
        return _registry.get(name)


_cache: tuple[tuple[Any, ...], list[str]] = ((), [])


def secret_values(environ: dict[str, str] | None = None) -> list[str]:
    """Every secret value to mask, longest first; cached, since redaction runs on every call record."""
    global _cache
    if environ is not None:
        return sorted(set(_scan(environ)), key=len, reverse=True)
    key = (_generation, len(os.environ), *(os.environ.get(name) for name in sorted(SECRET_ENV_NAMES)))
    if _cache[0] != key:
        with _lock:
            known = list(_registry.values())
        _cache = (key, sorted(set(known + _scan(os.environ)), key=len, reverse=True))
    return _cache[1]


#: the password of a URL with credentials (`postgresql://app:<password>@db/x`), wherever it appears
_URL_PASSWORD = re.compile(r"(?<=://)([^/\s:@]+):[^@\s/]+@")


def _redact_text(text: str, values: list[str]) -> str:
    for value in values:
        if value in text:
            text = text.replace(value, MASK)
    if "://" in text:
        text = _URL_PASSWORD.sub(lambda m: f"{m.group(1)}:{MASK}@", text)
    return _KEY_SHAPES.sub(MASK, text)


def _redact_data(value: Any, values: list[str], depth: int = 0) -> Any:
    if isinstance(value, str):
        return _redact_text(value, values) if value else value
    if depth > 64:
        return value
    if isinstance(value, dict):
        return {k: (MASK if isinstance(k, str) and is_secret_name(k) and isinstance(v, str) and v else
                    _redact_data(v, values, depth + 1)) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_redact_data(v, values, depth + 1) for v in value)
    return value


def redact(value: Any, environ: dict[str, str] | None = None) -> Any:
    """Mask secrets in text, or in JSON-like data (where secret-named keys are masked too).

    Returns the same type it was given; anything that is neither text nor data comes back as is.
    """
    if not value:
        return value
    values = secret_values(environ)
    if isinstance(value, str):
        return _redact_text(value, values)
    return _redact_data(value, values)


def holds_secret(value: Any) -> bool:
    """Whether `redact` would change `value` (text or data)."""
    return redact(value) != value


def json_holds_secret(text: str, data: Any) -> bool:
    """What `holds_secret(data)` says, given `text`, the compact JSON of `data` (`state.store.dumps`).

    One scan of the text instead of a walk that copies the data: when no secret-like name, no URL
    and no secret that JSON would escape can be in it, `data` holds a secret exactly when the text
    holds a known secret value or a key shape. Otherwise the walk decides (a value in a key, which
    the walk does not mask, only ever makes this say True where the walk would not: never cached).
    """
    values = secret_values()
    low = text.lower()  # a substring search per word: the name regex, case-folded, costs ~10x more over a whole text
    if ("://" in text or any(word in low for word in _SECRET_WORDS)
            or any(not v.isprintable() or '"' in v or "\\" in v for v in values)):
        return holds_secret(data)
    return any(v in text for v in values) or _KEY_SHAPES.search(text) is not None


# -- the process environment -------------------------------------------------------------


def adopt_environ() -> list[str]:
    """Register the environment's secrets and scrub them from /proc/self/environ.

    Idempotent and cheap after the first call. Returns the names scrubbed this time.
    """
    names = [k for k, v in os.environ.items() if is_secret_name(k) and v]
    for name in names:
        register_secret(name, os.environ[name])
    fresh = [n for n in names if n not in _scrubbed]
    if not fresh:
        return []
    for name in fresh:
        # glibc's setenv gives the entry a heap copy, so the C environment no longer points into
        # the initial block the kernel shows; that block can then be wiped.
        os.environ[name] = os.environ[name]
    _scrub_initial_block(set(fresh))
    _scrubbed.update(fresh)
    return fresh


_scrubbed: set[str] = set()


def _initial_block() -> tuple[int, int] | None:
    """(env_start, env_end) of this process, fields 50 and 51 of /proc/self/stat (Linux 3.5+)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        with open("/proc/self/stat", "rb") as fh:
            stat = fh.read()
        fields = stat[stat.rindex(b")") + 2:].split()
        start, end = int(fields[47]), int(fields[48])
    except (OSError, ValueError, IndexError):
        return None
    return (start, end) if 0 < start < end else None


def _scrub_initial_block(names: set[str]) -> bool:
    block = _initial_block()
    if block is None:
        return False
    import ctypes

    start, end = block
    raw = ctypes.string_at(start, end - start)
    offset = 0
    wiped = False
    for entry in raw.split(b"\0"):
        name = entry.split(b"=", 1)[0].decode("utf-8", "replace")
        if entry and name in names:
            ctypes.memset(start + offset, 0, len(entry))
            wiped = True
        offset += len(entry) + 1
    return wiped
