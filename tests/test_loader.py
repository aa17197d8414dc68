"""Background loading: status order, waiting for one tool, the manifest cache, overrides."""

from __future__ import annotations

import json
import sys
import threading
from pathlib import Path

import pytest

from tests.buffer_helpers import wait_for
from tests.helpers import exec_tool, python_tool, write_tool
from tools.errors import ToolNotReadyError, UnknownToolError
from tools.runtime import Runtime


def _many(folder: Path, n: int) -> None:
    for i in range(n):
        python_tool(folder, f"tool_{i:03d}", "def run(data):\n    return data\n", tags=["t"])


def test_loader_event_order(workspace: Path, make_runtime) -> None:
    _many(workspace / "tools", 20)
    runtime = make_runtime()
    assert runtime.wait_ready(30)
    kinds = [e.kind for e in runtime.events.tail(0, limit=1000)]
    assert kinds[0] == "runtime.started"
    finished = kinds.index("load.finished")
    ready = [i for i, k in enumerate(kinds) if k == "tool.ready"]
    assert len(ready) >= 20
    assert max(ready) < finished
    statuses = {r["tool_id"]: r["status"] for r in runtime.store.query("SELECT tool_id, status FROM tool_status")}
    assert statuses["tool_007"] == "ready"


def test_listeners_see_every_tool_and_run_without_the_lock(workspace: Path, make_runtime) -> None:
    _many(workspace / "tools", 30)
    seen: list[str] = []
    runtime = make_runtime()

    def listener(changes) -> None:
        # taking the catalog lock here would deadlock if a lock were held during callbacks
        runtime.catalog.counts()
        seen.extend(c.tool_id for c in changes)

    runtime.subscribe(listener)
    assert runtime.wait_ready(30)
    runtime.catalog.flush()
    # some tools may have loaded before the listener subscribed; every later one is seen
    assert set(seen) <= {f"tool_{i:03d}" for i in range(30)} | {e.tool_id for e in runtime.catalog.all_entries()}


def test_get_tool_waits_for_that_tool_only(workspace: Path, make_runtime) -> None:
    _many(workspace / "tools", 200)
    runtime = make_runtime()
    entry = runtime.get_tool("tool_199", wait=True, timeout=10)
    assert entry.status == "ready" and entry.manifest is not None
    assert runtime.call("tool_199", {"x": 1}) == {"x": 1}


def test_unknown_tool_names_closest(workspace: Path, make_runtime) -> None:
    python_tool(workspace / "tools", "json_parser", "def run(d):\n    return d\n")
    runtime = make_runtime()
    with pytest.raises(UnknownToolError, match="did you mean json_parser"):
        runtime.get_tool("json_parsr")


def test_warm_start_uses_the_manifest_cache(workspace: Path) -> None:
    _many(workspace / "tools", 25)
    first = Runtime(workspace)
    first.wait_ready(30)
    assert first.catalog.parsed >= 25
    first.close()
    second = Runtime(workspace)
    try:
        second.wait_ready(30)
        assert second.catalog.cache_hits >= 25 and second.catalog.parsed == 0
        # an edit changes size/mtime, so that one file is parsed again
        path = workspace / "tools" / "tool_003.yaml"
        path.write_text(path.read_text().replace("test tool tool_003", "edited description"))
    finally:
        second.close()
    third = Runtime(workspace)
    try:
        third.wait_ready(30)
        assert third.catalog.parsed == 1
        assert third.get_tool("tool_003").manifest.description == "edited description"
    finally:
        third.close()


def test_workspace_tool_overrides_builtin_and_says_so(workspace: Path, make_runtime) -> None:
    from tools.catalog.discovery import BUILTIN_DIR

    builtin = sorted(p.stem for p in BUILTIN_DIR.glob("*.yaml"))
    if not builtin:
        pytest.skip("no built-in tools to override yet")
    name = builtin[0]
    python_tool(workspace / "tools", name, "def run(d):\n    return {'mine': True}\n")
    runtime = make_runtime()
    entry = runtime.get_tool(name)
    assert entry.source == "workspace" and entry.overrides is not None
    assert runtime.call(name, {}) == {"mine": True}


def test_a_builtin_override_naming_an_entry_from_before_the_regroup_still_runs(workspace: Path, make_runtime) -> None:
    write_tool(workspace / "tools", "spec_old", "name: spec_old\ntype: builtin\nversion: 1.0.0\n"
               "description: the spec builtin under its old entry point\nentry: tools.spec:tool_entry\n")
    doc = workspace / "doc.md"
    doc.write_text("# Title\n\n## Requirements\n\nThe system MUST work.\n")
    runtime = make_runtime()
    out = runtime.call("spec_old", {"file_path": "doc.md"})
    assert "Requirements" in json.dumps(out)


