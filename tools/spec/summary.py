"""An extractive summary of a parsed document that fits a character budget.

Precedence when not everything fits: (1) `max_length` is never exceeded;
(2) every top-level section keeps its heading and first sentence (first
sentences are shortened evenly before any heading is dropped); (3) MUST /
SHALL sentences of requirement and constraint sections, verbatim, one per
section in turn, shallow sections first; (4) the rest by priority. Pieces are
chosen by priority but printed in document order under their headings, and
every piece is recorded as a part pointing at its section id and lines, so the
summary never has to carry section bodies or inline pointers.
"""

from __future__ import annotations

from dataclasses import dataclass

from tools.spec.parse import Document, Section

#: below this many characters left, no further part is worth trying
_MIN_USEFUL = 12
#: a first sentence is shortened no further than this before it is left out
_MIN_FIRST = 40
_ELLIPSIS = "…"

TIER_TOP, TIER_MUST, TIER_FIRST, TIER_NORMATIVE, TIER_CODE, TIER_REST = range(6)
_ROLES = {
    TIER_TOP: "first_sentence", TIER_MUST: "must", TIER_FIRST: "first_sentence",
    TIER_NORMATIVE: "normative", TIER_CODE: "code", TIER_REST: "text",
}


@dataclass(slots=True)
class _Piece:
    """A candidate for the summary: one sentence or one whole code block."""

    key: tuple[int, int, int, int]
    section: int
    text: str
    content: int
    line_start: int
    line_end: int
    block: int
    seq: int
    role: str
    must: bool = False

    @property
    def cost(self) -> int:
        """Characters it adds, separator included."""
        return len(self.text) + 1


@dataclass(slots=True)
class Summary:
    """The summary text with its parts and the figures the stats report."""

    text: str
    parts: list[dict[str, object]]
    content_chars: int
    top_level_represented: int
    must_total: int
    must_kept: int
    complete: bool
    warnings: list[str]


class _Selection:
    """What has been chosen so far, and what is left of the budget."""

    def __init__(self, doc: Document, max_length: int) -> None:
        self.doc = doc
        self.left = max_length + 1  # the last line has no separator
        self.headings: set[int] = set()
        self.pieces: list[_Piece] = []

    def heading_cost(self, index: int) -> int:
        """A heading line: `#` marks, a space, the title, a newline; paragraphs have none."""
        section = self.doc.sections[index]
        if section.synthetic:
            return 0
        return section.level + len(section.title) + 2

    def missing_headings(self, index: int | None, stop: int | None = None) -> list[int]:
        """Headings from `index` up to the first already chosen (or `stop`), that must come along."""
        out: list[int] = []
        while index is not None and index != stop and index not in self.headings:
            out.append(index)
            index = self.doc.sections[index].parent
        return out

    def add_heading(self, index: int) -> bool:
        """Choose one heading line if it fits."""
        cost = self.heading_cost(index)
        if index in self.headings or cost > self.left:
            return index in self.headings
        self.headings.add(index)
        self.left -= cost
        return True

    def try_add(self, piece: _Piece) -> bool:
        """Choose a piece with whatever headings it needs, only if all of it fits."""
        needed = self.missing_headings(piece.section)
        cost = piece.cost + sum(self.heading_cost(i) for i in needed)
        if cost > self.left:
            return False
        self.headings.update(needed)
        self.pieces.append(piece)
        self.left -= cost
        return True


def _shorten(text: str, cap: int) -> str:
    """Cut at a word boundary to at most `cap` characters plus an ellipsis."""
    if len(text) <= cap:
        return text
    cut = text[:cap]
    space = cut.rfind(" ")
    if space > cap // 2:
        cut = cut[:space]
    return cut.rstrip() + _ELLIPSIS


def _first_in_subtree(doc: Document, first_of: dict[int, int], top: Section) -> int | None:
    """The first sentence of a top-level section, or of its first descendant that has one."""
    for index in range(top.index, top.subtree_end):
        if index in first_of:
            return first_of[index]
    return None


