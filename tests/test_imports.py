"""The runtime is headless: importing it pulls in neither Textual nor the heavy clients."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

HEAVY = ("textual", "anthropic", "qdrant_client", "mcp", "psycopg", "psycopg_pool")


def _fresh(code: str, env: dict[str, str] | None = None) -> str:
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                            env={**os.environ, **(env or {})})
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_import_tools_is_headless() -> None:
    out = _fresh(f"import sys, json, tools\nprint(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))")
    assert json.loads(out) == []


def test_call_tool_in_a_fresh_interpreter_stays_headless(tmp_path: Path) -> None:
    code = (
        "import sys, json\n"
        "from tools import call_tool\n"
        "out = call_tool('json_parser', json.dumps({'text': '[1, 2]'}))\n"
        "print(out)\n"
        f"print(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))\n"
    )
    ws = tmp_path / "ws"
    from tools.cli.demo_workspace import prepare_demo_workspace

    prepare_demo_workspace(str(ws))
    out = _fresh(code, {"TOOLDECK_WORKSPACE": str(ws)}).splitlines()
    assert json.loads(out[0])["data"] == [1, 2]
    assert isinstance(out[0], str)
    heavy = set(json.loads(out[1]))
    # extensions load their heavy parts in background threads only when they need them;
    # the call path itself must not import the LLM client or Textual
    assert "textual" not in heavy and "anthropic" not in heavy


def test_state_does_not_import_tools_or_tui() -> None:
    out = _fresh("import sys, json, state, state.events, state.calls\n"
                 "print(json.dumps([m for m in ('tools', 'tui', 'textual') if m in sys.modules]))")
    assert json.loads(out) == []


def test_a_runtime_without_mcp_servers_imports_neither_the_hub_nor_asyncio(tmp_path: Path) -> None:
    """The MCP hub (asyncio, the links, the import rules: ~30 ms) is imported at start only when
    `[mcp.servers]` names a server; every CLI command that starts a runtime paid for it before."""
    (tmp_path / "tools").mkdir()
    code = ("import sys, json\nfrom tools import Runtime\n"
            f"rt = Runtime({str(tmp_path)!r})\nassert rt.wait_ready(60)\n"
            "print(json.dumps([m for m in ('tools.mcp.hub', 'asyncio') if m in sys.modules]))\nrt.close()\n")
    assert json.loads(_fresh(code).splitlines()[-1]) == []
    (tmp_path / "tooldeck.toml").write_text('[mcp.servers.git]\ncommand = ["definitely-not-a-command"]\n')
    code = code.replace("rt.close()", "print(sorted(rt.extensions))\nrt.close()")
    lines = _fresh(code).splitlines()
    assert "tools.mcp.hub" in json.loads(lines[-2]) and "'mcp'" in lines[-1]
