"""Spec extraction: the section tree, the budgeted summary, file decoding and the builtin tool."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import types
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tools.errors import ToolError, ToolInputError
from tools.spec.extract import (
    MAX_FILE_BYTES,
    extract_spec,
    extract_spec_from_file,
    find_section,
    read_spec_file,
    section_text,
    tool_entry,
)
from tools.spec.parse import parse_document
from tools.spec.text import clean_inline, collapse

REPO = Path(__file__).resolve().parents[1]
CORPUS = Path(__file__).resolve().parent / "spec_corpus"
SPECS = Path(__file__).resolve().parents[2] / "shared/specs"
OPENAPI = SPECS / "openapi-3.1.0.md"
EXECUTABLE = REPO / "tools" / "builtins" / "extract_spec_from_file.py"
_ATX = re.compile(r"^ {0,3}(#{1,6})(?:[ \t]+(.*?))?(?:[ \t]+#+)?[ \t]*$")
_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")


def corpus(name: str) -> str:
    return (CORPUS / name).read_text(encoding="utf-8")


def heading_lines(summary: str) -> list[str]:
    return [line for line in summary.split("\n") if line.startswith("#")]


def atx_headings(text: str) -> list[tuple[int, int, str]]:
    """(line, level, title) of ATX headings outside fences: an oracle independent of markdown-it."""
    out: list[tuple[int, int, str]] = []
    fence: str | None = None
    for number, line in enumerate(text.split("\n"), 1):
        opener = _FENCE.match(line)
        if fence is not None:
            if opener and opener.group(1)[0] == fence[0] and len(opener.group(1)) >= len(fence) \
                    and not line.strip()[len(opener.group(1)):].strip():
                fence = None
            continue
        if opener:
            fence = opener.group(1)
            continue
        match = _ATX.match(line)
        if match:
            out.append((number, len(match.group(1)), collapse(clean_inline(match.group(2) or ""))))
    return out


def long_spec(objects: int = 40) -> str:
    """A document several times the default budget, with every kind of section."""
    parts = ["# Big Spec", "Intro text for the big spec.", "## Overview",
             "The overview explains the purpose of the system in some detail. " * 3]
    for n in range(objects):
        parts += [
            f"## Object {n}",
            f"Object {n} describes resource number {n} and how clients use it in practice.",
            "### Fixed Fields",
            "Field | Type | Description\n---|---|---\n"
            f"name{n} | `string` | **REQUIRED**. The object name MUST be unique across the document {n}.",
            "### Constraints",
            f"Each object is limited to at most {n + 10} items. The payload MUST NOT exceed {n + 1} MB.",
            "### Example",
            f"```yaml\n# comment {n}\nname: obj{n}\n```",
            "Background prose that explains the history of this object at some length. " * 2,
        ]
    return "\n\n".join(parts) + "\n"


# -- the section tree -------------------------------------------------------------------------


def test_nested_headings_nest_with_parents_children_and_line_ranges() -> None:
    result = extract_spec(corpus("nested.md"))
    sections = result["sections"]
    assert list(sections) == [
        "payments-service-specification", "overview", "requirements", "authentication",
        "token-rotation", "authorization", "constraints", "examples", "background",
    ]
    rotation = sections["token-rotation"]
    assert rotation["path"] == ["Payments Service Specification", "Requirements", "Authentication",
                                "Token Rotation"]
    assert rotation["parent"] == "authentication" and rotation["level"] == 4
    assert sections["requirements"]["children"] == ["authentication", "authorization"]
    assert (sections["requirements"]["line_start"], sections["requirements"]["line_end"]) == (9, 23)
    assert sections["authentication"]["must_count"] == 2
    assert "body" not in rotation and "text" not in rotation  # metadata, never bodies


def test_sections_are_classified_from_heading_and_content() -> None:
    kinds = {sid: s["kind"] for sid, s in extract_spec(corpus("nested.md"))["sections"].items()}
    assert kinds["requirements"] == "requirements"
    assert kinds["authorization"] == "requirements"
    assert kinds["constraints"] == "constraints"
    assert kinds["examples"] == "examples"
    assert kinds["background"] == "background"
    assert kinds["overview"] == "background"
    # no cue in the heading: the content decides (a MUST with a numeric bound is a constraint)
    assert kinds["token-rotation"] == "constraints"


def test_repeated_headings_stay_distinct_and_same_full_path_gets_a_suffix() -> None:
    sections = extract_spec(corpus("repeated.md"))["sections"]
    assert "alpha-object/fixed-fields" in sections and "beta-object/fixed-fields" in sections
    assert "alpha-object/examples" in sections and "beta-object/examples" in sections
    assert sections["notes"]["line_start"] == 36 and sections["notes-2"]["line_start"] == 40
    assert sections["beta-object/fixed-fields"]["must_count"] == 1


def test_hash_lines_in_code_fences_are_not_headings_and_fences_stay_whole() -> None:
    text = corpus("fences.md")
    result = extract_spec(text)
    assert list(result["sections"]) == ["fences", "shell", "table", "after"]
    shell = section_text(text, "shell")
    assert "# this is a comment, not a heading\n## neither is this\necho" in shell
    assert shell.endswith("    # indented code, not a heading")
    assert section_text(text, "table").endswith("| max size | 1 MB |")
    assert result["stats"]["code_blocks"] == 3


def test_setext_headings_count_and_nest_with_atx() -> None:
    sections = extract_spec(corpus("setext.md"))["sections"]
    assert [(s["id"], s["level"], s["line_start"]) for s in sections.values()] == [
        ("setext-title", 1, 1), ("first-part", 2, 6), ("second-part", 2, 11), ("detail", 3, 16)]
    assert sections["detail"]["parent"] == "second-part"


def test_document_without_headings_is_split_into_paragraphs() -> None:
    result = extract_spec(corpus("plain.txt"))
    assert result["stats"]["format"] == "paragraphs"
    starts = [s["line_start"] for s in result["sections"].values()]
    assert starts == [1, 3, 5, 7]
    second = list(result["sections"].values())[1]
    assert second["kind"] == "requirements" and second["must_count"] == 1
    assert "The second paragraph says that the system MUST log every error." in result["summary"]


def test_many_paragraphs_are_grouped_to_a_bounded_number_of_sections() -> None:
    text = "\n\n".join(f"Paragraph {n} says something." for n in range(2500))
    result = extract_spec(text, max_length=2000)
    assert 500 <= len(result["sections"]) <= 1000
    assert len(result["summary"]) <= 2000


def test_restructuredtext_underlines_and_overlines_become_headings() -> None:
    text = corpus("rst.rst")
    result = extract_spec_from_file(CORPUS / "rst.rst")
    assert result["stats"]["format"] == "rst"
    levels = {sid: (s["level"], s["line_start"]) for sid, s in result["sections"].items()}
    assert levels == {"service-manual": (1, 1), "installation": (2, 7), "requirements": (3, 12),
                      "optional-extras": (4, 17), "usage": (2, 22)}
    assert section_text(text, "service-manual").startswith("==============\nService Manual\n")


def test_every_line_with_text_belongs_to_a_section() -> None:
    for name in ("nested.md", "repeated.md", "fences.md", "setext.md", "plain.txt", "rst.rst"):
        text = corpus(name)
        sections = extract_spec(text)["sections"].values()
        covered = {n for s in sections for n in range(s["line_start"], s["line_end"] + 1)}
        wanted = {n for n, line in enumerate(text.split("\n"), 1) if line.strip()}
        assert wanted <= covered, name


def test_preamble_before_the_first_heading_is_kept() -> None:
    result = extract_spec("Some words before any heading.\n\n# Title\n\nBody.\n")
    assert result["sections"]["_preamble"]["line_start"] == 1
    assert result["sections"]["title"]["line_start"] == 3


# -- section lookup ---------------------------------------------------------------------------


def test_section_text_is_the_heading_through_the_end_of_its_subtree() -> None:
    body = section_text(corpus("nested.md"), "requirements")
    assert body.startswith("## Requirements\n")
    assert "#### Token Rotation" in body and "### Authorization" in body
    assert body.endswith("A caller MUST NOT transfer from an account it does not own.")
    assert "## Constraints" not in body


def test_section_lookup_by_full_path_and_unambiguous_tail() -> None:
    text = corpus("repeated.md")
    assert section_text(text, "objects/beta-object/fixed-fields").startswith("### Fixed Fields")
    assert "urn:beta" in section_text(text, "beta-object/examples")
    with pytest.raises(ToolInputError, match="ambiguous.*alpha-object/fixed-fields"):
        section_text(text, "fixed-fields")
    with pytest.raises(ToolInputError, match="unknown section 'alpha-objet/fixd-fields'; closest: "
                                             "alpha-object/fixed-fields"):
        section_text(text, "alpha-objet/fixd-fields")


# -- the summary ------------------------------------------------------------------------------


def test_summary_keeps_must_sentences_verbatim_and_points_back_with_parts() -> None:
    text = corpus("nested.md")
    result = extract_spec(text, max_length=700)
    summary = result["summary"]
    assert len(summary) <= 700
    for sentence in ("Callers MUST present a bearer token.", "Tokens MUST be rotated every 24 hours.",
                     "A caller MUST NOT transfer from an account it does not own."):
        assert sentence in summary
    lines = text.split("\n")
    for part in result["parts"]:
        section = result["sections"][part["section_id"]]
        assert section["line_start"] <= part["line_start"] <= part["line_end"] <= section["line_end"]
        if part["role"] == "heading":
            assert lines[part["line_start"] - 1].lstrip("# ") == section["title"]
    assert result["stats"]["must_kept"] == result["stats"]["must_sentences"]


def test_top_level_headings_win_over_everything_when_the_budget_is_tight() -> None:
    result = extract_spec(long_spec(), max_length=900)
    tops = [s for s in result["sections"].values() if s["level"] == 2]
    assert len(tops) == 41
    headings = heading_lines(result["summary"])
    assert all(f"## {t['title']}" in headings for t in tops)
    assert len(result["summary"]) <= 900
    assert result["stats"]["top_level_represented"] == 41


def test_first_sentences_are_shortened_evenly_before_any_is_dropped() -> None:
    text = "\n\n".join(f"## Part {n}\n\nPart {n} opens with a fairly long sentence that goes on "
                       "and on about what the part contains and why it matters." for n in range(10))
    summary = extract_spec(text, max_length=800)["summary"]
    assert len(summary) <= 800
    assert summary.count("…") == 10
    assert all(f"Part {n} opens with" in summary for n in range(10))


def test_when_even_headings_do_not_fit_the_budget_still_holds_and_says_so() -> None:
    result = extract_spec(long_spec(), max_length=100)
    assert len(result["summary"]) <= 100
    assert result["summary"].startswith("## Overview\n## Object 0")
    assert any("top-level headings" in w for w in result["warnings"])


def test_must_sentences_come_before_other_prose() -> None:
    parts = [f"## Rule {n}\n\nRule {n} is short. The client MUST send header {n}. "
             f"{'This background sentence is deliberately much longer than any requirement. ' * 2}"
             for n in range(30)]
    result = extract_spec("\n\n".join(parts), max_length=1400)
    roles = [p["role"] for p in result["parts"]]
    kept = [n for n in range(30) if f"The client MUST send header {n}." in result["summary"]]
    assert 0 < len(kept) < 30
    assert "text" not in roles  # no plain prose while a MUST sentence was left out


def test_content_is_at_least_90_percent_of_the_budget_for_a_large_document() -> None:
    text = long_spec()
    assert len(text) > 20_000
    result = extract_spec(text)
    stats = result["stats"]
    assert stats["content_share"] >= 0.9
    assert 9_000 <= len(result["summary"]) <= 10_000
    assert stats["top_level_represented"] == stats["top_level"]


def test_one_enormous_paragraph_fits_the_budget() -> None:
    no_stops = "word " * 40_000
    with_stops = "This sentence is one of very many in a single paragraph. " * 4_000
    for text in (no_stops, "# Title\n\n" + with_stops):
        result = extract_spec(text, max_length=5_000)
        assert len(result["summary"]) <= 5_000
        assert result["stats"]["content_share"] >= 0.9


def test_summarize_false_returns_metadata_only() -> None:
    result = extract_spec(corpus("nested.md"), summarize=False)
    assert result["summary"] == "" and result["parts"] == []
    assert len(result["sections"]) == 9


@pytest.mark.parametrize("bad", [0, -1, 1.5, "100", True, None])
def test_max_length_must_be_a_positive_integer(bad: Any) -> None:
    with pytest.raises(ToolInputError, match="max_length must be a positive integer"):
        extract_spec("# A\n", max_length=bad)


# -- properties -------------------------------------------------------------------------------

_WORD = st.sampled_from(["alpha", "beta", "gamma", "delta", "token", "limit", "field", "schema", "x"])
_TITLE = st.lists(_WORD, min_size=1, max_size=4).map(lambda w: " ".join(w).capitalize())
_SENTENCE = st.builds(
    lambda words, verb: f"The {' '.join(words)} {verb} {words[0]}.",
    st.lists(_WORD, min_size=1, max_size=12),
    st.sampled_from(["MUST", "SHALL NOT", "should", "is", "has at most 5"]),
)
_BLOCK = st.one_of(
    st.tuples(st.just("atx"), st.integers(1, 4), _TITLE),
    st.tuples(st.just("setext"), st.sampled_from([1, 2]), _TITLE),
    st.tuples(st.just("para"), st.just(0), st.lists(_SENTENCE, min_size=1, max_size=5).map(" ".join)),
    st.tuples(st.just("code"), st.just(0), _TITLE),
)


def render(blocks: list[tuple[str, int, str]]) -> tuple[str, list[tuple[int, str]]]:
    """Markdown text and the (level, title) of every heading in it."""
    out: list[str] = []
    headings: list[tuple[int, str]] = []
    for kind, level, text in blocks:
        if kind == "atx":
            out.append("#" * level + " " + text)
            headings.append((level, text))
        elif kind == "setext":
            out.append(text + "\n" + ("=" if level == 1 else "-") * len(text))
            headings.append((level, text))
        elif kind == "para":
            out.append(text)
        else:
            out.append(f"```\n# {text}\n## {text}\n```")
    return "\n\n".join(out) + "\n", headings


def expected_top_level(headings: list[tuple[int, str]]) -> list[tuple[int, str]]:
    """The rule, independently: the highest level used more than once; a lone title is skipped."""
    counts: dict[int, int] = {}
    for level, _ in headings:
        counts[level] = counts.get(level, 0) + 1
    levels = sorted(counts)
    repeated = [lv for lv in levels if counts[lv] > 1]
    chosen = repeated[0] if repeated else levels[1] if len(levels) > 1 else levels[0]
    return [(lv, t) for lv, t in headings if lv == chosen]


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(blocks=st.lists(_BLOCK, min_size=1, max_size=30), max_length=st.integers(1, 3000))
def test_summary_never_exceeds_budget_nor_drops_a_top_level_heading_that_fits(
        blocks: list[tuple[str, int, str]], max_length: int) -> None:
    text, headings = render(blocks)
    result = extract_spec(text, max_length=max_length)
    summary = result["summary"]
    assert len(summary) <= max_length
    if headings:
        assert len(result["sections"]) == len(headings) + ("_preamble" in result["sections"])
        tops = expected_top_level(headings)
        if sum(len(title) + 8 for _, title in tops) <= max_length:
            lines = summary.split("\n")
            for level, title in tops:
                line = "#" * level + " " + title
                assert lines.count(line) >= tops.count((level, title)), line
    for part in result["parts"]:
        assert part["section_id"] in result["sections"]
    doc = parse_document(text)
    for sid, section in result["sections"].items():  # every id leads back to its own section
        assert find_section(doc, sid).line_start == section["line_start"]


@settings(max_examples=60, deadline=None)
@given(text=st.text(max_size=400), max_length=st.integers(1, 500))
def test_any_text_gives_a_result_within_budget(text: str, max_length: int) -> None:
    result = extract_spec(text, max_length=max_length)
    assert len(result["summary"]) <= max_length
    lines = len(text.replace("\r\n", "\n").replace("\r", "\n").split("\n"))
    for section in result["sections"].values():
        assert 1 <= section["line_start"] <= section["line_end"] <= lines


# -- files ------------------------------------------------------------------------------------


def test_crlf_is_normalised_and_line_numbers_match_the_lf_version() -> None:
    text, warnings = read_spec_file(CORPUS / "crlf.md")
    assert "\r" not in text and warnings == []
    lf = extract_spec(text)["sections"]
    raw = extract_spec((CORPUS / "crlf.md").read_bytes().decode())["sections"]
    assert lf == raw
    assert [(s["id"], s["line_start"], s["line_end"]) for s in lf.values()] == [
        ("crlf-document", 1, 9), ("part-one", 3, 5), ("part-two", 7, 9)]


def test_bom_is_stripped() -> None:
    text, warnings = read_spec_file(CORPUS / "bom.md")
    assert not text.startswith("\ufeff") and warnings == []
    assert list(extract_spec(text)["sections"])[0] == "bom-document"


def test_invalid_utf8_is_replaced_and_reported_with_the_file_name() -> None:
    result = extract_spec_from_file(CORPUS / "latin1.md")
    assert len(result["warnings"]) == 1
    warning = result["warnings"][0]
    assert "latin1.md" in warning and "invalid UTF-8 at line 1" in warning and "3 invalid" in warning
    assert result["sections"]["drinks"]["must_count"] == 1
    assert "\ufffd au lait MUST be hot." in result["summary"]


def test_utf16_with_bom_is_decoded(tmp_path: Path) -> None:
    path = tmp_path / "utf16.md"
    path.write_bytes("# Wide\n\nText.\n".encode("utf-16"))
    assert read_spec_file(path) == ("# Wide\n\nText.\n", [])


def test_bad_files_get_one_line_messages_naming_the_file(tmp_path: Path) -> None:
    binary = tmp_path / "image.png"
    binary.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR")
    huge = tmp_path / "huge.md"
    with huge.open("wb") as handle:
        handle.truncate(MAX_FILE_BYTES + 1)  # sparse: the size check must come before reading
    cases = {tmp_path / "missing.md": "no such file", tmp_path: "is a directory",
             binary: "binary file", huge: "over the 20 MB limit"}
    for path, message in cases.items():
        with pytest.raises(ToolInputError) as info:
            read_spec_file(path)
        assert message in str(info.value) and str(path) in str(info.value)
        assert "\n" not in str(info.value)


def test_empty_file_is_a_correct_empty_result(tmp_path: Path) -> None:
    path = tmp_path / "empty.md"
    path.write_text("")
    result = extract_spec_from_file(path)
    assert result["sections"] == {} and result["summary"] == "" and result["parts"] == []
    assert any("empty document" in w for w in result["warnings"])
    assert extract_spec(" \n\n")["sections"] == {}


# -- the tool ---------------------------------------------------------------------------------


@pytest.fixture
def spec_workspace(tmp_path: Path) -> Path:
    ws = tmp_path / "ws"
    (ws / "specs").mkdir(parents=True)
    (ws / "specs" / "big_spec.md").write_text(long_spec(), encoding="utf-8")
    (tmp_path / "outside.md").write_text("# Secret\n\nNot yours.\n")
    return ws


def test_tool_entry_reads_inside_the_workspace(spec_workspace: Path) -> None:
    runtime = types.SimpleNamespace(workspace=spec_workspace)
    result = tool_entry(runtime, {"file_path": "specs/big_spec.md", "summarize": True, "max_length": 3000, "include_sections": True})
    assert set(result) >= {"sections", "summary", "stats", "parts", "warnings"}
    assert len(result["summary"]) <= 3000 and result["stats"]["source"] == "specs/big_spec.md"
    absolute = tool_entry(runtime, {"file_path": str(spec_workspace / "specs/big_spec.md"), "include_sections": True})
    assert absolute["sections"] == result["sections"]
    bounded = tool_entry(runtime, {"file_path": "specs/big_spec.md", "max_length": 3000})  # the whole result within budget
    assert "sections" not in bounded and len(json.dumps(bounded, ensure_ascii=False)) <= 3000 and bounded["summary"]
    section = tool_entry(runtime, {"file_path": "specs/big_spec.md", "section": "object-3/constraints"})
    assert section["section_text"].startswith("### Constraints\n\nEach object is limited to at most 13")


def test_tool_entry_refuses_paths_outside_the_workspace(spec_workspace: Path) -> None:
    (spec_workspace / "link.md").symlink_to(spec_workspace.parent / "outside.md")
    runtime = types.SimpleNamespace(workspace=spec_workspace)
    for file_path in ("../outside.md", str(spec_workspace.parent / "outside.md"), "link.md",
                      "specs/../../outside.md", "/etc/passwd"):
        with pytest.raises(ToolInputError, match="outside the workspace"):
            tool_entry(runtime, {"file_path": file_path})


@pytest.mark.parametrize(("data", "message"), [
    ({}, "file_path is required"),
    ({"file_path": ""}, "file_path is required"),
    ({"file_path": "specs/big_spec.md", "max_length": 0}, "max_length must be a positive integer"),
    ({"file_path": "specs/big_spec.md", "max_length": "10"}, "max_length must be a positive integer"),
    ({"file_path": "specs/big_spec.md", "summarize": "yes"}, "summarize must be true or false"),
    ({"file_path": "specs/big_spec.md", "max_length": 10}, "max_length must be at least 500 characters, got 10"),
    ({"file_path": "specs/big_spec.md", "include_sections": 1}, "include_sections must be true or false"),
    ({"file_path": "specs/big_spec.md", "section": "nope"}, "unknown section 'nope'"),
    ({"file_path": "specs/missing.md"}, "specs/missing.md: no such file"),
    ({"file_path": "specs"}, "specs: is a directory"),
])
def test_tool_entry_bad_input(spec_workspace: Path, data: dict[str, Any], message: str) -> None:
    with pytest.raises(ToolInputError, match=re.escape(message)):
        tool_entry(types.SimpleNamespace(workspace=spec_workspace), data)


def test_builtin_tool_through_the_runtime(spec_workspace: Path, make_runtime: Any) -> None:
    runtime = make_runtime(spec_workspace)
    out = runtime.call("extract_spec_from_file",
                       json.dumps({"file_path": "specs/big_spec.md", "summarize": True, "max_length": 10000}))
    assert set(out) >= {"summary", "stats"} and "sections" not in out
    assert len(json.dumps(out, ensure_ascii=False)) <= 10_000 and out["stats"]["content_share"] >= 0.9
    with pytest.raises(ToolError, match=r"unknown field 'max_lenght' \(known: file_path, summarize, max_length"):
        runtime.call("extract_spec_from_file", {"file_path": "specs/big_spec.md", "max_lenght": 500})


def test_executable_runs_against_the_workspace(spec_workspace: Path) -> None:
    env = {**os.environ, "TOOLDECK_WORKSPACE": str(spec_workspace)}

    def run(data: str) -> tuple[int, dict[str, Any]]:
        proc = subprocess.run([sys.executable, str(EXECUTABLE)], input=data, capture_output=True,
                              text=True, env=env, cwd=spec_workspace.parent, timeout=60)
        assert proc.stderr == ""
        return proc.returncode, json.loads(proc.stdout)

    code, out = run(json.dumps({"file_path": "specs/big_spec.md", "max_length": 500}))
    assert code == 0 and len(out["summary"]) <= 500
    code, out = run(json.dumps({"file_path": "../outside.md"}))
    assert code == 1 and "outside the workspace" in out["error"]
    code, out = run("{not json")
    assert code == 1 and "input is not valid JSON: " in out["error"]


def test_manifest_is_valid() -> None:
    from tools.catalog.manifest import read_manifest_data, validate_manifest

    path = REPO / "tools" / "builtins" / "extract_spec_from_file.yaml"
    manifest = validate_manifest(read_manifest_data(path), path, expected_id="extract_spec_from_file")
    assert manifest.type == "builtin" and manifest.entry == "tools.spec.extract:tool_entry"
    assert manifest.input_schema is not None and manifest.input_schema["required"] == ["file_path"]


# -- the real specification -------------------------------------------------------------------

needs_openapi = pytest.mark.skipif(not OPENAPI.is_file(),
                                   reason=f"real spec not found: {OPENAPI} (../shared/specs beside the repo)")


@pytest.fixture(scope="module")
def openapi() -> tuple[str, dict[str, Any]]:
    text = OPENAPI.read_text(encoding="utf-8")
    return text, extract_spec(text, max_length=10_000, source=str(OPENAPI))


@needs_openapi
def test_openapi_no_section_is_lost_from_the_tree(openapi: tuple[str, dict[str, Any]]) -> None:
    text, result = openapi
    sections = result["sections"]
    expected = atx_headings(text)
    assert len(expected) > 100
    got = [(s["line_start"], s["level"], s["title"]) for s in sections.values()]
    assert got == expected
    for sid, section in sections.items():
        if section["parent"] is not None:
            assert sid in sections[section["parent"]]["children"]
    assert sum(len(s["children"]) for s in sections.values()) == len(sections) - 1


@needs_openapi
def test_openapi_every_fixed_fields_section_is_distinct(openapi: tuple[str, dict[str, Any]]) -> None:
    text, result = openapi
    fixed = [s for s in result["sections"].values() if s["title"] == "Fixed Fields"]
    assert len(fixed) == 26
    assert len({s["id"] for s in fixed}) == 26 and len({s["parent"] for s in fixed}) == 26
    assert "schema-object/fixed-fields" in result["sections"]
    body = section_text(text, "schema-object/fixed-fields")
    assert body.startswith("##### Fixed Fields") and "discriminator" in body


@needs_openapi
def test_openapi_every_top_level_section_is_represented(openapi: tuple[str, dict[str, Any]]) -> None:
    _, result = openapi
    summary, sections = result["summary"], result["sections"]
    tops = [s for s in sections.values() if s["level"] == 2]
    assert [t["title"] for t in tops] == ["Introduction", "Table of Contents", "Definitions",
                                          "Specification", "Appendix A: Revision History"]
    for top in tops:
        assert f"## {top['title']}" in heading_lines(summary)
        assert any(p["role"] == "first_sentence"
                   and top["line_start"] <= p["line_start"] <= top["line_end"] for p in result["parts"])
    assert len(summary) <= 10_000 and result["stats"]["content_share"] >= 0.9
    assert "tags: Each tag name in the list MUST be unique." in summary
    assert result["stats"]["must_kept"] >= 0.8 * result["stats"]["must_sentences"]
