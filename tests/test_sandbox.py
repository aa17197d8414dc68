"""Candidates run through the real sandbox (real processes, real namespaces, real limits), with each launcher.

The escapes measured with model-written candidates are in test_evolution_escapes.py; here the
cascade is driven directly, plus the launchers themselves: what the candidate sees, that it dies
with the runtime, a runtime that is not root, and a kernel that refuses user namespaces.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.evolution_helpers import host_folder_fixture, launcher_name_fixture  # noqa: F401
from tests.messages_server import FAKE_KEY
from tools.catalog.manifest import Manifest
from tools.evolution.launchers import NOBODY, select
from tools.evolution.sandbox import run_cases
from tools.evolution.stages import Cascade, Inputs

ROOT = Path(__file__).resolve().parents[1]
LAUNCHERS_PY = ROOT / "tools" / "evolution" / "launchers.py"


def candidate(tmp_path: Path, code: str, tests: list[dict[str, Any]], *, kind: str = "python") -> Path:
    folder = tmp_path / "evolved" / "probe" / "1.1.0"
    folder.mkdir(parents=True)
    (folder / "probe_v1_1_0.py").write_text(textwrap.dedent(code))
    manifest: dict[str, Any] = {"name": "probe", "version": "1.1.0", "type": kind, "tests": tests}
    if kind == "python":
        manifest["entry"] = "probe_v1_1_0.py:run"
    else:
        manifest["executable"] = {"command": "python", "args": ["{tool_dir}/probe_v1_1_0.py"], "timeout": 5}
    (folder / "probe.yaml").write_text(yaml.safe_dump(manifest))
    return folder / "probe.yaml"


def validate(path: Path, *, timeout: float = 3.0, memory_mb: int = 256, launcher: str = "auto") -> Cascade:
    inputs = Inputs("probe", "1.1.0", "probe_v1_1_0.py", None, False, [], [], timeout, memory_mb, launcher=launcher)
    cascade = Cascade(inputs, path, lambda: None, lambda stage, message: None)
    cascade.run()
    return cascade


def failed_stage(cascade: Cascade) -> dict[str, Any]:
    failed = [s for s in cascade.stages if not s["passed"]]
    assert failed, cascade.stages
    return failed[0]


def run_one(tmp_path: Path, code: str, launcher: str, data: Any = None, timeout: float = 5.0) -> Any:
    folder = tmp_path / "cand"
    folder.mkdir()
    (folder / "c.py").write_text(textwrap.dedent(code))
    manifest = Manifest(name="probe", version="1.1.0", type="python", entry="c.py:run")
    run = run_cases(folder, manifest, [data or {}], timeout=timeout, launcher=select(launcher))
    assert run.results[0].ok, (run.results[0].error, run.stderr_tail)
    return run.results[0].result


def test_a_good_candidate_passes_and_the_protections_that_held_are_recorded(tmp_path, launcher_name):
    path = candidate(tmp_path, "def run(data):\n    return {'double': data['n'] * 2}\n",
                     [{"input": {"n": i}, "expect": {"double": 2 * i}} for i in range(5)])
    cascade = validate(path, launcher=launcher_name)
    assert [s["passed"] for s in cascade.stages] == [True] * 5
    held = cascade.protections
    assert held["launcher"] == launcher_name and held["disk_quota_mb"] == 64 and held["shm_mb"] == 16
    for key in ("unprivileged_user", "no_network", "host_files_hidden", "read_only_root", "ipc_namespace", "pid_namespace",
                "unix_sockets_refused", "private_tmp", "rlimits", "clean_env", "audit_hook", "pid1_shows_no_host_path"):
        assert held[key] is True, key
    walls = {"seccomp": "libseccomp (17 syscalls denied, clone into a namespace refused)",
             "keyring": "fresh anonymous session keyring", "cgroup": held["cgroup"], "inode_limit": 16384}
    assert {key: held[key] for key in walls} == walls
    assert held["cgroup"] in ("cgroup v1: memory 256 MB (swap 0), pids 64", "cgroup v2: memory 256 MB (swap 0), pids 64")
    assert cascade.stages[2]["name"] == "tests" and cascade.stages[2]["sandbox"] == walls  # each sandboxed stage says so


def test_auto_picks_bubblewrap_when_it_works(launcher_name):
    assert select("auto").name == "bwrap"  # the strongest first: when bwrap is missing, this test is skipped or fails


def test_python_works_inside(tmp_path, launcher_name):
    """The candidate has a user name, a UTF-8 locale, a temp folder and multiprocessing; nothing of the host."""
    code = """
    import getpass, locale, multiprocessing, os, sys, tempfile

    def square(n):
        return n * n

    def run(data):
        fd, name = tempfile.mkstemp()
        os.write(fd, "é".encode()); os.close(fd)
        with multiprocessing.get_context("fork").Pool(2) as pool:
            squares = pool.map(square, [1, 2, 3])
        try:
            import yaml  # noqa: F401 - the runtime's site-packages are not there
            site = True
        except ImportError:
            site = False
        return {"user": getpass.getuser(), "uid": os.getuid(), "encoding": locale.getpreferredencoding(),
                "lang": os.environ.get("LANG"), "home": os.environ["HOME"], "tmp": tempfile.gettempdir(), "temp_file": name,
                "squares": squares, "site_packages": site, "root": sorted(os.listdir("/")), "etc": sorted(os.listdir("/etc")),
                "resolv": os.path.exists("/etc/resolv.conf"), "env": sorted(os.environ),
                "cwd": os.getcwd(), "free_mb": os.statvfs(os.environ["HOME"]).f_blocks * os.statvfs("/sandbox").f_frsize >> 20}
    """
    out = run_one(tmp_path, code, launcher_name)
    assert out["user"] == "nobody" and out["uid"] == NOBODY
    assert out["encoding"] == "UTF-8" and out["lang"] == "C.UTF-8"
    assert out["home"] == "/sandbox/work" and out["tmp"] == "/sandbox/tmp" and out["temp_file"].startswith("/sandbox/tmp/")
    assert out["squares"] == [1, 4, 9] and out["site_packages"] is False
    assert set(out["root"]) <= {"usr", "bin", "lib", "lib64", "lib32", "libx32", "sbin", "etc", "proc", "dev", "tmp", "sandbox",
                                "root", "opt", "home", "var"}  # the last four only as the parents of the interpreter's prefix
    assert out["etc"] == ["group", "ld.so.cache", "passwd"] and out["resolv"] is False
    assert out["cwd"] == "/sandbox/tool" and out["free_mb"] == 64
    assert not any("KEY" in name or "TOKEN" in name for name in out["env"])


def test_syntax_error_fails_at_compile(tmp_path):
    cascade = validate(candidate(tmp_path, "def run(data)\n    return 1\n", [{"input": {}, "expect": 1}]))
    stage = failed_stage(cascade)
    assert stage["name"] == "compile" and "SyntaxError" in stage["detail"] and "probe_v1_1_0.py:1" in stage["detail"]


def test_infinite_loop_is_killed_by_the_timeout(tmp_path, launcher_name):
    code = "def run(data):\n    while True:\n        pass\n"
    cascade = validate(candidate(tmp_path, code, [{"input": {}, "expect": 1}]), timeout=1.0, launcher=launcher_name)
    stage = failed_stage(cascade)
    assert stage["name"] == "tests" and "timed out after 1 s" in stage["detail"]


def test_infinite_loop_at_import_is_killed_too(tmp_path):
    cascade = validate(candidate(tmp_path, "while True:\n    pass\n", [{"input": {}, "expect": 1}]), timeout=1.0)
    assert "timed out" in failed_stage(cascade)["detail"]


def test_memory_bomb_is_stopped_by_the_limit(tmp_path):
    code = """
    def run(data):
        hoard = []
        while True:
            hoard.append(bytearray(50 * 1024 * 1024))
    """
    cascade = validate(candidate(tmp_path, code, [{"input": {}, "expect": 1}]), memory_mb=256)
    stage = failed_stage(cascade)
    assert stage["name"] == "tests" and "memory limit" in stage["detail"]


def test_writing_outside_its_folder_fails_and_writes_nothing(tmp_path, workspace, host_folder, launcher_name):
    open_dir = host_folder / "world-writable"
    open_dir.mkdir(mode=0o1777)
    open_dir.chmod(0o1777)
    outside = [workspace / "stolen.txt", open_dir / "escape.txt", Path("/var/tmp/tooldeck-escape.txt")]
    code = """
    def run(data):
        with open(data["path"], "w") as fh:
            fh.write("escaped")
        return {"wrote": True}
    """
    tests = [{"input": {"path": str(p)}, "expect": {"wrote": True}} for p in outside]
    tests.append({"input": {"path": "inside.txt"}, "expect": {"wrote": True}})  # its own folder is fine
    tests.append({"input": {"path": f"/tmp/tooldeck-escape-{tmp_path.name}.txt"}, "expect": {"wrote": True}})  # its own /tmp
    cascade = validate(candidate(tmp_path, code, tests), launcher=launcher_name)
    stage = failed_stage(cascade)
    assert stage["name"] == "tests" and stage["detail"].startswith("2/5 tests passed")
    assert [c["passed"] for c in stage["cases"]] == [False, False, False, True, True]
    for path in [*outside, Path(f"/tmp/tooldeck-escape-{tmp_path.name}.txt")]:
        assert not path.exists()


def test_a_shell_child_cannot_write_anywhere_on_the_host(tmp_path, workspace, host_folder, launcher_name):
    """The audit hook is only Python's wall: the read-only view of the host stops a child process."""
    open_dir = host_folder / "world-writable"
    open_dir.mkdir()
    open_dir.chmod(0o1777)
    targets = [workspace / "via_shell.txt", open_dir / "via_shell.txt", Path("/var/tmp/via_shell.txt")]
    script = "; ".join(f"echo x > {t} 2>/dev/null" for t in targets) + "; echo y > $TMPDIR/ok && cat $TMPDIR/ok"
    code = f"""
    import subprocess
    def run(data):
        done = subprocess.run(["sh", "-c", {script!r}], capture_output=True, text=True)
        return {{"rc": done.returncode, "out": done.stdout.strip()}}
    """
    cascade = validate(candidate(tmp_path, code, [{"input": {}, "expect": {"rc": 0, "out": "y"}}]), launcher=launcher_name)
    assert all(s["passed"] for s in cascade.stages), cascade.stages
    for target in targets:
        assert not target.exists()


