"""Benchmark: spec extraction against markdown-it-py's bare parse and the original approach.

Run as `python tests/benchmarks/bench_spec.py`. For the real OpenAPI 3.1.0
specification (when ../shared/specs is present) and a generated 150,000-character
spec it prints, for the new extractor and for the original approach (split on
`##`, fixed caps of 2,000 / 1,000 / 2,000 characters for requirements /
constraints / examples, hard cut at the budget) measured in the same run:

- time to the summary as a ratio to a bare markdown-it-py parse, CommonMark plus tables
  (target <= 2x); the extractor itself runs only the block rules, whose time is shown too
- the share of the budget that is content (target >= 90%)
- the share of top-level sections represented (target 100%)
- the MUST / SHALL sentences of the document kept verbatim
"""

from __future__ import annotations

import random
import re
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from markdown_it import MarkdownIt  # noqa: E402

from tools.spec.extract import extract_spec  # noqa: E402
from tools.spec.parse import parse_document  # noqa: E402
from tools.spec.text import clean_inline, collapse  # noqa: E402

SPECS = ROOT.parent / "shared" / "specs"
BUDGET = 10_000
RUNS = 7
_HEADING_MARK = re.compile(r"^#{1,6} ")
_WORDS = (
    "request", "response", "client", "server", "token", "field", "value", "object", "schema", "header", "payload", "record",
    "queue", "batch", "retry", "timeout", "limit", "version", "channel", "event", "stream", "cursor", "page", "index",
    "key", "session", "resource", "handler", "policy", "scope", "tenant", "region", "replica", "snapshot",
)


def _phrase(rng: random.Random, n: int) -> str:
    return " ".join(rng.choice(_WORDS) for _ in range(n))


def _sentence(rng: random.Random, kind: str) -> str:
    subject = _phrase(rng, 2).capitalize()
    if kind == "must":
        verb = rng.choice(["MUST", "MUST NOT", "SHALL", "SHALL NOT"])
        return f"The {subject.lower()} {verb} {_phrase(rng, rng.randint(4, 12))}."
    if kind == "should":
        return f"A {subject.lower()} SHOULD {_phrase(rng, rng.randint(4, 10))}."
    if kind == "bound":
        return (f"Each {subject.lower()} is limited to at most {rng.randint(2, 5000)} "
                f"{rng.choice(['items', 'bytes', 'requests', 'characters'])} per {_phrase(rng, 1)}.")
    return f"{subject} {_phrase(rng, rng.randint(6, 18))}."


def _para(rng: random.Random, kinds: list[str]) -> str:
    return " ".join(_sentence(rng, k) for k in kinds)


def _object_section(rng: random.Random, name: str) -> str:
    rows = "\n".join(
        f"<a name=\"{name}{i}\"></a>{_phrase(rng, 1)}{i} | `string` | "
        f"{_para(rng, [rng.choice(['prose', 'must', 'should'])])}"
        for i in range(rng.randint(3, 7)))
    code = "\n".join(["```yaml", "# a comment that is not a heading", f"{name.lower()}:",
                      f"  {_phrase(rng, 1)}: {rng.randint(1, 99)}", "## not a heading either", "```"])
    return "\n\n".join([
        f"### {name} Object",
        _para(rng, ["prose", "prose", "must"]),
        "#### Fixed Fields",
        f"Field Name | Type | Description\n---|:---:|---\n{rows}",
        "#### Constraints",
        _para(rng, ["bound", "must", "bound", "prose"]),
        f"#### {name} Object Example",
        "For example:",
        code,
    ])


def generated_spec(target: int = 150_000, seed: int = 7) -> str:
    """A deterministic spec with every kind of section the extractor must handle."""
    rng = random.Random(seed)
    parts = [
        "# Widget Platform Specification",
        _para(rng, ["prose", "prose"]),
        "## Introduction",
        _para(rng, ["prose"] * 5),
        "Overview\n--------",
        _para(rng, ["prose"] * 4),
        "## Requirements",
        *[f"### {_phrase(rng, 2).title()}\n\n" + _para(rng, ["must", "prose", "must", "should"])
          for _ in range(6)],
        "## Objects",
    ]
    objects: list[str] = []
    while sum(len(p) for p in parts + objects) < target - 12_000:
        objects.append(_object_section(rng, _phrase(rng, 1).title() + str(len(objects))))
    parts += objects
    parts += [
        "## Limits and Quotas",
        _para(rng, ["bound", "must", "bound", "bound", "prose"]),
        "## Examples",
        "```json\n{\"# not\": \"a heading\"}\n```",
        "## Appendix A: Rationale",
        _para(rng, ["prose"] * 60),  # one enormous paragraph
    ]
    text = "\n\n".join(parts)
    while len(text) < target:
        text += "\n\n" + _para(rng, ["prose"] * 8)
    return text[:target].rsplit("\n", 1)[0] + "\n"


