"""The embedded tool index persisted in the workspace: restarts embed only what changed, bad files are rebuilt.

Evidence is counted, not timed: `Embedder.texts_embedded` says how many texts a runtime embedded,
and `timings.extra["restored"]` how many tool points it took from the file.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from state import index_file
from state.index_file import MAGIC, IndexFileError, index_path
from state.memory import tool_point_id
from tools.errors import UsageError
from tools.recovery.selection import memory_for, select_candidates

N = 200
SUBJECTS = ("invoice", "weather", "shipment", "payroll", "telescope", "glacier", "orchestra", "vineyard", "satellite", "bakery")
VERBS = ("fetch", "archive", "validate", "summarise", "forecast", "translate", "schedule", "audit", "render", "price")


def catalog(folder: Path, n: int = N, prefix: str = "tool") -> list[str]:
    """`n` tools sharing one entry file, each described by its own pair of words."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "shared.py").write_text("def run(data):\n    return data\n")
    names = []
    for i in range(n):
        name = f"{prefix}_{i}"
        write(folder, name, description(i))
        names.append(name)
    return names


def description(i: int) -> str:
    verb, subject = VERBS[i % len(VERBS)], SUBJECTS[(i // len(VERBS)) % len(SUBJECTS)]
    return f"{verb.capitalize()} the {subject} records of batch {i} for the quarterly report."


def write(folder: Path, name: str, description: str, parameter: str = "") -> Path:
    path = folder / f"{name}.yaml"
    properties = {"ref": {"type": "string", "description": parameter}} if parameter else {}
    path.write_text(json.dumps({"name": name, "type": "python", "version": "1.0.0", "entry": "shared.py:run",
                                "description": description, "input_schema": {"type": "object", "properties": properties}}))
    return path


def built(rt):
    service = memory_for(rt, 120)
    return service, service.memory


def index_files(ws: Path) -> list[Path]:
    return sorted((ws / ".tooldeck" / "index").glob("*.tools"))


def tool_ids(hits) -> set[str]:
    return {h.payload.get("tool_id") for h in hits}


def test_a_restart_reuses_the_persisted_index(workspace, make_runtime):
    catalog(workspace / "tools")
    service, memory = built(make_runtime())
    total = len(memory.tool_points())
    assert total >= N and memory.embedder.texts_embedded == total
    assert service.timings.extra["restored"] == 0
    wait_for(lambda: bool(index_files(workspace)))  # saved just after the memory is ready
    [path] = index_files(workspace)
    assert f"persisted in {path}" in memory.mode

    rt = make_runtime()  # a second runtime of the same workspace: a restart
    saved = path.stat()
    service, memory = built(rt)
    assert service.timings.extra["restored"] == total
    assert memory.embedder.texts_embedded == 0
    assert memory.lexical.tokenised == 0 and len(memory.lexical) == total  # the words came back from the file too
    assert select_candidates(rt, description(45)).candidates[0].tool_id == "tool_45"
    assert memory.search_tools_lexical(description(45), 1)[0].id == tool_point_id("tool_45", "1.0.0")
    rt.close()  # nothing changed: the file is not written again, after the build or at stop
    assert "save" not in service.timings.extra and (path.stat().st_ino, path.stat().st_mtime_ns) == (saved.st_ino, saved.st_mtime_ns)


def test_an_edited_parameter_description_is_tokenised_again_not_embedded(workspace, make_runtime):
    """A parameter's description is indexed by word only: editing it re-weighs that tool's words, embeds nothing."""
    folder = workspace / "tools"
    catalog(folder, 30)
    write(folder, "tool_5", description(5), parameter="the ledger entry")
    first = make_runtime()
    built(first)
    first.close()
    write(folder, "tool_5", description(5), parameter="the zeppelin hangar number")
    rt = make_runtime()
    _service, memory = built(rt)
    assert memory.embedder.texts_embedded == 0 and memory.lexical.tokenised == 1
    assert [h.id for h in memory.search_tools_lexical("zeppelin hangar", 5)] == [tool_point_id("tool_5", "1.0.0")]
    assert memory.search_tools_lexical("ledger entry", 5) == []


def test_an_edited_description_is_embedded_again_and_found_by_its_new_words(workspace, make_runtime):
    folder = workspace / "tools"
    catalog(folder)
    first = make_runtime()
    built(first)
    first.close()
    write(folder, "tool_17", "Tune the harpsichord strings before the baroque concert.")
    rt = make_runtime()
    service, memory = built(rt)
    assert memory.embedder.texts_embedded == 1
    found = memory.search_tools(memory.embed_one("tune the harpsichord strings for a baroque concert"), 1)
    assert [h.id for h in found] == [tool_point_id("tool_17", "1.0.0")]
    assert select_candidates(rt, "tune the harpsichord strings for a baroque concert").candidates[0].tool_id == "tool_17"
    # its old words no longer find it by its vector
    assert "tool_17" not in tool_ids(memory.search_tools(memory.embed_one(description(17)), 5))


def test_a_removed_tool_is_never_returned(workspace, make_runtime):
    folder = workspace / "tools"
    catalog(folder)
    first = make_runtime()
    _service, memory = built(first)
    total = len(memory.tool_points())
    first.close()
    (folder / "tool_33.yaml").unlink()
    gone = tool_point_id("tool_33", "1.0.0")
    rt = make_runtime()
    service, memory = built(rt)
    assert memory.embedder.texts_embedded == 0 and service.timings.extra["restored"] == total
    assert gone not in memory.tool_points() and memory.count(memory.tools_collection) == total - 1
    scenario = description(33)
    assert gone not in {h.id for h in memory.search_tools(memory.embed_one(scenario), total)}
    assert gone not in {h.id for h in memory.search_tools_lexical(scenario, total)}
    assert "tool_33" not in {c.tool_id for c in select_candidates(rt, scenario, limit=50).candidates}
    rt.close()
    service, memory = built(make_runtime())  # and the file saved at close no longer holds it
    assert service.timings.extra["restored"] == total - 1 and gone not in memory.tool_points()


def test_a_tool_added_or_reloaded_while_running_embeds_only_itself(workspace, make_runtime):
    folder = workspace / "tools"
    catalog(folder, 20)
    rt = make_runtime()
    service, memory = built(rt)
    before = memory.embedder.texts_embedded
    rt.catalog.reload_path(folder / "tool_3.yaml")  # the same text again
    rt.catalog.reload_path(write(folder, "kiln_firing", "Fire the pottery kiln at a given temperature."))
    wait_for(lambda: tool_point_id("kiln_firing", "1.0.0") in memory.tool_points())
    assert memory.embedder.texts_embedded == before + 1
    rt.close()
    service, memory = built(make_runtime())  # saved at close: the restart embeds nothing
    assert memory.embedder.texts_embedded == 0 and tool_point_id("kiln_firing", "1.0.0") in memory.tool_points()


def test_a_first_build_in_chunks_indexes_every_tool(workspace, make_runtime, monkeypatch):
    """Past BULK_CHUNK tools the build overlaps embedding, inserts and words (`_upsert_many`): same index."""
    import state.memory

    monkeypatch.setattr(state.memory, "BULK_CHUNK", 16)
    catalog(workspace / "tools", 100)
    rt = make_runtime()
    service, memory = built(rt)
    total = len(memory.tool_points())
    assert total > 100 and memory.count(memory.tools_collection) == total == len(memory.lexical)
    points = sorted(memory.tool_points())
    for i in (0, 37, 99):
        point = tool_point_id(f"tool_{i}", "1.0.0")
        vector = memory.embed_one(description(i))
        exact = memory.tool_similarities(vector, points)  # every stored vector, compared exactly
        assert max(exact, key=exact.__getitem__) == point
        # HNSW is approximate, and chunks inserted on several threads under load build another graph
        # each time: the tool is among the first few the index finds (CI once saw it second)
        assert point in [h.id for h in memory.search_tools(vector, 5)]
        assert memory.search_tools_lexical(description(i), 1)[0].id == point
        assert select_candidates(rt, description(i)).candidates[0].tool_id == f"tool_{i}"
    rt.close()
    service, memory = built(make_runtime())
    assert memory.embedder.texts_embedded == 0 and service.timings.extra["restored"] == total


def wait_for(predicate, timeout: float = 10.0) -> None:
    import time

    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.02)


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def _flip(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) * 3 // 4] ^= 0xFF
    path.write_bytes(bytes(data))


def _garbage(path: Path) -> None:
    path.write_bytes(b"\x00" * 4096)


def _future_format(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(MAGIC)] = 99
    path.write_bytes(bytes(data))


def _other_embedder(path: Path) -> None:
    found = index_file.read(path)
    assert found is not None
    meta, blob = found
    index_file.write(path, {**meta, "embedder": "some other model"}, bytes(blob))


def _label_map_lies(path: Path) -> None:
    found = index_file.read(path)
    assert found is not None
    meta, blob = found
    index_file.write(path, {**meta, "points": meta["points"][:-5]}, bytes(blob))


def _words_vocabulary_lies(path: Path) -> None:
    found = index_file.read(path)
    assert found is not None
    meta, blob = found
    index_file.write(path, {**meta, "terms": meta["terms"][:3]}, bytes(blob))


@pytest.mark.parametrize("damage", [_truncate, _flip, _garbage, _future_format, _other_embedder, _label_map_lies,
                                    _words_vocabulary_lies])
def test_a_damaged_index_file_is_rebuilt_with_a_logged_warning(workspace, make_runtime, damage):
    catalog(workspace / "tools", 40)
    first = make_runtime()
    _service, memory = built(first)
    total = len(memory.tool_points())
    first.close()
    [path] = index_files(workspace)
    damage(path)
    rt = make_runtime()
    service, memory = built(rt)
    assert service.timings.extra["restored"] == 0 and memory.embedder.texts_embedded == total
    log = (workspace / ".tooldeck" / "logs" / "tooldeck.log").read_text()
    assert "the persisted tool index is not used, rebuilding it from the catalog" in log and str(path) in log
    assert select_candidates(rt, description(18)).candidates[0].tool_id == "tool_18"
    rt.close()
    assert index_file.read(path) is not None  # rewritten whole
    service, memory = built(make_runtime())
    assert service.timings.extra["restored"] == total and memory.embedder.texts_embedded == 0


def test_an_unwritable_index_folder_leaves_selection_working(workspace, make_runtime):
    catalog(workspace / "tools", 20)
    (workspace / ".tooldeck").mkdir()
    (workspace / ".tooldeck" / "index").write_text("not a folder")
    rt = make_runtime()
    service, memory = built(rt)
    assert select_candidates(rt, description(7)).candidates[0].tool_id == "tool_7"
    rt.close()
    log = (workspace / ".tooldeck" / "logs" / "tooldeck.log").read_text()
    assert "could not save the tool index to" in log and str(workspace / ".tooldeck" / "index") in log


def test_words_of_another_kind_are_tokenised_again_and_the_vectors_kept(workspace, make_runtime):
    catalog(workspace / "tools", 30)
    first = make_runtime()
    _service, memory = built(first)
    total = len(memory.tool_points())
    first.close()
    [path] = index_files(workspace)
    found = index_file.read(path)
    assert found is not None
    index_file.write(path, {**found[0], "words": "terms 0; name 9.0"}, bytes(found[1]))
    rt = make_runtime()
    _service, memory = built(rt)
    assert memory.embedder.texts_embedded == 0 and memory.lexical.tokenised == total
    assert memory.search_tools_lexical(description(12), 1)[0].id == tool_point_id("tool_12", "1.0.0")


def test_persist_false_keeps_the_index_in_memory_and_a_bad_value_is_named(workspace, make_runtime):
    catalog(workspace / "tools", 10)
    (workspace / "tooldeck.toml").write_text("[memory]\npersist = false\n")
    _service, memory = built(make_runtime())
    assert memory.mode == "embedded (usearch, in memory)"
    (workspace / "tooldeck.toml").write_text("[memory]\npersist = \"sometimes\"\n")
    with pytest.raises(UsageError, match=r"tooldeck.toml: \[memory\] persist must be true or false, got 'sometimes'"):
        built(make_runtime())  # the settings' types are checked when the file is read (tools/settings.py)
    assert index_files(workspace) == []


def test_index_file_errors_name_the_file(tmp_path):
    path = tmp_path / "x.tools"
    assert index_file.read(path) is None
    index_file.write(path, {"a": 1}, b"blob")
    meta, blob = index_file.read(path) or ({}, memoryview(b""))
    assert meta == {"a": 1} and bytes(blob) == b"blob"
    path.write_bytes(path.read_bytes()[:-1])
    with pytest.raises(IndexFileError, match=f"{path}: torn"):
        index_file.read(path)
    assert [p.name for p in tmp_path.iterdir()] == ["x.tools"]  # no temporary file left behind


def test_one_file_per_host_and_catalog(tmp_path):
    a = index_path(tmp_path, "host-a", ["/ws/tools"])
    assert a == index_path(tmp_path, "host-a", ["/ws/tools"])
    assert len({a, index_path(tmp_path, "host-b", ["/ws/tools"]), index_path(tmp_path, "host-a", ["/ws/tools", "/demo"])}) == 3
    assert index_path(tmp_path, "../../etc", []).parent == tmp_path / "index"


def test_two_nodes_each_keep_their_own_file(tmp_path, make_runtime, backend):
    """On PostgreSQL both nodes share the database (and the failures), each indexes its own catalog files."""
    a, b = tmp_path / "node_a", tmp_path / "node_b"
    catalog(a / "tools", 30, prefix="alpha")
    catalog(b / "tools", 30, prefix="beta")
    rt_a, rt_b = make_runtime(a), make_runtime(b)
    (_s, mem_a), _b = built(rt_a), built(rt_b)
    assert tool_point_id("beta_4", "1.0.0") not in mem_a.tool_points() and tool_point_id("alpha_4", "1.0.0") in mem_a.tool_points()
    rt_a.close()
    rt_b.close()
    [file_a], [file_b] = index_files(a), index_files(b)
    held = {}
    for name, path in (("a", file_a), ("b", file_b)):
        found = index_file.read(path)
        assert found is not None
        held[name] = {p[0] for p in found[0]["points"]}
    assert tool_point_id("alpha_4", "1.0.0") in held["a"] - held["b"]
    assert tool_point_id("beta_4", "1.0.0") in held["b"] - held["a"]
    for ws in (a, b):
        service, memory = built(make_runtime(ws))
        assert memory.embedder.texts_embedded == 0 and service.timings.extra["restored"] == len(memory.tool_points())
