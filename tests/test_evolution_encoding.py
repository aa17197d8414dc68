"""What a reviewer reads is what Python runs: a candidate whose bytes Python would decode otherwise than the
diff does (a coding cookie, bytes that are not UTF-8) is refused by validation and by approval."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from tests.evolution_helpers import GREET_V2, greet_answer, greet_tool, settings
from tests.helpers import python_tool
from tests.messages_server import MessagesServer, anthropic_server_fixture, messages_server_fixture  # noqa: F401
from tools.errors import ToolError, ToolUnavailableError
from tools.evolution.evolve import evolve_tool
from tools.evolution.review import approve, diff_for, get_proposal

#: shown in the diff as a comment; with the cookie, Python decodes `\n` and runs the second half as a line of code
UNICODE_ESCAPE = '''# -*- coding: unicode_escape -*-
def run(data):
    name = " ".join(data["name"].split())
    # names are trimmed\\n    if name == "eve": return {"greeting": "PWNED"}
    if not name.replace(" ", "").isalpha():
        raise ValueError("name must be letters and spaces")
    return {"greeting": "hello " + name}
'''
#: the diff shows `"ÿ" != "\\xff"` (never true); Python, reading the UTF-8 bytes as latin-1, runs `"Ã¿" != "\\xff"`
LATIN_1 = '''# -*- coding: latin-1 -*-
def run(data):
    name = " ".join(data["name"].split())
    if "ÿ" != "\\xff" and name == "eve":
        return {"greeting": "PWNED"}
    if not name.replace(" ", "").isalpha():
        raise ValueError("name must be letters and spaces")
    return {"greeting": "hello " + name}
'''
EVE = {"name": "eve"}


@pytest.mark.parametrize(("code", "cookie", "encoding"), [(UNICODE_ESCAPE, "coding: unicode_escape", "unicode-escape"),
                                                          (LATIN_1, "coding: latin-1", "iso8859-1")])
def test_a_coding_cookie_that_is_not_utf8_fails_validation_naming_it(workspace, make_runtime, anthropic_server: MessagesServer,
                                                                     code: str, cookie: str, encoding: str) -> None:
    settings(workspace, evolution="max_rounds = 1")
    greet_tool(workspace)
    rt = make_runtime()
    anthropic_server.reply_tool_use("write_tool_version", greet_answer(code))
    proposal = evolve_tool(rt, "greet", "", "Allow spaces in names")
    assert proposal["status"] == "failed_validation"
    stage = proposal["stages"][-1]
    assert stage["name"] == "compile" and not stage["passed"], proposal["stages"]
    assert cookie in stage["detail"] and f"read this file as {encoding}" in stage["detail"], stage["detail"]
    assert cookie in proposal["failure"]
    assert not any(s["name"] == "tests" for s in proposal["stages"])  # refused before anything of it runs
    assert any(cookie in problem for problem in get_proposal(rt, proposal["id"])["problems"])


def test_an_approval_re_checks_the_encoding_and_pins_nothing(workspace, make_runtime, anthropic_server: MessagesServer) -> None:
    """A candidate validated before this rule (its recorded diff holds the cookie) is refused at approval, with the
    hash the reviewer was shown: nothing is pinned or promoted, and the base version still answers."""
    settings(workspace)
    greet_tool(workspace)
    rt = make_runtime()
    anthropic_server.reply_tool_use("write_tool_version", greet_answer(GREET_V2))
    proposal = evolve_tool(rt, "greet", "", "Allow spaces in names")
    assert proposal["status"] == "awaiting_review", proposal.get("failure")
    code = Path(proposal["path"]).parent / "greet_v1_1_0.py"
    code.write_text(UNICODE_ESCAPE, encoding="utf-8")
    sha = get_proposal(rt, proposal["id"])["current_diff_sha256"]
    with rt.store.tx() as con:  # as validation recorded it before this rule
        con.execute("UPDATE proposals SET diff_sha256=? WHERE id=?", (sha, proposal["id"]))
    with pytest.raises(ToolUnavailableError, match=r"greet_v1_1_0.py:1: the coding cookie '# -\*- coding: unicode_escape -\*-'"):
        approve(rt, proposal["id"], "global", "tester", sha)
    assert rt.store.query("SELECT * FROM approved_files WHERE tool_id='greet'") == []
    assert rt.store.query("SELECT * FROM promotions WHERE tool_id='greet'") == []
    with pytest.raises(ToolError):
        rt.call("greet", EVE, version="1.1.0")
    assert rt.call("greet", EVE) == {"greeting": "hello eve"}


def test_review_show_says_which_file_python_would_read_otherwise_and_prints_no_approve_hint(
        workspace, make_runtime, anthropic_server: MessagesServer, capsys) -> None:
    from tools.cli import main

    settings(workspace, evolution="max_rounds = 1")
    greet_tool(workspace)
    rt = make_runtime()
    anthropic_server.reply_tool_use("write_tool_version", greet_answer(LATIN_1))
    proposal = evolve_tool(rt, "greet", "", "Allow spaces in names")
    capsys.readouterr()
    assert main(["-w", str(workspace), "review", "show", str(proposal["id"])]) == 0
    out = capsys.readouterr().out
    assert "NOT AS SHOWN: greet_v1_1_0.py:1: the coding cookie '# -*- coding: latin-1 -*-'" in out, out
    assert "tooldeck review approve" not in out


@pytest.mark.parametrize(("data", "problem"), [
    (b"def run(data):\n    return data\n", None),
    (b"\xef\xbb\xbfdef run(data):\n    return '\xc3\xbf'\n", None),  # a UTF-8 byte order mark: Python reads UTF-8
    (b"# -*- coding: utf8 -*-\nX = '\xc3\xbf'\n", None),
    (b"#!/usr/bin/env python3\n# vim: set fileencoding=utf-8 :\nX = 1\n", None),
    (b"import os\n# coding: latin-1\nX = '\xc3\xbf'\n", None),  # not on the first two lines: Python ignores it
    (b"#!/usr/bin/env python3\n# coding: latin-1\nX = '\xc3\xbf'\n", "greet_v1_1_0.py:2: the coding cookie '# coding: latin-1'"),
    (b"# vim: set fileencoding=cp1252 :\nX = 1\n", "makes Python read this file as cp1252"),
    (b"# coding: klingon\nX = 1\n", "unknown encoding"),
    (b"\xef\xbb\xbf# coding: latin-1\nX = 1\n", "encoding problem"),
    (b"X = '\xff'\n", "greet_v1_1_0.py:1: not UTF-8 (byte 0xff at offset 5)"),
])
def test_source_problem_follows_how_python_decides_a_files_encoding(data: bytes, problem: str | None) -> None:
    from tools.evolution.candidate import source_problem

    found = source_problem("greet_v1_1_0.py", data)
    if problem is None:
        assert found is None
    else:
        assert found is not None and problem in found, found


def test_a_diff_never_replaces_bytes_that_are_not_utf8(tmp_path: Path) -> None:
    """Two candidates that differ only in bytes that are not UTF-8 were one diff (each byte shown as U+FFFD), so one
    approval hash; now each byte is spelled `\\xNN` under a note naming the file and its sha256, and the file is refused."""
    from tools.evolution.candidate import read_candidate

    base = "def run(data):\n    return data\n"
    old = python_tool(tmp_path / "old", "bytool", base)
    diffs = {}
    for byte in (b"\xff", b"\xfe"):
        new = python_tool(tmp_path / f"new{byte.hex()}", "bytool", base)
        raw = base.encode() + b"X = '" + byte + b"'\n"
        (new.parent / "bytool.py").write_bytes(raw)
        proposal = {"tool_id": "bytool", "version": "1.1.0", "parent_version": "1.0.0", "path": str(new), "parent_path": str(old)}
        diffs[byte] = diff_for(proposal)
        text = diffs[byte][0]
        assert f"+X = '\\x{byte.hex()}'" in text and "\ufffd" not in text
        assert "\\ b/bytool.py (1.1.0): not UTF-8" in text and hashlib.sha256(raw).hexdigest() in text
        assert any("not UTF-8" in p for p in read_candidate(proposal).problems)
    assert diffs[b"\xff"][1] != diffs[b"\xfe"][1]


def test_a_manifest_in_utf16_is_not_approved_as_what_the_diff_shows(tmp_path: Path) -> None:
    """The manifest loader reads UTF-8 only (PyYAML gets the decoded text): a UTF-16 manifest does not load, and the
    candidate says so rather than offering a diff of replacement characters."""
    from tools.evolution.candidate import read_candidate

    old = python_tool(tmp_path / "old", "ytool", "def run(data):\n    return data\n", version="1.0.0")
    new = python_tool(tmp_path / "new", "ytool", "def run(data):\n    return data\n", version="1.1.0")
    new.write_bytes(new.read_text().encode("utf-16"))
    candidate = read_candidate({"tool_id": "ytool", "version": "1.1.0", "parent_version": "1.0.0", "path": str(new),
                                "parent_path": str(old)})
    assert candidate.manifest_error is not None and "not a YAML manifest" in candidate.manifest_error
    assert any(p.startswith("ytool.yaml:1: not UTF-8 (byte 0xff at offset 0)") for p in candidate.problems), candidate.problems
    assert "\\xff\\xfe" in candidate.diff and "\ufffd" not in candidate.diff