def _cap_for(lengths: list[int], fixed: list[int], budget: int) -> int:
    """The largest sentence length cap such that all capped first sentences fit."""
    def cost(cap: int) -> int:
        return sum(f + min(n, cap) + 1 + (n > cap) for n, f in zip(lengths, fixed, strict=True))

    low, high = 0, max(lengths, default=0)
    while low < high:
        mid = (low + high + 1) // 2
        if cost(mid) <= budget:
            low = mid
        else:
            high = mid - 1
    return low


def _choose_top_level(sel: _Selection, used: set[int]) -> list[str]:
    """Rule (2): every top-level heading, then every first sentence, shortened evenly if need be."""
    doc = sel.doc
    tops = [doc.sections[i] for i in doc.top_level]
    if sum(sel.heading_cost(t.index) for t in tops) > sel.left:
        kept = sum(sel.add_heading(t.index) for t in tops)
        return [f"budget fits {kept} of {len(tops)} top-level headings; the rest are omitted"]
    for top in tops:
        sel.add_heading(top.index)
    first_of: dict[int, int] = {}
    for n, sentence in enumerate(doc.sentences):
        if sentence.first:
            first_of[sentence.section] = n
    chosen: list[tuple[int, int]] = []  # (sentence number, heading cost of intermediates)
    for top in tops:
        number = _first_in_subtree(doc, first_of, top)
        if number is not None:
            owner = doc.sentences[number].section
            between = sel.missing_headings(owner, stop=top.index)
            chosen.append((number, sum(sel.heading_cost(i) for i in between)))
    lengths = [len(doc.sentences[n].text) for n, _ in chosen]
    fixed = [f for _, f in chosen]
    cap = _cap_for(lengths, fixed, sel.left)
    warnings: list[str] = []
    if cap < max(lengths, default=0) and cap < _MIN_FIRST:
        cap = max(lengths, default=0)  # too tight to shorten them all: keep whole ones that fit
        warnings.append("budget too small for every top-level first sentence; some are omitted")
    for number, _ in chosen:
        sentence = doc.sentences[number]
        text = _shorten(sentence.text, cap)
        piece = _Piece((TIER_TOP, 0, 0, sentence.seq), sentence.section, text,
                       len(text) - text.endswith(_ELLIPSIS) * (text != sentence.text),
                       sentence.line_start, sentence.line_end, sentence.block, sentence.seq,
                       _ROLES[TIER_TOP], sentence.must and text == sentence.text)
        if sel.try_add(piece):
            used.add(number)
    return warnings


