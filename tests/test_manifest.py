"""Malformed manifests: each gives one line naming the file and field; the good tools still load."""

from __future__ import annotations

from pathlib import Path

import pytest

from tools.catalog.manifest import load_manifest, normalise_schema
from tools.errors import ManifestError

GOOD = "name: good\ntype: python\nentry: good.py:run\ndescription: fine\n"

# (file name, content, a fragment the one-line error must contain)
BAD: list[tuple[str, str | bytes, str]] = [
    ("bad_yaml.yaml", "name: bad_yaml\ntype: [unclosed\n", "invalid YAML"),
    ("tabs.yaml", "name: tabs\n\ttype: python\n", "invalid YAML"),
    ("empty.yaml", "", "empty manifest"),
    ("blank.yaml", "   \n\n", "empty manifest"),
    ("binary.yaml", b"\x00\x01\x02PNG", "binary file"),
    ("latin.yaml", "name: latin\ndescription: caf\xe9\n".encode("latin-1"), "not UTF-8"),
    ("a_list.yaml", "- name: a_list\n", "must be a mapping"),
    ("scalar.yaml", "just text\n", "must be a mapping"),
    ("unknown_type.yaml", "name: unknown_type\ntype: shell\n", "field 'type'"),
    ("no_command.yaml", "name: no_command\ntype: executable\n", "field 'executable.command'"),
    ("empty_command.yaml", "name: empty_command\nexecutable: {command: ''}\n", "field 'executable.command'"),
    ("bad_timeout.yaml", "name: bad_timeout\nexecutable: {command: x, timeout: -1}\n", "field 'executable.timeout'"),
    ("wrong_types.yaml", "name: wrong_types\nexecutable: {command: x}\ntags: 5\n", "field 'tags'"),
    ("bad_version.yaml", "name: bad_version\nversion: banana\nexecutable: {command: x}\n", "field 'version'"),
    ("bad_score.yaml", "name: bad_score\nquality_score: 3\nexecutable: {command: x}\n", "field 'quality_score'"),
    ("no_entry.yaml", "name: no_entry\ntype: python\n", "field 'entry'"),
    ("escape_entry.yaml", "name: escape_entry\ntype: python\nentry: ../../evil.py:run\n", "field 'entry'"),
    ("llm_no_prompt.yaml", "name: llm_no_prompt\ntype: llm\n", "field 'prompt'"),
    ("stem_mismatch.yaml", "name: something_else\nexecutable: {command: x}\n", "must match the file name"),
    ("dotdot.yaml", "name: ../../etc\nexecutable: {command: x}\n", "field 'name'"),
    ("no_name.yaml", "type: executable\nexecutable: {command: x}\n", "field 'name'"),
    ("bad_schema.yaml", "name: bad_schema\nexecutable: {command: x}\ninput_schema: {text: {type: wibble}}\n", "field 'input_schema'"),
    ("bad_test.yaml", "name: bad_test\nexecutable: {command: x}\ntests: [{input: {}, expect: 1, expect_error: true}]\n", "field 'tests.0'"),
    ("Upper.yaml", "name: Upper\nexecutable: {command: x}\n", "not a valid tool id"),
]


@pytest.fixture
def catalog_dir(workspace: Path) -> Path:
    folder = workspace / "tools"
    (folder / "good.yaml").write_text(GOOD)
    (folder / "good.py").write_text("def run(data):\n    return {'ok': True}\n")
    for name, content, _ in BAD:
        path = folder / name
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content)
    dup = folder / "nested"
    dup.mkdir()
    (dup / "good.yaml").write_text(GOOD)
    return folder


def _errors(runtime) -> dict[str, str]:
    out = {e.path.name: e.error for e in runtime.catalog.all_entries() if e.status == "error"}
    out.update({p.path.name + "@" + p.path.parent.name: p.message for p in runtime.catalog.problems()})
    return out


def test_each_bad_manifest_gives_one_line_and_good_tools_load(catalog_dir: Path, make_runtime) -> None:
    runtime = make_runtime()
    assert runtime.wait_ready(30)
    errors = _errors(runtime)
    for name, _, fragment in BAD:
        key = name if name in errors else name + "@tools"
        assert key in errors, f"{name} produced no error"
        message = errors[key]
        assert "\n" not in message, message
        assert name in message, message
        assert fragment in message, f"{name}: {message!r} lacks {fragment!r}"
    assert runtime.get_tool("good").status == "ready"
    assert runtime.call("good", {}) == {"ok": True}
    dup = errors["good.yaml@nested"]
    assert "duplicate tool id 'good'" in dup and "\n" not in dup
    assert len(BAD) >= 15
    summary = runtime.summary()
    assert summary.startswith("Ready: ") and "errors" in summary


def test_call_of_a_broken_tool_names_the_reason(catalog_dir: Path, make_runtime) -> None:
    runtime = make_runtime()
    with pytest.raises(Exception, match="no_command.yaml: field 'executable.command'"):
        runtime.call("no_command", {})


def test_flat_schema_becomes_json_schema() -> None:
    schema = normalise_schema({"text": {"type": "str", "required": True, "description": "t"}, "n": {"type": "int", "default": 3}})
    assert schema == {
        "type": "object",
        "properties": {"text": {"type": "string", "description": "t"}, "n": {"type": "integer", "default": 3}},
        "required": ["text"],
    }
    assert normalise_schema({"type": "object", "properties": {}}) == {"type": "object", "properties": {}}


def test_load_manifest_direct_error_is_manifest_error(tmp_path: Path) -> None:
    path = tmp_path / "x.yaml"
    path.write_text("name: x\ntype: python\n")
    with pytest.raises(ManifestError) as info:
        load_manifest(path, expected_id="x")
    assert str(info.value).startswith(str(path))
