"""Resource bounds on what a tool writes back: stdout, stderr and a worker's reply are capped per
call, the tool is killed past the cap, and the call fails as `output_too_large`."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers import exec_tool, python_tool, write_tool
from tools.errors import ToolOutputTooLargeError


def _outcomes(runtime, tool_id: str) -> list[str]:
    runtime.calls.flush()
    rows = runtime.store.query("SELECT outcome FROM calls WHERE tool_id=? ORDER BY id", (tool_id,))
    return [r[0] for r in rows]


def test_yes_as_a_tool_is_killed_at_the_cap_not_at_its_timeout(workspace: Path, make_runtime) -> None:
    write_tool(workspace / "tools", "yes_forever", {
        "name": "yes_forever", "type": "executable", "description": "prints y forever",
        "executable": {"command": "yes", "timeout": 600, "max_output_bytes": 1 << 20},
    })
    runtime = make_runtime()
    with pytest.raises(ToolOutputTooLargeError) as info:
        runtime.call("yes_forever", {})
    assert info.value.error_class == "output_too_large"
    assert "stdout passed max_output_bytes (1048576 bytes)" in info.value.message
    assert runtime.children.pids() == []
    assert _outcomes(runtime, "yes_forever") == ["output_too_large"]


def test_the_default_cap_is_16_mib_and_tooldeck_toml_changes_it(workspace: Path, make_runtime) -> None:
    tools = workspace / "tools"
    writer = "import sys\nsys.stdin.read()\nsys.stdout.write('x' * {n})\n"
    exec_tool(tools, "writes_20_mib", writer.format(n=20 << 20))
    exec_tool(tools, "writes_3_kb", writer.format(n=3000))
    exec_tool(tools, "writes_3_kb_allowed", writer.format(n=3000), executable={"max_output_bytes": 4000})
    runtime = make_runtime()
    with pytest.raises(ToolOutputTooLargeError, match=r"\(16777216 bytes\)"):
        runtime.call("writes_20_mib", {})
    assert len(runtime.call("writes_3_kb", {})) == 3000
    runtime.close()

    (workspace / "tooldeck.toml").write_text("[calls]\nmax_output_bytes = 1000\n")
    runtime = make_runtime()
    with pytest.raises(ToolOutputTooLargeError, match=r"writes_3_kb: stdout passed max_output_bytes \(1000 bytes\)"):
        runtime.call("writes_3_kb", {})
    assert len(runtime.call("writes_3_kb_allowed", {})) == 3000  # the manifest's own cap wins


def test_stderr_is_capped_too(workspace: Path, make_runtime) -> None:
    exec_tool(workspace / "tools", "shouts", "import sys\nwhile True:\n    sys.stderr.write('e' * 65536)\n",
              timeout=600, executable={"max_output_bytes": 1 << 20})
    python_tool(workspace / "tools", "py_shouts", "import sys\ndef run(data):\n    while True:\n"
                "        sys.stderr.write('e' * 65536)\n", timeout=600, executable={"max_output_bytes": 1 << 20})
    runtime = make_runtime()
    with pytest.raises(ToolOutputTooLargeError, match="shouts: stderr passed max_output_bytes"):
        runtime.call("shouts", {})
    with pytest.raises(ToolOutputTooLargeError, match="py_shouts: stderr passed max_output_bytes"):
        runtime.call("py_shouts", {})
    assert runtime.children.pids() == []


def test_a_python_tool_returning_100_mb_is_capped_and_its_worker_restarts(workspace: Path, make_runtime) -> None:
    python_tool(workspace / "tools", "huge", "def run(data):\n    return 'x' * data['n']\n", timeout=600)
    runtime = make_runtime()
    assert runtime.call("huge", {"n": 3}) == "xxx"
    first = runtime.workers.pids()
    with pytest.raises(ToolOutputTooLargeError) as info:
        runtime.call("huge", {"n": 100_000_000})
    assert "huge: reply (stdout) passed max_output_bytes (16777216 bytes)" in info.value.message
    assert runtime.call("huge", {"n": 2}) == "xx"
    assert runtime.workers.pids() != first
    assert _outcomes(runtime, "huge") == ["ok", "output_too_large", "ok"]


def test_a_64_mb_reply_under_a_raised_cap_is_read_within_its_timeout(workspace: Path, make_runtime) -> None:
    """Reading the reply was quadratic (20 MB took 5.5 s, 100 MB 109 s): 64 MB did not fit in 30 s."""
    (workspace / "tooldeck.toml").write_text(f"[calls]\nmax_output_bytes = {80 << 20}\n")
    python_tool(workspace / "tools", "huge", "def run(data):\n    return 'x' * data['n']\n", timeout=30,
                track_usage=False)
    runtime = make_runtime()
    assert len(runtime.call("huge", {"n": 64 << 20})) == 64 << 20


@pytest.mark.parametrize(("value", "message"), [('"lots"', "must be a whole number, got 'lots'"),
                                              ("0", r"must be a positive integer \(bytes\), got 0")])
def test_a_bad_cap_in_tooldeck_toml_is_one_line_naming_the_setting(workspace: Path, make_runtime, value: str,
                                                                   message: str) -> None:
    (workspace / "tooldeck.toml").write_text(f"[calls]\nmax_output_bytes = {value}\n")
    exec_tool(workspace / "tools", "small", "print(1)\n")
    runtime = make_runtime()
    with pytest.raises(Exception, match=r"tooldeck.toml: \[calls\] max_output_bytes " + message):
        runtime.call("small", {})


YES_SCRIPT = """
import resource, sys
from tools.errors import ToolOutputTooLargeError
from tools.runtime import Runtime

