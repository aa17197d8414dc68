"""Spec extraction: a large document becomes sections and a summary within a character budget.

`parse` splits it into sections, `summary` writes the extractive summary, `llm_summary` an
abstractive one through the configured model, `extract` is the builtin tool.
"""

from tools.spec.extract import (
    MIN_MAX_LENGTH,
    extract_spec,
    extract_spec_from_file,
    files_within,
    read_spec_file,
    refuse_private,
    resolve_in_workspace,
    section_text,
)
from tools.spec.llm_summary import abstractive_summary

__all__ = ["MIN_MAX_LENGTH", "abstractive_summary", "extract_spec", "extract_spec_from_file", "files_within", "read_spec_file",
           "refuse_private", "resolve_in_workspace", "section_text"]