def test_opening_a_network_connection_fails(tmp_path, launcher_name):
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(5)
    listener.settimeout(0.3)
    port = listener.getsockname()[1]
    code = f"""
    import subprocess
    def run(data):
        # a child that is not Python: no audit hook, only the namespace stops it
        done = subprocess.run(["python3", "-S", "-c", "import socket; socket.create_connection(('127.0.0.1', {port}), timeout=1)"],
                              capture_output=True, text=True)
        return {{"rc": done.returncode, "why": done.stderr.strip().splitlines()[-1] if done.stderr.strip() else ""}}
    """
    try:
        result = run_one(tmp_path, code, launcher_name)
        assert result["rc"] != 0 and ("unreachable" in result["why"] or "refused" in result["why"]), result
        with pytest.raises(TimeoutError):
            listener.accept()
    finally:
        listener.close()


def test_reading_the_api_key_finds_nothing(tmp_path, monkeypatch, launcher_name):
    monkeypatch.setenv("ANTHROPIC_API_KEY", FAKE_KEY)
    monkeypatch.setenv("QDRANT_API_KEY", "qdrant-secret-value")
    code = """
    import os
    def run(data):
        found = {k: v for k, v in os.environ.items() if "KEY" in k or "TOKEN" in k}
        leak = False
        for pid in os.listdir("/proc"):
            if pid.isdigit():
                try:
                    leak = leak or "sk-ant" in open(f"/proc/{pid}/environ", "rb").read().decode("latin-1")
                except OSError:
                    pass
        return {"key": os.environ.get("ANTHROPIC_API_KEY"), "found": found, "leak": leak, "ppid": os.getppid()}
    """
    out = run_one(tmp_path, code, launcher_name)
    assert out["key"] is None and out["found"] == {} and out["leak"] is False
    assert out["ppid"] < 10  # its parent is inside its own PID namespace, never the runtime


