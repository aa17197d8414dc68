"""The CLI as a user runs it: real processes, exit codes, one-line errors."""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.helpers import exec_tool, python_tool


def tooldeck(*args: str, ws: Path, input: str | None = None, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "tools", "--workspace", str(ws), *args], capture_output=True, text=True,
                          input=input, timeout=timeout)


@pytest.fixture
def ws(workspace: Path) -> Path:
    python_tool(workspace / "tools", "echo", "def run(d):\n    return {'echo': d}\n",
                input_schema={"text": {"type": "string", "required": True}},
                tests=[{"input": {"text": "a"}, "expect": {"echo": {"text": "a"}}},
                       {"input": {}, "expect_error": "bad input"}])
    (workspace / "tools" / "broken.yaml").write_text("name: broken\ntype: [\n")
    return workspace


def test_tools_json_lists_status(ws: Path) -> None:
    out = tooldeck("tools", "--json", ws=ws)
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    rows = {r["id"]: r for r in data["tools"]}
    assert rows["echo"]["status"] == "ready" and rows["echo"]["type"] == "python"
    assert rows["broken"]["status"] == "error" and "invalid YAML" in rows["broken"]["error"]
    assert data["summary"].startswith("Ready:")


def test_tools_listing_succeeds_with_broken_tools_and_check_fails_on_them(ws: Path) -> None:
    out = tooldeck("tools", "--wait", ws=ws)
    assert "echo" in out.stdout and "broken" in out.stdout
    assert out.returncode == 0  # the listing itself worked, broken tools and all
    assert tooldeck("tools", "--json", ws=ws).returncode == 0
    check = tooldeck("tools", "--check", ws=ws)
    assert check.returncode == 1 and "1 tool in error" in check.stderr
    (ws / "tools" / "broken.yaml").unlink()
    assert tooldeck("tools", "--check", ws=ws).returncode == 0


def test_a_tool_broken_on_disk_serves_nothing_here_and_names_the_version_a_running_runtime_keeps(
        workspace: Path, make_runtime) -> None:
    """A serving runtime keeps the last good version through a broken edit; `tooldeck tools` (a new process that
    cannot load the file) shows no version and serves `-`, not `global`, and says what still serves."""
    exec_tool(workspace / "tools", "echo", "import sys\nprint(sys.stdin.read(), end='')\n")
    serving = make_runtime(serve=True)
    assert serving.call("echo", {"a": 1}) == {"a": 1}
    (workspace / "tools" / "echo.yaml").write_text("name: echo\nversion: [1.0\n  broken: :\n")
    out = tooldeck("tools", ws=workspace)
    assert out.returncode == 0, out.stderr
    row = next(line.split("\t") for line in out.stdout.splitlines() if line.startswith("echo\t"))
    assert row[1:4] == ["error", "", "-"], row
    assert row[7].startswith("broken on disk: a runtime that loaded it before keeps serving its last good version 1.0.0"
                             " until the files are fixed; a new one cannot load it: ") and "invalid YAML" in row[7], row[7]
    listed = json.loads(tooldeck("tools", "--json", ws=workspace).stdout)["tools"]
    echo = next(r for r in listed if r["id"] == "echo")
    assert echo["serves"] == [] and echo["version"] == "" and echo["last_good_version"] == "1.0.0"
    assert serving.call("echo", {"a": 2}) == {"a": 2}  # what it said: the running runtime still serves 1.0.0


def test_piped_tables_never_split_an_id(ws: Path) -> None:
    """Without a terminal, one row per line, tab-separated: grep counts whole ids."""
    long_id = "a_tool_with_a_long_identifier_that_would_wrap_at_eighty_col"
    python_tool(ws / "tools", long_id, "def run(d):\n    return d\n")
    out = tooldeck("tools", "--wait", ws=ws)
    lines = out.stdout.splitlines()
    assert lines[0].split("\t")[:3] == ["tool", "status", "version"]
    assert sum(long_id in line for line in lines) == 1
    assert sum("extract_spec_from_file" in line for line in lines) == 1
    row = next(line.split("\t") for line in lines if line.startswith(long_id + "\t"))
    assert row[1] == "ready" and row[3] == "global"  # which version serves, and for whom
    assert all(len(line.split("\t")) == 9 for line in lines)


