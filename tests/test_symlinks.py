"""A manifest or a folder that is a symlink pointing outside the catalog folder being scanned is
refused with a one-line error naming it, at discovery and on hot reload; links that stay inside
the folder keep working."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers import python_tool
from tools.errors import ManifestError

CODE = "def run(data):\n    return {'ran': True}\n"


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """A folder beside the workspace holding tools nobody put in its catalog."""
    folder = tmp_path / "elsewhere"
    python_tool(folder, "stray", CODE)
    python_tool(folder / "pack", "packed", CODE)
    return folder


def _problems(runtime) -> dict[str, str]:
    return {p.path.name: p.message for p in runtime.catalog.problems()}


def test_symlinks_pointing_outside_are_refused_and_inside_ones_load(workspace: Path, outside: Path,
                                                                     make_runtime) -> None:
    tools = workspace / "tools"
    python_tool(tools, "plain", CODE)
    (tools / "stray.yaml").symlink_to(outside / "stray.yaml")
    (tools / "pack").symlink_to(outside / "pack", target_is_directory=True)
    python_tool(tools / "_store", "linked_inside", CODE)  # folders starting with _ are not scanned
    (tools / "linked_inside.yaml").symlink_to(tools / "_store" / "linked_inside.yaml")
    (tools / "linked_inside.py").write_text(CODE)  # a tool's folder is where its manifest is found
    runtime = make_runtime()
    runtime.wait_ready(30)
    ids = runtime.catalog.ids()
    assert "stray" not in ids and "packed" not in ids
    assert runtime.call("plain", {}) == {"ran": True}
    assert runtime.call("linked_inside", {}) == {"ran": True}
    problems = _problems(runtime)
    assert problems["stray.yaml"] == (f"{tools / 'stray.yaml'}: symlinked manifest resolves to {outside / 'stray.yaml'},"
                                      f" outside the catalog folder {tools}; refused")
    assert problems["pack"] == (f"{tools / 'pack'}: symlinked folder resolves to {outside / 'pack'},"
                                f" outside the catalog folder {tools}; refused")
    assert all("\n" not in message for message in problems.values())
    with pytest.raises(ManifestError) as refused:  # a call names why, not "unknown tool 'stray'"
        runtime.call("stray", {})
    assert refused.value.error_class == "bad_manifest" and "outside the catalog folder" in refused.value.message
    events = runtime.store.query("SELECT payload FROM events WHERE kind='tool.problem'")
    assert sum("outside the catalog folder" in row[0] for row in events) == 2


def test_an_evolved_version_linked_outside_is_refused(workspace: Path, outside: Path, make_runtime) -> None:
    python_tool(workspace / "tools", "stray", CODE)
    version_dir = workspace / ".tooldeck" / "evolved" / "stray" / "1.1.0"
    version_dir.mkdir(parents=True)
    target = outside / "stray_evolved.yaml"
    target.write_text("name: stray\nversion: 1.1.0\ntype: python\nentry: stray.py:run\n")
    (version_dir / "stray.yaml").symlink_to(target)
    runtime = make_runtime()
    runtime.wait_ready(30)
    assert runtime.catalog.versions("stray") == {}
    assert "outside the catalog folder" in _problems(runtime)["stray.yaml"]


def test_hot_reload_refuses_a_new_link_to_outside_and_keeps_serving_a_tool_replaced_by_one(
        workspace: Path, outside: Path, make_runtime) -> None:
    from tools.catalog.watcher import Watcher

    tools = workspace / "tools"
    python_tool(tools, "plain", CODE)
    runtime = make_runtime()
    runtime.wait_ready(30)
    watcher = Watcher(runtime)

    (tools / "stray.yaml").symlink_to(outside / "stray.yaml")
    [result] = watcher.handle([tools / "stray.yaml"])
    assert not result["ok"] and "outside the catalog folder" in result["error"]
    assert "stray" not in runtime.catalog.ids()

    (tools / "plain.yaml").unlink()
    (tools / "plain.yaml").symlink_to(outside / "stray.yaml")
    [result] = watcher.handle([tools / "plain.yaml"])
    assert not result["ok"]
    entry = runtime.catalog.find("plain")
    assert entry is not None and "symlinked manifest resolves to" in (entry.error or "")
    assert runtime.call("plain", {}) == {"ran": True}  # the last good version still serves

    (tools / "pack").symlink_to(outside / "pack", target_is_directory=True)
    [result] = watcher.handle([tools / "pack"])
    assert not result["ok"] and "outside the catalog folder" in result["error"]
    assert "packed" not in runtime.catalog.ids()
    failed = runtime.store.query("SELECT payload FROM events WHERE kind='tool.reload_failed'")
    assert len(failed) == 3


def test_a_manifest_that_is_a_symlink_loop_is_a_problem_and_every_other_tool_loads(workspace: Path, make_runtime,
                                                                                   capsys) -> None:
    """`DirEntry.is_file` raises for a loop: one looping manifest stopped discovery, so no tool loaded (builtins
    included), `tools` listed nothing with exit 0, `tools --check` hung and every call waited 30 s."""
    from tools.cli import main

    tools = workspace / "tools"
    python_tool(tools, "plain", CODE)
    (tools / "loop.yaml").symlink_to(tools / "loop.yaml")
    (tools / "pack").mkdir()
    (tools / "pack" / "inner.yaml").symlink_to(tools / "pack" / "inner.yaml")
    (tools / "knot").symlink_to(tools / "knot")  # a looping folder name is not a manifest: left out, as any non-folder
    runtime = make_runtime()
    runtime.wait_ready(30)
    assert runtime.call("plain", {}) == {"ran": True}
    assert runtime.call("buffer", {"operation": "status"}) is not None
    problems = _problems(runtime)
    assert "cannot resolve" in problems["loop.yaml"] and "cannot resolve" in problems["inner.yaml"]
    with pytest.raises(ManifestError, match="cannot resolve"):
        runtime.call("loop", {})
    capsys.readouterr()
    assert main(["-w", str(workspace), "tools", "--check"]) == 1
    out = capsys.readouterr()
    assert "plain" in out.out and "loop" in out.out + out.err


def test_a_catalog_load_that_raises_tells_every_caller_why_and_leaves_none_waiting(workspace: Path, make_runtime,
                                                                                  monkeypatch) -> None:
    """Whatever stops the loader thread (here a discovery that raises), a call says so at once: before, a dead
    loader left every call waiting 30 s for `catalog discovery did not finish`."""
    import time

    from tools.catalog.loader import Catalog
    from tools.errors import ToolNotReadyError

    python_tool(workspace / "tools", "plain", CODE)

    def broken(self: Catalog) -> None:
        raise OSError(40, "Too many levels of symbolic links")

    monkeypatch.setattr(Catalog, "discover", broken)
    runtime = make_runtime()
    started = time.monotonic()
    with pytest.raises(ToolNotReadyError, match="the catalog stopped loading: OSError"):
        runtime.call("plain", {})
    assert time.monotonic() - started < 10
    assert runtime.catalog.finished.is_set()
    assert any("stopped loading" in p.message for p in runtime.catalog.problems())