def test_an_executable_candidate_runs_by_its_argv_inside_the_sandbox(tmp_path, launcher_name):
    code = """
    import json, sys
    data = json.load(sys.stdin)
    if data.get("fail"):
        print("asked to fail", file=sys.stderr)
        sys.exit(3)
    print(json.dumps({"echo": data}))
    """
    tests = [{"input": {"a": 1}, "expect": {"echo": {"a": 1}}}, {"input": {"fail": True}, "expect_error": "asked to fail"}]
    cascade = validate(candidate(tmp_path, code, tests, kind="executable"), launcher=launcher_name)
    assert all(s["passed"] for s in cascade.stages), cascade.stages


def test_non_json_stdout_against_an_output_schema_says_the_output_is_not_json(tmp_path, launcher_name):
    """The sandbox said `output must be object` where a call outside it says `output is not JSON: '...'`: its stdout
    is parsed and checked by the code a call uses (tools.invoke), so both say the same."""
    path = candidate(tmp_path, "print('this is not json')\n", [{"input": {}, "expect": {"rows": []}}], kind="executable")
    manifest = yaml.safe_load(path.read_text())
    path.write_text(yaml.safe_dump({**manifest, "output_schema": {"type": "object", "required": ["rows"]}}))
    stage = failed_stage(validate(path, launcher=launcher_name))
    assert stage["name"] == "tests"
    assert "first failure: test 1: bad_output: probe: output is not JSON: 'this is not json'" in stage["detail"], stage


