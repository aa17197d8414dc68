"""Portable SQL in, psycopg SQL out; rows that answer both `row[0]` and `row["name"]`.

Callers write SQLite's placeholders: `?` (positional) or `?1`, `?2` (numbered, a value used
twice). psycopg takes `%s` and `%(name)s`; a literal `%` must be doubled. Translation skips
string literals and quoted names, and is cached per statement text.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any

_TOKEN = re.compile(r"'(?:[^']|'')*'|\"(?:[^\"]|\"\")*\"|\?(\d+)?|%")


@lru_cache(maxsize=4096)
def translate(sql: str) -> tuple[str, bool]:
    """(psycopg SQL, whether it uses numbered placeholders)."""
    numbered = False
    positional = False

    def sub(match: re.Match[str]) -> str:
        nonlocal numbered, positional
        text = match.group(0)
        if text == "%":
            return "%%"
        if text[0] in "'\"":
            return text.replace("%", "%%")
        if match.group(1):
            numbered = True
            return f"%(p{match.group(1)})s"
        positional = True
        return "%s"

    out = _TOKEN.sub(sub, sql)
    if numbered and positional:
        raise ValueError(f"SQL mixes ? and ?N placeholders: {sql[:120]}")
    return out, numbered


def params_for(numbered: bool, params: Any) -> Any:
    if not numbered:
        return params if isinstance(params, (tuple, dict)) else tuple(params or ())
    if isinstance(params, dict):
        return params
    return {f"p{i}": v for i, v in enumerate(params, 1)}


class Row(tuple[Any, ...]):
    """A result row by position and by column name, like `sqlite3.Row` (and `dict(row)` works)."""

    __slots__ = ()
    _index: dict[str, int] = {}
    _names: tuple[str, ...] = ()

    def __getitem__(self, key: Any) -> Any:
        if isinstance(key, str):
            try:
                return tuple.__getitem__(self, self._index[key])
            except KeyError:
                raise IndexError(f"no such column: {key}") from None
        return tuple.__getitem__(self, key)

    def keys(self) -> list[str]:
        return list(self._names)


@lru_cache(maxsize=1024)
def row_class(names: tuple[str, ...]) -> type[Row]:
    index: dict[str, int] = {}
    for i, name in enumerate(names):
        index.setdefault(name, i)  # like sqlite3.Row: the first column of a name wins
    return type("Row", (Row,), {"__slots__": (), "_index": index, "_names": names})


def row_factory(cursor: Any) -> Any:
    """psycopg row factory making `Row`s."""
    desc = cursor.description
    if desc is None:
        return tuple
    cls = row_class(tuple(d.name for d in desc))
    return lambda values: cls(values)
