"""Small helpers shared by the tests: writing tools into a catalog folder."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import yaml


def write_tool(folder: Path, name: str, manifest: dict[str, Any] | str, code: str | None = None,
               code_name: str | None = None) -> Path:
    """Write `<folder>/<name>.yaml` (and its code file); returns the manifest path."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.yaml"
    text = manifest if isinstance(manifest, str) else yaml.safe_dump(manifest, sort_keys=False)
    path.write_text(text)
    if code is not None:
        (folder / (code_name or f"{name}.py")).write_text(textwrap.dedent(code))
    return path


def python_tool(folder: Path, name: str, body: str, *, func: str = "run", **extra: Any) -> Path:
    """A `python` tool whose function is `body` (a full `def`)."""
    manifest = {"name": name, "type": "python", "description": f"test tool {name}", "entry": f"{name}.py:{func}", **extra}
    return write_tool(folder, name, manifest, body)


def exec_tool(folder: Path, name: str, script: str, **extra: Any) -> Path:
    """An `executable` tool running `script` with tooldeck's interpreter."""
    executable = {"command": "python", "args": ["{tool_dir}/" + f"{name}.py"], "timeout": extra.pop("timeout", 10)}
    executable.update(extra.pop("executable", {}))
    manifest = {"name": name, "type": "executable", "description": f"test tool {name}", "executable": executable, **extra}
    return write_tool(folder, name, manifest, script)


def state_rows(ws: Path, sql: str, params: tuple[Any, ...] = ()) -> list[dict[str, Any]]:
    """Rows of the workspace's shared state, read as a separate process would: its SQLite file, or the
    PostgreSQL database TOOLDECK_DATABASE_URL names (portable SQL, `?` placeholders)."""
    from state.db import database_url, open_store

    store = open_store(ws / ".tooldeck", url=database_url(), pool_size=1)
    try:
        return [dict(r) for r in store.query(sql, params)]
    finally:
        store.close()


def state_bytes(home: Path) -> bytes:
    """Everything the shared state holds, as bytes to search for a secret: the SQLite file and its WAL,
    or every row of every table of the PostgreSQL database TOOLDECK_DATABASE_URL names."""
    from state.db import database_url, open_store

    url = database_url()
    if url is None:
        return b"".join(p.read_bytes() for p in sorted(home.glob("tooldeck.db*")))
    store = open_store(home, url=url, pool_size=1)
    try:
        tables = [r[0] for r in store.query("SELECT tablename FROM pg_tables WHERE schemaname = current_schema()")]
        return "\n".join(repr(tuple(r)) for t in tables for r in store.query(f"SELECT * FROM {t}")).encode()
    finally:
        store.close()


def alive(pid: int) -> bool:
    """Whether a process runs: a zombie (killed, not yet reaped by its parent) counts as dead."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False
