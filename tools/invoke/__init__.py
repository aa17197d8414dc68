"""How each kind of tool runs: executables as child processes, python tools in warm workers,
builtins in the caller's process, llm tools (and the model providers evolution uses), plus
the input and output schema checks every call passes through, and cancelling a call's
processes from another thread (cancel).
"""

from tools.invoke.builtin import resolve_builtin
from tools.invoke.cancel import CallScope
from tools.invoke.executable import run_executable
from tools.invoke.llm import WRITE_TOOL, Request, get_provider, record_usage
from tools.invoke.llm_tool import run_llm_tool
from tools.invoke.validation import check_input, check_output
from tools.invoke.worker import WorkerPool

__all__ = ["WRITE_TOOL", "CallScope", "Request", "WorkerPool", "check_input", "check_output", "get_provider", "record_usage",
           "resolve_builtin", "run_executable", "run_llm_tool"]
