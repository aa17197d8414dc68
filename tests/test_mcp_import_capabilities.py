"""Imported MCP tools take part in everything a tool does: semantic memory (description and schema field names),
resilient calls falling back from an MCP tool to a local one and back, and a buffer flushing into an MCP sink."""

from __future__ import annotations

from pathlib import Path

from tests.buffer_helpers import wait_for
from tests.helpers import python_tool
from tests.mcp_import_helpers import batches, stdio_section, wait_status, write_settings
from tools.recovery.resilient import call_tool_resilient
from tools.recovery.selection import select_candidates, tool_doc

SCENARIO = "Convert a temperature from fahrenheit to celsius"
LOCAL_CONVERTER = '''
import os
from pathlib import Path

def run(data):
    if (Path(os.environ["TOOLDECK_WORKSPACE"]) / "local_down").exists():
        raise ConnectionError("local converter is down")
    return {"celsius": round((float(data["fahrenheit"]) - 32) * 5 / 9, 2), "local": True}
'''


def test_semantic_memory_indexes_the_description_and_schema_field_names(workspace: Path, make_runtime, tmp_path: Path) -> None:
    write_settings(workspace, stdio_section("srv", tmp_path / "state"))
    rt = make_runtime(serve=True)
    wait_status(rt, "srv", "ready")
    doc = tool_doc(rt.catalog.find("srv_store_batch"))
    assert doc is not None and doc.source == "mcp:srv"
    assert "Store a batch of buffered items" in doc.text and "Fields: buffered items, buffer metadata." in doc.text


def test_resilient_calls_fall_back_from_an_mcp_tool_to_a_local_one_and_back(workspace: Path, make_runtime,
                                                                             tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    python_tool(workspace / "tools", "converter_local", LOCAL_CONVERTER, description="Convert temperatures from fahrenheit to celsius",
                quality_score=0.8)  # the MCP tool (1.0) is the first choice
    write_settings(workspace, stdio_section("srv", state))
    rt = make_runtime(serve=True)
    wait_status(rt, "srv", "ready")
    # the memory indexes tools as the catalog publishes them (a few ms after the server listed them)
    wait_for(lambda: "srv_fahrenheit_to_celsius" in [c.tool_id for c in select_candidates(rt, SCENARIO).candidates], 60)
    (state / "converter_down").write_text("1")
    out = call_tool_resilient(rt, SCENARIO, {"fahrenheit": 212}, max_attempts=2)
    assert [(h["tool_id"], h["outcome"]) for h in out["hops"]] == [("srv_fahrenheit_to_celsius", "tool_error"),
                                                                   ("converter_local", "ok")]
    assert out["result"] == {"celsius": 100.0, "local": True}
    assert "converter backend unavailable" in out["hops"][0]["error"]
    failures = rt.store.query("SELECT tool_id, scenario, error_class FROM failures")
    assert [tuple(r) for r in failures] == [("srv_fahrenheit_to_celsius", SCENARIO, "tool_error")]

    (state / "converter_down").unlink()
    (workspace / "local_down").write_text("1")
    back = call_tool_resilient(rt, SCENARIO, {"fahrenheit": 32}, max_attempts=2)
    assert back["tool_id"] == "srv_fahrenheit_to_celsius" and back["result"] == {"celsius": 0.0}
    assert back["hops"][-1]["outcome"] == "ok"
    assert [h["tool_id"] for h in back["hops"] if h["outcome"] != "ok"] in ([], ["converter_local"])


def test_a_buffer_flushes_into_an_mcp_tool(workspace: Path, make_runtime, tmp_path: Path) -> None:
    state = tmp_path / "state"
    write_settings(workspace, stdio_section("srv", state), extra="[buffers]\npoll_seconds = 0.05\n")
    rt = make_runtime(serve=True)
    wait_status(rt, "srv", "ready")
    for i in range(5):
        rt.call("buffer", {"operation": "write", "buffer_id": "events", "data": {"i": i}, "max_size": 5,
                           "flush_interval_seconds": 60, "pass_through_tool": "srv_store_batch"})
    stored = wait_for(lambda: batches(state), timeout=60)
    assert len(stored) == 1 and stored[0]["buffer_id"] == "events" and [x["i"] for x in stored[0]["items"]] == list(range(5))
    wait_for(lambda: rt.call("buffer", {"operation": "status", "buffer_id": "events"})["buffered"] == 0, timeout=30)
    rt.calls.flush()
    assert [r[0] for r in rt.store.query("SELECT outcome FROM calls WHERE tool_id='srv_store_batch'")] == ["ok"]