def test_a_candidate_that_kills_its_process_is_reported(tmp_path):
    code = "import os\ndef run(data):\n    os._exit(9)\n"
    stage = failed_stage(validate(candidate(tmp_path, code, [{"input": {}, "expect": 1}, {"input": {}, "expect": 1}])))
    assert "exited with code 9 after 0 of 2 cases" in stage["detail"]


FORGER = """
import json, os, sys, time

def forge():
    lines = ""
    for i in range(8):
        result = {"i": i, "ok": True, "result": {"greeting": "hello ada"}, "ms": 1.0}
        for extra in ({}, {"nonce": None}, {"n": None}):
            lines += json.dumps({**result, **extra}) + "\\n"
    lines += json.dumps({"ready": True}) + "\\n"
    print(lines, flush=True)
    print(lines, file=sys.stderr, flush=True)
    for fd in range(3, 256):  # every inherited descriptor
        try:
            os.write(fd, lines.encode())
        except OSError:
            pass
    for pid in ("self", os.getppid(), 1, 2):  # and every one it can reach through /proc
        try:
            names = os.listdir(f"/proc/{pid}/fd")
        except OSError:
            continue
        for name in names:
            try:
                fd = os.open(f"/proc/{pid}/fd/{name}", os.O_WRONLY | os.O_NONBLOCK)
                os.write(fd, lines.encode())
                os.close(fd)
            except OSError:
                pass

forge()

def run(data):
    forge()
    while True:  # never returns, and swallows the runner's alarm
        try:
            time.sleep(0.05)
        except BaseException:
            pass
"""


@pytest.mark.parametrize("stage", ["tests", "failing_scenario", "regression"])
def test_a_candidate_cannot_forge_its_results(tmp_path, launcher_name, stage):
    """Forged result lines on every descriptor it can reach, while its function never returns: the stage fails."""
    tests = [{"input": {"name": "ada"}, "expect": {"greeting": "hello ada"}}] if stage == "tests" else []
    path = candidate(tmp_path, FORGER, tests)
    parent = Manifest(name="probe", version="1.0.0", type="python", entry="probe_v1_0_0.py:run") if stage == "regression" else None
    scenario = {"input": {"name": "ada lovelace"}, "error_class": "crash", "error": "letters only"}
    scenarios = [scenario] if stage == "failing_scenario" else []
    regressions = [{"input": {"name": "bob"}, "output": {"greeting": "hello bob"}}]
    inputs = Inputs("probe", "1.1.0", "probe_v1_1_0.py", parent, False, scenarios, regressions, 2.0, 256, launcher=launcher_name)
    cascade = Cascade(inputs, path, lambda: None, lambda stage, message: None)
    assert cascade.run() is False
    failed = failed_stage(cascade)
    assert failed["name"] == stage, cascade.stages
    assert "forged result: the runner's reply pipe carried a reply to no request" in failed["detail"], failed["detail"]
    assert not any(c["passed"] for c in failed["cases"])


def test_an_unknown_launcher_setting_is_a_clear_error(tmp_path):
    cascade = validate(candidate(tmp_path, "def run(data):\n    return 1\n", [{"input": {}, "expect": 1}]), launcher="docker")
    stage = failed_stage(cascade)
    assert stage["name"] == "tests" and "sandbox_launcher = 'docker'" in stage["detail"]


# -- lifetime ---------------------------------------------------------------------------------------------

