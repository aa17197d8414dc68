"""Helpers for pilot tests: wait on a condition instead of sleeping a fixed time."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any


async def wait_for(pilot: Any, condition: Callable[[], Any], timeout: float = 20.0, what: str = "condition") -> Any:
    """Poll `condition` until it is true. A row or key it looks up may not exist yet (a live table fills in
    as snapshots arrive): LookupError counts as "not yet", and the last one is named if the wait times out."""
    deadline = time.monotonic() + timeout
    missing: LookupError | None = None
    while time.monotonic() < deadline:
        try:
            value = condition()
        except LookupError as exc:
            missing, value = exc, None
        if value:
            return value
        await pilot.pause(0.05)
    last = f" (last lookup failed: {type(missing).__name__}: {missing})" if missing is not None else ""
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}{last}{_status_of(pilot)}")


def _status_of(pilot: Any) -> str:
    """The dashboard's status line and screen when a wait fails: what the operator would have seen instead."""
    app = getattr(pilot, "app", None)
    try:
        line = app.query_one("#status-line").render()  # type: ignore[union-attr]
        focused = app.focused  # type: ignore[union-attr]
    except Exception:
        return ""
    return f" (status line: {str(line)!r}; screen: {type(app.screen).__name__}; focus: {focused!r})"


def table_keys(table: Any) -> list[str]:
    return [row.key.value for row in table.ordered_rows]


async def runtime_ready(pilot: Any, app: Any, timeout: float = 30.0) -> None:
    """Wait until the dashboard's runtime exists and its catalog has loaded."""
    await wait_for(pilot, lambda: app.runtime is not None and app.runtime.catalog.finished.is_set(), timeout, "runtime")


def screen_text(app: Any) -> str:
    """What the terminal shows, as plain text (for asserting that a value is on screen whole)."""
    import io

    from rich.console import Console

    width, height = app.size
    console = Console(width=width, height=height, file=io.StringIO(), force_terminal=True, color_system="truecolor",
                      record=True, legacy_windows=False, safe_box=False)
    console.print(app.screen._compositor.render_update(full=True, screen_stack=app._background_screens))
    return console.export_text()
