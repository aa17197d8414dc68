"""Spec extraction: a large Markdown / text specification as addressable sections plus a summary.

`extract_spec` returns section metadata (ids, paths, kinds, line ranges) and a
summary that fits a character budget; bodies are never copied into the
result, because `section_text` (and `tooldeck spec FILE --section ID`)
recovers any section whole from its id. `tool_entry` is the builtin
`extract_spec_from_file` tool, confined to the caller's workspace.
"""

from __future__ import annotations

import contextlib
import contextvars
import difflib
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tools.errors import NotFoundError, ToolInputError
from tools.spec.parse import Document, Section, parse_document, section_dict
from tools.spec.summary import summarize as _summarize
from tools.spec.text import normalize_text

if TYPE_CHECKING:
    from tools.host import RuntimeHost

__all__ = [
    "DEFAULT_MAX_LENGTH",
    "MAX_FILE_BYTES",
    "extract_spec",
    "extract_spec_from_file",
    "read_spec_file",
    "refuse_private",
    "section_text",
    "tool_entry",
]

DEFAULT_MAX_LENGTH = 10_000
#: the smallest budget the tool and the CLI accept: below it no section can be represented
MIN_MAX_LENGTH = 500
MAX_FILE_BYTES = 20 * 1024 * 1024
TOOL_ID = "extract_spec_from_file"
_UTF16_BOMS = (b"\xff\xfe", b"\xfe\xff")


def read_spec_file(path: Path, *, display: str | None = None) -> tuple[str, list[str]]:
    """Read a document as text with `\\n` line ends; undecodable bytes are replaced and reported.

    Refuses, with a one-line message naming the file, what cannot be a text
    specification: a missing path, a directory or device, a file over 20 MB,
    or one with NUL bytes (binary).
    """
    name = display or str(path)
    path = Path(path)
    try:
        if path.is_dir():
            raise NotFoundError(f"{name}: is a directory, not a file", tool_id=TOOL_ID)
        if not path.exists():
            raise NotFoundError(f"{name}: no such file", tool_id=TOOL_ID)
        if not path.is_file():
            raise ToolInputError(f"{name}: not a regular file", tool_id=TOOL_ID)
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            raise ToolInputError(
                f"{name}: {size:,} bytes is over the {MAX_FILE_BYTES // 2**20} MB limit",
                tool_id=TOOL_ID)
        data = path.read_bytes()
    except OSError as exc:
        raise ToolInputError(f"{name}: cannot read ({exc.strerror or exc})", tool_id=TOOL_ID) from exc
    if len(data) > MAX_FILE_BYTES:
        raise ToolInputError(f"{name}: over the {MAX_FILE_BYTES // 2**20} MB limit", tool_id=TOOL_ID)
    text, warnings = _decode(data, name)
    return normalize_text(text), warnings


def _decode(data: bytes, name: str) -> tuple[str, list[str]]:
    """UTF-8 (BOM or not) or BOM-marked UTF-16; anything else with NUL bytes is binary."""
    if data.startswith(_UTF16_BOMS):
        try:
            return data.decode("utf-16"), []
        except UnicodeDecodeError as exc:
            raise ToolInputError(f"{name}: invalid UTF-16 ({exc.reason})", tool_id=TOOL_ID) from exc
    if b"\x00" in data:
        raise ToolInputError(f"{name}: binary file (contains NUL bytes); expected Markdown or text",
                             tool_id=TOOL_ID)
    try:
        return data.decode("utf-8-sig"), []
    except UnicodeDecodeError as exc:
        text = data.decode("utf-8-sig", errors="replace")
        replaced = text.count("\ufffd") - data.count("\ufffd".encode())
        line = data.count(b"\n", 0, exc.start) + 1
        return text, [f"{name}: invalid UTF-8 at line {line} (byte {exc.start}); "
                      f"{replaced} invalid sequence(s) replaced with U+FFFD"]


def _check_max_length(max_length: object) -> int:
    """A budget is a positive whole number of characters."""
    if isinstance(max_length, bool) or not isinstance(max_length, int) or max_length < 1:
        raise ToolInputError(f"max_length must be a positive integer, got {max_length!r}",
                             tool_id=TOOL_ID)
    return max_length