def test_call_exit_codes_and_one_line_errors(ws: Path) -> None:
    ok = tooldeck("call", "echo", '{"text": "hi"}', ws=ws)
    assert ok.returncode == 0 and json.loads(ok.stdout) == {"echo": {"text": "hi"}}
    stdin = tooldeck("call", "echo", "-", ws=ws, input='{"text": "from stdin"}')
    assert json.loads(stdin.stdout) == {"echo": {"text": "from stdin"}}
    bad_json = tooldeck("call", "echo", "{oops", ws=ws)
    assert bad_json.returncode == 2 and bad_json.stderr.count("\n") == 1 and "not valid JSON" in bad_json.stderr
    bad_input = tooldeck("call", "echo", '{"nope": 1}', ws=ws)
    assert bad_input.returncode == 2 and "bad input" in bad_input.stderr  # bad_input, as '{oops' is
    unknown = tooldeck("call", "ech", "{}", ws=ws)
    assert unknown.returncode == 2 and "did you mean echo" in unknown.stderr
    escape = tooldeck("call", "../../etc/passwd", "{}", ws=ws)
    assert escape.returncode == 2 and "invalid tool id" in escape.stderr
    usage = tooldeck("call", ws=ws)
    assert usage.returncode == 2
    as_json = tooldeck("call", "echo", '{"nope": 1}', "--json", ws=ws)
    assert as_json.returncode == 2 and json.loads(as_json.stdout)["error_class"] == "bad_input"
    malformed = tooldeck("--json", "call", "echo", '{"text": [1,2', ws=ws)  # the class call_tool gives the same text
    assert malformed.returncode == 2 and json.loads(malformed.stdout)["error_class"] == "bad_input", malformed.stdout


def test_empty_stdin_or_an_empty_argument_is_bad_input_and_no_argument_is_an_empty_object(ws: Path) -> None:
    """`echo -n '' | tooldeck call greet -` read nothing as `{}` and called the tool, which answered that its
    input lacked `name`: an empty pipe (or an unset shell variable as the argument) is not the `{}` leaving the
    argument out means. The tool is never called."""
    python_tool(ws / "tools", "greet", "def run(d):\n    return {'hello': d.get('name', 'nobody')}\n")
    for stdin in ("", "  \n\t"):
        out = tooldeck("call", "greet", "-", ws=ws, input=stdin)
        assert out.returncode == 2 and out.stdout == "", (stdin, out.stdout)
        assert out.stderr == "tooldeck: input on stdin is empty: no JSON was given\n", out.stderr
        as_json = tooldeck("--json", "call", "greet", "-", ws=ws, input=stdin)
        assert as_json.returncode == 2 and json.loads(as_json.stdout) == {
            "ok": False, "error": "input on stdin is empty: no JSON was given", "error_class": "bad_input"}
    for argument in ("", " "):
        out = tooldeck("call", "greet", argument, ws=ws)
        assert out.returncode == 2 and out.stderr == "tooldeck: input is empty: no JSON was given\n", out.stderr
    resilient = tooldeck("resilient", "greet someone by name", "-", ws=ws, input="")
    assert resilient.returncode == 2 and "input on stdin is empty: no JSON was given" in resilient.stderr
    assert json.loads(tooldeck("call", "greet", ws=ws).stdout) == {"hello": "nobody"}  # left out: {}
    assert json.loads(tooldeck("call", "greet", "-", ws=ws, input='{"name": "Ada"}').stdout) == {"hello": "Ada"}
    from tests.helpers import state_rows

    assert [r["n"] for r in state_rows(ws, "SELECT COUNT(*) AS n FROM calls WHERE tool_id = 'greet'")] == [2]


def test_test_command(ws: Path) -> None:
    out = tooldeck("test", "echo", ws=ws)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "2 passed, 0 failed" in out.stdout


def test_a_failing_manifest_test_is_one_json_failure(ws: Path) -> None:
    """`test --json` whose test fails prints the one `{"ok": false}` object every --json failure prints, results and all."""
    python_tool(ws / "tools", "off_by_one", "def run(d):\n    return {'y': d['x'] + 1}\n",
                tests=[{"name": "adds nothing", "input": {"x": 1}, "expect": {"y": 1}}, {"input": {"x": 1}, "expect": {"y": 2}}])
    out = tooldeck("--json", "test", "off_by_one", ws=ws)
    assert out.returncode == 1, out.stderr
    data = json.loads(out.stdout)
    assert data["ok"] is False and data["error_class"] == "test_failed"
    assert data["error"] == "off_by_one: 1 of 2 tests failed, first 'adds nothing': expected {\"y\": 1}, got {\"y\": 2}"
    assert (data["passed"], data["failed"], [r["passed"] for r in data["results"]]) == (1, 1, [False, True])
    assert out.stderr == f"tooldeck: {data['error']}\n"  # one line, as every error
    text = tooldeck("test", "off_by_one", ws=ws)
    assert text.returncode == 1 and "1 passed, 1 failed" in text.stdout and text.stderr == out.stderr
    passing = tooldeck("--json", "test", "echo", ws=ws)
    assert passing.returncode == 0 and "ok" not in json.loads(passing.stdout)


