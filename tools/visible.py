"""Text from outside is data, never terminal commands: the one rule for showing it.

What a model, a tool or an MCP server wrote (a candidate's diff, the model's
explanation, stage output, a failure message or traceback, an event, a tool's
description) reaches a person only through `visible`. A terminal obeys what it
is sent: `\\x1b[2K\\x1b[1G` erases the line a reviewer is reading and draws a
harmless one in its place, `\\x1b]0;...\\x07` retitles the window, U+202E
reverses what follows, U+200B hides inside an identifier. `visible` spells each
of these out (`\\x1b`, `<U+202E>`) so the operator sees the characters that are
really there; `has_hidden` says whether a text held any, so a diff line can be
marked. Nothing stored or hashed changes: the approval hash binds the real
bytes; this module decides only what is shown.

Covered: C0 controls and DEL (`\\x00`-`\\x1f`, `\\x7f`; a tab stays a tab, a
newline stays one in multi-line text and is `\\n` in a single-line field), C1
controls (U+0080-U+009F), bidi controls, zero-width and other invisible format
characters (all of Unicode category Cf, the line and paragraph separators,
lone surrogates, the invisible fillers that are valid in identifiers).

Pure standard library, imported by the CLI and the dashboard alike.
"""

from __future__ import annotations

import json
import re
from typing import Any

#: Every code point `visible` rewrites (newline and tab excepted): Unicode categories Cc, Cf, Zl, Zp
#: and Cs (lone surrogates, which a terminal cannot even encode), plus the invisible characters of
#: other categories: U+034F combining grapheme joiner, U+115F/U+1160/U+3164/U+FFA0 Hangul fillers
#: (letters to Python, so they hide inside identifiers), U+180E Mongolian vowel separator.
#: Written out rather than computed (scanning all of Unicode costs ~0.2 s per process);
#: tests/test_visible.py derives it from `unicodedata` and checks the two agree.
HIDDEN_CLASS = (
    r"\x00-\x08\x0b-\x1f\x7f-\x9f\xad\u034f\u0600-\u0605\u061c\u06dd\u070f\u0890-\u0891\u08e2\u115f-\u1160"
    r"\u180e\u200b-\u200f\u2028-\u202e\u2060-\u2064\u2066-\u206f\u3164\ud800-\udfff\ufeff\uffa0"
    r"\ufff9-\ufffb\U000110bd\U000110cd\U00013430-\U00013438\U0001bca0-\U0001bca3\U0001d173-\U0001d17a"
    r"\U000e0001\U000e0020-\U000e007f"
)
INVISIBLE_EXTRA = "\u034f\u115f\u1160\u180e\u3164\uffa0"
HIDDEN_CATEGORIES = frozenset({"Cc", "Cf", "Zl", "Zp", "Cs"})

_HIDDEN = re.compile(f"[{HIDDEN_CLASS}]")
_HIDDEN_OR_NEWLINE = re.compile(f"[\\n{HIDDEN_CLASS}]")
_NAMED = {"\r": "\\r", "\n": "\\n", "\x1b": "\\x1b"}


def _spell(match: re.Match[str]) -> str:
    ch = match.group()
    if ch in _NAMED:
        return _NAMED[ch]
    cp = ord(ch)
    if cp < 0x20 or 0x7F <= cp <= 0x9F:
        return f"\\x{cp:02x}"
    return f"<U+{cp:04X}>"


#: a character as `_spell` writes it out: a cut must keep all of one or none of it
_SPELLED = re.compile(r"\\x[0-9a-f]{2}|\\[rn]|<U\+[0-9A-F]{4,6}>")


def cut_point(shown: str, end: int) -> int:
    """Where a cut of `shown` (text `visible` wrote) keeping at most `end` characters may fall: `end`, or the start
    of the spelled-out character `end` falls inside. Part of one is a lie: `<U+2…` hides that a U+202E was there."""
    for match in _SPELLED.finditer(shown):
        if match.start() >= end:
            break
        if match.end() > end:
            return match.start()
    return end


def visible(text: Any, *, multiline: bool = True) -> str:
    """`text` as a person should see it: every control, bidi and invisible character spelled out.

    C0, DEL and C1 controls become `\\x1b`-style escapes (`\\r` for a carriage return, which
    would otherwise overwrite the line); bidi, zero-width and other format characters become
    `<U+202E>`. A tab is kept. A newline is kept in multi-line text (a diff, a traceback) and
    shown as `\\n` when `multiline=False` (a table cell, a one-line status). Anything not a
    string is shown as `str(text)`; None as "".
    """
    s = "" if text is None else text if isinstance(text, str) else str(text)
    pattern = _HIDDEN if multiline else _HIDDEN_OR_NEWLINE
    return pattern.sub(_spell, s) if pattern.search(s) else s


def hidden_in(text: str) -> list[str]:
    """The characters of `text` `visible` would spell out (a newline and a tab are kept, so not these), each once,
    in order, as it spells them: `["\\x1b", "<U+202E>"]`. For a warning that names what a text holds."""
    return list(dict.fromkeys(_spell(m) for m in _HIDDEN.finditer(text)))


def has_hidden(text: str) -> bool:
    """True when `visible` would rewrite a character of `text` other than a newline: the mark for a diff line."""
    return _HIDDEN.search(text) is not None


def marked_lines(text: str) -> list[tuple[str, bool]]:
    """`text` split into lines at `\\n` only, each as (visible form, held a hidden character): a diff for review.

    `str.splitlines` would also break at \\r, \\x0b, \\x0c, \\x1c-\\x1e, \\x85 and U+2028/U+2029, so those
    characters would vanish into line breaks instead of being shown and marked on their line.
    """
    lines = text.split("\n")
    if lines and lines[-1] == "" and len(lines) > 1:
        lines.pop()
    return [(visible(line), has_hidden(line)) for line in lines]


def _json_escape(match: re.Match[str]) -> str:
    return "".join(f"\\u{unit:04x}" for unit in _utf16(match.group()))


def _utf16(ch: str) -> list[int]:
    cp = ord(ch)
    if cp < 0x10000:
        return [cp]
    cp -= 0x10000
    return [0xD800 + (cp >> 10), 0xDC00 + (cp & 0x3FF)]


def json_visible(document: str) -> str:
    """A JSON document with those same characters as `\\uXXXX` escapes: still valid JSON that decodes to
    the real text, and safe to print to a terminal. (`json.dumps` escapes only C0; with
    `ensure_ascii=False` DEL, C1, bidi and zero-width characters would pass raw.)"""
    return _HIDDEN.sub(_json_escape, document) if _HIDDEN.search(document) else document


def dumps_visible(value: Any, **kwargs: Any) -> str:
    """`json.dumps(value, ensure_ascii=False, ...)` made safe to print: non-ASCII letters stay readable."""
    kwargs.setdefault("ensure_ascii", False)
    return json_visible(json.dumps(value, **kwargs))
