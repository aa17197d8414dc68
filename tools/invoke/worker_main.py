"""The warm worker for one `python` tool: JSON lines in on stdin, JSON lines out.

Run as a script (not imported by the runtime). The protocol uses a private
copy of fd 1; the tool's own prints go to stderr so they cannot corrupt it.
Usage: worker_main.py TOOL_DIR FILE FUNCTION [PINS_JSON]

What runs is the tool's source, never bytecode beside it: Python's own loader runs an
unchecked hash-based `.pyc` in `__pycache__` without reading the source, so the tool's file
and every module it imports from its folder are read and compiled here, by a finder scoped
to the folder that knows no bytecode, and nothing is written back. PINS_JSON (an approved
version's `{"name": "sha256"}`) makes each of those files' bytes match its pin before it
compiles, so a file swapped between the runtime's check and this read does not run.
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import json
import os
import sys
import traceback

TYPE_CHECKING = False  # not typing's (~3 ms): a worker's start is on its first call's path
if TYPE_CHECKING:
    from collections.abc import Sequence
    from types import ModuleType
    from typing import Any

MAIN_MODULE = "tooldeck_tool"
#: the reply type of a result that is not JSON (tools/invoke/worker.py makes it `bad_output`, not a crash)
NOT_JSON = "ResultNotJSON"


class SourceOnly:
    """Finds and loads the modules of one tool folder from their `.py` source only (a meta-path
    finder and its loader; importlib.abc is not imported: it costs a worker start ~40 ms).

    Placed before the path finder, it answers for every module that lives in the folder
    (which is not on sys.path, so a sourceless `x.pyc` or an extension module there is never
    found either); other imports (the standard library, installed packages) go on as usual."""

    def __init__(self, folder: str, pins: dict[str, str] | None) -> None:
        self.folder = os.path.abspath(folder)
        self.real = os.path.realpath(folder)
        self.pins = pins

    # -- finding --------------------------------------------------------------------------

    def find_spec(self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
                  ) -> importlib.machinery.ModuleSpec | None:
        leaf = fullname.rpartition(".")[2]
        for base in [self.folder] if path is None else [p for p in path if self._inside(p)]:
            spec = self._spec_in(base, fullname, leaf, top=path is None)
            if spec is not None:
                return spec
        return None

    def _inside(self, path: str) -> bool:
        real = os.path.realpath(path)
        return real == self.real or real.startswith(self.real + os.sep)

    def _spec_in(self, base: str, fullname: str, leaf: str, *, top: bool) -> importlib.machinery.ModuleSpec | None:
        package = os.path.join(base, leaf)
        init = os.path.join(package, "__init__.py")
        if os.path.isfile(init):
            return self._spec(fullname, init, package=package)
        module = package + ".py"
        if os.path.isfile(module):
            return self._spec(fullname, module)
        if os.path.isdir(package):  # a namespace package, as the path finder has it: a module or a
            found = importlib.machinery.PathFinder.find_spec(fullname) if top else None  # regular package
            if found is not None and found.loader is not None:  # elsewhere on the path wins
                return None
            spec = importlib.machinery.ModuleSpec(fullname, None, is_package=True)
            spec.submodule_search_locations = [package]
            return spec
        return None

    def _spec(self, fullname: str, origin: str, *, package: str | None = None) -> importlib.machinery.ModuleSpec:
        # a Loader in all but name: importlib.abc costs every worker start ~40 ms
        spec = importlib.machinery.ModuleSpec(fullname, self, origin=origin, is_package=package is not None)  # type: ignore[arg-type]
        spec.has_location = True  # sets __file__; spec.cached stays None: there is no bytecode
        if package is not None:
            spec.submodule_search_locations = [package]
        return spec

    # -- loading --------------------------------------------------------------------------

    def source(self, path: str) -> bytes:
        """The file's bytes, checked against its pin when the version is pinned."""
        with open(path, "rb") as fh:
            data = fh.read()
        if self.pins is not None:
            import hashlib

            name = os.path.relpath(os.path.realpath(path), self.real).replace(os.sep, "/")
            expected = self.pins.get(name)
            if expected is None:
                raise ImportError(f"tampered: {path} is not one of the approved files; not run")
            if hashlib.sha256(data).hexdigest() != expected:
                raise ImportError(f"tampered: {path} changed after approval (sha256 differs from its pin); not run")
        return data

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType | None:
        return None

    def exec_module(self, module: ModuleType) -> None:
        origin = module.__spec__.origin  # type: ignore[union-attr]
        assert origin is not None
        code = compile(self.source(origin), origin, "exec", dont_inherit=True)
        exec(code, module.__dict__)

    def get_source(self, fullname: str) -> str | None:  # for tracebacks (linecache)
        spec = getattr(sys.modules.get(fullname), "__spec__", None)
        origin = getattr(spec, "origin", None)
        return self.source(origin).decode("utf-8", "replace") if origin else None

    def load_main(self, file_name: str) -> ModuleType:
        """The tool's own file as module `tooldeck_tool`, registered in sys.modules while it runs."""
        origin = os.path.join(self.folder, file_name)
        if not self._inside(origin) or not origin.endswith(".py"):
            raise ImportError(f"{file_name}: not a .py file inside {self.folder}")
        spec = self._spec(MAIN_MODULE, origin)
        module = importlib.util.module_from_spec(spec)
        sys.modules[MAIN_MODULE] = module
        try:
            self.exec_module(module)
        except BaseException:
            sys.modules.pop(MAIN_MODULE, None)
            raise
        return module


