"""`tooldeck spec FILE --llm`: an abstractive summary from the configured model, under the same budget.

The model gets the extractive summary and the section outline (plus as much of the
document as fits a fixed prompt budget) and is asked for a summary of at most
`max_length` characters that keeps MUST / SHALL sentences word for word. With no model
configured, or when the model fails, the extractive summary stands and a note says why.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from tools.errors import ToolError

if TYPE_CHECKING:
    from tools.host import RuntimeHost

PROMPT_DOCUMENT_CHARS = 60_000
SYSTEM = ("You summarise technical specifications for an overseer model with a fixed context budget. "
          "Answer with the summary only, in Markdown, no preamble.")


def _outline(result: dict[str, Any]) -> str:
    lines = []
    for section in result["sections"].values():
        depth = max(0, len(section.get("path", [])) - 1)
        lines.append(f"{'  ' * depth}- {section['title']} [{section['kind']}, lines {section['line_start']}-{section['line_end']}]")
    return "\n".join(lines[:400])


def _fit(text: str, max_length: int) -> tuple[str, bool]:
    """Cut a too-long answer at the last sentence or line end inside the budget."""
    text = text.strip()
    if len(text) <= max_length:
        return text, False
    head = text[:max_length]
    cut = max(head.rfind("\n"), *(m.end() for m in re.finditer(r"[.!?](\s|$)", head)))
    return (head[:cut].rstrip() if cut > max_length // 2 else head.rstrip()), True


def abstractive_summary(runtime: RuntimeHost, text: str, result: dict[str, Any], max_length: int) -> dict[str, Any]:
    """Replace `result["summary"]` by the model's summary when a model answers; always say which it is."""
    from tools.invoke import Request, get_provider, record_usage

    result = dict(result)
    try:
        provider = get_provider(runtime)
        request = Request(
            system=SYSTEM,
            messages=[{"role": "user", "content": (
                f"Summarise this specification in at most {max_length} characters. Represent every top-level "
                "section; copy MUST / SHALL / REQUIRED sentences word for word, most important first.\n\n"
                f"Section outline:\n{_outline(result)}\n\nAn extractive summary already made:\n{result['summary']}\n\n"
                f"The document (first {PROMPT_DOCUMENT_CHARS:,} characters):\n{text[:PROMPT_DOCUMENT_CHARS]}")}],
            max_tokens=min(8000, max(256, max_length // 2)),
            timeout=float(runtime.settings.get("model", "timeout_seconds", 120)),
            purpose="spec summary",
            context={"tool_id": "spec_summary", "hint": "summarise specification"},
        )
        completion = provider.complete(request)
        record_usage(runtime.store, completion, "spec summary")
    except ToolError as exc:
        result["summary_kind"] = "extractive"
        result["note"] = f"no abstractive summary ({exc.message}); this is the extractive summary"
        return result
    summary, cut = _fit(completion.text, max_length)
    if not summary:
        result["summary_kind"] = "extractive"
        result["note"] = f"the model ({completion.model}) returned nothing; this is the extractive summary"
        return result
    result["extractive_summary"] = result["summary"]
    result["summary"] = summary
    result["summary_kind"] = "abstractive"
    result["note"] = (f"abstractive summary by {completion.provider} ({completion.model}), "
                      f"{completion.input_tokens} + {completion.output_tokens} tokens" + ("; cut to the budget" if cut else ""))
    return result
