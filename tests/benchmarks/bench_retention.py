"""Soak: the state's size under steady traffic against its budget (`[retention] max_db_mb`).

Demo-like traffic (`--rate` calls a second of a tool with ~2.4 KB inputs, a third of them failing,
each a stored call record; the demo wrote 1.9 MB/min this way) runs for `--minutes` (default 30) against a 5 MB budget; the serving
runtime's housekeeping is run every `--prune-seconds` (the runtime does it every 10 minutes; the
soak shortens that so a short run shows the bound). Every minute it prints the live size against
the budget; the last line says whether the size stayed within budget + one pruning interval of
writes.

Run: .venv/bin/python tests/benchmarks/bench_retention.py [--minutes 30] [--budget-mb 5]
"""

from __future__ import annotations

import argparse
import secrets
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tools.errors import ToolError  # noqa: E402
from tools.runtime import Runtime  # noqa: E402

TOOL = "def run(data):\n    if data['i'] % 3 == 0:\n        raise ValueError('every third call fails')\n    return {'ok': True}\n"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument("--budget-mb", type=float, default=5.0)
    parser.add_argument("--prune-seconds", type=float, default=30.0)
    parser.add_argument("--rate", type=float, default=20.0, help="calls per second (the demo's traffic: ~13/s of 2.45 KB)")
    args = parser.parse_args()
    ws = Path(tempfile.mkdtemp(prefix="bench-retention-"))
    (ws / "tools").mkdir()
    (ws / "tools" / "work.py").write_text(TOOL)
    (ws / "tools" / "work.yaml").write_text("name: work\ntype: python\nversion: 1.0.0\nentry: work.py:run\n"
                                            "description: demo-like work\n")
    (ws / "tooldeck.toml").write_text(f"[retention]\nmax_db_mb = {args.budget_mb}\n")
    budget = args.budget_mb * 1024 * 1024
    rt = Runtime(ws, serve=True)
    worst_after_prune = 0
    try:
        rt.wait_ready(60)
        started = last_print = last_prune = time.monotonic()
        i = calls = 0
        while time.monotonic() - started < args.minutes * 60:
            try:
                rt.call("work", {"i": i, "payload": secrets.token_hex(1200)})
            except ToolError:
                pass
            i += 1
            calls += 1
            pause = started + calls / args.rate - time.monotonic()
            if pause > 0:
                time.sleep(pause)
            now = time.monotonic()
            if now - last_prune >= args.prune_seconds:
                rt.calls.flush()
                rt.prune()
                worst_after_prune = max(worst_after_prune, rt.store.used_bytes())
                last_prune = now
            if now - last_print >= 60:
                rt.calls.flush()
                used = rt.store.used_bytes()
                on_disk = sum(f.stat().st_size for f in (ws / ".tooldeck").glob("tooldeck.db*"))
                print(f"{(now - started) / 60:5.1f} min: {calls} calls, live state {used / 1e6:.2f} MB of a "
                      f"{args.budget_mb:g} MB budget ({used / budget * 100:.0f}%), files on disk {on_disk / 1e6:.2f} MB",
                      flush=True)
                last_print = now
        verdict = "PASS" if worst_after_prune <= budget else "FAIL"
        print(f"after each pruning the state was at most {worst_after_prune / 1e6:.2f} MB "
              f"(budget {args.budget_mb:g} MB) {verdict}")
    finally:
        rt.close()
        shutil.rmtree(ws, ignore_errors=True)


if __name__ == "__main__":
    main()