def install(folder: str, pins: dict[str, str] | None) -> SourceOnly:
    """Take the folder off the import path and put a source-only finder for it in front of the path finder."""
    sys.dont_write_bytecode = True
    real = os.path.realpath(folder)
    sys.path[:] = [p for p in sys.path if os.path.realpath(p or os.curdir) != real]  # "" is the folder after chdir
    finder = SourceOnly(folder, pins)
    at = next((i for i, f in enumerate(sys.meta_path) if f is importlib.machinery.PathFinder), len(sys.meta_path))
    sys.meta_path.insert(at, finder)
    return finder


def main() -> int:
    tool_dir, file_name, func_name = sys.argv[1:4]
    pins: dict[str, Any] | None = json.loads(sys.argv[4]) if len(sys.argv) > 4 and sys.argv[4] else None
    proto = os.fdopen(os.dup(1), "w", buffering=1, encoding="utf-8")
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    here = os.path.dirname(os.path.realpath(__file__))  # tools/invoke: not the tool's to import from
    sys.path[:] = [p for p in sys.path if p and os.path.realpath(p) != here]
    os.chdir(tool_dir)
    try:
        func = getattr(install(tool_dir, pins).load_main(file_name), func_name)
    except BaseException as exc:  # report why the tool cannot load, then stop
        proto.write(json.dumps({"id": 0, "ok": False, "fatal": True, "type": type(exc).__name__,
                                "error": f"cannot load {file_name}:{func_name}: {exc}",
                                "traceback": traceback.format_exc(limit=5)}) + "\n")
        return 3
    proto.write(json.dumps({"id": 0, "ok": True, "ready": True}) + "\n")
    for line in sys.stdin:
        try:
            request = json.loads(line)
        except (json.JSONDecodeError, RecursionError) as exc:
            proto.write(json.dumps({"id": -1, "ok": False, "type": "ProtocolError", "error": str(exc)}) + "\n")
            continue
        rid = request.get("id")
        try:
            result = func(request.get("input"))
        except Exception as exc:
            reply = json.dumps({"id": rid, "ok": False, "type": type(exc).__name__, "error": str(exc)[:2000],
                                "traceback": traceback.format_exc(limit=8)[-4000:]})
        except BaseException as exc:  # SystemExit inside a tool fails the call, not the worker
            reply = json.dumps({"id": rid, "ok": False, "type": type(exc).__name__, "error": repr(exc)[:2000]})
        else:
            try:  # strict JSON: NaN and Infinity are not (a caller's parser, the database, --json refuse them)
                reply = json.dumps({"id": rid, "ok": True, "result": result}, allow_nan=False)
            except (TypeError, ValueError, RecursionError) as exc:
                reply = json.dumps({"id": rid, "ok": False, "type": NOT_JSON, "error": f"{type(exc).__name__}: {exc}"[:2000]})
        proto.write(reply + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