def _candidates(doc: Document, used: set[int], max_length: int) -> list[_Piece]:
    """Everything else, each with its priority key (tier, turn within section, depth, order)."""
    turns: dict[tuple[int, int], int] = {}
    pieces: list[_Piece] = []

    def key(tier: int, section: Section, seq: int) -> tuple[int, int, int, int]:
        turn = turns.get((tier, section.index), 0)
        turns[(tier, section.index)] = turn + 1
        return (tier, turn, len(section.path), seq)

    for n, sentence in enumerate(doc.sentences):
        if n in used:
            continue
        section = doc.sections[sentence.section]
        binding = section.kind in ("requirements", "constraints")
        if sentence.must and binding:
            tier = TIER_MUST
        elif sentence.first:
            tier = TIER_FIRST
        elif sentence.must or (binding and (sentence.normative or sentence.bound)):
            tier = TIER_NORMATIVE
        else:
            tier = TIER_REST
        pieces.append(_Piece(key(tier, section, sentence.seq), sentence.section, sentence.text,
                             len(sentence.text), sentence.line_start, sentence.line_end,
                             sentence.block, sentence.seq, _ROLES[tier], sentence.must))
    code_cap = max(400, max_length // 8)
    for block in doc.code:
        rendered = f"```{block.info}\n{block.text}```"
        if len(block.text) > code_cap or not block.text.strip():
            continue
        section = doc.sections[block.section]
        tier = TIER_CODE if section.kind == "examples" else TIER_REST
        pieces.append(_Piece(key(tier, section, block.seq), block.section, rendered,
                             len(block.text), block.line_start, block.line_end, -1, block.seq,
                             _ROLES[TIER_CODE]))
    pieces.sort(key=lambda piece: piece.key)
    return pieces


def _render(sel: _Selection) -> tuple[str, list[dict[str, object]]]:
    """Headings and pieces in document order; adjacent sentences of one paragraph share a line."""
    doc = sel.doc
    by_section: dict[int, list[_Piece]] = {}
    for piece in sel.pieces:
        by_section.setdefault(piece.section, []).append(piece)
    out: list[str] = []
    parts: list[dict[str, object]] = []
    for section in doc.sections:
        if section.index in sel.headings and not section.synthetic:
            out.append("#" * section.level + " " + section.title)
            out.append("\n")
            parts.append(_part(section, "heading", section.line_start, section.line_start,
                               len(section.title)))
        previous: _Piece | None = None
        for piece in sorted(by_section.get(section.index, ()), key=lambda p: p.seq):
            joined = (previous is not None and piece.block >= 0 and piece.block == previous.block
                      and piece.seq == previous.seq + 1)
            if joined:
                out[-1] = " "
            out.append(piece.text)
            out.append("\n")
            last = parts[-1] if parts else None
            if (last is not None and last["section_id"] == section.id
                    and last["role"] == piece.role and previous is not None):
                last["line_end"] = piece.line_end
                last["chars"] = int(str(last["chars"])) + piece.content
            else:
                parts.append(_part(section, piece.role, piece.line_start, piece.line_end,
                                   piece.content))
            previous = piece
    return "".join(out[:-1]), parts


def _part(section: Section, role: str, start: int, end: int, chars: int) -> dict[str, object]:
    """One entry of `parts`: where a piece of the summary came from."""
    return {"section_id": section.id, "line_start": start, "line_end": end,
            "kind": section.kind, "role": role, "chars": chars}


def _add_headings(sel: _Selection, indices: set[int]) -> None:
    """Titles above the top level (a lone document title), outermost first, each if it fits."""
    for index in sorted(indices):
        sel.add_heading(index)


def summarize(doc: Document, max_length: int) -> Summary:
    """Choose and render the summary of `doc` within `max_length` characters."""
    sel = _Selection(doc, max_length)
    used: set[int] = set()
    warnings = _choose_top_level(sel, used)
    # the lone title above the top level costs one line and frames the rest: it comes next
    _add_headings(sel, {a for i in doc.top_level for a in sel.missing_headings(doc.sections[i].parent)})
    if sel.left >= _MIN_USEFUL:
        complete = True
        for piece in _candidates(doc, used, max_length):
            if sel.left < _MIN_USEFUL:
                complete = False
                break
            if not sel.try_add(piece):
                complete = False
    else:
        complete = False
    text, parts = _render(sel)
    if len(text) > max_length:  # cannot happen by construction; rule (1) is absolute
        text = text[:max_length]
    content = sum(len(doc.sections[i].title) for i in sel.headings if not doc.sections[i].synthetic)
    content += sum(piece.content for piece in sel.pieces)
    binding = {s.index for s in doc.sections if s.kind in ("requirements", "constraints")}
    must_total = sum(1 for s in doc.sentences if s.must and s.section in binding)
    must_kept = sum(1 for p in sel.pieces if p.must and p.section in binding)
    with_pieces = {p.section for p in sel.pieces}
    represented = sum(1 for i in doc.top_level  # a paragraph has no heading line to show for it
                      if (i in sel.headings and not doc.sections[i].synthetic) or i in with_pieces)
    return Summary(text, parts, content, represented, must_total, must_kept, complete, warnings)

