"""Fixtures: a workspace in tmp_path, runtimes that are always closed, no stray env, and the store's
backends (a parametrised fixture: every test that uses the store runs on each)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tools.runtime import Runtime

BACKENDS = ["sqlite"]


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("TOOLDECK_HOME", "TOOLDECK_WORKSPACE", "TOOLDECK_SESSION", "TOOLDECK_DISABLE_USAGE_TRACKING",
                 "ANTHROPIC_API_KEY", "ANTHROPIC_BASE_URL", "QDRANT_URL", "QDRANT_API_KEY", "TOOLDECK_DATABASE_URL",
                 "PGPASSWORD"):
        monkeypatch.delenv(name, raising=False)


@dataclass(frozen=True)
class Backend:
    """The backend a test runs on; `url` is None for SQLite (and then TOOLDECK_DATABASE_URL is unset)."""

    name: str
    url: str | None = None

    @property
    def postgres(self) -> bool:
        return self.url is not None


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[Backend]:
    """SQLite, or a fresh PostgreSQL database named by TOOLDECK_DATABASE_URL (so subprocesses use it too)."""
    yield Backend(request.param)


@pytest.fixture
def store(backend: Backend, tmp_path: Path) -> Iterator[Any]:
    """The store of the test's backend (a SQLite file in tmp_path, or the test's PostgreSQL database)."""
    from state.db import open_store

    opened = open_store(tmp_path / "home", url=backend.url)
    yield opened
    opened.close()


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    ws = tmp_path / "ws"
    (ws / "tools").mkdir(parents=True)
    return ws


@pytest.fixture
def make_runtime(workspace: Path, backend: Backend) -> Iterator[Callable[..., Runtime]]:
    made: list[Runtime] = []

    def make(ws: Path | None = None, **kwargs: Any) -> Runtime:
        runtime = Runtime(ws or workspace, **kwargs)
        made.append(runtime)
        return runtime

    yield make
    for runtime in made:
        runtime.close()
