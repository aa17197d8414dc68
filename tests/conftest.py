"""Fixtures: a workspace in tmp_path, runtimes that are always closed, no stray env, and the store's
two backends.

Two runs: `pytest` alone is the fast loop (SQLite, tests not marked `slow`); `pytest --all` (the
README's test command, and CI's) runs everything, every test that uses the store (through
`make_runtime`, `store` or `backend`) twice: on SQLite and on PostgreSQL. The PostgreSQL server is
a real one the test session starts itself (`pgserver`, which bundles PostgreSQL 16), once per
session and only when a test needs it; each test gets a database of its own, copied from a
template that is migrated once, and dropped afterwards. `TOOLDECK_TEST_BACKENDS=sqlite,postgresql`
(or one of them) picks the backends either way.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import shutil
import tempfile
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tools.runtime import Runtime

ALL_BACKENDS = ("sqlite", "postgresql")


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--all", action="store_true", default=False,
                     help="run everything CI runs: slow tests too, on SQLite and PostgreSQL")


def pytest_configure(config: pytest.Config) -> None:
    if config.getoption("--all"):
        config.option.markexpr = ""  # addopts deselects `slow` for the fast loop; --all keeps every test


def backends(config: pytest.Config) -> list[str]:
    """The store backends this run covers: TOOLDECK_TEST_BACKENDS, else both with --all, else SQLite."""
    named = os.environ.get("TOOLDECK_TEST_BACKENDS")
    if named is None:
        return list(ALL_BACKENDS) if config.getoption("--all") else ["sqlite"]
    return [b for b in named.split(",") if b]


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "backend" in metafunc.fixturenames:
        metafunc.parametrize("backend", backends(metafunc.config), indirect=True)


TEMPLATE = "tooldeck_template"
_databases = itertools.count(1)


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("TOOLDECK_HOME", "TOOLDECK_WORKSPACE", "TOOLDECK_SESSION", "TOOLDECK_DISABLE_USAGE_TRACKING",
                 "ANTHROPIC_API_KEY", "ANTHROPIC_BASE_URL", "QDRANT_URL", "QDRANT_API_KEY", "TOOLDECK_DATABASE_URL",
                 "PGPASSWORD"):
        monkeypatch.delenv(name, raising=False)


class PgCluster:
    """The session's PostgreSQL server: an admin connection and fresh databases from the template."""

    def __init__(self) -> None:
        import psycopg

        with warnings.catch_warnings():  # platformdirs: "XDG_RUNTIME_DIR is not set" (it falls back to /tmp)
            warnings.simplefilter("ignore")
            import pgserver

            self.dir = tempfile.mkdtemp(prefix="tooldeck-pg-")
            self.server = pgserver.get_server(self.dir, cleanup_mode="stop")
        self.admin = psycopg.connect(self.server.get_uri(), autocommit=True)
        # Test speed: no fsync. Commits still wait for the WAL write (synchronous_commit stays on), so
        # killing clients or the server loses nothing acknowledged; only an OS crash could.
        self.admin.execute("ALTER SYSTEM SET fsync = off")
        self.admin.execute("ALTER SYSTEM SET full_page_writes = off")
        self.admin.execute("SELECT pg_reload_conf()")
        self.admin.execute(f"CREATE DATABASE {TEMPLATE}")
        from state.postgres import PgStore

        PgStore(self.url(TEMPLATE), pool_size=1).close()  # migrated once; every test database is a copy

    def url(self, database: str) -> str:
        return self.server.get_uri(database)

    def create(self) -> str:
        name = f"t{os.getpid()}_{next(_databases)}"
        self.admin.execute(f"CREATE DATABASE {name} TEMPLATE {TEMPLATE} STRATEGY FILE_COPY")
        return name

    def drop(self, name: str) -> None:
        with contextlib.suppress(Exception):
            self.admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.admin.close()
        with contextlib.suppress(Exception):
            self.server.cleanup()
        shutil.rmtree(self.dir, ignore_errors=True)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests of PostgreSQL itself (they take `pg_cluster` directly) are skipped when the run leaves
    PostgreSQL out, so a SQLite-only loop never starts a server."""
    if "postgresql" in backends(config):
        return
    skip = pytest.mark.skip(reason="this run leaves out PostgreSQL (pytest --all, or TOOLDECK_TEST_BACKENDS, runs it)")
    for item in items:
        if "pg_cluster" in getattr(item, "fixturenames", ()):
            item.add_marker(skip)


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[PgCluster]:
    cluster = PgCluster()
    yield cluster
    cluster.close()


@dataclass(frozen=True)
class Backend:
    """The backend a test runs on; `url` is None for SQLite (and then TOOLDECK_DATABASE_URL is unset)."""

    name: str
    url: str | None = None
    cluster: PgCluster | None = None

    @property
    def postgres(self) -> bool:
        return self.url is not None


@pytest.fixture
def backend(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[Backend]:
    """SQLite, or a fresh PostgreSQL database named by TOOLDECK_DATABASE_URL (so subprocesses use it too)."""
    if request.param == "sqlite":
        yield Backend("sqlite")
        return
    cluster: PgCluster = request.getfixturevalue("pg_cluster")
    name = cluster.create()
    url = cluster.url(name)
    monkeypatch.setenv("TOOLDECK_DATABASE_URL", url)
    try:
        yield Backend("postgresql", url, cluster)
    finally:
        cluster.drop(name)


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