SLEEPER = """
import sys
from pathlib import Path
sys.path.insert(0, {root!r})
from tools.catalog.manifest import Manifest
from tools.evolution.sandbox import run_cases
from tools.evolution.launchers import select
folder = Path({folder!r})
manifest = Manifest(name="probe", version="1.1.0", type="python", entry="c.py:run")
print("starting", flush=True)
run_cases(folder, manifest, [{{}}], timeout=120, launcher=select({launcher!r}))
"""


def _sandboxed(marker: str) -> list[int]:
    """Host pids whose command line carries `marker`."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if marker.encode() in (entry / "cmdline").read_bytes():
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


def test_the_sandbox_dies_with_the_runtime(tmp_path, launcher_name):
    """kill -9 of the process that started a validation leaves nothing of the candidate running."""
    marker = f"tooldeck-sleeper-{os.getpid()}-{launcher_name}"
    folder = tmp_path / "cand"
    folder.mkdir()
    (folder / "c.py").write_text(textwrap.dedent(f"""
        import subprocess, sys
        def run(data):
            subprocess.run([sys.executable, "-c", "import time; time.sleep(600)", "{marker}"])
            return 1
    """))
    driver = subprocess.Popen([sys.executable, "-c", SLEEPER.format(root=str(ROOT), folder=str(folder), launcher=launcher_name)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        while not _sandboxed(marker):
            assert driver.poll() is None, driver.stderr.read().decode() if driver.stderr else ""
            assert time.monotonic() < deadline, "the candidate never started"
            time.sleep(0.05)
        os.kill(driver.pid, signal.SIGKILL)
        driver.wait(30)
        deadline = time.monotonic() + 30
        while _sandboxed(marker):
            assert time.monotonic() < deadline, f"still running after the runtime died: {_sandboxed(marker)}"
            time.sleep(0.05)
        left = list(Path(tempfile.gettempdir()).glob(f"tooldeck-sbx-{driver.pid}-*"))
        assert left  # the dead runtime could not clean up; the next process to validate does
        sweeper = subprocess.run([sys.executable, "-c", f"import sys; sys.path.insert(0, {str(ROOT)!r}); "
                                  "from tools.evolution.sandbox import sweep_orphans; print(sweep_orphans())"],
                                 capture_output=True, text=True, timeout=60)
        assert left[0].name in sweeper.stdout and not left[0].exists()
    finally:
        if driver.poll() is None:
            driver.kill()
        for pid in _sandboxed(marker):
            os.kill(pid, signal.SIGKILL)


# -- runtimes that are not root, and kernels that refuse ------------------------------------------------

NON_ROOT_DRIVER = """
import importlib.util, json, os, subprocess, sys, tempfile
from pathlib import Path
spec = importlib.util.spec_from_file_location("launchers", sys.argv[1])
launchers = importlib.util.module_from_spec(spec)
sys.modules["launchers"] = launchers
spec.loader.exec_module(launchers)
chosen = launchers.probe()
host = Path(tempfile.mkdtemp())
launchers.prepare_host(host)
launchers.open_up(host, chosen)
code = "import os, getpass; print(os.getuid(), getpass.getuser(), os.path.exists(%r))" % sys.argv[2]
root = chosen.root(host)
if not chosen.isolated:
    (host / "work").mkdir()
done = subprocess.run(chosen.argv(host, [chosen.python, "-I", "-c", code]), capture_output=True, text=True, cwd=host,
                      env={"PATH": "/usr/bin:/bin"})
launchers.remove_tree(host)
print(json.dumps({"euid": os.geteuid(), "launcher": chosen.name, "as_root": chosen.as_root,
                  "protections": chosen.protections, "ran": done.stdout.split(), "rc": done.returncode}))
"""


def _non_root(tmp: Path, argv_prefix: list[str], secret_file: Path) -> dict[str, Any]:
    """Run the launcher module (stdlib only) as an unprivileged runtime with the system's Python."""
    python = "/usr/bin/python3"
    if not os.path.exists(python):  # pragma: no cover - Debian has it
        pytest.skip("no system python3")
    work = tmp / "nonroot"
    work.mkdir()
    work.chmod(0o755)
    (work / "launchers.py").write_bytes(LAUNCHERS_PY.read_bytes())
    (work / "driver.py").write_text(NON_ROOT_DRIVER)
    for path in (work / "launchers.py", work / "driver.py"):
        path.chmod(0o644)
    done = subprocess.run([*argv_prefix, python, str(work / "driver.py"), str(work / "launchers.py"), str(secret_file)],
                          capture_output=True, text=True, timeout=120, cwd="/", env={"PATH": "/usr/bin:/bin"})
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def _readable_marker(host_folder: Path) -> Path:
    marker = host_folder / "workspace-secret.txt"
    marker.write_text("the workspace")
    marker.chmod(0o644)
    return marker


