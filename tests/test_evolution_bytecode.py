"""What runs is the source a person approved: no bytecode beside a tool's files is ever run,
none is written there, and a `.pyc` planted in a pinned folder is tampering.

Python's own loader runs an unchecked hash-based `.pyc` in `__pycache__` without reading the
source (REFERENCE.md); every planted file here is one, built with `py_compile` from a hostile
source and put under the name Python looks for.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import py_compile
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from state import promotions
from tests.evolution_helpers import MANIFEST_EXTRA, greet_tool, settings
from tests.helpers import exec_tool, python_tool
from tests.messages_server import anthropic_server_fixture, messages_server_fixture  # noqa: F401
from tests.test_evolution_tamper import ADA, code_of, tampered_events, two_approved_fixture  # noqa: F401
from tools.evolution.pins import folder_files, pin

#: in `.tooldeck/`: this node's pinned folders were cleared of old bytecode
NO_BYTECODE_MARKER = ".evolved-no-bytecode"
PWNED = "def run(data):\n    return {'greeting': 'PWNED by a planted .pyc'}\n"
PWNED_WORDS = "def greeting(name):\n    return 'PWNED by a planted .pyc'\n"


@pytest.fixture(autouse=True)
def bytecode_written(monkeypatch: pytest.MonkeyPatch) -> None:
    """Python's default: bytecode is written beside imported modules (this machine's shell turns it off)."""
    monkeypatch.delenv("PYTHONDONTWRITEBYTECODE", raising=False)


def plant(source: Path, hostile: str, scratch: Path) -> Path:
    """An unchecked hash-based .pyc of `hostile` where Python looks for `source`'s bytecode."""
    scratch.mkdir(parents=True, exist_ok=True)
    evil = scratch / source.name
    evil.write_text(hostile)
    cache = Path(importlib.util.cache_from_source(str(source)))
    py_compile.compile(str(evil), cfile=str(cache), dfile=str(source), doraise=True,
                       invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH)
    return cache