def _result(doc: Document, *, max_length: int, summarize: bool, source: str | None,
            warnings: list[str]) -> dict[str, Any]:
    """The dict every entry point returns: metadata, summary, parts, stats, warnings."""
    kinds: dict[str, int] = {}
    for section in doc.sections:
        kinds[section.kind] = kinds.get(section.kind, 0) + 1
    stats: dict[str, Any] = {
        "source": source,
        "format": doc.format,
        "chars": len(doc.text),
        "lines": len(doc.lines) if doc.text else 0,
        "sections": len(doc.sections),
        "top_level": len(doc.top_level),
        "top_level_level": doc.top_level_level,
        "kinds": kinds,
        "code_blocks": len(doc.code),
        "max_length": max_length,
    }
    summary_text, parts, all_warnings = "", [], list(warnings)
    if summarize:
        summary = _summarize(doc, max_length)
        summary_text, parts = summary.text, summary.parts
        all_warnings += summary.warnings
        stats.update({
            "summary_chars": len(summary.text),
            "content_chars": summary.content_chars,
            "content_share": round(summary.content_chars / max_length, 4),
            "top_level_represented": summary.top_level_represented,
            "must_sentences": summary.must_total,
            "must_kept": summary.must_kept,
            "complete": summary.complete,
        })
    if not doc.text.strip():
        all_warnings.append(f"{source or 'document'}: empty document")
    return {
        "sections": {s.id: section_dict(doc, s) for s in doc.sections},
        "summary": summary_text,
        "stats": stats,
        "parts": parts,
        "warnings": all_warnings,
    }


def extract_spec(text: str, *, max_length: int = DEFAULT_MAX_LENGTH, summarize: bool = True,
                 source: str | None = None) -> dict[str, Any]:
    """Sections (metadata only) and a summary of `text` within `max_length` characters."""
    max_length = _check_max_length(max_length)
    doc = parse_document(text, source=source)
    return _result(doc, max_length=max_length, summarize=summarize, source=source, warnings=[])


def extract_spec_from_file(path: Path | str, *, max_length: int = DEFAULT_MAX_LENGTH,
                           summarize: bool = True, display: str | None = None) -> dict[str, Any]:
    """Read a file (see `read_spec_file`) and extract it; the result names the file."""
    max_length = _check_max_length(max_length)
    name = display or str(path)
    text, warnings = read_spec_file(Path(path), display=name)
    doc = parse_document(text, source=name)
    return _result(doc, max_length=max_length, summarize=summarize, source=name,
                   warnings=warnings)


def find_section(doc: Document, section_id: str) -> Section:
    """An id, a full slug path, or any unambiguous tail of one (`fixed-fields` if only one)."""
    wanted = section_id.strip().strip("/").lower()
    if wanted in doc.by_id:
        return doc.sections[doc.by_id[wanted]]
    tail = tuple(wanted.split("/"))
    matches = [s for s in doc.sections if s.slug_path[-len(tail):] == tail]
    if len(matches) == 1:
        return matches[0]
    ids = list(doc.by_id)
    if matches:
        hint = ", ".join(s.id for s in matches[:5])
        raise ToolInputError(f"section {section_id!r} is ambiguous: {hint}", tool_id=TOOL_ID)
    close = difflib.get_close_matches(wanted, ids, n=5, cutoff=0.5)
    close += [i for i in ids if i.endswith(tail[-1]) and i not in close][: 5 - len(close)]
    hint = f"; closest: {', '.join(close)}" if close else f"; {len(ids)} sections exist"
    raise NotFoundError(f"unknown section {section_id!r}{hint}", tool_id=TOOL_ID)


def _section_body(doc: Document, section: Section) -> str:
    """The lines of a section from its heading to the end of its subtree."""
    return "\n".join(doc.lines[section.line_start - 1:section.line_end])


def section_text(text: str, section_id: str) -> str:
    """One section whole, heading through its last subsection, exactly as written."""
    doc = parse_document(text)
    return _section_body(doc, find_section(doc, section_id))


#: the folders (relative to the workspace) a read may come from in this context; None: anywhere in it
_file_roots: contextvars.ContextVar[tuple[str, ...] | None] = contextvars.ContextVar("tooldeck_file_roots", default=None)
#: never read for anyone: the workspace's own configuration (its secrets stay in .env, .tooldeck/)
_PRIVATE_FILES = ("tooldeck.toml",)


@contextlib.contextmanager
def files_within(roots: tuple[str, ...]) -> Iterator[None]:
    """Builtins called inside the block read files only inside `roots` (the MCP server sets
    `[mcp.serve] file_roots` for every call of an MCP client)."""
    token = _file_roots.set(tuple(roots))
    try:
        yield
    finally:
        _file_roots.reset(token)


def refuse_private(file_path: str, resolved: Path, root: Path) -> None:
    """Dotfiles, dot-folders (`.env`, `.tooldeck/`) and `tooldeck.toml` are read for no one, by the builtin or by
    `tooldeck spec`: the workspace's secrets and settings live there. Judged on `file_path` as given and on where it
    `resolved` to: from the workspace `root` when inside it (a symlink into `.tooldeck/` counts), whole when not."""
    given = Path(file_path).parts
    inside = resolved.relative_to(root).parts if resolved.is_relative_to(root) else resolved.parts
    if any(p.startswith(".") and p not in (".", "..") for p in (*given, *inside)) or (inside and inside[-1] in _PRIVATE_FILES):
        raise ToolInputError(f"{file_path}: dotfiles, dot-folders (.env, .tooldeck/) and tooldeck.toml are not read by tools: "
                             "the workspace's secrets and settings live there", tool_id=TOOL_ID)


