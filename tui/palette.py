"""A command palette provider (ctrl+p) offering the same actions as the command line."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

from textual.command import DiscoveryHit, Hit, Hits, Provider

from tui.commands import Command


class TooldeckCommands(Provider):
    """Flush a buffer, call, test or evolve a tool, open a tool, pause, maximise."""

    def _actions(self) -> list[tuple[str, str, Callable[[], Any]]]:
        app: Any = self.app
        out: list[tuple[str, str, Callable[[], Any]]] = [
            ("Pause or resume live updates", "space", app.action_toggle_pause),
            ("Maximise or restore the focused panel", "z", app.action_toggle_maximize),
            ("Open the command line", ":", app.action_command_line),
        ]
        snap = app.latest
        if snap is None:
            return out
        for buffer in snap.buffers:
            bid = buffer["buffer_id"]
            out.append((f"Flush buffer {bid}", f"{buffer['pending']} pending", partial(app.run_command, Command("buffer.flush", bid))))
            out.append((f"Clear buffer {bid}", "asks first", partial(app.run_command, Command("buffer.clear", bid))))
        for row in snap.tools:
            if row.status != "ready":
                continue
            out.append((f"Open tool {row.tool_id}", "manifest, calls, failures, controls", partial(app.open_tool, row.tool_id)))
            out.append((f"Test tool {row.tool_id}", "run its manifest tests", partial(app.run_command, Command("tool.test", row.tool_id))))
            out.append((f"Evolve tool {row.tool_id}", "asks for a hint", partial(app.ask_evolve, row.tool_id)))
            prefill = partial(app.prefill_command, f"/tool call {row.tool_id} {{}}")
            out.append((f"Call tool {row.tool_id}", "prefills the command line", prefill))
        return out

    async def discover(self) -> Hits:
        for name, help_text, callback in self._actions()[:12]:
            yield DiscoveryHit(name, callback, help=help_text)

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for name, help_text, callback in self._actions():
            score = matcher.match(name)
            if score > 0:
                yield Hit(score, matcher.highlight(name), callback, help=help_text)