def _children(pid: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as fh:
                    fields = fh.read().rsplit(")", 1)[1].split()
                if int(fields[1]) == pid:
                    found.append(int(entry))
            except (FileNotFoundError, ProcessLookupError, IndexError):
                continue
    return found


def test_serve_stops_cleanly_on_sigterm(ws: Path) -> None:
    proc = subprocess.Popen([sys.executable, "-m", "tools", "--workspace", str(ws), "serve"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        lines = []
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            lines.append(line)
            if line.startswith("Ready:"):
                break
        assert any(line.startswith("Ready:") for line in lines), lines
        # a call from another process is served while serve runs
        assert tooldeck("call", "echo", '{"text": "x"}', ws=ws).returncode == 0
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
        assert proc.returncode == 0, err
        assert "stopping" in out
        assert _children(proc.pid) == []
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_missing_workspace_is_a_usage_error(tmp_path: Path) -> None:
    out = tooldeck("tools", ws=tmp_path / "no" / "such")
    assert out.returncode == 2 and "does not exist" in out.stderr
    assert not (tmp_path / "no").exists()


def test_global_options_anywhere(ws: Path, tmp_path: Path) -> None:
    after = subprocess.run([sys.executable, "-m", "tools", "tools", "--workspace", str(ws), "--json"],
                           capture_output=True, text=True, timeout=60)
    assert after.returncode == 0, after.stderr
    assert "echo" in {r["id"] for r in json.loads(after.stdout)["tools"]}
    short = subprocess.run([sys.executable, "-m", "tools", "--json", "call", "echo", '{"text": "x"}', "-w", str(ws)],
                           capture_output=True, text=True, timeout=60)
    assert short.returncode == 0 and json.loads(short.stdout) == {"echo": {"text": "x"}}
    nested = subprocess.run([sys.executable, "-m", "tools", "buffer", "status", "--workspace", str(ws), "--json"],
                            capture_output=True, text=True, timeout=60)
    assert nested.returncode == 0 and json.loads(nested.stdout) == []


def test_one_exit_code_rule(ws: Path) -> None:
    """0 success, 1 a tool or operation failed, 2 bad usage / unknown id / missing file."""
    cases = {
        ("buffer", "status", "nope"): 2,            # unknown buffer
        ("review", "show", "999"): 2,               # unknown proposal
        ("review", "revalidate", "999"): 2,
        ("review", "revalidate", "../1"): 2,
        ("spec", "missing.md"): 2,                  # missing file
        ("generate", "missing.md", "--tool", "x"): 2,
        ("buffer", "write", "b", "1", "--max-size", "-5"): 2,
        ("failures", "../x"): 2,
        ("fail", "../x", "--scenario", "s", "--error", "e"): 2,
        ("failures", "nope"): 2,
        ("call", "echo", "{}", "--timeout", "-1"): 2,
        ("call", "echo", "{}", "--timeout", "0"): 2,
        ("call", "echo", "{}", "--timeout", "nan"): 2,
        ("call", "echo", '{"nope": 1}'): 2,         # input against the schema: bad_input, like '{bad'
        ("call", "echo", "{bad"): 2,
        ("rollback", "echo", "9.9.9"): 2,           # a version that names nothing
        ("rollback", "echo", "1.0.0"): 0,           # already served: a no-op, not an error
        ("buffer", "write", "b", "1", "--pass-through", "nosuch"): 2,  # an unknown id
        ("call", "nope", "{}"): 2,
        ("evolve", "nope", "x"): 2,
        ("failures",): 0,
    }
    for argv, code in cases.items():
        out = tooldeck(*argv, ws=ws)
        assert out.returncode == code, (argv, out.returncode, out.stderr)
        if code:
            assert out.stderr.count("\n") == 1 or "usage:" in out.stderr, (argv, out.stderr)
    from tools.errors import EXIT_CODES

    helped = tooldeck("--help", ws=ws).stdout
    assert all(error_class in helped for error_class in EXIT_CODES)  # the table is in --help
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    assert all(f"`{error_class}`" in readme for error_class in EXIT_CODES)  # and in the README
    evolve = tooldeck("evolve", "nope", "x", ws=ws)
    assert "unknown tool" in evolve.stderr and "model" not in evolve.stderr  # the tool first, then the model
    # a refused timeout is the caller's mistake: nothing was recorded against the tool
    scores = json.loads(tooldeck("scores", "--json", ws=ws).stdout)
    assert all(r["failures"] <= 1 for r in scores if r["tool_id"] == "echo")  # only the bad-input call above


def test_json_errors_are_one_object_on_stdout(ws: Path) -> None:
    for argv in (("call", "echo", "{bad"), ("test", "nope"), ("evolve", "nope", "x"), ("spec", "missing.md"),
                 ("rollback", "echo", "9.9.9"), ("call", "echo", "{}", "--timeout", "-1"), ("review", "show", "42")):
        out = tooldeck(*argv, "--json", ws=ws)
        assert out.returncode in (1, 2), argv
        data = json.loads(out.stdout)
        assert data["ok"] is False and data["error"] and data["error_class"], (argv, data)
        assert out.stderr.startswith("tooldeck"), (argv, out.stderr)


def test_help_says_everything(ws: Path) -> None:
    from tools.cli import _subparsers, build_parser

    parser = build_parser()
    for p in [parser, *_subparsers(parser)]:
        for action in p._actions:
            if isinstance(action, (argparse._HelpAction, argparse._SubParsersAction)):
                continue
            assert action.help, f"{p.prog}: {action.option_strings or action.dest} has no help"
    top = tooldeck("--help", ws=ws).stdout
    assert "opens the dashboard" in top and "exit codes" in top and "examples" in top
    version = subprocess.run([sys.executable, "-m", "tools", "--version"], capture_output=True, text=True, timeout=60)
    assert version.returncode == 0 and version.stdout.startswith("tooldeck ")
    assert "seconds" in tooldeck("call", "--help", ws=ws).stdout


def test_demo_workspace_only_inside_an_existing_parent(tmp_path: Path) -> None:
    from tools.cli.demo_workspace import demo_folder
    from tools.errors import UsageError

    with pytest.raises(UsageError, match="parent folder .* does not exist"):
        demo_folder(str(tmp_path / "no" / "such"))
    assert not (tmp_path / "no").exists()
    busy = tmp_path / "project"
    busy.mkdir()
    (busy / "notes.txt").write_text("mine")
    with pytest.raises(UsageError, match="not empty and not a tooldeck workspace"):
        demo_folder(str(busy))
    fresh, created = demo_folder(str(tmp_path / "demo"))
    assert created and fresh.is_dir()
    (busy / "tooldeck.toml").write_text("")
    assert demo_folder(str(busy)) == (busy.resolve(), False)
    out = subprocess.run([sys.executable, "-m", "tools", "demo", "--workspace", str(tmp_path / "x" / "y")],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 2 and not (tmp_path / "x").exists()  # refused (no terminal here, or the path)


def test_approve_needs_an_explicit_scope(ws: Path) -> None:
    out = tooldeck("review", "approve", "1", "--diff", "abc", ws=ws)
    assert out.returncode == 2 and "--scope" in out.stderr
    out = tooldeck("review", "approve", "1", "--diff", "abc", "--scope", "s-nobody", ws=ws)
    assert out.returncode == 2 and "live sessions" in out.stderr, out.stderr


def test_every_error_class_has_an_exit_code() -> None:
    """Exit codes come from one table by error class (tools.errors.EXIT_CODES), not from exception types:
    every class the code raises is in it."""
    import re

    from tools.errors import EXIT_CODES, exit_code

    repo = Path(__file__).resolve().parents[1]
    raised = set()
    for path in (repo / "tools").rglob("*.py"):
        raised.update(re.findall(r'error_class\s*=\s*"([a-z_]+)"', path.read_text()))
    raised -= {"reported"}  # mark_tool_failure's default class: recorded, never raised
    assert raised <= set(EXIT_CODES), sorted(raised - set(EXIT_CODES))
    assert {exit_code(c) for c in ("bad_usage", "bad_id", "unknown_tool", "bad_input", "stale_review")} == {2}
    assert exit_code("timeout") == 1 and exit_code("something_new") == 1


def test_json_nested_past_the_parsers_depth_is_bad_input_not_a_crash(ws: Path) -> None:
    """Python's parser raises RecursionError on deep nesting: every place input JSON is read says so in one line."""
    deep = "[" * 5000 + "]" * 5000
    out = tooldeck("call", "echo", "-", ws=ws, input=deep)
    assert out.returncode == 2 and out.stderr == "tooldeck: input on stdin is not valid JSON: nested too deeply\n"
    out = tooldeck("--json", "call", "echo", "-", ws=ws, input=deep)
    assert out.returncode == 2 and json.loads(out.stdout) == {
        "ok": False, "error": "input on stdin is not valid JSON: nested too deeply", "error_class": "bad_input"}
    out = tooldeck("buffer", "write", "ok", "-", ws=ws, input=deep + "\n")
    assert out.returncode == 2 and out.stderr.count("\n") == 1 and "not valid JSON: nested too deeply" in out.stderr
    assert "Traceback" not in out.stderr
    from tools import Runtime
    from tools.errors import ToolInputError

    with Runtime(ws) as runtime, pytest.raises(ToolInputError, match="echo: input is not valid JSON: nested too deeply"):
        runtime.call("echo", deep)


def test_non_json_stdout_against_an_output_schema_says_the_output_is_not_json(ws: Path) -> None:
    schema = {"type": "object", "required": ["rows"]}
    exec_tool(ws / "tools", "chatty", "print('this is not json')\n", output_schema=schema)
    exec_tool(ws / "tools", "shapeless", "print('[1, 2]')\n", output_schema=schema)
    out = tooldeck("call", "chatty", ws=ws)
    assert out.returncode == 1 and out.stderr == "tooldeck: chatty: output is not JSON: 'this is not json'\n"
    assert json.loads(tooldeck("--json", "call", "chatty", ws=ws).stdout)["error_class"] == "bad_output"
    out = tooldeck("call", "shapeless", ws=ws)  # JSON of the wrong shape: the schema's complaint, about the output
    assert out.returncode == 1 and out.stderr == "tooldeck: shapeless: output violates output_schema: output must be object\n"


def test_serve_refuses_json_it_cannot_keep(ws: Path) -> None:
    """--json promises one JSON value on stdout; serve's log until a signal is not one, so it says so at once."""
    for args in (("--json", "serve"), ("serve", "--json")):
        out = tooldeck(*args, ws=ws, timeout=30)
        assert out.returncode == 2 and out.stderr.count("\n") == 1 and "serve has no --json output" in out.stderr
        assert json.loads(out.stdout) == {"ok": False, "error": out.stderr.removeprefix("tooldeck: ").strip(),
                                          "error_class": "bad_usage"}


def test_the_base_version_tools_shows_is_accepted_wherever_version_is(ws: Path) -> None:
    """Each command loads the catalog lazily: the base version is known from its manifest, read when the tool loads."""
    base = next(r["version"] for r in json.loads(tooldeck("tools", "--json", ws=ws).stdout)["tools"] if r["id"] == "echo")
    assert base == "1.0.0"
    call = tooldeck("call", "echo", '{"text": "a"}', "--version", base, ws=ws)
    assert call.returncode == 0 and json.loads(call.stdout) == {"echo": {"text": "a"}}, call.stderr
    for args in (("test", "echo"), ("fail", "echo", "--scenario", "s", "--error", "boom"),
                 ("control", "disable", "echo"), ("control", "enable", "echo")):
        out = tooldeck(*args, "--version", base, ws=ws)
        assert out.returncode == 0, (args, out.stderr)
    wrong = tooldeck("call", "echo", '{"text": "a"}', "--version", "9.9.9", ws=ws)
    assert wrong.returncode == 2 and wrong.stderr == (
        "tooldeck: tool 'echo' has no version 9.9.9 (base version 1.0.0, known evolved versions: none)\n")


def test_a_one_line_error_keeps_what_a_tool_wrote_after_a_carriage_return(tmp_path: Path) -> None:
    """`call`'s one-line error ended the message at a CR (str.splitlines), so what a tool wrote after one (`\\r` then
    text that would overwrite the line on a terminal) was not shown at all; it is now spelled out and kept."""
    ws = tmp_path / "ws"
    python_tool(ws / "tools", "cr", "def run(data):\n    raise RuntimeError('boom \\r\\x1b[31mhidden after cr')\n")
    exec_tool(ws / "tools", "cr_exit", "import sys\nsys.stdin.read()\nsys.stderr.write('went \\rwrong after cr\\n')\nsys.exit(3)\n")
    for tool, after in (("cr", "\\r\\x1b[31mhidden after cr"), ("cr_exit", "went \\rwrong after cr")):
        out = subprocess.run([sys.executable, "-m", "tools", "-w", str(ws), "call", tool, "{}"], capture_output=True, text=True,
                             timeout=120, cwd=Path(__file__).resolve().parents[1])
        assert out.returncode == 1 and out.stderr.count("\n") == 1 and after in out.stderr, out.stderr