def test_a_runtime_that_is_not_root_gets_bubblewrap_with_a_user_namespace(host_folder):
    if os.geteuid() != 0:
        pytest.skip("drops to uid 65534 to play the unprivileged runtime; needs root to start")
    if not select("bwrap"):  # pragma: no cover - select raises instead
        return
    drop = ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups", "--"]
    out = _non_root(host_folder, drop, _readable_marker(host_folder))
    assert out["euid"] == NOBODY and out["launcher"] == "bwrap" and out["as_root"] is False
    held = out["protections"]
    for key in ("no_network", "host_files_hidden", "read_only_root", "ipc_namespace", "pid_namespace"):
        assert held[key] is True, key
    assert out["rc"] == 0 and out["ran"] == [str(NOBODY), "nobody", "False"]


NON_ROOT_RUN = r"""
import json, os, shutil, subprocess, sys, tempfile
from pathlib import Path
work = Path(sys.argv[1])
sys.path.insert(0, str(work))
import cgroups, launchers, seccomp
chosen = launchers.probe()
host = Path(tempfile.mkdtemp(prefix="tooldeck-sbx-nonroot-"))
launchers.prepare_host(host)
shutil.copy(work / "sandbox_runner.py", host / "_runner" / "sandbox_runner.py")
(host / "_runner" / "sitecustomize.py").write_text(
    "import os\nimport sandbox_runner\nsandbox_runner.install_guard(os.environ['TOOLDECK_SANDBOX_ROOT'])\n")
(host / "_src" / "c.py").write_text(sys.argv[2])
flt = seccomp.compiled()
(host / "_runner" / "seccomp.bpf").write_bytes(flt.program)
spec = {"tool_id": "probe", "tool_dir": "/sandbox/tool", "work": "/sandbox/work", "copy_from": "/sandbox/_src", "cases": [{}],
        "case_timeout": 10, "mode": "python", "file": "c.py", "func": "run",
        "seccomp": "/sandbox/_runner/seccomp.bpf" if flt.program else None, "seccomp_label": flt.label}
(host / "_runner" / "spec.json").write_text(json.dumps(spec))
group = cgroups.create(256, 64)
launchers.open_up(host, chosen)
env = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "HOME": "/sandbox/work", "TMPDIR": "/sandbox/tmp", "PYTHONPATH": "/sandbox/_runner",
       "PYTHONDONTWRITEBYTECODE": "1", "TOOLDECK_SANDBOX_ROOT": "/sandbox"}
command = [chosen.python, "/sandbox/_runner/sandbox_runner.py", "/sandbox/_runner/spec.json"]
done = subprocess.run(chosen.argv(host, command, cgroup_procs=group.procs_files()), input=b"the-nonce\n", capture_output=True,
                      cwd=host, env=env, timeout=60)
group.remove()
launchers.remove_tree(host)
lines = [json.loads(line) for line in done.stdout.decode().splitlines() if line.strip()]
print(json.dumps({"euid": os.geteuid(), "launcher": chosen.name, "protections": chosen.protections, "cgroup": group.label,
                  "lines": lines, "stderr": done.stderr.decode()[-2000:]}))
"""

WALL_PROBE = """
import ctypes, errno, os
def run(data):
    libc = ctypes.CDLL(None, use_errno=True)
    libc.syscall.restype = ctypes.c_long
    out = {"uid": os.getuid()}
    for name, call in (("keyctl", lambda: libc.syscall(250, 0, -3, 0)), ("add_key", lambda: libc.syscall(248, b"user", b"k", b"v", 1, -3)),
                       ("unshare", lambda: libc.unshare(0x10000000)), ("ptrace", lambda: libc.ptrace(0, 0, 0, 0))):
        out[name] = errno.errorcode.get(ctypes.get_errno(), "?") if call() < 0 else "allowed"
    return out
"""


