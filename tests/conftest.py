"""Fixtures: a workspace in tmp_path, runtimes that are always closed, no stray env."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tools.runtime import Runtime


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("TOOLDECK_HOME", "TOOLDECK_WORKSPACE", "TOOLDECK_SESSION", "TOOLDECK_DISABLE_USAGE_TRACKING",
                 "ANTHROPIC_API_KEY", "ANTHROPIC_BASE_URL", "QDRANT_URL", "QDRANT_API_KEY"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    ws = tmp_path / "ws"
    (ws / "tools").mkdir(parents=True)
    return ws


@pytest.fixture
def make_runtime(workspace: Path) -> Iterator[Callable[..., Runtime]]:
    made: list[Runtime] = []

    def make(ws: Path | None = None, **kwargs: Any) -> Runtime:
        runtime = Runtime(ws or workspace, **kwargs)
        made.append(runtime)
        return runtime

    yield make
    for runtime in made:
        runtime.close()
