"""A log that cannot be written (a full disk) is counted and reported once a minute at most, never a
traceback per record on the caller's stderr (it printed ~12,000 in 20 s per process)."""

from __future__ import annotations

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
        handler = logging.getLogger("tooldeck").handlers[0]
        print(handler.failed_total)
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, cwd=REPO)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "3000"
    lines = out.stderr.splitlines()
    assert len(lines) == 1 and "cannot write the log" in lines[0] and "No space left on device" in lines[0], out.stderr[-2000:]
    assert "Logging error" not in out.stderr and "sk-ant" not in out.stderr
