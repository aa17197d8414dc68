"""A log that cannot be written (a full disk) is counted and reported once a minute at most, never a
traceback per record on the caller's stderr (it printed ~12,000 in 20 s per process)."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import textwrap
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_a_full_disk_under_the_log_is_one_line_a_minute(tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    logs.mkdir()
    os.symlink("/dev/full", logs / "tooldeck.log")  # every write: ENOSPC, as on a full disk
    script = textwrap.dedent(f"""
        import logging
        from pathlib import Path
        from tools.logs import setup_logging
        setup_logging(Path({str(logs)!r}))
        log = logging.getLogger("tooldeck.test")
        for i in range(3000):
            log.warning("record %d with a secret sk-ant-api03-abcdefghijklmnop", i)
        handler = next(h for h in logging.getLogger("tooldeck").handlers if h.__class__.__name__ == "QuietFileHandler")
        print(handler.failed_total)
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, cwd=REPO)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "3000"
    lines = out.stderr.splitlines()
    assert len(lines) == 1 and "cannot write the log" in lines[0] and "No space left on device" in lines[0], out.stderr[-2000:]
    assert "Logging error" not in out.stderr and "sk-ant" not in out.stderr


def file_handlers() -> list[logging.Handler]:
    return [h for h in logging.getLogger("tooldeck").handlers if isinstance(h, logging.FileHandler)]


def test_a_closed_runtime_lets_go_of_its_log(tmp_path: Path, make_runtime) -> None:
    """A process that opens and closes runtimes keeps no log of theirs: 650 of them in one test run once made
    every log line cost 10 ms (written to all 650 files) and slowed a stderr flood's reader to a halt."""
    before = len(file_handlers())
    first, second = tmp_path / "a", tmp_path / "b"
    for ws in (first, second):
        (ws / "tools").mkdir(parents=True)
    a, b = make_runtime(first), make_runtime(second)
    also_a = make_runtime(first)  # two runtimes on one workspace share its log
    for rt in (a, b, also_a):
        rt.wait_ready(30)
    assert len(file_handlers()) == before + 2
    a.close()
    logging.getLogger("tooldeck.test").warning("while the second runtime of a is open")
    also_a.close()
    logging.getLogger("tooldeck.test").warning("after both runtimes of a closed")
    b.close()
    assert len(file_handlers()) == before
    log_a = (first / ".tooldeck" / "logs" / "tooldeck.log").read_text()
    assert "while the second runtime of a is open" in log_a and "after both runtimes of a closed" not in log_a
    assert "after both runtimes of a closed" in (second / ".tooldeck" / "logs" / "tooldeck.log").read_text()


def test_loading_the_embedding_model_leaves_the_root_logger_alone() -> None:
    """wordllama's import calls `logging.basicConfig(level=INFO)`: every library's INFO records (uvicorn's, the MCP
    SDK's with session ids) then reached stderr, over the dashboard or into an MCP client's log."""
    code = ("import logging; from state.memory import load_wordllama; load_wordllama(); root = logging.getLogger(); "
            "print(len(root.handlers), root.level); logging.getLogger('uvicorn.error').info('session ab12 created')")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                          cwd=REPO)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == ["0", str(logging.WARNING)] and "session ab12" not in done.stderr
