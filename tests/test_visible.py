"""The one rule for showing text from outside (tools/visible.py): every class of hidden character."""

from __future__ import annotations

import json
import re
import sys
import unicodedata

from tools.visible import HIDDEN_CATEGORIES, HIDDEN_CLASS, INVISIBLE_EXTRA, dumps_visible, has_hidden, json_visible, visible

#: One sample of every class, and how it must look.
EVERY_CLASS = {
    "\x00": "\\x00", "\x07": "\\x07", "\x08": "\\x08", "\x1b": "\\x1b", "\r": "\\r", "\x0b": "\\x0b", "\x0c": "\\x0c",  # C0
    "\x7f": "\\x7f",  # DEL
    "\x85": "\\x85", "\x9b": "\\x9b", "\x9d": "\\x9d",  # C1 (CSI, OSC in one byte)
    "\u202a": "<U+202A>", "\u202e": "<U+202E>", "\u2066": "<U+2066>", "\u2069": "<U+2069>",  # bidi embeddings, isolates
    "\u200e": "<U+200E>", "\u200f": "<U+200F>", "\u061c": "<U+061C>",  # bidi marks
    "\u200b": "<U+200B>", "\u200c": "<U+200C>", "\u200d": "<U+200D>", "\u2060": "<U+2060>", "\ufeff": "<U+FEFF>",  # zero width
    "\u00ad": "<U+00AD>", "\U000e0041": "<U+E0041>",  # other format characters: soft hyphen, a tag letter
    "\u2028": "<U+2028>", "\u2029": "<U+2029>",  # line / paragraph separators
    "\u3164": "<U+3164>", "\u034f": "<U+034F>",  # invisible "letters"
    "\udc80": "<U+DC80>",  # a lone surrogate (surrogateescape)
}


def test_every_class_is_spelled_out_and_detected():
    for raw, shown in EVERY_CLASS.items():
        line = f"name = name{raw}.strip()"
        assert visible(line) == f"name = name{shown}.strip()", repr(raw)
        assert has_hidden(line), repr(raw)
        assert not has_hidden(visible(line)), repr(raw)
    attack = '__import__("os").system("id")  # \x1b[2K\x1b[1G    name = name.strip()\x1b]0;pwned\x07'
    assert visible(attack) == '__import__("os").system("id")  # \\x1b[2K\\x1b[1G    name = name.strip()\\x1b]0;pwned\\x07'


def test_newlines_tabs_and_plain_text():
    assert visible("a\tb\nc") == "a\tb\nc" and not has_hidden("a\tb\nc")
    assert visible("a\tb\nc", multiline=False) == "a\tb\\nc"
    assert visible("CRLF\r\n") == "CRLF\\r\n"
    plain = "héllo wörld — 日本語 ✓ 👍 \\x1b"  # letters, symbols, emoji and a written-out escape stay as they are
    assert visible(plain) == plain and not has_hidden(plain)
    assert visible(None) == "" and visible(42) == "42"


def test_the_written_out_class_matches_unicodedata():
    derived = {cp for cp in range(sys.maxunicode + 1) if chr(cp) not in "\n\t"
               and (unicodedata.category(chr(cp)) in HIDDEN_CATEGORIES or chr(cp) in INVISIBLE_EXTRA)}
    pattern = re.compile(f"[{HIDDEN_CLASS}]")
    written = {cp for cp in range(sys.maxunicode + 1) if pattern.match(chr(cp))}
    assert written == derived, sorted(written ^ derived)[:20]


def test_json_stays_json_and_keeps_the_real_text():
    value = {"explanation": "ok" + "".join(EVERY_CLASS), "name": "héllo"}
    text = dumps_visible(value, indent=2)
    assert not has_hidden(text.replace("\n", "")) and "héllo" in text and "\\u202e" in text
    assert json.loads(text) == value
    assert json_visible('"\U000e0041"') == '"\\udb40\\udc41"'