def test_summary_progresses(workspace: Path, make_runtime) -> None:
    _many(workspace / "tools", 10)
    write_tool(workspace / "tools", "broken", "name: broken\ntype: nope\n")
    runtime = make_runtime()
    runtime.wait_ready(30)
    assert runtime.summary().startswith("Ready: ")
    assert "1 error" in runtime.summary()


def test_own_package_is_not_a_workspace_catalog(make_runtime) -> None:
    repo = Path(__file__).resolve().parents[1]
    runtime = make_runtime(repo)
    runtime.wait_ready(30)
    assert all(e.source != "workspace" for e in runtime.catalog.all_entries())


def test_wait_for_a_tool_that_never_loads_times_out(workspace: Path, make_runtime) -> None:
    runtime = make_runtime()
    runtime.wait_ready(10)
    entry = runtime.catalog.find("nonexistent")
    assert entry is None
    # a tool stuck in `loading` (claimed by another thread) makes a waiter time out cleanly
    python_tool(workspace / "tools", "late", "def run(d):\n    return d\n")
    from tools.catalog.loader import ToolEntry

    stuck = ToolEntry("late", workspace / "tools" / "late.yaml", "workspace", claimed=True, status="loading")
    with runtime.catalog._lock:
        runtime.catalog._base["late"] = stuck
    with pytest.raises(ToolNotReadyError, match="did not load within"):
        runtime.get_tool("late", timeout=0.2)
    threading.Thread(target=stuck.done.set).start()


def test_waiters_on_entries_that_share_one_condition_each_wake_for_their_own() -> None:
    """Every entry's `done` shares one Condition: setting one entry wakes a waiter on another, which
    waits on until its own entry is set (or its timeout passes)."""
    from tools.catalog.entry import Loaded

    first, second = Loaded(), Loaded()
    assert not first.wait(0.05)  # a timeout: False, as Event.wait
    woke: dict[str, bool] = {}
    waiter = threading.Thread(target=lambda: woke.setdefault("first", first.wait(30)))
    waiter.start()
    second.set()  # wakes the waiter, which finds its own entry still loading
    waiter.join(0.3)
    assert waiter.is_alive() and not woke
    first.set()
    waiter.join(30)
    assert woke == {"first": True} and first.is_set() and first.wait(0)


def test_reload_of_a_code_file_finds_the_tool_that_runs_it(workspace: Path, make_runtime) -> None:
    """In a flat folder, a changed code file reloads the tool whose manifest runs it, not the first tool."""
    tools = workspace / "tools"
    python_tool(tools, "aaa_first", "def run(d):\n    return 1\n")
    python_tool(tools, "zzz_last", "def run(d):\n    return 2\n")
    runtime = make_runtime()
    runtime.wait_ready(30)
    changes = runtime.catalog.reload_path(tools / "zzz_last.py")
    assert [(c.tool_id, c.status) for c in changes] == [("zzz_last", "ready")]
    (tools / "zzz_last.py").unlink()  # a deleted code file does not remove the tool; its calls fail instead
    assert [(c.tool_id, c.status) for c in runtime.catalog.reload_path(tools / "zzz_last.py")] == [("zzz_last", "ready")]
    assert runtime.catalog.reload_path(tools / "unrelated_notes.py") == []


def test_a_restart_over_unchanged_tools_writes_no_status_and_says_no_event(workspace: Path, make_runtime) -> None:
    """At 100,000 tools a restart must not write 100,000 events and status rows: a tool that loads as the store
    records it is not news. A tool whose status changed is said; in-process listeners still hear of every tool."""
    _many(workspace / "tools", 20)
    first = make_runtime()
    assert first.wait_ready(30)
    first.close()
    (workspace / "tools" / "tool_003.yaml").write_text("name: tool_003\ntype: [not, a, type]\n")  # breaks on the next load
    from tests.helpers import state_rows

    updated_before = {r["tool_id"]: r["updated"] for r in state_rows(workspace, "SELECT tool_id, updated FROM tool_status")}
    second = make_runtime()
    assert second.wait_ready(30)
    last = max(e.id for e in second.events.tail(0, limit=10_000) if e.kind == "load.finished")
    runs = [e.id for e in second.events.tail(0, limit=10_000) if e.kind == "runtime.started"]
    mine = [e for e in second.events.tail(runs[-1] - 1, limit=10_000) if e.id <= last]
    said = [(e.kind, e.tool_id) for e in mine if e.kind.startswith("tool.")]
    assert said == [("tool.error", "tool_003")], said
    updated_after = {r["tool_id"]: r["updated"] for r in state_rows(workspace, "SELECT tool_id, updated FROM tool_status")}
    assert {t for t in updated_after if updated_after[t] != updated_before[t]} == {"tool_003"}