def old_worker_import(source: Path) -> Path:
    """What a worker before this change left beside a tool it loaded: Python's loader, bytecode on."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    script = ("import importlib.util, sys\n"
              "spec = importlib.util.spec_from_file_location('tooldeck_tool', sys.argv[1])\n"
              "spec.loader.exec_module(importlib.util.module_from_spec(spec))\n")
    subprocess.run([sys.executable, "-c", script, str(source)], check=True, env=env, timeout=30)
    cache = Path(importlib.util.cache_from_source(str(source)))
    assert cache.is_file()
    return cache


def pycaches(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("__pycache__"))


# -- evolved versions: a planted .pyc is tampering -------------------------------------------


def test_a_planted_pyc_beside_an_approved_version_does_not_run(two_approved, make_runtime, tmp_path):
    rt, _second = two_approved
    cache = plant(code_of(rt, "1.2.0"), PWNED, tmp_path / "evil")
    listing = make_runtime()  # what `tooldeck tools` shows: found at load, before any call
    assert listing.wait_ready(30)
    assert listing.catalog.find("greet", "1.2.0").status == "error"
    assert "__pycache__" in listing.catalog.find("greet", "1.2.0").error
    for _ in range(2):
        assert rt.call("greet", ADA) == {"greeting": "hello ada"}  # 1.1.0 serves; 1.2.0 would add "version"
    events = tampered_events(rt)  # one from the listing's load, one from the call
    assert len(events) == 2 and {e.version for e in events} == {"1.2.0"}
    assert all(f"__pycache__/{cache.name} was added" in e.payload["error"] for e in events)
    entry = rt.catalog.find("greet", "1.2.0")
    assert entry.status == "error" and entry.error.startswith("tampered: ")
    assert pycaches(rt.home / "evolved") == ["greet/1.2.0/__pycache__"]  # the planted one only
    assert pycaches(code_of(rt, "1.1.0").parent) == []  # the version that ran wrote none

    cache.unlink()
    cache.parent.rmdir()
    rt.catalog.reload_path(code_of(rt, "1.2.0"))
    assert rt.call("greet", ADA) == {"greeting": "hello ada", "version": "1.2.0"}


WORDS = "def greeting(name):\n    return 'hello ' + name\n"
WITH_WORDS = ("from greet_words import greeting\n\n"
              "def run(data):\n    return {'greeting': greeting(data['name']), 'via': 'greet_words'}\n")


def approve_folder(rt: Any, version: str, files: dict[str, str]) -> Path:
    """An approved version with files of its own choosing (here: a module beside its code), pinned and
    promoted globally the way `approve` does it."""
    folder = rt.home / "evolved" / "greet" / version
    folder.mkdir(parents=True)
    code = f"greet_v{version.replace('.', '_')}.py"
    manifest = {"name": "greet", "type": "python", "description": "greet someone by name", "entry": f"{code}:run",
                **MANIFEST_EXTRA, "version": version}
    (folder / "greet.yaml").write_text(yaml.safe_dump(manifest, sort_keys=False))
    (folder / code).write_text(files.pop("code"))
    for name, text in files.items():
        (folder / name).write_text(text)
    with rt.store.tx() as con:
        pin(con, "greet", version, {name: path.read_bytes() for name, path in folder_files(folder).items()}, None)
        promotions.promote(con, "greet", "global", version, original_version="1.0.0", proposal_id=None,
                           reason="a helper module", reviewer="tester", now=0.0)
    rt.catalog.reload_path(folder / "greet.yaml")
    rt.invalidate_promotions()
    rt.extensions["evolution_pins"].invalidate()
    return folder


def test_a_planted_pyc_of_a_module_an_approved_version_imports_does_not_run(workspace, make_runtime, tmp_path):
    settings(workspace)
    greet_tool(workspace)
    rt = make_runtime()
    assert rt.wait_ready(30)
    folder = approve_folder(rt, "1.1.0", {"code": WITH_WORDS, "greet_words.py": WORDS})
    plant(folder / "greet_words.py", PWNED_WORDS, tmp_path / "evil")
    assert rt.call("greet", ADA) == {"greeting": "hello ada"}  # 1.0.0 serves (1.1.0 adds "via")
    events = tampered_events(rt)
    assert len(events) == 1 and "__pycache__/greet_words." in events[0].payload["error"]

    for path in (folder / "__pycache__").iterdir():
        path.unlink()
    (folder / "__pycache__").rmdir()
    rt.catalog.reload_path(folder / "greet.yaml")
    assert rt.call("greet", ADA) == {"greeting": "hello ada", "via": "greet_words"}  # from source, as pinned
    assert pycaches(folder) == []


# -- base tools: the python file is what runs -------------------------------------------------


def test_a_planted_pyc_beside_a_base_tool_and_its_module_does_not_run(workspace, make_runtime, tmp_path):
    tools = workspace / "tools"
    python_tool(tools, "greet", WITH_WORDS)
    (tools / "greet_words.py").write_text(WORDS)
    plant(tools / "greet.py", PWNED, tmp_path / "evil")
    plant(tools / "greet_words.py", PWNED_WORDS, tmp_path / "evil")
    rt = make_runtime()
    assert rt.call("greet", ADA) == {"greeting": "hello ada", "via": "greet_words"}


def test_running_tools_leaves_no_bytecode_beside_them(workspace, make_runtime):
    tools = workspace / "tools"
    python_tool(tools, "greet", WITH_WORDS)
    (tools / "greet_words.py").write_text(WORDS)
    (tools / "pkg").mkdir()
    (tools / "pkg" / "__init__.py").write_text("from .inner import VALUE\n")
    (tools / "pkg" / "inner.py").write_text("VALUE = 41\n")
    python_tool(tools, "with_pkg", "import pkg\n\ndef run(data):\n    return {'n': pkg.VALUE + 1}\n")
    exec_tool(tools, "greet_exec", "import json, sys\nfrom greet_words import greeting\n"
                                   "json.dump({'greeting': greeting(json.load(sys.stdin)['name'])}, sys.stdout)\n")
    rt = make_runtime()
    assert rt.call("greet", ADA) == {"greeting": "hello ada", "via": "greet_words"}
    assert rt.call("with_pkg", {}) == {"n": 42}
    assert rt.call("greet_exec", ADA) == {"greeting": "hello ada"}
    assert pycaches(tools) == []


def test_a_sourceless_pyc_beside_a_tool_is_not_a_module(workspace, make_runtime):
    """Only `.py` source in the tool's folder loads: a sourceless `x.pyc` there is not a module."""
    tools = workspace / "tools"
    python_tool(tools, "greet", "def run(data):\n    import greet_words\n    return {'greeting': greet_words.greeting('x')}\n")
    evil = tools / "greet_words.py"
    evil.write_text(PWNED_WORDS)
    py_compile.compile(str(evil), cfile=str(tools / "greet_words.pyc"), doraise=True)
    evil.unlink()
    rt = make_runtime()
    with pytest.raises(Exception, match="No module named 'greet_words'"):
        rt.call("greet", ADA)


def worker_hello(tool_dir: Path, pins: dict[str, str] | None) -> dict[str, Any]:
    """Start worker_main the way the runtime does and read its first line (ready, or why not)."""
    from tools.invoke.worker import WORKER_MAIN

    proc = subprocess.run([sys.executable, "-B", str(WORKER_MAIN), str(tool_dir), "greet.py", "run", json.dumps(pins) if pins else ""],
                          input=b"", capture_output=True, timeout=30)
    return json.loads(proc.stdout.splitlines()[0])


