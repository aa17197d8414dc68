"""Selection by words as well as by embedding: the lexical index, its fusion with the vectors, bad scenarios."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from state.lexical import MAX_QUERY_TERMS, LexicalIndex, terms
from tests.helpers import python_tool
from tools.recovery.resilient import call_tool_resilient
from tools.recovery.selection import memory_for, select_candidates, tool_doc

REPO = Path(__file__).resolve().parents[1]
LEDGER = "balance the books of the ledger for account 42"


def ledger_tools(folder) -> None:
    """`ledger_reconcile` says little about itself (its embedding is 0.29 similar to LEDGER, under
    the 0.35 minimum) but its id and parameter share LEDGER's distinctive words; the others share none."""
    python_tool(folder, "ledger_reconcile", "def run(data):\n    return {'balanced': data['account_id']}\n",
                description="Runs the nightly batch job.",
                input_schema={"type": "object", "properties": {"account_id": {"type": "integer", "description": "whose books"}}})
    python_tool(folder, "invoice_sender", "def run(data):\n    return {}\n", description="Send invoices to customers by email.")
    python_tool(folder, "bank_statement_import", "def run(data):\n    return {}\n", description="Import bank statements from a CSV file.")


def test_a_tool_found_by_its_id_and_parameter_words(workspace, make_runtime):
    ledger_tools(workspace / "tools")
    rt = make_runtime()
    sel = select_candidates(rt, LEDGER)
    assert [c.tool_id for c in sel.candidates] == ["ledger_reconcile"]
    [found] = sel.candidates
    assert found.similarity < sel.min_similarity and "words #1" in found.why and found.relevance > 0
    out = call_tool_resilient(rt, LEDGER, {"account_id": 42})
    assert out["result"] == {"balanced": 42} and out["hops"][0]["tool_id"] == "ledger_reconcile"


def test_words_do_not_bring_in_unrelated_tools(workspace, make_runtime):
    """A shared common word is not enough: a tool found by words must still be half as similar."""
    ledger_tools(workspace / "tools")
    python_tool(workspace / "tools", "weather_lookup", "def run(d):\n    return {}\n",
                description="Look up the weather forecast for a city.", input_schema={"type": "object", "properties": {
                    "account": {"type": "string", "description": "the weather service account"}}})
    rt = make_runtime()
    assert "weather_lookup" not in [c.tool_id for c in select_candidates(rt, LEDGER, limit=50).candidates]
    assert select_candidates(rt, "sing a lullaby to the cat").candidates == []


def test_the_word_index_follows_hot_reload(workspace, make_runtime):
    ledger_tools(workspace / "tools")
    rt = make_runtime()
    service = memory_for(rt, 30)
    assert select_candidates(rt, LEDGER).candidates
    path = workspace / "tools" / "ledger_reconcile.yaml"
    path.unlink()
    rt.catalog.reload_path(path)
    deadline = time.monotonic() + 10
    while service.memory.search_tools_lexical("ledger account", 5) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert service.memory.search_tools_lexical("ledger account", 5) == []
    assert select_candidates(rt, LEDGER).candidates == []


@pytest.mark.parametrize("scenario", ["\x00\x1b[31m\x7f", "ledger\x00account\x1b[0m", "账本 " * 2000, "ledger " * 50_000])
def test_bad_scenarios_are_handled(workspace, make_runtime, scenario):
    ledger_tools(workspace / "tools")
    rt = make_runtime()
    sel = select_candidates(rt, scenario)
    assert all(c.tool_id == "ledger_reconcile" for c in sel.candidates)


def test_lexical_index_unit():
    index = LexicalIndex()
    index.upsert("a", {"name": "weather_1_getWeather", "description": "Current conditions for cities", "parameters": "city name"})
    index.upsert("b", {"name": "stock_price", "description": "The price of a stock", "parameters": "ticker"})
    assert terms("getWeather for the Cities") == ["get", "weather", "city"]
    assert [h.key for h in index.search("what's the weather in two cities?", 5)] == ["a"]
    assert [h.key for h in index.search("stock ticker price weather", 5)] == ["b", "a"]
    index.upsert("a", {"name": "renamed", "description": "nothing in common", "parameters": ""})  # re-index replaces
    assert index.search("weather", 5) == [] and len(index) == 2
    index.delete(["b", "missing"])
    assert index.search("stock", 5) == [] and len(index) == 1
    index.upsert("c", {"name": "stock_price_v2"})  # a freed slot is reused, the deleted key never comes back
    assert [h.key for h in index.search("stock", 5)] == ["c"]
    assert index.search("", 5) == index.search("\x00\x1b", 5) == index.search("the of and", 5) == []
    assert index.search("stock", 0) == []
    huge = " ".join(f"w{n}" for n in range(100_000)) + " stock"
    assert index.search(huge, 5) == []  # only the first MAX_QUERY_TERMS words of a huge query are scored
    assert len(set(terms(huge))) > MAX_QUERY_TERMS
    with pytest.raises(ValueError, match="unknown field 'body'"):
        index.upsert("d", {"body": "x"})


