"""Approved code is pinned by sha256: edited on disk afterwards, it is not served, and says so."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from tests.evolution_helpers import GREET_V2, greet_answer, greet_tool, settings
from tests.messages_server import MessagesServer, anthropic_server_fixture, messages_server_fixture  # noqa: F401
from tools.cli import main
from tools.errors import ToolUnavailableError
from tools.evolution.evolve import evolve_tool
from tools.evolution.review import approve, get_proposal

GREET_V3 = GREET_V2.replace('return {"greeting": "hello " + name}', 'return {"greeting": "hello " + name, "version": "1.2.0"}')
PWNED = "\n\ndef run(data):\n    return {'greeting': 'pwned'}\n"
ADA = {"name": "ada"}


def proposed(rt: Any, server: MessagesServer, code: str, hint: str) -> dict[str, Any]:
    server.reply_tool_use("write_tool_version", greet_answer(code, tests=[
        {"name": "one word", "input": ADA, "expect_contains": {"greeting": "hello ada"}},
        {"name": "two words", "input": {"name": "ada lovelace"}, "expect_contains": {"greeting": "hello ada lovelace"}}]))
    proposal = evolve_tool(rt, "greet", "", hint)
    assert proposal["status"] == "awaiting_review", proposal.get("failure")
    return proposal


@pytest.fixture(name="two_approved")
def two_approved_fixture(workspace: Path, make_runtime: Any, anthropic_server: MessagesServer) -> tuple[Any, dict[str, Any]]:
    """greet 1.1.0 approved globally, then 1.2.0 approved over it; neither called yet."""
    settings(workspace)
    greet_tool(workspace)
    rt = make_runtime()
    first = proposed(rt, anthropic_server, GREET_V2, "Allow spaces in names")
    approve(rt, first["id"], "global", "tester", first["diff_sha256"])
    second = proposed(rt, anthropic_server, GREET_V3, "Say which version answered")
    assert second["version"] == "1.2.0" and second["parent_version"] == "1.1.0"
    approve(rt, second["id"], "global", "tester", second["diff_sha256"])
    return rt, second


def code_of(rt: Any, version: str) -> Path:
    return rt.home / "evolved" / "greet" / version / f"greet_v{version.replace('.', '_')}.py"


def tampered_events(rt: Any) -> list[Any]:
    return [e for e in rt.events.recent(500) if e.kind == "tool.tampered"]


def test_a_tampered_promoted_version_is_refused_and_the_previous_good_one_serves(two_approved, make_runtime, capsys):
    rt, second = two_approved
    code = code_of(rt, "1.2.0")
    good = code.read_bytes()
    with code.open("a") as fh:
        fh.write(PWNED)
    for _ in range(3):
        assert rt.call("greet", ADA) == {"greeting": "hello ada"}  # 1.1.0 answers; 1.2.0 would add "version"
    events = tampered_events(rt)
    assert len(events) == 1 and events[0].version == "1.2.0" and "greet_v1_2_0.py changed after approval" in events[0].payload["error"]
    entry = rt.catalog.find("greet", "1.2.0")
    assert entry.status == "error" and entry.error.startswith("tampered: ") and entry.manifest is None
    from tui.snapshot import Collector

    frame = Collector(rt).collect()  # what the dashboard paints: the tools row and the activity line
    assert "1.2.0 not served: tampered: " in next(r for r in frame.tools if r.tool_id == "greet").error
    assert any(e.kind == "tool.tampered" and e.version == "1.2.0" for e in frame.events)

    shown = get_proposal(rt, second["id"])
    assert shown["tampered"].startswith("tampered: ") and "sha256" in shown["tampered"]
    capsys.readouterr()
    assert main(["-w", str(rt.workspace), "review", "show", str(second["id"])]) == 0
    out = capsys.readouterr().out
    assert "TAMPERED: " in out and "greet_v1_2_0.py changed after approval" in out
    assert "tampered: " not in out.replace("TAMPERED: ", ""), out  # the label says it once: not "TAMPERED: tampered: ..."
    with pytest.raises(ToolUnavailableError, match="tampered"):
        approve(rt, second["id"], "other-session", "tester", shown["current_diff_sha256"])

    again = make_runtime()  # a restart finds it at load, before any call
    assert again.wait_ready(30)
    assert again.catalog.find("greet", "1.2.0").status == "error"
    assert again.call("greet", ADA) == {"greeting": "hello ada"}
    assert any(e.kind == "tool.tampered" and e.pid == os.getpid() for e in again.events.recent(500))

    code.write_bytes(good)  # restored: it serves again once reloaded (the watcher does this in `tooldeck serve`)
    rt.catalog.reload_path(code)
    assert rt.call("greet", ADA) == {"greeting": "hello ada", "version": "1.2.0"}


def test_an_edit_that_keeps_size_and_mtime_is_still_caught(two_approved):
    rt, _second = two_approved
    assert rt.call("greet", ADA) == {"greeting": "hello ada", "version": "1.2.0"}  # verified once: now stat-cached
    code = code_of(rt, "1.2.0")
    text = code.read_text()
    st = code.stat()
    evil = text.replace('"hello "', '"pwned "')
    assert len(evil) == len(text)
    code.write_text(evil)
    os.utime(code, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert code.stat().st_size == st.st_size and code.stat().st_mtime_ns == st.st_mtime_ns
    assert rt.call("greet", ADA) == {"greeting": "hello ada"}


def test_a_file_added_after_approval_is_tampering(two_approved):
    rt, _second = two_approved
    (code_of(rt, "1.2.0").parent / "sitecustomize.py").write_text("import os\n")
    assert rt.call("greet", ADA) == {"greeting": "hello ada"}
    assert "sitecustomize.py was added" in tampered_events(rt)[0].payload["error"]


def test_a_folder_linked_into_an_approved_version_is_tampering(two_approved, tmp_path):
    rt, _second = two_approved
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere" / "helper.py").write_text("print('not reviewed')\n")
    (code_of(rt, "1.2.0").parent / "lib").symlink_to(tmp_path / "elsewhere", target_is_directory=True)
    assert rt.call("greet", ADA) == {"greeting": "hello ada"}
    assert "tampered: lib was added" in tampered_events(rt)[0].payload["error"]


def test_approval_refuses_files_the_reviewed_diff_does_not_show(workspace, make_runtime, anthropic_server):
    settings(workspace)
    greet_tool(workspace)
    rt = make_runtime()
    proposal = proposed(rt, anthropic_server, GREET_V2, "Allow spaces in names")
    (code_of(rt, "1.1.0").parent / "helper.py").write_text("print('not reviewed')\n")
    with pytest.raises(ToolUnavailableError, match=r"holds files the diff does not show \(helper.py\)"):
        approve(rt, proposal["id"], "global", "tester", proposal["diff_sha256"])
    (code_of(rt, "1.1.0").parent / "helper.py").unlink()
    approved = approve(rt, proposal["id"], "global", "tester", proposal["diff_sha256"])
    assert approved["status"] == "approved"
    pins = rt.store.query("SELECT name FROM approved_files WHERE tool_id='greet' AND version='1.1.0' ORDER BY name")
    assert [r[0] for r in pins] == ["greet.yaml", "greet_v1_1_0.py"]


def test_one_resolver_calls_selection_the_cli_and_the_dashboard_agree_on_a_broken_promotion(two_approved) -> None:
    """1.2.0 is promoted globally but its file was tampered with: calls fall back to 1.1.0, and so do
    the ranking of candidates (1.2.0 named in `skipped` with why), `tooldeck tools` and the dashboard."""
    from tools.cli.core_cmds import tool_rows
    from tools.recovery.selection import select_candidates
    from tui.snapshot import Collector

    rt, _ = two_approved
    with code_of(rt, "1.2.0").open("a") as fh:
        fh.write(PWNED)
    assert rt.call("greet", ADA) == {"greeting": "hello ada"}  # 1.1.0 answers
    served = rt.resolution("greet", wait=False)
    assert (served.version, served.scope) == ("1.1.0", "global")
    assert [v for v, _why in served.fell_back_from] == ["1.2.0"]
    assert rt.resolved_version("greet") == ("1.1.0", "global")

    rows = {r["version"]: r for r in tool_rows(rt) if r["id"] == "greet"}
    assert rows["1.1.0"]["serves"] == ["global"] and rows["1.2.0"]["serves"] == [] and rows["1.0.0"]["serves"] == []

    frame = Collector(rt).collect()
    row = next(r for r in frame.tools if r.tool_id == "greet")
    assert row.version == "1.1.0" and "1.2.0 not served: tampered: " in row.error

    sel = select_candidates(rt, "greet a person by name")
    assert [(c.tool_id, c.version) for c in sel.candidates if c.tool_id == "greet"] == [("greet", "1.1.0")]
    skipped = [s for s in sel.skipped if s.tool_id == "greet"]
    assert [s.version for s in skipped] == ["1.2.0"] and "promoted but cannot serve" in skipped[0].reason


def test_an_approval_pins_the_bytes_its_diff_was_made_of_not_a_file_swapped_after(workspace, make_runtime, anthropic_server,
                                                                                  monkeypatch, capsys):
    """`approve` hashed the diff from one read of the files and pinned a second read: a file swapped in between (a loop
    flipping it reproduced it 5 times in 8) was pinned and served. Now the bytes are read once; here the file is swapped
    as the approval's transaction opens, after the hash was checked: the pins are the reviewed bytes, the swapped file
    is not served, and `review show` says so."""
    import hashlib

    from tools.cli import main

    settings(workspace)
    greet_tool(workspace)
    rt = make_runtime()
    proposal = proposed(rt, anthropic_server, GREET_V2, "Allow spaces in names")
    code = code_of(rt, "1.1.0")
    good = code.read_bytes()
    evil = good + PWNED.encode()
    real = rt.store.tx

    def swapping_tx(*args: Any, **kwargs: Any) -> Any:
        if code.read_bytes() == good:
            code.write_bytes(evil)
        return real(*args, **kwargs)

    monkeypatch.setattr(rt.store, "tx", swapping_tx)
    approve(rt, proposal["id"], "global", "tester", proposal["diff_sha256"])
    monkeypatch.setattr(rt.store, "tx", real)
    assert code.read_bytes() == evil  # the swap happened after the diff was checked
    pins = dict(rt.store.query("SELECT name, sha256 FROM approved_files WHERE tool_id='greet' AND version='1.1.0'"))
    assert pins["greet_v1_1_0.py"] == hashlib.sha256(good).hexdigest()
    assert rt.call("greet", ADA) == {"greeting": "hello ada"}  # the base answers: the swapped 1.1.0 is not served
    assert "greet_v1_1_0.py changed after approval" in tampered_events(rt)[0].payload["error"]
    capsys.readouterr()
    assert main(["-w", str(workspace), "review", "show", str(proposal["id"])]) == 0
    assert "TAMPERED: " in capsys.readouterr().out

    code.write_bytes(good)  # the reviewed bytes serve once back
    rt.catalog.reload_path(code)
    assert rt.call("greet", {"name": "ada  lovelace"}) == {"greeting": "hello ada lovelace"}


def test_show_flags_an_approved_version_whose_files_are_not_the_diff_approved(workspace, make_runtime, anthropic_server,
                                                                              capsys):
    """An approval made before pins were taken from the reviewed bytes may have pinned a swapped file: its files on disk
    match its pins, so `tampered` is None, but they are not the ones validated and approved. `review show` and
    `review list` say so."""
    import hashlib
    import json

    from tools.cli import main

    settings(workspace)
    greet_tool(workspace)
    rt = make_runtime()
    proposal = proposed(rt, anthropic_server, GREET_V2, "Allow spaces in names")
    approve(rt, proposal["id"], "global", "alice", proposal["diff_sha256"])
    code = code_of(rt, "1.1.0")
    evil = code.read_bytes() + PWNED.encode()
    code.write_bytes(evil)
    with rt.store.tx() as con:  # what the racing approval pinned: the swapped bytes
        con.execute("UPDATE approved_files SET sha256=?, size=? WHERE tool_id='greet' AND version='1.1.0' AND name=?",
                    (hashlib.sha256(evil).hexdigest(), len(evil), code.name))
    shown = get_proposal(rt, proposal["id"])
    assert shown["tampered"] is None
    assert shown["changed_on_disk"].startswith("greet_v1_1_0.py changed on disk since approval: the diff is not the one "
                                               "approved"), shown["changed_on_disk"]
    ws = str(workspace)
    capsys.readouterr()
    assert main(["-w", ws, "review", "show", str(proposal["id"])]) == 0
    assert "CHANGED ON DISK: greet_v1_1_0.py changed on disk since approval" in capsys.readouterr().out
    assert main(["-w", ws, "review", "list"]) == 0
    assert "approved (changed on disk since approval)" in capsys.readouterr().out
    assert main(["-w", ws, "--json", "review", "list"]) == 0
    assert json.loads(capsys.readouterr().out)[0]["changed_on_disk"] == shown["changed_on_disk"]