def original_summary(text: str, max_length: int = BUDGET) -> str:
    """The approach this replaces: split on `##`, fixed caps per category, hard cut at the budget."""
    requirements, constraints, examples = [], [], []
    for chunk in text.split("\n## "):
        low = chunk.lower()
        if "example" in low.split("\n", 1)[0] or "```" in chunk:
            examples.append(chunk)
        if "must" in low or "shall" in low or "require" in low:
            requirements.append(chunk)
        if "constraint" in low or "limit" in low or "maximum" in low:
            constraints.append(chunk)
    summary = ("## Requirements\n" + "\n".join(requirements)[:2000]
               + "\n## Constraints\n" + "\n".join(constraints)[:1000]
               + "\n## Examples\n" + "\n".join(examples)[:2000])
    return summary[:max_length]


ORIGINAL_BOILERPLATE = {"## Requirements", "## Constraints", "## Examples"}


def content_chars(summary: str, boilerplate: set[str]) -> int:
    """Characters of document text: no newlines, heading marks, fence lines or added labels."""
    total = 0
    for line in summary.split("\n"):
        if line in boilerplate or line.startswith("```"):
            continue
        total += len(_HEADING_MARK.sub("", line)) - line.count("…")
    return total


def _best(fn: Callable[[], object]) -> float:
    fn()
    times = []
    for _ in range(RUNS):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def measure(name: str, text: str) -> list[str]:
    """Time and score both approaches on one document; returns the printed lines."""
    parser = MarkdownIt("commonmark").enable("table")
    doc = parse_document(text)
    titles = [doc.sections[i].title for i in doc.top_level]
    musts = {s.bare for s in doc.sentences if s.must}
    parse_t = _best(lambda: parser.parse(text))
    block_parser = MarkdownIt("commonmark").enable("table").disable(["inline", "text_join"])
    block_t = _best(lambda: block_parser.parse(text))
    new_t = _best(lambda: extract_spec(text, max_length=BUDGET))
    old_t = _best(lambda: original_summary(text, BUDGET))
    new = extract_spec(text, max_length=BUDGET)["summary"]
    old = original_summary(text, BUDGET)
    lines = [f"{name}: {len(text):,} chars, {len(doc.sections)} sections, {len(titles)} top-level, "
             f"{len(musts)} MUST/SHALL sentences, budget {BUDGET:,}; bare markdown-it parse "
             f"{parse_t * 1000:.1f} ms (block rules only, as the extractor uses: {block_t * 1000:.1f} ms)"]
    for label, summary, seconds, boilerplate in (("new", new, new_t, set()),
                                                 ("original", old, old_t, ORIGINAL_BOILERPLATE)):
        flat = collapse(clean_inline(summary))
        heading_lines = {_HEADING_MARK.sub("", ln) for ln in summary.split("\n") if ln.startswith("#")}
        shown = sum(1 for t in titles if t in heading_lines or t in flat)
        kept = sum(1 for s in musts if s in flat)
        content = content_chars(summary, boilerplate)
        lines.append(
            f"  {label:8} time {seconds * 1000:6.1f} ms = {seconds / parse_t:4.2f}x bare parse "
            f"(target <= 2x) | content {content / BUDGET:6.1%} of budget (target >= 90%) | "
            f"top-level {shown}/{len(titles)} = {shown / max(len(titles), 1):.0%} (target 100%) | "
            f"MUST/SHALL verbatim {kept}/{len(musts)} | length {len(summary):,}")
    return lines


def main() -> int:
    documents: list[tuple[str, str]] = []
    openapi = SPECS / "openapi-3.1.0.md"
    if openapi.is_file():
        documents.append(("openapi-3.1.0.md", openapi.read_text(encoding="utf-8")))
    else:
        print(f"skipped openapi-3.1.0.md: {SPECS} is absent")
    documents.append(("generated-150k.md", generated_spec()))
    for name, text in documents:
        for line in measure(name, text):
            print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