def resolve_in_workspace(workspace: Path, file_path: object) -> Path:
    """`file_path` relative to the workspace; anything resolving outside it is refused, and so are
    dotfiles and dot-folders (`.env`, `.tooldeck/`), `tooldeck.toml` and, for an MCP client, anything
    outside `[mcp.serve] file_roots`."""
    if not isinstance(file_path, str) or not file_path.strip():
        raise ToolInputError("file_path is required and must be a non-empty string",
                             tool_id=TOOL_ID)
    if "\x00" in file_path:
        raise ToolInputError("file_path contains a NUL character", tool_id=TOOL_ID)
    root = Path(workspace).resolve()
    try:
        resolved = (root / file_path).resolve()
    except (OSError, RuntimeError) as exc:
        raise ToolInputError(f"{file_path}: cannot resolve ({exc})", tool_id=TOOL_ID) from exc
    if not resolved.is_relative_to(root):
        raise ToolInputError(f"{file_path}: resolves outside the workspace {root}",
                             tool_id=TOOL_ID)
    refuse_private(file_path, resolved, root)
    roots = _file_roots.get()
    if roots is not None and not any(resolved.is_relative_to((root / r).resolve()) for r in roots):
        allowed = ", ".join(f"{r}/" for r in roots) or "none"
        raise ToolInputError(f"{file_path}: MCP clients may read files only in [mcp.serve] file_roots ({allowed})",
                             tool_id=TOOL_ID)
    return resolved


def tool_entry(runtime: RuntimeHost, data: dict[str, Any]) -> dict[str, Any]:
    """The builtin tool: `{"file_path", "summarize", "max_length", "section", "include_sections"}` -> result dict.

    The whole result, as JSON, stays within `max_length` characters (the summary is budgeted for what the
    stats and warnings take) unless the caller asks for the outline (`include_sections`: every section's
    metadata and the summary's parts) or for a section's text. Unknown fields are refused by the schema."""
    if not isinstance(data, dict):
        raise ToolInputError("input must be a JSON object", tool_id=TOOL_ID)
    path = resolve_in_workspace(runtime.workspace, data.get("file_path"))
    summarize = data.get("summarize", True)
    include_sections = data.get("include_sections", False)
    for field, value in (("summarize", summarize), ("include_sections", include_sections)):
        if not isinstance(value, bool):
            raise ToolInputError(f"{field} must be true or false, got {value!r}", tool_id=TOOL_ID)
    max_length = _check_max_length(data.get("max_length", DEFAULT_MAX_LENGTH))
    if max_length < MIN_MAX_LENGTH:
        raise ToolInputError(f"max_length must be at least {MIN_MAX_LENGTH} characters, got {max_length}", tool_id=TOOL_ID)
    wanted = data.get("section")
    if wanted is not None and (not isinstance(wanted, str) or not wanted.strip()):
        raise ToolInputError(f"section must be a non-empty string, got {wanted!r}",
                             tool_id=TOOL_ID)
    name = str(data["file_path"])
    text, warnings = read_spec_file(path, display=name)
    doc = parse_document(text, source=name)
    result = _result(doc, max_length=max_length, summarize=summarize, source=name,
                     warnings=warnings)
    if not include_sections:
        result = _within(doc, result, max_length, summarize=summarize, source=name, warnings=warnings)
    if wanted is not None:
        section = find_section(doc, wanted)
        result["section_id"] = section.id
        result["section_text"] = _section_body(doc, section)
    return result


def _within(doc: Document, result: dict[str, Any], max_length: int, *, summarize: bool, source: str,
            warnings: list[str]) -> dict[str, Any]:
    """The result without the outline, its summary budgeted so that the JSON of the whole fits `max_length`."""
    import json

    def compact(r: dict[str, Any]) -> dict[str, Any]:
        return {"summary": r["summary"], "stats": r["stats"], "warnings": r["warnings"],
                "outline": "left out: pass include_sections for every section's metadata and the summary's parts"}

    out = compact(result)
    budget = max_length
    for _ in range(4):
        size = len(json.dumps(out, ensure_ascii=False))
        if size <= max_length or not summarize:
            return out
        budget -= size - max_length + 16
        if budget < 1:
            break
        out = compact(_result(doc, max_length=budget, summarize=summarize, source=source, warnings=warnings))
        out["stats"]["max_length"] = max_length
        out["stats"]["summary_budget"] = budget
    out["summary"] = ""
    out["warnings"] = [*out["warnings"], f"max_length {max_length} leaves no room for a summary beside the stats"]
    return out