def test_the_embedded_index_needs_no_qdrant(workspace):
    """Without QDRANT_URL the memory is the embedded index (usearch): qdrant_client is never imported."""
    script = textwrap.dedent(f"""
        import sys
        from tools.runtime import Runtime
        from tools.recovery.selection import memory_for, select_candidates
        with Runtime({str(workspace)!r}, demo=True) as rt:
            service = memory_for(rt, 60)
            picked = [c.tool_id for c in select_candidates(rt, "translate to french").candidates]
            print(service.memory.mode, "|", sorted(picked), "|", "qdrant_client" in sys.modules)
    """)
    env = {k: v for k, v in os.environ.items() if k != "QDRANT_URL"}
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, cwd=REPO, env=env)
    assert run.returncode == 0, run.stderr[-2000:]
    home = (workspace / ".tooldeck").resolve()
    mode, picked, imported = run.stdout.strip().splitlines()[-1].split(" | ")
    assert mode.startswith(f"embedded (usearch, persisted in {home}/index/") and mode.endswith(".tools)")
    assert (picked, imported) == ("['translator_dictionary', 'translator_remote']", "False")


def test_the_embedded_index_replaces_removes_and_counts(make_runtime):
    """Re-indexing the same tools keeps one point each; a removed version leaves both indexes."""
    rt = make_runtime(demo=True)
    service = memory_for(rt, 30)
    memory = service.memory
    tools = memory.count(memory.tools_collection)
    assert tools == len(rt.catalog.all_entries()) == len(memory.lexical)
    service.reindex()
    assert memory.count(memory.tools_collection) == tools == len(memory.lexical)
    vector = memory.embed_one("translate to french")
    [best] = memory.search_tools(vector, 1)
    key = (best.payload["tool_id"], best.payload["version"])
    memory.delete_tools([key])
    assert memory.count(memory.tools_collection) == tools - 1 == len(memory.lexical)
    assert key not in {(h.payload["tool_id"], h.payload["version"]) for h in memory.search_tools(vector, tools)}


def test_example_inputs_are_found_by_their_words_not_embedded(workspace, make_runtime):
    """Example inputs blur a 256-dim embedding (bench_bfcl.py), so they go to the word index only."""
    python_tool(workspace / "tools", "fx_convert", "def run(d):\n    return {}\n", description="Convert an amount between currencies.",
                examples=[{"input": {"amount": 10, "currency": "zloty"}}],
                input_schema={"type": "object", "properties": {"amount": {"type": "number", "description": "how much"}}})
    rt = make_runtime()
    memory = memory_for(rt, 30).memory
    doc = tool_doc(rt.catalog.find("fx_convert"))
    assert "zloty" not in doc.text and "Fields: amount." in doc.text and "zloty" in doc.parameters
    assert [h.payload["tool_id"] for h in memory.search_tools_lexical("zloty", 5)] == ["fx_convert"]


def test_a_word_most_tools_share_is_scored_only_when_nothing_rarer_is():
    index = LexicalIndex()
    for n in range(3000):
        index.upsert(n, {"name": f"tool_{n}", "description": "fetch the records" + (" invoices" if n == 7 else "")
                         + (" payroll" if n == 9 else "")})
    assert {h.key for h in index.search("fetch invoices payroll", 50)} == {7, 9}  # "fetch" (in every tool) left out
    assert len(index.search("fetch", 50)) == 50  # alone, it is the rarest word there is


def test_the_word_index_ranks_as_plain_bm25f_through_changes():
    """The index keeps each word's scores between queries and picks the best tools from their postings; checked
    against BM25F computed in plain Python, through inserts, re-indexing and deletes (which change every score)."""
    import math
    import random

    from state.lexical import K1, B

    rng = random.Random(3)
    vocabulary = [f"w{i}" for i in range(60)]
    docs: dict[int, dict[str, float]] = {}
    index = LexicalIndex()

    def plain(query: list[str]) -> dict[int, float]:
        n, avg = len(docs), sum(sum(w.values()) for w in docs.values()) / len(docs)
        out: dict[int, float] = {}
        for word in dict.fromkeys(query):
            holders = [k for k, w in docs.items() if word in w]
            idf = math.log(1 + (n - len(holders) + 0.5) / (len(holders) + 0.5))
            for k in holders:
                tf, length = docs[k][word], sum(docs[k].values())
                out[k] = out.get(k, 0.0) + idf * tf * (K1 + 1) / (tf + K1 * (1 - B + B * length / avg))
        return out

    def check(step: int) -> None:
        for _ in range(30):
            query = rng.sample(vocabulary, rng.randint(1, 5))
            limit = rng.choice([1, 5, 32])
            want = sorted(plain(query).items(), key=lambda kv: -kv[1])[:limit]
            got = index.search(" ".join(query), limit)
            assert [h.score for h in got] == pytest.approx([s for _k, s in want], rel=1e-5), (step, query)  # float32 scores
            cut = got[-1].score if got else 0.0  # below the last score shown, ties may be broken either way
            assert {h.key for h in got if h.score > cut + 1e-4} == {k for k, s in want if s > cut + 1e-4}

    def words() -> dict[str, float]:
        return {w: float(rng.choice([1, 2, 4])) for w in rng.sample(vocabulary, rng.randint(1, 8))}

    for step in range(6):
        for key in range(1000 * step, 1000 * step + 60):  # new tools only
            docs[key] = words()
            index.upsert_weighted(key, docs[key])
        check(step)
        for key in rng.sample(sorted(docs), 40):  # re-indexed
            docs[key] = words()
            index.upsert_weighted(key, docs[key])
        check(step)
        for key in rng.sample(sorted(docs), 20):
            del docs[key]
            index.delete([key])
        check(step)
