"""Hot reload in a serving runtime: real files, real watchfiles, real warm workers."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.helpers import python_tool
from tools.catalog.watcher import ignored
from tools.errors import ToolUnavailableError, UnknownToolError

CODE = "def run(data):\n    return {{'tool': '{name}', 'v': {v}}}\n"


def wait_event(rt: Any, after: int, predicate: Any, timeout: float = 5.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for event in rt.events.tail(after, limit=1000):
            if predicate(event):
                return event
        time.sleep(0.01)
    raise AssertionError(f"no matching event within {timeout} s: {[e.kind for e in rt.events.tail(after)]}")


def serving(make_runtime: Any, workspace: Path) -> Any:
    for name in ("alpha", "beta"):
        python_tool(workspace / "tools", name, CODE.format(name=name, v=1))
    rt = make_runtime(serve=True)
    rt.wait_ready(30)
    watcher = rt.extensions["watcher"]
    assert watcher.ready.wait(5)
    return rt


def test_ignored_names():
    for name in (".alpha.py.tmp", "alpha.py.tmp.1234", "alpha.py~", ".#alpha.py", "alpha.py.swp", "4913", "x.pyc",
                 "__pycache__/alpha.cpython-311.pyc"):
        assert ignored(Path("/ws/tools") / name), name
    for name in ("alpha.py", "alpha.yaml", "tmp_tool.yaml", "alpha_v1_1_0.py"):
        assert not ignored(Path("/ws/tools") / name), name


def test_only_a_serving_runtime_watches(make_runtime):
    rt = make_runtime()
    rt.wait_ready(30)
    assert "watcher" not in rt.extensions


def test_a_code_edit_reloads_exactly_that_tool_and_recycles_its_worker(workspace, make_runtime):
    rt = serving(make_runtime, workspace)
    assert rt.call("alpha") == {"tool": "alpha", "v": 1}
    assert rt.call("beta") == {"tool": "beta", "v": 1}
    beta_pids = {w for w in rt.workers.pids()}
    mark = rt.events.last_id()
    (workspace / "tools" / "alpha.py").write_text(CODE.format(name="alpha", v=2))
    event = wait_event(rt, mark, lambda e: e.kind == "tool.reloaded" and e.tool_id == "alpha")
    assert event.payload["files"] == ["alpha.py"] and event.payload["workers_recycled"] == 1
    assert rt.call("alpha") == {"tool": "alpha", "v": 2}
    assert rt.call("beta") == {"tool": "beta", "v": 1}
    time.sleep(0.15)  # let any stray second batch land before asserting it did not touch beta
    touched = {e.tool_id for e in rt.events.tail(mark) if e.kind.startswith("tool.")}
    assert touched == {"alpha"}
    assert len(beta_pids & set(rt.workers.pids())) == 1  # beta's warm worker kept running


def test_a_broken_edit_keeps_the_last_good_version_serving(workspace, make_runtime):
    rt = serving(make_runtime, workspace)
    manifest = workspace / "tools" / "alpha.yaml"
    good = manifest.read_text()
    mark = rt.events.last_id()
    manifest.write_text("name: alpha\ntype: python\nentry: [this is: not valid\n")
    event = wait_event(rt, mark, lambda e: e.kind == "tool.reload_failed" and e.tool_id == "alpha")
    assert "invalid YAML" in event.payload["error"] and event.payload["serving"] == "1.0.0"
    assert rt.call("alpha") == {"tool": "alpha", "v": 1}
    entry = rt.catalog.find("alpha")
    assert entry.status == "ready" and "invalid YAML" in entry.error
    mark = rt.events.last_id()
    manifest.write_text(good.replace("test tool alpha", "fixed alpha"))
    wait_event(rt, mark, lambda e: e.kind == "tool.reloaded" and e.tool_id == "alpha")
    assert rt.catalog.find("alpha").manifest.description == "fixed alpha" and rt.catalog.find("alpha").error is None


def test_an_atomic_save_reloads_once_and_its_temp_file_is_ignored(workspace, make_runtime):
    rt = serving(make_runtime, workspace)
    rt.call("alpha")
    mark = rt.events.last_id()
    tmp = workspace / "tools" / ".alpha.py.tmp"
    tmp.write_text(CODE.format(name="alpha", v=3))
    os.replace(tmp, workspace / "tools" / "alpha.py")
    wait_event(rt, mark, lambda e: e.kind == "tool.reloaded" and e.tool_id == "alpha")
    assert rt.call("alpha") == {"tool": "alpha", "v": 3}
    time.sleep(0.15)
    events = [e for e in rt.events.tail(mark) if e.kind.startswith("tool.")]
    assert all(".tmp" not in str(e.payload) for e in events)
    assert all(e.tool_id == "alpha" for e in events)


def test_a_deleted_manifest_removes_the_tool_and_a_new_one_appears(workspace, make_runtime):
    rt = serving(make_runtime, workspace)
    mark = rt.events.last_id()
    (workspace / "tools" / "beta.yaml").unlink()
    wait_event(rt, mark, lambda e: e.kind == "tool.reloaded" and e.tool_id == "beta" and e.payload.get("removed"))
    with pytest.raises(UnknownToolError):
        rt.call("beta")
    mark = rt.events.last_id()
    python_tool(workspace / "tools", "gamma", CODE.format(name="gamma", v=1))
    wait_event(rt, mark, lambda e: e.kind == "tool.reloaded" and e.tool_id == "gamma")
    assert rt.call("gamma") == {"tool": "gamma", "v": 1}


def test_an_evolved_version_landing_loads_inactive_and_is_not_callable(workspace, make_runtime):
    rt = serving(make_runtime, workspace)
    folder = rt.home / "evolved" / "alpha" / "1.1.0"
    folder.mkdir(parents=True)
    mark = rt.events.last_id()
    (folder / "alpha_v1_1_0.py").write_text(CODE.format(name="alpha", v=99))
    (folder / "alpha.yaml").write_text(yaml.safe_dump({"name": "alpha", "version": "1.1.0", "type": "python",
                                                      "entry": "alpha_v1_1_0.py:run"}))
    wait_event(rt, mark, lambda e: e.kind == "tool.reloaded" and e.tool_id == "alpha" and e.version == "1.1.0")
    assert rt.catalog.find("alpha", "1.1.0").status == "ready"
    assert rt.call("alpha") == {"tool": "alpha", "v": 1}  # not served until promoted
    with pytest.raises(ToolUnavailableError, match="nobody approved"):
        rt.call("alpha", version="1.1.0")