def test_a_full_load_keeps_what_it_loaded_out_of_full_collections_and_leaves_nothing_frozen(
        workspace: Path, make_runtime, monkeypatch: pytest.MonkeyPatch) -> None:
    """Loaded manifests are frozen as a full load goes (Python's full collections otherwise walk the
    growing catalog ~5 times: a third of a warm load at 100,000 tools), and unfrozen at its end; a
    host that froze objects itself is left as it was (nothing frozen, nothing unfrozen)."""
    import gc

    from tools.catalog import loader

    for i in range(7):
        python_tool(workspace / "tools", f"tool_{i}", "def run(data):\n    return data\n")
    calls = {"freeze": 0, "unfreeze": 0}
    real_freeze, real_unfreeze = gc.freeze, gc.unfreeze

    def freeze() -> None:
        calls["freeze"] += 1
        real_freeze()

    def unfreeze() -> None:
        calls["unfreeze"] += 1
        real_unfreeze()

    monkeypatch.setattr(loader, "FREEZE_EVERY", 3)
    monkeypatch.setattr(gc, "freeze", freeze)
    monkeypatch.setattr(gc, "unfreeze", unfreeze)
    assert gc.get_freeze_count() == 0
    rt = make_runtime()
    assert rt.wait_ready(30)
    assert calls["freeze"] >= 7 // 3 and calls["unfreeze"] == 1, calls
    assert gc.get_freeze_count() == 0
    rt.close()

    calls.update(freeze=0, unfreeze=0)
    real_freeze()  # the host's own freeze
    try:
        again = make_runtime()
        assert again.wait_ready(30)
        assert calls == {"freeze": 0, "unfreeze": 0} and gc.get_freeze_count() > 0  # the host's objects stay frozen
        again.close()
    finally:
        real_unfreeze()


def test_a_load_drops_the_manifest_rows_of_nodes_gone_once_not_at_every_flush(workspace: Path, make_runtime) -> None:
    """Rows of nodes no longer live (a restart is a new node) are dropped when a node records its own,
    after a minute's grace; the sweep scans the table, so a full load does it once, not at each of
    its flushes (~10 ms each at 100,000 tools)."""
    from tools.catalog import nodes

    python_tool(workspace / "tools", "echo", "def run(d):\n    return d\n")
    first = make_runtime()
    assert first.wait_ready(30)
    old = first.store.now() - 120
    with first.store.tx() as con:
        for node in ("gone:1:aa", "gone:2:bb"):
            con.execute("INSERT INTO catalog_manifests(tool_id, version, node, host, sha256, path, updated) VALUES (?,?,?,?,?,?,?)",
                        ("echo", "1.0.0", node, "gone", "ab" * 32, "/srv/echo.yaml", old))
    first.close()
    sweeps = []
    real = nodes.live_runtimes

    def counted(store):  # a flush reads the live nodes only to sweep
        if sys._getframe(1).f_code.co_name == "flush":
            sweeps.append(1)
        return real(store)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(nodes, "live_runtimes", counted)
        again = make_runtime()
        assert again.wait_ready(30)
        again.catalog.flush()
        nodes_left = {r[0] for r in again.store.query("SELECT DISTINCT node FROM catalog_manifests")}
    assert not nodes_left & {"gone:1:aa", "gone:2:bb"} and again.catalog.nodes.node in nodes_left
    assert len(sweeps) == 1


def test_a_hot_reloaded_manifest_is_what_this_node_publishes_so_other_nodes_agree(workspace: Path, make_runtime) -> None:
    """A node that hot-reloads an edited manifest records the new file's hash: another process loading the
    same edited files (a CLI call beside a serving dashboard) serves it instead of refusing it as differing."""
    python_tool(workspace / "tools", "echo", "def run(d):\n    return d\n")
    serving = make_runtime()
    assert serving.call("echo", {"a": 1}) == {"a": 1}
    manifest = workspace / "tools" / "echo.yaml"
    manifest.write_text(manifest.read_text().replace("test tool echo", "an edited echo"))
    serving.catalog.reload_path(manifest)
    published = [tuple(r) for r in serving.store.query("SELECT sha256 FROM catalog_manifests WHERE tool_id='echo' AND node=?",
                                                       (serving.catalog.nodes.node,))]
    cli = make_runtime()
    assert cli.call("echo", {"a": 2}) == {"a": 2}
    assert published == [(cli.catalog.find("echo").published_sha,)] and serving.catalog.find("echo").status == "ready"


