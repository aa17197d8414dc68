"""A document (Markdown, reStructuredText-style or plain text) as a tree of classified sections.

markdown-it-py finds the block structure, so code fences, tables, setext
headings and `#` lines inside fences are handled the way a renderer would
handle them. Only block parsing runs: the summary needs sentences, not inline
tokens, and the block pass is half the cost of a full parse. Every section
keeps its line range in the original text, so it stays addressable by id.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache

from markdown_it import MarkdownIt
from markdown_it.token import Token

from tools.spec.text import (
    clean_inline,
    collapse,
    normalize_text,
    rst_headings,
    rst_rewrite,
    slugify,
    split_sentences,
)

KINDS = ("requirements", "constraints", "examples", "background", "other")
PREAMBLE_ID = "_preamble"
#: above this many paragraphs a heading-less document groups paragraphs into sections
MAX_PARAGRAPH_SECTIONS = 1000
TITLE_MAX = 200
LABEL_MAX = 60

_MUST_UPPER = re.compile(r"(?<![\"“'‘])\b(?:MUST|SHALL)\b(?![\"”'’])")
_MUST_ANY = re.compile(r"(?<![\"“'‘])\b(?:must|shall)\b(?![\"”'’])", re.I)
_NORM_UPPER = re.compile(
    r"(?<![\"“'‘])\b(?:MUST|SHALL|REQUIRED|SHOULD|RECOMMENDED)\b(?![\"”'’])"
)
_NORM_ANY = re.compile(r"\b(?:must|shall|required|should|recommended)\b", re.I)
_HAS_UPPER_KEYWORD = re.compile(r"\b(?:MUST|SHALL|REQUIRED|SHOULD)\b")
_BOUND = re.compile(
    r"(?:\b(?:at (?:most|least)|no (?:more|fewer|less|greater) than|(?:less|fewer|more|greater"
    r"|larger|smaller|longer|shorter) than|exceed\w*|maximum|minimum|max|min|up to|limit\w*"
    r"|bound\w*|between|within|range)\b|[<>≤≥]=?)[^.;]{0,60}?\d"
    r"|\b\d[\d,.]*\s*(?:characters|chars|bytes|[KMG]i?B|ms|seconds|minutes|hours|items|requests"
    r"|entries|retries|attempts|percent|%)",
    re.I,
)
_DIGIT = re.compile(r"\d")
_EXAMPLE_CUE = re.compile(r"\b(?:for example|for instance|e\.g\.|example:)", re.I)

_HEADING_CUES: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("examples", re.compile(
        r"\b(?:examples?|samples?|usage|tutorials?|walk-?through|demo|how[- ]to|quick ?start)\b",
        re.I)),
    ("constraints", re.compile(
        r"\b(?:constraints?|limits?|limitations?|restrictions?|bounds|quotas?|validation"
        r"|rate[- ]limit\w*|thresholds?|boundaries)\b", re.I)),
    ("requirements", re.compile(
        r"\b(?:requirements?|must|mandatory|conformance|compliance|obligations?|rules)\b", re.I)),
    ("background", re.compile(
        r"\b(?:introduction|overview|background|motivation|history|about|preface|glossary"
        r"|terminology|definitions?|contents|appendix|acknowledge?ments?|changelog|revision"
        r"|rationale|scope|purpose|goals?)\b", re.I)),
)


@dataclass(slots=True)
class Sentence:
    """One sentence (or table row) of prose, cleaned of link and HTML markup, words verbatim."""

    section: int
    text: str
    line_start: int
    line_end: int
    seq: int
    block: int
    first: bool
    must: bool
    normative: bool
    bound: bool
    label_len: int = 0  # `label: ` prefix of a table-row sentence, not part of the sentence

    @property
    def bare(self) -> str:
        """The sentence as written, without the row label it was given for context."""
        return self.text[self.label_len:]


@dataclass(slots=True)
class CodeBlock:
    """A fenced or indented code block, always kept whole."""

    section: int
    text: str
    info: str
    line_start: int
    line_end: int
    seq: int


@dataclass(slots=True)
class Section:
    """A heading and everything under it; paragraphs stand in for headings in plain text."""

    index: int
    title: str
    level: int
    line_start: int
    parent: int | None = None
    synthetic: bool = False
    children: list[int] = field(default_factory=list)
    own_end: int = 0
    line_end: int = 0
    subtree_end: int = 0  # index one past the last section of the subtree
    path: list[str] = field(default_factory=list)
    slug_path: tuple[str, ...] = ()
    id: str = ""
    kind: str = "other"
    must_count: int = 0
    normative: int = 0
    bounds: int = 0
    example_cues: int = 0
    code_chars: int = 0
    text_chars: int = 0
    chars: int = 0


@dataclass(slots=True)
class Document:
    """The parsed document: sections in document order plus their sentences and code blocks."""

    text: str
    lines: list[str]
    format: str
    sections: list[Section]
    sentences: list[Sentence]
    code: list[CodeBlock]
    top_level: list[int]
    top_level_level: int | None
    by_id: dict[str, int]


@lru_cache(maxsize=1)
def _block_parser() -> MarkdownIt:
    """CommonMark plus tables, block rules only (inline tokens are never read)."""
    return MarkdownIt("commonmark").enable("table").disable(["inline", "text_join"])


def _heading_cue(title: str) -> str | None:
    """The kind a heading announces by its words, if any."""
    for kind, pattern in _HEADING_CUES:
        if pattern.search(title):
            return kind
    return None


def _contains_any(text: str, words: tuple[str, ...]) -> bool:
    """Plain substring search, the cheap pre-check before a keyword regex."""
    return any(word in text for word in words)


class _Builder:
    """Walks block tokens once, creating sections and attributing content to them."""

    def __init__(self, uppercase: bool) -> None:
        self.sections: list[Section] = []
        self.sentences: list[Sentence] = []
        self.code: list[CodeBlock] = []
        self.uppercase = uppercase
        self.must_words = ("MUST", "SHALL") if uppercase else ("must", "shall")
        self.norm_words = (("REQUIRED", "SHOULD", "RECOMMENDED") if uppercase
                           else ("required", "should", "recommended"))
        self.must_re = _MUST_UPPER if uppercase else _MUST_ANY
        self.norm_re = _NORM_UPPER if uppercase else _NORM_ANY
        self.current: int | None = None
        self.block = 0
        self.seq = 0
        self.has_first: set[int] = set()

    def open_section(self, title: str, level: int, line: int, *, synthetic: bool = False) -> None:
        """Start a section at a 0-based line; nesting is settled later from levels."""
        title = collapse(title)
        if len(title) > TITLE_MAX:
            title = title[:TITLE_MAX].rsplit(" ", 1)[0] + "…"
        index = len(self.sections)
        self.sections.append(Section(index, title, level, line + 1, synthetic=synthetic))
        self.current = index

    def target(self) -> int:
        """The section content goes to; content before the first one opens a synthetic preamble."""
        if self.current is None:
            self.open_section("(preamble)", 0, 0, synthetic=True)
        assert self.current is not None
        return self.current

    def add_prose(self, raw: str, line0: int, label: str = "") -> None:
        """Split a paragraph (or table cell) into sentences with their line numbers."""
        section = self.sections[self.target()]
        text = clean_inline(raw)
        section.text_chars += len(text)
        self.block += 1
        line = line0 + 1
        previous = 0
        for offset, chunk in split_sentences(text):
            line += text.count("\n", previous, offset)
            previous = offset
            sentence = collapse(chunk)
            if not sentence:
                continue
            prefix = f"{label}: " if label else ""
            self._add_sentence(section, prefix + sentence, line, line + chunk.count("\n"),
                               len(prefix))

    def add_row(self, cells: list[str], line0: int) -> None:
        """A short table row stays one part; a long one yields `label: sentence` parts."""
        cleaned = [collapse(clean_inline(cell)) for cell in cells]
        joined = " | ".join(cleaned)
        section = self.sections[self.target()]
        if len(joined) <= 160 or len(cleaned) < 2:
            section.text_chars += len(joined)
            self.block += 1
            if joined.strip(" |"):
                self._add_sentence(section, joined, line0 + 1, line0 + 1)
            return
        label = cleaned[0][:LABEL_MAX]
        for cell in cleaned[1:]:
            if len(cell) >= 40 or "." in cell:
                self.add_prose(cell, line0, label)

    def _add_sentence(self, section: Section, text: str, start: int, end: int,
                      label_len: int = 0) -> None:
        """Record a sentence with the signals that classify its section and rank it."""
        bare = text[label_len:]
        # substring tests first: they run in C and rule out most sentences before any regex
        folded = bare if self.uppercase else bare.lower()
        must = _contains_any(folded, self.must_words) and bool(self.must_re.search(bare))
        normative = must or (_contains_any(folded, self.norm_words)
                             and bool(self.norm_re.search(bare)))
        bound = bool(_DIGIT.search(bare)) and bool(_BOUND.search(bare))
        first = section.index not in self.has_first
        self.has_first.add(section.index)
        section.must_count += must
        section.normative += normative
        section.bounds += bound
        lowered = bare.lower() if self.uppercase else folded
        if ("example" in lowered or "e.g." in lowered or "for instance" in lowered) and \
                _EXAMPLE_CUE.search(bare):
            section.example_cues += 1
        self.sentences.append(Sentence(
            section.index, text, start, end, self.seq, self.block, first, must, normative, bound,
            label_len,
        ))
        self.seq += 1

    def add_code(self, token: Token) -> None:
        """Code stays whole; `#` lines inside it never become headings (the parser saw to that)."""
        assert token.map is not None
        index = self.target()
        self.sections[index].code_chars += len(token.content)
        self.code.append(CodeBlock(
            index, token.content, token.info.strip(), token.map[0] + 1, token.map[1], self.seq,
        ))
        self.seq += 1


def _walk(tokens: list[Token], builder: _Builder, boundaries: dict[int, str]) -> None:
    """One pass over the tokens; `boundaries` maps token index -> section title to open there."""
    in_head = False
    row: list[str] = []
    row_line = 0
    skip_inline = False
    for i, token in enumerate(tokens):
        kind = token.type
        if i in boundaries:
            assert token.map is not None
            level = int(token.tag[1]) if kind == "heading_open" else 1
            builder.open_section(boundaries[i], level, token.map[0],
                                 synthetic=kind != "heading_open")
            skip_inline = kind == "heading_open"
        elif kind == "inline":
            if skip_inline:
                skip_inline = False
            elif token.level >= 3 and tokens[i - 1].type in ("td_open", "th_open"):
                row.append(token.content)
            elif token.map is not None:
                builder.add_prose(token.content, token.map[0])
        elif kind in ("fence", "code_block"):
            builder.add_code(token)
        elif kind == "thead_open":
            in_head = True
        elif kind == "thead_close":
            in_head = False
        elif kind == "tr_open":
            row = []
            row_line = token.map[0] if token.map else 0
        elif kind == "tr_close" and not in_head:
            builder.add_row(row, row_line)
        elif kind == "html_block":
            builder.sections[builder.target()].text_chars += len(token.content)


def _paragraph_boundaries(tokens: list[Token], lines: list[str]) -> dict[int, str]:
    """Without headings, each top-level paragraph starts a section (grouped if there are many)."""
    starts = [i for i, t in enumerate(tokens) if t.type == "paragraph_open" and t.level == 0]
    if not starts:
        starts = [i for i, t in enumerate(tokens) if t.level == 0 and t.map is not None][:1]
    step = -(-len(starts) // MAX_PARAGRAPH_SECTIONS) if starts else 1
    out: dict[int, str] = {}
    for i in starts[::step]:
        token = tokens[i]
        assert token.map is not None
        if token.type != "paragraph_open":
            out[i] = "(document)"
            continue
        first_line = collapse(clean_inline(lines[token.map[0]]))
        title = first_line[:60].rsplit(" ", 1)[0] + "…" if len(first_line) > 60 else first_line
        out[i] = title or "(paragraph)"
    return out


def _choose_format(text: str, lines: list[str], source: str | None
                   ) -> tuple[str, list[Token], dict[int, int]]:
    """Markdown unless the text has no ATX headings and clearly uses RST underlines.

    Also returns, for overlined RST titles, title line -> overline line, so the
    section starts at its overline.
    """
    tokens = _block_parser().parse(text)
    has_atx = any(t.type == "heading_open" and t.level == 0 and t.markup.startswith("#")
                  for t in tokens)
    if has_atx:
        return "markdown", tokens, {}
    found = rst_headings(lines)
    is_rst_file = bool(source) and str(source).lower().endswith((".rst", ".rest"))
    if found and (is_rst_file or any(style[0] not in "=-" or style[1]
                                     for _, style, _ in found.values())):
        starts = {line: min(adornments) for line, (_, _, adornments) in found.items()
                  if min(adornments) < line}
        return "rst", _block_parser().parse(rst_rewrite(lines, found)), starts
    return "markdown", tokens, {}


def _link_tree(doc_lines: list[str], sections: list[Section]) -> None:
    """Parents from heading levels; line ranges end before the next heading at the same level."""
    stack: list[int] = []
    total = len(doc_lines)
    for section in sections:
        if section.synthetic and section.level == 0:
            continue
        while stack and sections[stack[-1]].level >= section.level:
            stack.pop()
        if stack:
            section.parent = stack[-1]
            sections[stack[-1]].children.append(section.index)
        stack.append(section.index)
    for i, section in enumerate(sections):
        nxt = sections[i + 1].line_start - 1 if i + 1 < len(sections) else total
        section.own_end = _trim(doc_lines, section.line_start, nxt)
        end_index = i + 1
        if not (section.synthetic and section.level == 0):
            while end_index < len(sections) and sections[end_index].level > section.level:
                end_index += 1
        section.subtree_end = end_index
        last = sections[end_index].line_start - 1 if end_index < len(sections) else total
        section.line_end = _trim(doc_lines, section.line_start, last)


def _trim(doc_lines: list[str], start: int, end: int) -> int:
    """Last non-blank line in [start, end] (1-based), never before `start`."""
    while end > start and not doc_lines[end - 1].strip():
        end -= 1
    return end


def _assign_ids(sections: list[Section]) -> dict[str, int]:
    """Shortest unique suffix of the slug path; `-2` only when a whole path repeats."""
    seen: set[tuple[str, ...]] = set()
    for section in sections:
        parent = sections[section.parent] if section.parent is not None else None
        section.path = (parent.path if parent else []) + [section.title]
        slug = PREAMBLE_ID if section.synthetic and section.level == 0 else slugify(section.title)
        base = parent.slug_path if parent else ()
        candidate, n = base + (slug,), 1
        while candidate in seen:
            n += 1
            candidate = base + (f"{slug}-{n}",)
        seen.add(candidate)
        section.slug_path = candidate
    counts: dict[tuple[str, ...], int] = {}
    for section in sections:
        for k in range(1, len(section.slug_path) + 1):
            key = section.slug_path[-k:]
            counts[key] = counts.get(key, 0) + 1
    by_id: dict[str, int] = {}
    for section in sections:
        for k in range(1, len(section.slug_path) + 1):
            if counts[section.slug_path[-k:]] == 1 or k == len(section.slug_path):
                section.id = "/".join(section.slug_path[-k:])
                break
        by_id[section.id] = section.index
    return by_id


def _classify(sections: list[Section]) -> None:
    """Kind from the heading's words and the body's signals; weak children inherit a cue."""
    inherited: dict[int, str] = {}
    for section in sections:
        cue = None if section.synthetic else _heading_cue(section.title)
        scores = dict.fromkeys(KINDS, 0.0)
        if cue:
            scores[cue] += 2.5
        scores["requirements"] += min(section.normative, 6)
        scores["constraints"] += min(section.bounds * 1.5, 6)
        total = section.code_chars + section.text_chars
        if section.code_chars:
            scores["examples"] += 4 * section.code_chars / total
        scores["examples"] += min(section.example_cues, 3) * 0.5
        if section.text_chars and not section.normative:
            scores["background"] += 1
        best = max(KINDS[:4], key=lambda kind: scores[kind])
        parent_kind = inherited.get(section.parent, "") if section.parent is not None else ""
        if cue:
            inherited[section.index] = cue
        elif parent_kind:
            inherited[section.index] = parent_kind
        if scores[best] >= 1.0:
            section.kind = best
        else:
            section.kind = parent_kind or ("background" if section.text_chars else "other")


def _top_level(sections: list[Section]) -> tuple[list[int], int | None]:
    """The highest level used more than once; a lone title is skipped in favour of what it holds."""
    real = [s for s in sections if not (s.synthetic and s.level == 0)]
    if not real:
        return [s.index for s in sections], (0 if sections else None)
    counts: dict[int, int] = {}
    for section in real:
        counts[section.level] = counts.get(section.level, 0) + 1
    levels = sorted(counts)
    repeated = [level for level in levels if counts[level] > 1]
    chosen = repeated[0] if repeated else levels[1] if len(levels) > 1 else levels[0]
    return [s.index for s in real if s.level == chosen], chosen


def parse_document(text: str, *, source: str | None = None) -> Document:
    """Build the section tree of `text` (already normalised or not; normalising is idempotent)."""
    text = normalize_text(text)
    lines = text.split("\n")
    uppercase = bool(_HAS_UPPER_KEYWORD.search(text))
    builder = _Builder(uppercase)
    if not text.strip():
        return Document(text, lines, "empty", [], [], [], [], None, {})
    fmt, tokens, starts = _choose_format(text, lines, source)
    boundaries = {i: _heading_title(tokens, i) for i, t in enumerate(tokens)
                  if t.type == "heading_open" and t.level == 0}
    if not boundaries:
        fmt = "paragraphs"
        boundaries = _paragraph_boundaries(tokens, lines)
    _walk(tokens, builder, boundaries)
    sections = builder.sections
    for section in sections:
        section.line_start = starts.get(section.line_start - 1, section.line_start - 1) + 1
    _link_tree(lines, sections)
    by_id = _assign_ids(sections)
    _classify(sections)
    offsets = [0]
    for line in lines:
        offsets.append(offsets[-1] + len(line) + 1)
    for section in sections:
        section.chars = offsets[section.line_end] - offsets[section.line_start - 1]
    top, top_level = _top_level(sections)
    return Document(text, lines, fmt, sections, builder.sentences, builder.code, top, top_level,
                    by_id)


def _heading_title(tokens: list[Token], i: int) -> str:
    """The text of the heading opened at token `i`, markup stripped."""
    nxt = tokens[i + 1] if i + 1 < len(tokens) else None
    return clean_inline(nxt.content) if nxt is not None and nxt.type == "inline" else ""


def section_dict(doc: Document, section: Section) -> dict[str, object]:
    """Metadata of one section as callers see it (no body: the line range points at it)."""
    return {
        "id": section.id,
        "title": section.title,
        "path": list(section.path),
        "level": section.level,
        "kind": section.kind,
        "line_start": section.line_start,
        "line_end": section.line_end,
        "parent": doc.sections[section.parent].id if section.parent is not None else None,
        "children": [doc.sections[c].id for c in section.children],
        "chars": section.chars,
        "must_count": section.must_count,
    }
