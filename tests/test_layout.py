"""The tree shows the architecture: rooms by capability, one-way dependencies, no import cycles."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
ROOMS = ("catalog", "invoke", "buffers", "recovery", "evolution", "spec", "cli", "mcp")
DATA_FOLDERS = ("demo", "builtins")  # tool catalogs shipped as data, not code rooms


def module_files() -> dict[str, Path]:
    """Every module of `tools/` and `state/` by dotted name (the data folders excluded)."""
    found: dict[str, Path] = {}
    for top in ("tools", "state"):
        for path in (REPO / top).rglob("*.py"):
            parts = path.relative_to(REPO).with_suffix("").parts
            if top == "tools" and len(parts) > 2 and parts[1] in DATA_FOLDERS:
                continue
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            found[name] = path
    return found


def imports_of(name: str, path: Path, known: dict[str, Path]) -> set[str]:
    """Modules of ours that `name` imports anywhere: module level, inside functions, under TYPE_CHECKING."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module or ""
            for alias in node.names:
                sub = f"{source}.{alias.name}"
                found.add(sub if sub in known else source)
    return {m for m in found if m in known and m != name}


def import_graph() -> dict[str, set[str]]:
    known = module_files()
    return {name: imports_of(name, path, known) for name, path in known.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of any length, as the list of modules around it, or None."""
    white, grey, black = 0, 1, 2
    colour = dict.fromkeys(graph, white)
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        colour[node] = grey
        stack.append(node)
        for nxt in sorted(graph[node]):
            if colour[nxt] == grey:
                return stack[stack.index(nxt):] + [nxt]
            if colour[nxt] == white and (cycle := visit(nxt)):
                return cycle
        stack.pop()
        colour[node] = black
        return None

    for node in sorted(graph):
        if colour[node] == white and (cycle := visit(node)):
            return cycle
    return None


def test_the_cycle_finder_finds_cycles() -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_no_import_cycle_of_any_length_in_tools_and_state() -> None:
    cycle = find_cycle(import_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def statements(path: Path) -> list[str]:
    """The module each import statement names (`from a.b import c` names `a.b`)."""
    out: list[str] = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and not node.level:
            out.append(node.module or "")
    return out


def test_dependencies_point_one_way() -> None:
    """tui -> tools -> state. `python -m tools` is the application's entry point, not the library,
    so it alone may start the dashboard."""
    for name, path in module_files().items():
        named = statements(path)
        if name.startswith("state"):
            assert not [m for m in named if m.split(".")[0] in ("tools", "tui")], f"{name} imports tools or tui"
        elif name != "tools.__main__":
            assert not [m for m in named if m.split(".")[0] == "tui"], f"{name} imports tui"


def test_rooms_import_each_other_only_through_their_front_door() -> None:
    """Inside a room modules import their siblings; from anywhere else, only the room's package."""
    for name, path in module_files().items():
        own = name.split(".")[:2]
        for module in statements(path):
            parts = module.split(".")
            if len(parts) < 3 or parts[0] != "tools" or parts[1] not in ROOMS or parts[:2] == own:
                continue
            assert module in ALLOWED_BACK_DOORS, f"{name} imports {module}: import it from tools.{parts[1]}"


#: Modules named by path on purpose: entry points run as scripts, not imported for names.
ALLOWED_BACK_DOORS = {
    "tools.cli.shim",               # the builtin tools' thin executables
}


def test_few_modules_directly_in_tools_and_each_room_says_what_it_is_for() -> None:
    top = [p for p in (REPO / "tools").glob("*.py")]
    assert len(top) <= 12, sorted(p.name for p in top)
    for room in ROOMS:
        init = REPO / "tools" / room / "__init__.py"
        doc = ast.get_docstring(ast.parse(init.read_text()))
        assert doc and len(doc) > 40, f"tools/{room}/__init__.py says what the room is for"


def test_every_module_imports_alone_in_a_fresh_interpreter() -> None:
    """Import order cannot hide a partial-initialisation error: each module first, on its own."""
    names = sorted(n for n in module_files() if not n.endswith("__main__"))
    code = (
        "import importlib, sys\n"
        f"names = {names!r}\n"
        "bad = []\n"
        "for n in names:\n"
        "    for m in [m for m in sys.modules if m.split('.')[0] in ('tools', 'state')]:\n"
        "        del sys.modules[m]\n"
        "    try:\n"
        "        importlib.import_module(n)\n"
        "    except Exception as exc:\n"
        "        bad.append(f'{n}: {type(exc).__name__}: {exc}')\n"
        "print('\\n'.join(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=REPO)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == ""


def _sources(*tops: str) -> dict[str, str]:
    return {str(path.relative_to(REPO)): path.read_text() for top in tops for path in (REPO / top).rglob("*.py")}


def test_one_module_writes_events() -> None:
    """Events are written by state/events.py alone, on the store's clock, so events of every node
    order on one clock and each caller keeps its own transaction through `emit_in`."""
    writers = sorted(name for name, text in _sources("tools", "state", "tui").items()
                     if re.search(r"INSERT\s+INTO\s+events\b", text, re.IGNORECASE))
    assert writers == ["state/events.py"]


def test_one_module_writes_the_runtimes_table() -> None:
    """Who is live: heartbeats, leaving and pruning of `runtimes` rows are state/runtimes.py's alone (the
    runtime's presence and the MCP client sessions a serving runtime holds call it)."""
    writers = sorted(name for name, text in _sources("tools", "state", "tui").items()
                     if re.search(r"(INSERT\s+INTO|UPDATE|DELETE\s+FROM)\s+runtimes\b", text, re.IGNORECASE))
    assert writers == ["state/runtimes.py"]


def test_no_caller_knows_the_backend() -> None:
    """SQL fragments that differ between SQLite and PostgreSQL (`dialect`) are used inside state/ only."""
    leaks = sorted(name for name, text in _sources("tools", "tui").items() if re.search(r"\bdialect\b", text))
    assert leaks == []


def test_recovery_and_evolution_speak_domain_verbs_their_sql_lives_in_state() -> None:
    """Failure tracking's tables are state/failures.py, proposals and promotions state/proposals.py and
    state/promotions.py, runtimes state/runtimes.py: tools/recovery, tools/evolution, the runtime and
    its presence call them and write no SQL of their own."""
    sources = {**_sources("tools/recovery"), **_sources("tools/evolution")}
    sources.update({n: t for n, t in _sources("tools").items() if n in ("tools/presence.py", "tools/runtime.py")})
    offenders = sorted(name for name, text in sources.items()
                       if re.search(r"\.(execute|executemany|query|query_one)\(", text))
    assert offenders == []


def test_the_runtime_is_what_its_rooms_are_typed_against() -> None:
    """Rooms take a `tools.host.RuntimeHost`; `Runtime` must satisfy it (mypy checks the assignment;
    here every member the protocol names exists on a runtime), and no room reaches into a private one."""
    import inspect

    from tools.host import RuntimeHost
    from tools.runtime import Runtime

    members = {name for name in dir(RuntimeHost) if not name.startswith("_")} | set(RuntimeHost.__annotations__)
    runtime_members = set(dir(Runtime)) | set(inspect.signature(Runtime.__init__).parameters)
    instance_attributes = re.findall(r"self\.([a-z]\w*)(?:: [^=]+)? = ", inspect.getsource(Runtime.__init__))
    missing = sorted(members - runtime_members - set(instance_attributes))
    assert missing == []
    private = sorted(name for name, text in {**_sources("tools"), **_sources("tui")}.items()
                     if name != "tools/runtime.py" and re.search(r"\bruntime\._[a-z]", text))
    assert private == []
