"""Identifiers are checked whole: `$` also matches before a trailing newline, so every id pattern
ends in `\\Z` and is applied with `fullmatch`."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers import python_tool
from tools.catalog import load_manifest
from tools.errors import InvalidIdError, ManifestError, ToolError, UsageError
from tools.ids import check_name, check_tool_id, check_version


@pytest.mark.parametrize(("check", "good"), [(check_tool_id, "csv_parser"), (check_name, "events-2024.a"),
                                             (check_version, "1.2.0")])
@pytest.mark.parametrize("tail", ["\n", "\r\n", " ", "\n\n"])
def test_a_trailing_newline_or_space_is_refused(check, good: str, tail: str) -> None:
    assert check(good) == good
    with pytest.raises(InvalidIdError):
        check(good + tail)


def test_a_tool_called_with_a_newline_in_its_id_is_refused(workspace: Path, make_runtime) -> None:
    python_tool(workspace / "tools", "echo_back", "def run(data):\n    return data\n")
    runtime = make_runtime()
    assert runtime.call("echo_back", {"a": 1}) == {"a": 1}
    with pytest.raises(InvalidIdError, match="invalid tool id 'echo_back\\\\n'"):
        runtime.call("echo_back\n", {"a": 1})


def test_a_buffer_id_with_a_newline_is_refused(workspace: Path, make_runtime) -> None:
    runtime = make_runtime()
    runtime.call("buffer", {"operation": "write", "buffer_id": "events", "data": {"n": 1}, "flush_strategy": "manual"})
    with pytest.raises(ToolError, match="invalid buffer_id 'events\\\\n'"):
        runtime.call("buffer", {"operation": "write", "buffer_id": "events\n", "data": {"n": 1},
                                "flush_strategy": "manual"})


def test_a_manifest_name_or_version_with_a_newline_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "good.yaml"
    path.write_text('name: "good\\n"\ntype: python\nentry: good.py:run\n')
    with pytest.raises(ManifestError, match="field 'name'"):
        load_manifest(path)
    path.write_text('name: good\nversion: "1.0.0\\n"\ntype: python\nentry: good.py:run\n')
    with pytest.raises(ManifestError, match="field 'version'"):
        load_manifest(path)


def test_a_manifest_file_whose_name_ends_in_a_newline_is_not_a_tool(workspace: Path, make_runtime) -> None:
    python_tool(workspace / "tools", "fine", "def run(data):\n    return 1\n")
    (workspace / "tools" / "fine\n.yaml").write_text("name: fine\ntype: python\nentry: fine.py:run\n")
    runtime = make_runtime()
    runtime.wait_ready(30)
    assert "fine\n" not in runtime.catalog.ids()
    problems = [p.message for p in runtime.catalog.problems()]
    assert any("is not a valid tool id" in m and "fine\\n" in m for m in problems), problems


def test_failure_classes_tags_and_actors_are_checked_whole(workspace: Path, make_runtime) -> None:
    from tools.recovery import controls, mark_tool_failure
    from tools.recovery.rules import check_tag

    python_tool(workspace / "tools", "victim", "def run(data):\n    return 1\n")
    runtime = make_runtime()
    runtime.get_tool("victim")
    with pytest.raises(UsageError, match="invalid error_class"):
        mark_tool_failure(runtime, "victim", "csv input", "broke", error_class="crash\n")
    assert check_tag("not-for-json") == "not-for-json"
    with pytest.raises(UsageError, match="invalid negative tag"):
        check_tag("not-for-json\n")
    assert controls.check_actor("ops team") == "ops team"
    with pytest.raises(UsageError, match="invalid actor"):
        controls.check_actor("ops\n")
