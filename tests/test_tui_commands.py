"""The command-line grammar, table-driven."""

from __future__ import annotations

import pytest

from tui.commands import Command, CommandError, completions, parse


@pytest.mark.parametrize(("line", "expected"), [
    ('/tool evolve csv_parser "Support JSON input too"',
     Command("tool.evolve", "csv_parser", {"hint": "Support JSON input too", "error": ""})),
    ('/tool evolve csv_parser "hint" --error JSONDecodeError',
     Command("tool.evolve", "csv_parser", {"hint": "hint", "error": "JSONDecodeError"})),
    ('/tool call json_parser {"text": "[1,2]"}', Command("tool.call", "json_parser", {"input": {"text": "[1,2]"}})),
    ("/tool call json_parser", Command("tool.call", "json_parser", {"input": {}})),
    ("/tool test csv_parser", Command("tool.test", "csv_parser")),
    ("/buffer flush usage_tracking", Command("buffer.flush", "usage_tracking")),
    ("/buffer clear usage_tracking", Command("buffer.clear", "usage_tracking")),
    ("/spec specs/big_spec.md", Command("spec", "specs/big_spec.md", {"max_length": 10000})),
    ("/spec specs/big_spec.md --max-length 500", Command("spec", "specs/big_spec.md", {"max_length": 500})),
    ('/resilient "parse JSON data" {"text": "[1]"}', Command("resilient", "parse JSON data", {"input": {"text": "[1]"}})),
    ("tool test x", Command("tool.test", "x")),
])
def test_parse(line: str, expected: Command) -> None:
    assert parse(line) == expected


@pytest.mark.parametrize(("line", "fragment"), [
    ("", "empty command"),
    ("/frob", "unknown command"),
    ("/tool", "unknown /tool command"),
    ("/tool evolve", "missing tool id"),
    ("/tool evolve csv_parser", "missing hint"),
    ('/tool evolve csv_parser "unterminated', "No closing quotation"),
    ("/tool call x {bad", "not valid JSON"),
    ("/tool test x extra", "unexpected"),
    ("/buffer flush", "expected one buffer id"),
    ("/buffer drain x", "unknown /buffer command"),
    ("/spec", "expected one path"),
    ("/spec a --max-length x", "needs a number"),
    ("/resilient scenario {}", "quote the scenario"),
])
def test_parse_errors_are_one_line(line: str, fragment: str) -> None:
    with pytest.raises(CommandError) as info:
        parse(line)
    assert fragment in str(info.value) and "\n" not in str(info.value)


def test_completions() -> None:
    assert completions("/t", [], []) == ["/tool"]
    assert completions("/tool ev", [], []) == ["/tool evolve"]
    assert completions("/tool call js", ["json_parser", "csv_parser"], []) == ["/tool call json_parser"]
    assert completions("/buffer flush u", [], ["usage_tracking"]) == ["/buffer flush usage_tracking"]


@pytest.mark.parametrize(("argv", "expected"), [
    ([], (True, None)),
    (["-w", "ws"], (True, "ws")),
    (["--workspace", "ws"], (True, "ws")),
    (["--workspace=ws"], (True, "ws")),
    (["demo"], (False, None)),
    (["--json"], (False, None)),
    (["-w"], (False, None)),
    (["-w", "ws", "tools"], (False, None)),
    (["--help"], (False, None)),
])
def test_only_a_bare_dashboard_skips_the_cli_parser(argv: list[str], expected: tuple[bool, str | None]) -> None:
    from tui.launch import dashboard_only

    assert dashboard_only(argv) == expected


def test_a_missing_workspace_is_one_line_and_exit_2(tmp_path) -> None:
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-m", "tui", "-w", str(tmp_path / "nope")], capture_output=True, text=True, timeout=60)
    assert out.returncode == 2 and out.stderr == f"tooldeck: workspace {tmp_path / 'nope'} does not exist\n" and out.stdout == ""


async def test_tab_takes_the_suggestion_and_escape_closes_the_command_line_wherever_the_focus_is() -> None:
    """Tab moved the focus to a panel and left the command line on screen; escape then did not close it."""
    from textual.widgets import Input

    from tests.test_tui_snapshots import FixedApp
    from tests.tui_fixture import frame

    app = FixedApp(live=False)
    async with app.run_test(size=(120, 40)) as pilot:
        app.apply_snapshot(frame())
        app.query_one("#tools-table").focus()
        await pilot.pause()
        await pilot.press("colon")
        box = app.query_one("#command-input", Input)
        assert box.has_focus and box.value == "/"
        await pilot.press("slash", *"tool call cs")
        await pilot.pause(0.2)
        await pilot.press("tab")
        await pilot.pause()
        assert box.has_focus and box.value == "/tool call csv_parser", box.value
        await pilot.press("tab")  # nothing more to complete: the typing stays in the command line
        assert box.has_focus and not box.has_class("hidden")
        app.query_one("#tools-table").focus()  # the focus elsewhere (a click on a panel)
        await pilot.pause()
        await pilot.press("escape")
        assert box.has_class("hidden")
        await pilot.press("colon", "escape")  # and from inside it, as before
        assert box.has_class("hidden") and app.query_one("#tools-table").has_focus


def test_the_dashboards_spec_refuses_dotfiles_as_the_cli_and_the_builtin_do(tmp_path) -> None:
    """`/spec .env` read the workspace's secrets onto the screen: the dashboard ran the extractor with no check."""
    from tools.errors import ToolInputError
    from tools.runtime import Runtime
    from tui.actions import run_command

    (tmp_path / "tools").mkdir()
    (tmp_path / ".env").write_text("ANTHROPIC_API_KEY=sk-ant-secret\n")
    (tmp_path / "notes.md").symlink_to(tmp_path / ".env")
    (tmp_path / "spec.md").write_text("# Spec\n\nThe service MUST answer.\n")
    rt = Runtime(tmp_path)
    try:
        for given in (".env", "notes.md", str(tmp_path / ".env"), "tooldeck.toml"):
            with pytest.raises(ToolInputError, match="not read by tools"):
                run_command(rt, Command("spec", given, {"max_length": 10_000}))
        assert run_command(rt, Command("spec", "spec.md", {"max_length": 10_000}))["status"] == "1 sections"
    finally:
        rt.close()
