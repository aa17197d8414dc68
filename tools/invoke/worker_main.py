"""The warm worker for one `python` tool: JSON lines in on stdin, JSON lines out.

Run as a script (not imported by the runtime). The protocol uses a private
copy of fd 1; the tool's own prints go to stderr so they cannot corrupt it.
Usage: worker_main.py TOOL_DIR FILE FUNCTION
"""

from __future__ import annotations

import importlib.util
import json
import os
import sys
import traceback


def main() -> int:
    tool_dir, file_name, func_name = sys.argv[1:4]
    proto = os.fdopen(os.dup(1), "w", buffering=1, encoding="utf-8")
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    sys.path.insert(0, tool_dir)
    os.chdir(tool_dir)
    try:
        spec = importlib.util.spec_from_file_location("tooldeck_tool", os.path.join(tool_dir, file_name))
        if spec is None or spec.loader is None:
            raise ImportError(f"cannot load {file_name}")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        func = getattr(module, func_name)
    except BaseException as exc:  # report why the tool cannot load, then stop
        proto.write(json.dumps({"id": 0, "ok": False, "fatal": True, "type": type(exc).__name__,
                                "error": f"cannot load {file_name}:{func_name}: {exc}",
                                "traceback": traceback.format_exc(limit=5)}) + "\n")
        return 3
    proto.write(json.dumps({"id": 0, "ok": True, "ready": True}) + "\n")
    for line in sys.stdin:
        try:
            request = json.loads(line)
        except json.JSONDecodeError as exc:
            proto.write(json.dumps({"id": -1, "ok": False, "type": "ProtocolError", "error": str(exc)}) + "\n")
            continue
        rid = request.get("id")
        try:
            result = func(request.get("input"))
            reply = json.dumps({"id": rid, "ok": True, "result": result})
        except Exception as exc:
            reply = json.dumps({"id": rid, "ok": False, "type": type(exc).__name__, "error": str(exc)[:2000],
                                "traceback": traceback.format_exc(limit=8)[-4000:]})
        except BaseException as exc:  # SystemExit inside a tool fails the call, not the worker
            reply = json.dumps({"id": rid, "ok": False, "type": type(exc).__name__, "error": repr(exc)[:2000]})
        proto.write(reply + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