def test_a_runtime_that_is_not_root_keeps_the_kernel_walls(host_folder):
    """As uid 65534, with the system Python (the venv's interpreter is under /root): bubblewrap in a user namespace,
    the fresh keyring and the seccomp filter hold; no cgroup (a non-root runtime cannot make one here) and no inode
    limit, and the result says so instead of failing."""
    if os.geteuid() != 0:
        pytest.skip("drops to uid 65534 to play the unprivileged runtime; needs root to start")
    import pyseccomp

    work = host_folder / "nonroot-run"
    work.mkdir()
    work.chmod(0o755)
    evolution = ROOT / "tools" / "evolution"
    for source in (evolution / "launchers.py", evolution / "cgroups.py", evolution / "seccomp.py", evolution / "sandbox_runner.py",
                   Path(pyseccomp.__file__)):
        (work / source.name).write_bytes(source.read_bytes())
        (work / source.name).chmod(0o644)
    (work / "driver.py").write_text(NON_ROOT_RUN)
    (work / "driver.py").chmod(0o644)
    drop = ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups", "--"]
    done = subprocess.run([*drop, "/usr/bin/python3", str(work / "driver.py"), str(work), textwrap.dedent(WALL_PROBE)],
                          capture_output=True, text=True, timeout=120, cwd="/", env={"PATH": "/usr/bin:/bin"})
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out["euid"] == NOBODY and out["launcher"] == "bwrap", out
    assert out["protections"]["inode_limit"].startswith("none: bubblewrap's --tmpfs takes no nr_inodes")
    assert out["cgroup"].startswith("none: cannot make a v1 cgroup: Permission denied"), out["cgroup"]
    lines = out["lines"]
    assert all(line["n"] == "the-nonce" for line in lines), lines
    walls = next(line["walls"] for line in lines if "walls" in line)
    assert walls == {"keyring": "fresh anonymous session keyring",
                     "seccomp": "libseccomp (17 syscalls denied, clone into a namespace refused)"}, out["stderr"]
    result = next(line for line in lines if line.get("i") == 0)
    assert result["ok"] and result["result"] == {"uid": NOBODY, "keyctl": "EPERM", "add_key": "EPERM", "unshare": "EPERM",
                                                 "ptrace": "EPERM"}, (result, out["stderr"])


USERNS_NO_MORE = r"""
import ctypes, os, sys
libc = ctypes.CDLL(None, use_errno=True)
r, w = os.pipe()
pid = os.fork()
if pid == 0:
    os.close(w)
    if libc.unshare(0x10000000) != 0:  # CLONE_NEWUSER
        os._exit(70)
    os.read(r, 1)  # the parent has written the maps
    with open("/proc/sys/user/max_user_namespaces", "w") as fh:
        fh.write("0")  # this namespace and its children may create no more: a kernel that refuses
    os.setgroups([]); os.setgid(65534); os.setuid(65534)
    os.execv(sys.argv[1], sys.argv[1:])
os.close(r)
import time
for name in ("uid_map", "gid_map"):
    for _ in range(200):
        try:
            with open(f"/proc/{pid}/{name}", "w") as fh:
                fh.write("0 0 1\n65534 65534 1\n")
            break
        except OSError:
            time.sleep(0.01)
os.write(w, b"x")
_, status = os.waitpid(pid, 0)
sys.exit(os.waitstatus_to_exitcode(status))
"""


def test_where_the_kernel_refuses_user_namespaces_the_launcher_says_none(host_folder, tmp_path):
    """An unprivileged runtime on a kernel that refuses user namespaces: bubblewrap cannot start, the
    unshare fallback needs root, so validation runs with rlimits, a clean environment and the audit hook
    only, and the recorded protections say that the host is not hidden."""
    if os.geteuid() != 0:
        pytest.skip("builds the refusing user namespace as root")
    wrapper = tmp_path / "userns_no_more.py"
    wrapper.write_text(USERNS_NO_MORE)
    out = _non_root(host_folder, [sys.executable, str(wrapper)], _readable_marker(host_folder))
    assert out["euid"] == NOBODY and out["launcher"] == "none"
    held = out["protections"]
    assert held["launcher"] == "none" and held["host_files_hidden"] is False and held["no_network"] is False
    assert held["ipc_namespace"] is False and held["disk_quota_mb"] is None and held["rlimits"] is True
    assert out["rc"] == 0 and out["ran"] == [str(NOBODY), "nobody", "True"]  # it can read the workspace: no isolation