with Runtime(sys.argv[1]) as runtime:
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    try:
        runtime.call("yes_default", {})
    except ToolOutputTooLargeError as exc:
        print(exc.error_class, (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) // 1024, flush=True)
"""


def test_yes_at_the_default_cap_keeps_the_runtime_small(workspace: Path) -> None:
    """`yes` for 5 s grew a runtime to 6.2 GB; now its peak grows by about the cap (16 MiB) at most twice."""
    import subprocess
    import sys

    write_tool(workspace / "tools", "yes_default", {
        "name": "yes_default", "type": "executable", "description": "prints y forever",
        "executable": {"command": "yes", "timeout": 20},
    })
    root = Path(__file__).resolve().parents[1]
    # a safety net for a broken build: without the cap this process would eat the machine's memory
    argv = ["prlimit", f"--as={3 << 30}", "--", sys.executable, "-c", YES_SCRIPT, str(workspace)]
    done = subprocess.run(argv, cwd=root, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    outcome, grown_mb = done.stdout.split()
    assert outcome == "output_too_large"
    assert int(grown_mb) < 100, f"peak RSS grew by {grown_mb} MB"


# -- manifests: bounded before anything walks or serialises them ----------------------------------

def alias_bomb(name: str, levels: int = 9, width: int = 9) -> str:
    """A ~1 KB manifest whose `examples` expand to width**levels strings ("billion laughs")."""
    lines = [f"name: {name}", "type: python", f"entry: {name}.py:run", 'l0: &l0 "lol"']
    for level in range(1, levels + 1):
        lines.append(f"l{level}: &l{level} [" + ", ".join([f"*l{level - 1}"] * width) + "]")
    lines.append(f"examples: [*l{levels}]")
    return "\n".join(lines) + "\n"


BOMB_SCRIPT = """
import sys, tracemalloc
from pathlib import Path
from tools.catalog import Catalog
from tools.catalog.discovery import Root

catalog = Catalog([Root(Path(sys.argv[1]), "workspace")], None)
tracemalloc.start()
catalog.discover()
catalog.load_all()
peak = tracemalloc.get_traced_memory()[1]
entry = catalog.find("bomb")
print(peak // (1 << 20))
print(entry.status)
print(entry.error)
"""


def test_an_alias_bomb_is_refused_naming_the_file_with_little_memory(workspace: Path) -> None:
    """9 levels x 9 aliases: the loader's cache serialised it (640 MB at 30 s and growing)."""
    import subprocess
    import sys

    bomb = workspace / "tools" / "bomb.yaml"
    bomb.write_text(alias_bomb("bomb"))
    assert bomb.stat().st_size < 1024
    root = Path(__file__).resolve().parents[1]
    argv = ["prlimit", f"--as={3 << 30}", "--", sys.executable, "-c", BOMB_SCRIPT, str(workspace / "tools")]
    done = subprocess.run(argv, cwd=root, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    peak_mb, status, error = done.stdout.splitlines()
    assert status == "error"
    assert error == f"{bomb}: manifest expands to more than 100000 YAML nodes (nested aliases?); refused"
    assert int(peak_mb) < 50


def test_node_counting_follows_aliases_and_cycles() -> None:
    from tools.catalog import count_nodes, parse_manifest_text
    from tools.errors import ManifestError

    shared = ["x"] * 10
    assert count_nodes({"a": shared, "b": shared}) == 1 + 2 + 2 * 11
    loop: list = []
    loop.append(loop)
    assert count_nodes(loop, limit=1000) == 1001
    with pytest.raises(ManifestError, match="more than 100000 YAML nodes"):
        parse_manifest_text("a: &a [*a]\n", "cyclic.yaml")
    with pytest.raises(ManifestError, match="more than 100000 YAML nodes"):
        parse_manifest_text(alias_bomb("bomb", levels=6), "six.yaml")  # 9**6 = 531,441
    assert parse_manifest_text(alias_bomb("ok", levels=4), "four.yaml")["name"] == "ok"  # ~15,000 nodes


def test_a_huge_manifest_is_refused_without_reading_it(tmp_path: Path) -> None:
    """A 600 MB file (here sparse) cost 636 MB: it was read whole before the size check."""
    import tracemalloc

    from tools.catalog import read_manifest_data
    from tools.errors import ManifestError

    big = tmp_path / "big.yaml"
    with open(big, "wb") as fh:
        fh.truncate(600 << 20)
    tracemalloc.start()
    try:
        with pytest.raises(ManifestError) as info:
            read_manifest_data(big)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert str(info.value) == f"{big}: manifest is {600 << 20} bytes; the limit is {1 << 20}"
    assert peak < 2 << 20


def test_a_fifo_named_like_a_manifest_is_refused_at_once(tmp_path: Path) -> None:
    """Hot reload reads any new `*.yaml`: opening a FIFO would block the watcher thread for good."""
    import os

    from tools.catalog import read_manifest_data
    from tools.errors import ManifestError

    fifo = tmp_path / "pipe.yaml"
    os.mkfifo(fifo)
    with pytest.raises(ManifestError, match="pipe.yaml: not a regular file"):
        read_manifest_data(fifo)