def test_one_version_running_other_code_on_another_node_is_an_error_on_both_naming_the_file(
        tmp_path: Path, make_runtime, monkeypatch: pytest.MonkeyPatch) -> None:
    """Two nodes sharing one state, the same greet.yaml (an executable running `{tool_dir}/greet.py`) but
    different greet.py: greet 1.0.0 would answer `hello from C` on one and `hello from D` on the other, each
    recorded as the same version (evolution replays the records). The code file's hash is published beside
    the manifest's, so both refuse it, naming the file, until the files agree."""
    from tools.errors import ToolError

    monkeypatch.setenv("TOOLDECK_HOME", str(tmp_path / "home"))  # one shared state (on PostgreSQL, the database)
    folders = {}
    for name in ("C", "D"):
        folders[name] = tmp_path / f"node-{name}" / "tools"
        exec_tool(folders[name], "greet", f"print('hello from {name}', end='')\n")
    assert (folders["C"] / "greet.yaml").read_bytes() == (folders["D"] / "greet.yaml").read_bytes()
    c = make_runtime(folders["C"].parent)
    assert c.call("greet", {}) == "hello from C"
    c.catalog.flush()
    d = make_runtime(folders["D"].parent)

    def refused(runtime: Runtime) -> str | None:
        try:
            runtime.call("greet", {})
        except ToolError as exc:
            return exc.message
        return None

    on_d = wait_for(lambda: refused(d), timeout=30)
    assert f"code file greet.py differs from node {c.catalog.nodes.node}'s (sha256 " in on_d, on_d
    on_c = wait_for(lambda: refused(c), timeout=30)
    assert f"code file greet.py differs from node {d.catalog.nodes.node}'s" in on_c, on_c
    assert c.catalog.find("greet").status == d.catalog.find("greet").status == "error"
    (folders["D"] / "greet.py").write_bytes((folders["C"] / "greet.py").read_bytes())  # node D's code fixed
    d.catalog.reload_path(folders["D"] / "greet.py")
    assert wait_for(lambda: refused(c) is None and refused(d) is None, timeout=30)
    assert c.call("greet", {}) == d.call("greet", {}) == "hello from C"


def test_a_tool_whose_code_is_missing_or_not_executable_is_in_error_before_any_call(workspace: Path, make_runtime) -> None:
    """`tools --check` catches a python entry file that is not there and an executable in the tool's folder that
    cannot run, as load errors (bad_manifest), instead of `ready` tools whose every call crashes and costs score.
    The file put right, a hot reload serves it."""
    folder = workspace / "tools"
    python_tool(folder, "orphan", "def run(d):\n    return d\n")
    (folder / "orphan.py").unlink()
    write_tool(folder, "noexec", {"name": "noexec", "type": "executable", "description": "x",
                                  "executable": {"command": "./noexec.sh"}})
    (folder / "noexec.sh").write_text("#!/bin/sh\ncat\n")
    rt = make_runtime()
    assert rt.wait_ready(30)
    orphan, noexec = rt.catalog.find("orphan"), rt.catalog.find("noexec")
    assert orphan.status == "error" and "entry: orphan.py is not a file in" in orphan.error
    assert noexec.status == "error" and "./noexec.sh is not executable (chmod +x noexec.sh)" in noexec.error
    with pytest.raises(ToolNotReadyError):
        rt.call("orphan", {})
    (folder / "orphan.py").write_text("def run(d):\n    return d\n")
    rt.catalog.reload_path(folder / "orphan.py")
    assert rt.call("orphan", {"a": 1}) == {"a": 1}
    assert not rt.store.query("SELECT 1 FROM failures")  # a load error is not the tool failing


def test_a_manifest_named_outside_the_id_rule_comes_and_goes_with_hot_reload(workspace: Path, make_runtime) -> None:
    """A manifest whose file name is not a tool id is a problem (listed, counted in the summary) from the moment
    it appears until it is removed, as a full load would list it; before, only a restart noticed either."""
    folder = workspace / "tools"
    python_tool(folder, "echo", "def run(d):\n    return d\n")
    bad = folder / "Bad-Name.yaml"
    rt = make_runtime()
    assert rt.wait_ready(30) and rt.catalog.problems() == []
    bad.write_text("name: x\n")
    assert rt.catalog.reload_path(bad) == []
    [problem] = rt.catalog.problems()
    assert "'Bad-Name' is not a valid tool id" in problem.message and "1 error" in rt.summary()
    assert [e.payload["path"] for e in rt.events.recent(10, kinds=["tool.problem"])] == [str(bad.resolve())]
    bad.unlink()
    rt.catalog.reload_path(bad)
    assert rt.catalog.problems() == [] and "error" not in rt.summary()
    stale = folder / ("long_" + "x" * 70 + ".yaml")  # found by a full load, removed while running
    stale.write_text("name: x\n")
    again = make_runtime()
    assert again.wait_ready(30) and len(again.catalog.problems()) == 1
    stale.unlink()
    again.catalog.reload_path(stale)
    assert again.catalog.problems() == []
