"""Text helpers for spec extraction: normalising, cleaning inline markup, sentences, RST titles.

Kept apart from the section tree so the rules for what counts as a sentence
or a reStructuredText title can be read (and tested) on their own.
"""

from __future__ import annotations

import re

_SENTENCE_END = re.compile(r"[.!?][\"')\]*_`’”]*\s+(?=[\"'(\[*_`‘“]*[A-Z0-9])")
_ABBREV = re.compile(
    r"(?:\b(?:e\.g|i\.e|etc|vs|cf|viz|al|approx|incl|fig|sec|no|mr|mrs|dr|st|vol)|\b[A-Za-z])\.$",
    re.I,
)
_HTML_BREAK = re.compile(r"<br\s*/?>", re.I)
_HTML_TAG = re.compile(r"</?[A-Za-z][^<>]*>")
_IMAGE = re.compile(r"!\[([^\]\n]*)\]\([^)\n]*\)")
_LINK = re.compile(r"\[([^\[\]\n]+)\](?:\([^)\n]*\)|\[[^\]\n]*\])")
_SPACES = re.compile(r"\s+")
_SLUG_DROP = re.compile(r"[^\w]+")
_RST_ADORNMENT = re.compile(r"^([!-/:-@\[-`{-~])\1{2,}[ \t]*$")


def normalize_text(text: str) -> str:
    """Strip a BOM and make every line end `\\n`, so line numbers mean the same everywhere."""
    if text.startswith("\ufeff"):
        text = text[1:]
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    return text


def clean_inline(raw: str) -> str:
    """Drop link targets and inline HTML (anchors), keeping every word; newlines kept."""
    if "<" in raw:
        raw = _HTML_TAG.sub("", _HTML_BREAK.sub(" ", raw))
    if "[" in raw:
        raw = _IMAGE.sub(r"\1", raw)
        raw = _LINK.sub(r"\1", raw)
    if "\\" in raw:
        raw = raw.replace("\\|", "|")
    return raw


def collapse(text: str) -> str:
    """One line, single spaces: how sentences and titles appear in a summary."""
    return _SPACES.sub(" ", text).strip()


def slugify(title: str) -> str:
    """A heading as an id component: lower case, words joined by `-`, at most 60 characters."""
    slug = _SLUG_DROP.sub("-", title.lower()).strip("-")
    if len(slug) > 60:
        slug = slug[:60].rsplit("-", 1)[0] or slug[:60]
    return slug or "section"


def split_sentences(text: str) -> list[tuple[int, str]]:
    """Split on sentence ends, not after common abbreviations; returns (offset, raw sentence)."""
    out: list[tuple[int, str]] = []
    start = 0
    for match in _SENTENCE_END.finditer(text):
        end = match.start() + 1
        if _ABBREV.search(text[max(start, end - 6):end]):
            continue
        out.append((start, text[start:match.end()]))
        start = match.end()
    if start < len(text):
        out.append((start, text[start:]))
    return out


def rst_headings(lines: list[str]) -> dict[int, tuple[str, tuple[str, bool], list[int]]]:
    """reStructuredText section titles: title line -> (title, adornment style, adornment lines)."""
    found: dict[int, tuple[str, tuple[str, bool], list[int]]] = {}
    n = len(lines)
    i = 0
    while i < n - 1:
        line = lines[i]
        blank_before = i == 0 or not lines[i - 1].strip()
        over = _RST_ADORNMENT.match(line)
        if (over and blank_before and i + 2 < n and lines[i + 1].strip()
                and lines[i + 2].rstrip() == line.rstrip()
                and len(line.rstrip()) >= len(lines[i + 1].strip())):
            found[i + 1] = (lines[i + 1].strip(), (line[0], True), [i, i + 2])
            i += 3
            continue
        under = _RST_ADORNMENT.match(lines[i + 1])
        if (under and blank_before and line.strip() and not line[0].isspace()
                and not _RST_ADORNMENT.match(line)
                and len(lines[i + 1].rstrip()) >= len(line.rstrip())):
            found[i] = (line.strip(), (lines[i + 1][0], False), [i + 1])
            i += 2
            continue
        i += 1
    return found


def rst_rewrite(lines: list[str], found: dict[int, tuple[str, tuple[str, bool], list[int]]]
                 ) -> str:
    """Turn RST titles into ATX headings in place (same line count), levels by first appearance."""
    styles: list[tuple[str, bool]] = []
    out = list(lines)
    for line_no in sorted(found):
        title, style, adornments = found[line_no]
        if style not in styles:
            styles.append(style)
        out[line_no] = "#" * min(styles.index(style) + 1, 6) + " " + title
        for adornment in adornments:
            out[adornment] = ""
    return "\n".join(out)
