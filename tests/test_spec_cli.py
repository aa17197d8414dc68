"""`tooldeck spec` as a user runs it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

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
        assert out.returncode == 1 and out.stderr.count("\n") == 1 and "Traceback" not in out.stderr
    doc = tmp_path / "spec.md"
    doc.write_text(DOC)
    bad = run("spec", str(doc), "--section", "nope-nope")
    assert bad.returncode == 1 and "Traceback" not in bad.stderr
    assert run("spec", str(doc), "--max-length", "0").returncode == 2
