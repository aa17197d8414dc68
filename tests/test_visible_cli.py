"""Text a model, a tool or an MCP server wrote reaches the CLI's output with its control characters visible."""

from __future__ import annotations

import json
from typing import Any

from tests.evolution_helpers import GREET_V2, greet_answer, greet_tool, settings
from tests.helpers import python_tool
from tests.messages_server import anthropic_server_fixture, messages_server_fixture  # noqa: F401

#: One character of every class, as the candidate, the model or the tool wrote it.
HIDDEN = "\x1b[2J\x1b[H\x07\x7f\x9b\u202e\u2066\u200b\ufeff\U000e0041"
#: The line a terminal would show instead of the payload: ESC[2K erases it, ESC[1G returns to column 1.
ATTACK = '__import__("os").system("id")  # \x1b[2K\x1b[1G    name = name.strip()'
RAW = {c for c in HIDDEN if not c.isprintable()} | {"\r"}


def assert_visible(text: str, *, spelled: tuple[str, ...] = ("\\x1b[2J", "<U+202E>", "<U+2066>", "<U+200B>")) -> None:
    leaked = sorted({f"U+{ord(c):04X}" for c in text if c in RAW})
    assert not leaked, f"raw characters reached the output: {leaked}"
    for form in spelled:
        assert form in text, form


def candidate() -> dict[str, Any]:
    payload = ATTACK.replace('system("id")', "getcwd()")
    code = GREET_V2.replace("def run(data):", "def run(data):\n    " + payload + "\n    # " + HIDDEN)
    answer = greet_answer(code)
    answer["explanation"] = f"allow spaces {HIDDEN} [bold]not markup[/bold]"
    return answer


def test_review_show_makes_a_model_written_candidate_visible_and_marks_its_lines(workspace, anthropic_server, capsys):
    from tools.cli import main

    settings(workspace)
    greet_tool(workspace)
    ws = str(workspace)
    anthropic_server.reply_tool_use("write_tool_version", candidate())
    assert main(["-w", ws, "evolve", "greet", "Allow spaces", "--error", f"letters only {HIDDEN}", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert main(["-w", ws, "review", "show", str(summary["proposal_id"])]) == 0
    out = capsys.readouterr().out
    assert_visible(out)
    assert "# \\x1b[2K\\x1b[1G    name = name.strip()" in out
    marked = [line for line in out.splitlines() if line.startswith("! ")]
    assert any("\\x1b[2K" in line for line in marked) and any("<U+202E>" in line for line in marked)
    lines = out.splitlines()
    diff = lines[next(i for i, x in enumerate(lines) if "--- a/" in x):next(i for i, x in enumerate(lines) if x.startswith("diff sha256"))]
    assert all(line[:2] in ("  ", "! ") for line in diff), diff  # a gutter on every line once one is marked
    assert "explanation: allow spaces \\x1b[2J" in out and "[bold]not markup[/bold]" in out
    assert "error: letters only \\x1b[2J" in out
    # the approval hash binds the real bytes: approving the shown hash serves the code as written
    assert main(["-w", ws, "review", "approve", "1", "--diff", summary["diff_sha256"], "--scope", "global"]) == 0
    capsys.readouterr()
    source = next(workspace.joinpath(".tooldeck", "evolved").rglob("greet_v1_1_0.py")).read_text()
    assert "\x1b[2K" in source and "\u202e" in source
    # JSON stays JSON, with the real text, and prints no raw control or bidi character
    assert main(["-w", ws, "--json", "review", "show", "1"]) == 0
    text = capsys.readouterr().out
    assert not (set(text) & RAW) and "\\u202e" in text
    assert "\u202e" in json.loads(text)["explanation"]


def test_tools_table_shows_a_description_and_an_error_visibly(workspace, capsys):
    from tools.cli import main

    python_tool(workspace / "tools", "sly", "def run(data):\n    return {}\n", description=f"sly {HIDDEN} [red]x[/red]")
    for argv in (["tools", "--wait"], ["--json", "tools"]):
        assert main(["-w", str(workspace), *argv]) == 0
        out = capsys.readouterr().out
        assert not (set(out) & RAW), argv
    assert main(["-w", str(workspace), "tools", "--wait"]) == 0
    assert_visible(capsys.readouterr().out, spelled=("\\x1b[2J", "<U+202E>"))


def test_a_tools_failure_message_is_shown_visibly(workspace, capsys):
    from tools.cli import main

    python_tool(workspace / "tools", "loud", f"def run(data):\n    raise ValueError({HIDDEN!r})\n")
    assert main(["-w", str(workspace), "call", "loud", "{}"]) == 1
    err = capsys.readouterr().err
    assert_visible(err)
    assert main(["-w", str(workspace), "failures"]) == 0
    assert_visible(capsys.readouterr().out)
    assert main(["-w", str(workspace), "--json", "failures"]) == 0
    text = capsys.readouterr().out
    assert not (set(text) & RAW) and "\u202e" in json.loads(text)[0]["error"]  # the stored text is the real one


def test_the_log_file_spells_out_a_tools_control_characters(tmp_path):
    import logging

    from tools.logs import setup_logging

    setup_logging(tmp_path / "logs")
    log = logging.getLogger("tooldeck.test_visible")
    try:
        raise ValueError(f"tool said {HIDDEN}")
    except ValueError:
        log.exception("flush failed: %s", HIDDEN)
    for handler in logging.getLogger("tooldeck").handlers:
        handler.flush()
    text = (tmp_path / "logs" / "tooldeck.log").read_text()
    assert_visible(text)
    assert "flush failed: \\x1b[2J" in text and "ValueError: tool said \\x1b[2J" in text
