"""`<workspace>/tooldeck.toml`: the settings a person edits.

Everything has a default, so a workspace with no file works.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tools.errors import UsageError

DEFAULTS: dict[str, dict[str, Any]] = {
    "model": {
        "provider": "auto",  # auto | anthropic | replay | none
        "name": "claude-sonnet-4-5",
        "max_tokens": 8000,
        "timeout_seconds": 120,
        "daily_token_budget": 2_000_000,
        "replay_dir": "",
        "base_url": "",  # empty: ANTHROPIC_BASE_URL, else the SDK default
        "max_retries": 2,
    },
    "evolution": {
        "auto_approve": "off",  # off | all-stages-passed
        "max_rounds": 2,
        "sandbox_timeout_seconds": 10,
        "sandbox_memory_mb": 512,
        "sandbox_disk_mb": 64,  # the throwaway folder's tmpfs
        "sandbox_launcher": "auto",  # auto | bwrap | unshare | none
        "regression_cases": 20,
        "memory": True,  # offer past approved fixes and rejected approaches of similar failures (tools.evolution.memory)
        "memory_examples": 3,  # how many of each
        "auto_propose": False,  # a serving runtime evolves a tool whose score fell below auto_propose_below (never approves)
        "auto_propose_below": 0.5,
    },
    "buffers": {
        "max_attempts": 5,
        "backoff_base_seconds": 0.5,
        "backoff_max_seconds": 30,
        "lease_seconds": 30,
        "poll_seconds": 0.1,
        "max_parallel_deliveries": 4,  # buffers delivering at once per runtime (one batch in flight per buffer)
    },
    "circuit": {
        "window": 20,
        "min_calls": 5,
        "failure_rate": 0.5,
        "consecutive_failures": 10,
        "cooldown_seconds": 30,
        "half_open_probes": 2,
        "probe_timeout_seconds": 60,
        "significance": 0.05,  # the failure share must be this unlikely at failure_rate to open; 1: plain share
    },
    "failures": {
        "sync_interval_seconds": 0.5,  # how often batched successes are written and other processes' changes read
        "acceleration_window_seconds": 86400,
    },
    "memory": {
        "preload": "serve",  # serve | always | never: build the semantic memory at start (else on first use)
        "collection_prefix": "tooldeck",
        "tail_interval_seconds": 1.0,
        "persist": True,  # keep the embedded tool index in <home>/index/ (a restart embeds only changed tools)
        "save_interval_seconds": 30.0,  # a changed tool index is saved at most this often, and at stop
    },
    "resilient": {
        "min_similarity": 0.35,
        "penalty_min_similarity": 0.5,
        "candidate_pool": 32,
        "tagged_candidate_pool": 256,
        "ready_timeout_seconds": 30,
        "skip_predicted_above": 0.9,  # predicted to fail this likely (remembered failures): skipped; 1 never skips
        "near_copy_similarity": 0.9,  # a candidate this similar to one ranked above it is tried after the distinct ones; 1: off
    },
    "retention": {
        "events_days": 7,
        "calls_days": 7,
        "failures_days": 30,
        "max_db_mb": 512,  # the live rows' size budget: past it the oldest history goes first (0: no budget)
    },
    "calls": {
        "max_queued_records": 10_000,  # call records held while the store refuses writes; then the oldest are dropped
        "default_timeout_seconds": 30,
        "max_output_bytes": 16 << 20,  # per call and stream (stdout, stderr, a worker's reply); a tool past it is killed
        "max_workers_per_tool": 4,  # warm workers a python tool may grow to while every one is busy (manifest: executable.max_workers)
    },
    "mcp": {
        # [mcp.serve]: what `tooldeck mcp serve` offers MCP clients (tools/mcp/config.py checks it)
        "serve": {
            "expose": ["*", "!evolve_tool"],  # tool ids, globs and tags ("tag:csv"); "!" removes; the last match wins
            "hide": [],  # the same patterns, removed after expose
            "buffer_operations": ["write", "write_many", "flush", "status", "configure", "dead_letters"],  # not clear, replay
            "page_size": 100,
            "allowed_origins": [],
            "allowed_hosts": [],
            "file_roots": ["specs"],  # folders (of the workspace) builtins may read files from for MCP clients
            "tool_search": False,  # list search_tools and what a client found with it, not every tool (tools/mcp/search.py)
            "pinned": [],  # tool ids a tool_search endpoint always lists
        },
    },
    "keymap": {},
    # [state]: where the shared state lives: "" is SQLite in .tooldeck/; a postgresql:// URL (without a password:
    # PGPASSWORD, ~/.pgpass or a ${VAR} reference) puts it on PostgreSQL; TOOLDECK_DATABASE_URL wins.
    # pool_size: connections per process to PostgreSQL (0: 8, and 1 for a CLI command)
    "state": {
        "database_url": "",
        "pool_size": 0,
    },
}


#: tables of named entries a person adds (checked by the room that reads them), not keys with defaults
NAMED_TABLES = {("mcp", "servers")}  # [mcp.servers.NAME]: tools.mcp.servers


@dataclass(frozen=True)
class Settings:
    data: dict[str, dict[str, Any]] = field(default_factory=dict)
    path: Path | None = None
    #: unknown sections and keys (typos), reported as `runtime.warning` events rather than ignored silently
    warnings: tuple[str, ...] = ()

    def section(self, name: str) -> dict[str, Any]:
        merged = dict(DEFAULTS.get(name, {}))
        merged.update(self.data.get(name, {}))
        return merged

    def get(self, section: str, key: str, default: Any = None) -> Any:
        return self.section(section).get(key, default)

    def positive_int(self, section: str, key: str, unit: str = "") -> int:
        """A setting that counts something (bytes, workers): its value, or a UsageError naming the
        file and the key, so a typo stops the call that reads it instead of running with a guess."""
        value = self.get(section, key)
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise UsageError(f"{self.path or 'tooldeck.toml'}: [{section}] {key} must be a positive integer"
                             f"{f' ({unit})' if unit else ''}, got {value!r}")
        return value


def load_settings(workspace: Path) -> Settings:
    path = workspace / "tooldeck.toml"
    if not path.exists():
        return Settings({}, None)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise UsageError(f"{path}: invalid TOML: {exc}") from exc
    warnings: list[str] = []
    for name, value in data.items():
        if not isinstance(value, dict):
            raise UsageError(f"{path}: [{name}] must be a table")
        if name not in DEFAULTS:
            warnings.append(f"{path}: unknown section [{name}] (known: {', '.join(DEFAULTS)})")
        elif name != "keymap":
            warnings.extend(f"{path}: unknown setting [{name}] {key}" for key in value
                            if key not in DEFAULTS[name] and (name, key) not in NAMED_TABLES)
            for key, given in value.items():
                if key in DEFAULTS[name]:
                    check_type(path, name, key, given)
    return Settings(data, path, tuple(warnings))


#: whole-number settings that measure time or size and so take any number (`timeout_seconds = 1.5`)
_CONTINUOUS = ("_seconds", "_days", "_mb")


def check_type(path: Path, section: str, key: str, value: Any) -> None:
    """A known setting must have its default's type: a typo such as `cooldown_seconds = "soon"` stops every
    command at once with the file and the key named, instead of failing later in whatever reads it first.

    - true/false settings take true or false;
    - numbers take numbers (never true/false); one whose default is a whole number takes a whole number,
      unless it is a duration or a size (`*_seconds`, `*_days`, `*_mb`);
    - text and lists take text and lists. Tables inside a section (`[mcp.serve]`) are checked by their room.
    Ranges (a pool >= 1, a share in [0, 1]) are checked where the value is used."""
    default = DEFAULTS[section][key]
    if isinstance(default, dict):
        return
    if isinstance(default, bool):
        ok, want = isinstance(value, bool), "true or false"
    elif isinstance(default, (int, float)):
        whole = isinstance(default, int) and not key.endswith(_CONTINUOUS)
        ok = not isinstance(value, bool) and isinstance(value, int if whole else (int, float))
        want = "a whole number" if whole else "a number"
    elif isinstance(default, str):
        ok, want = isinstance(value, str), "text (a quoted string)"
    elif isinstance(default, list):
        ok, want = isinstance(value, list), "a list"
    else:
        return
    if not ok:
        raise UsageError(f"{path}: [{section}] {key} must be {want}, got {value!r}")
