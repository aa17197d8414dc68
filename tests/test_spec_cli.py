"""`tooldeck spec` as a user runs it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.messages_server import anthropic_server_fixture, messages_server_fixture  # noqa: F401

DOC = "# Title\n\n## Requirements\n\nThe service MUST reply.\n\n## Examples\n\n```json\n{\"a\": 1}\n```\n\n## Notes\n\nPlain words.\n"


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "tools", *args], capture_output=True, text=True, timeout=60)


def test_spec_json_and_section(tmp_path: Path) -> None:
    doc = tmp_path / "spec.md"
    doc.write_text(DOC)
    out = run("spec", str(doc), "--json", "--max-length", "500")
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert len(result["summary"]) <= 500 and "MUST reply" in result["summary"]
    section_id = next(sid for sid, s in result["sections"].items() if s["title"] == "Examples")
    whole = run("spec", str(doc), "--section", section_id)
    assert whole.returncode == 0 and '{"a": 1}' in whole.stdout
    readable = run("spec", str(doc))
    assert readable.returncode == 0 and "Requirements" in readable.stdout


def test_spec_bad_input_is_one_line(tmp_path: Path) -> None:
    for args in (["spec", str(tmp_path / "missing.md")], ["spec", str(tmp_path)]):
        out = run(*args)
        assert out.returncode == 2 and out.stderr.count("\n") == 1 and "Traceback" not in out.stderr
    doc = tmp_path / "spec.md"
    doc.write_text(DOC)
    bad = run("spec", str(doc), "--section", "nope-nope")
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
    assert run("spec", str(doc), "--max-length", "0").returncode == 2
    small = run("spec", str(doc), "--max-length", "10")
    assert small.returncode == 2 and "--max-length must be at least 500 characters" in small.stderr


def test_spec_llm_without_a_model_falls_back_with_a_note(tmp_path: Path) -> None:
    doc = tmp_path / "spec.md"
    doc.write_text(DOC)
    out = subprocess.run([sys.executable, "-m", "tools", "--workspace", str(tmp_path), "spec", str(doc), "--llm", "--json"],
                         capture_output=True, text=True, timeout=60, env={k: v for k, v in __import__("os").environ.items()
                                                                          if k != "ANTHROPIC_API_KEY"})
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert result["summary_kind"] == "extractive" and "ANTHROPIC_API_KEY" in result["note"]


def test_spec_llm_uses_the_model_under_the_budget(tmp_path: Path, make_runtime, anthropic_server) -> None:
    from tools.spec.extract import extract_spec
    from tools.spec.llm_summary import abstractive_summary

    (tmp_path / "tooldeck.toml").write_text("[model]\nmax_retries = 0\ntimeout_seconds = 5\n")
    runtime = make_runtime(tmp_path)
    result = extract_spec(DOC, max_length=120)
    anthropic_server.reply_text("The service MUST reply. " + "It is small. " * 40, input_tokens=50, output_tokens=40)
    out = abstractive_summary(runtime, DOC, result, 120)
    assert out["summary_kind"] == "abstractive" and len(out["summary"]) <= 120
    assert out["summary"].startswith("The service MUST reply.") and "cut to the budget" in out["note"]
    assert "MUST reply" in anthropic_server.requests[0].user_text
    anthropic_server.reply_error(500, "boom")
    failed = abstractive_summary(runtime, DOC, result, 120)
    assert failed["summary_kind"] == "extractive" and failed["summary"] == result["summary"]


def test_spec_refuses_dotfiles_as_the_builtin_does(tmp_path: Path) -> None:
    """`tooldeck spec .env` printed the secrets file's sections (and `--llm` would have sent it to the model): the
    command refuses what extract_spec_from_file refuses, by the same check, with the same message and class."""
    from tools.errors import ToolInputError
    from tools.spec import resolve_in_workspace

    (tmp_path / ".env").write_text("PGPASSWORD=hunter22-secret\n")
    (tmp_path / "tooldeck.toml").write_text("# settings\n")
    (tmp_path / ".tooldeck").mkdir()
    (tmp_path / ".tooldeck" / "notes.md").write_text(DOC)
    (tmp_path / "innocent.md").symlink_to(tmp_path / ".env")
    (tmp_path / "spec.md").write_text(DOC)
    for path in (".env", "./.env", str(tmp_path / ".env"), "tooldeck.toml", ".tooldeck/notes.md", "innocent.md"):
        for extra in ([], ["--llm"], ["--section", "title"]):
            out = subprocess.run([sys.executable, "-m", "tools", "--json", "spec", path, *extra], capture_output=True,
                                 text=True, timeout=60, cwd=tmp_path)
            assert out.returncode == 2 and "hunter22" not in out.stdout + out.stderr, (path, out.stdout)
            refused = json.loads(out.stdout)
            assert refused["ok"] is False and refused["error_class"] == "bad_input", refused
            with pytest.raises(ToolInputError) as builtin:
                resolve_in_workspace(tmp_path, path)
            assert refused["error"] == builtin.value.message and "secrets" in refused["error"]
            assert out.stderr == f"tooldeck: {refused['error']}\n"
    ok = subprocess.run([sys.executable, "-m", "tools", "spec", "spec.md"], capture_output=True, text=True, timeout=60,
                        cwd=tmp_path)
    assert ok.returncode == 0 and "Requirements" in ok.stdout