def test_the_worker_compiles_only_bytes_that_match_the_pins(tmp_path):
    """The runtime's check and the worker's read are two moments: the worker checks what it compiles."""
    folder = tmp_path / "tool"
    folder.mkdir()
    (folder / "greet.py").write_text(WITH_WORDS)
    (folder / "greet_words.py").write_text(WORDS)
    sha = {name: hashlib.sha256((folder / name).read_bytes()).hexdigest() for name in ("greet.py", "greet_words.py")}
    assert worker_hello(folder, sha)["ok"] is True
    swapped = worker_hello(folder, {**sha, "greet.py": "0" * 64})
    assert not swapped["ok"] and "tampered: " in swapped["error"] and "greet.py changed after approval" in swapped["error"]
    unpinned = worker_hello(folder, {"greet.py": sha["greet.py"]})
    assert not unpinned["ok"] and "greet_words.py is not one of the approved files" in unpinned["error"]


def test_a_plain_folder_beside_a_tool_does_not_hide_a_package_of_the_same_name(tmp_path):
    """As with Python's path finder: a folder without __init__.py is a namespace package only
    when no module or regular package of that name exists elsewhere."""
    folder = tmp_path / "tool"
    (folder / "email").mkdir(parents=True)  # e.g. a tool's own data folder
    (folder / "notes").mkdir()
    (folder / "notes" / "words.py").write_text(WORDS)
    (folder / "greet.py").write_text("import email.utils\nfrom notes.words import greeting\n\n"
                                     "def run(data):\n    return greeting(data['name'])\n")
    assert worker_hello(folder, None)["ok"] is True


# -- the upgrade: bytecode old workers wrote is removed once ---------------------------------


def test_bytecode_old_workers_wrote_is_removed_once_at_upgrade(two_approved, make_runtime, tmp_path):
    rt, _second = two_approved
    evolved = rt.home / "evolved"
    assert (rt.home / NO_BYTECODE_MARKER).is_file()
    rt.close()
    (rt.home / NO_BYTECODE_MARKER).unlink()  # this node as it was before the change
    genuine = [old_worker_import(code_of(rt, v)) for v in ("1.1.0", "1.2.0")]

    again = make_runtime()
    assert again.wait_ready(30)
    assert pycaches(evolved) == [] and (rt.home / NO_BYTECODE_MARKER).is_file()
    assert again.catalog.find("greet", "1.2.0").status == "ready"
    assert again.call("greet", ADA) == {"greeting": "hello ada", "version": "1.2.0"}
    removed = [e for e in again.events.recent(500) if e.kind == "evolution.bytecode_removed"]
    assert sorted((e.version, e.payload["files"]) for e in removed) == [
        (v, [f"__pycache__/{g.name}"]) for v, g in zip(("1.1.0", "1.2.0"), genuine, strict=True)]
    assert tampered_events(again) == []

    # once upgraded, even the approved code's own bytecode is a file the pins do not list
    old_worker_import(code_of(again, "1.2.0"))
    assert again.call("greet", ADA) == {"greeting": "hello ada"}
    assert "__pycache__/" in tampered_events(again)[0].payload["error"]


def test_the_upgrade_leaves_planted_bytecode_for_the_pins_to_report(two_approved, make_runtime, tmp_path):
    rt, _second = two_approved
    evolved = rt.home / "evolved"
    rt.close()
    (rt.home / NO_BYTECODE_MARKER).unlink(missing_ok=True)
    old_worker_import(code_of(rt, "1.1.0"))
    planted = plant(code_of(rt, "1.2.0"), PWNED, tmp_path / "evil")

    again = make_runtime()
    assert again.wait_ready(30)
    assert pycaches(evolved) == ["greet/1.2.0/__pycache__"] and planted.is_file()
    assert again.call("greet", ADA) == {"greeting": "hello ada"}  # 1.1.0, cleaned and ready
    assert f"__pycache__/{planted.name} was added" in tampered_events(again)[0].payload["error"]


def test_the_upgrade_keeps_a_timestamp_pyc_of_other_code(two_approved, make_runtime, tmp_path):
    """A forged timestamp .pyc (what the old loader would also have run) is not the pinned code: kept, reported."""
    rt, _second = two_approved
    rt.close()
    (rt.home / NO_BYTECODE_MARKER).unlink(missing_ok=True)
    code = code_of(rt, "1.2.0")
    genuine = code.read_bytes()
    st = code.stat()
    code.write_text(PWNED.ljust(len(genuine)))  # same size and mtime: the old loader took its bytecode as current
    os.utime(code, ns=(st.st_atime_ns, st.st_mtime_ns))
    forged = old_worker_import(code)
    code.write_bytes(genuine)
    os.utime(code, ns=(st.st_atime_ns, st.st_mtime_ns))

    again = make_runtime()
    assert again.wait_ready(30)
    assert forged.is_file()
    assert again.call("greet", ADA) == {"greeting": "hello ada"}
    assert f"__pycache__/{forged.name} was added" in tampered_events(again)[0].payload["error"]
