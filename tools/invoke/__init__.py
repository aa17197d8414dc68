"""How each kind of tool runs: executables as child processes, python tools in warm workers,
builtins in the caller's process, llm tools (and the model providers evolution uses), mcp tools
(handed to the runtime's MCP hub, `runtime.extensions["mcp"]`, which tools.mcp installs), plus
the input and output schema checks every call passes through.

Every child process anything in tooldeck starts goes through `spawn` (its own process group,
a parent-death signal, limits without `preexec_fn`), kept in the owner's `Children` so it can
be killed on close; output is read with a cap (`communicate`, `LineReader`); a call's
processes can be cancelled from another thread (`CallScope`).
"""

from tools.invoke.builtin import resolve_builtin
from tools.invoke.cancel import CallScope, current_scope, killable
from tools.invoke.capture import LineReader, OutputTooLarge, communicate, widen_pipe
from tools.invoke.executable import DEFAULT_MAX_OUTPUT, default_output_cap, output_cap, parse_stdout, run_executable
from tools.invoke.llm import WRITE_TOOL, Request, get_provider, record_usage, tokens_used_today
from tools.invoke.llm_tool import run_llm_tool
from tools.invoke.mcp_tool import run_mcp_tool
from tools.invoke.spawn import Children, Launcher, Limits, child_argv, kill_group, launcher, spawn
from tools.invoke.validation import check_input, check_output
from tools.invoke.worker import WorkerPool, worker_limit

__all__ = ["DEFAULT_MAX_OUTPUT", "tokens_used_today",
           "default_output_cap", "WRITE_TOOL", "CallScope", "Children", "Launcher", "Limits", "LineReader",
           "OutputTooLarge", "Request", "WorkerPool", "check_input", "check_output", "child_argv", "communicate",
           "current_scope", "get_provider", "kill_group", "killable", "launcher", "output_cap", "parse_stdout", "record_usage",
           "resolve_builtin", "run_executable", "run_llm_tool", "run_mcp_tool", "spawn", "widen_pipe", "worker_limit"]
