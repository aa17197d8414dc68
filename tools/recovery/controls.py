"""Operator controls: undo what failure tracking decided, and say who did it.

Each control is one short transaction that bumps `failure_seq` (so every process
picks it up on its next sync) and one `control.<action>` event naming the actor.
Disabling uses the `tool_controls` table; version "*" means every version of the tool.
"""

from __future__ import annotations

import getpass
import json
import re
from typing import Any

from state import failures as tables
from tools.errors import UsageError
from tools.ids import check_tool_id, check_version
from tools.recovery.circuit import CLOSED, OPEN
from tools.recovery.ledger import tracker_for
from tools.recovery.rules import check_tag

ACTOR_RE = re.compile(r"^[\w.@+\- ]{1,64}\Z")
ALL_VERSIONS = tables.ALL_VERSIONS


def default_actor() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no passwd entry (containers): fall back to a plain label
        return "operator"


def check_actor(actor: str | None) -> str:
    actor = actor if actor is not None else default_actor()
    if not isinstance(actor, str) or not ACTOR_RE.fullmatch(actor):
        raise UsageError(f"invalid actor {actor!r}: 1-64 letters, digits, spaces or . @ + - _")
    return actor


def _target(runtime: Any, tool_id: str, version: str | None) -> tuple[str, str, float]:
    """(tool_id, version, manifest quality_score): an explicit version, or the one calls resolve to."""
    check_tool_id(tool_id)
    if version is not None:
        check_version(version)
    entry = runtime.resolve(tool_id, version)
    base = float(entry.manifest.quality_score) if entry.manifest is not None else 1.0
    return tool_id, entry.served_version, base


def _done(runtime: Any, action: str, tool_id: str, version: str, actor: str, **payload: Any) -> dict[str, Any]:
    runtime.events.emit(f"control.{action}", tool_id, version, actor=actor, **payload)
    tracker_for(runtime).sync(force=True)
    return {"ok": True, "action": action, "tool_id": tool_id, "version": version, "actor": actor, **payload}


def reset_score(runtime: Any, tool_id: str, version: str | None = None, *, actor: str | None = None) -> dict[str, Any]:
    """Put the score back to the manifest's quality_score (tags and circuit are left alone)."""
    actor = check_actor(actor)
    tool_id, version, base = _target(runtime, tool_id, version)
    now = runtime.store.now()
    with runtime.store.tx() as con:
        rev = tables.bump_seq(con)
        tables.ensure_health(con, tool_id, version, base, now)
        before = float(tables.health_row(con, tool_id, version)["score"])
        tables.set_score(con, tool_id, version, base, rev, now, base=base)
        tables.note_score(con, tool_id, version, base, base - before, "reset", now)
    return _done(runtime, "reset_score", tool_id, version, actor, score_before=round(before, 4), score=base)


def remove_tag(runtime: Any, tool_id: str, tag: str, version: str | None = None, *, actor: str | None = None) -> dict[str, Any]:
    actor = check_actor(actor)
    check_tag(tag)
    tool_id, version, base = _target(runtime, tool_id, version)
    now = runtime.store.now()
    with runtime.store.tx() as con:
        row = tables.health_row(con, tool_id, version)
        tags = json.loads(row["tags"]) if row is not None else []
        if tag not in tags:
            raise UsageError(f"{tool_id} {version} has no tag {tag!r} (tags: {', '.join(tags) or 'none'})")
        rev = tables.bump_seq(con)
        tags.remove(tag)
        tables.set_tags(con, tool_id, version, tags, rev, now)
    return _done(runtime, "remove_tag", tool_id, version, actor, tag=tag, tags=tags)


def force_circuit(runtime: Any, tool_id: str, state: str, version: str | None = None, *, actor: str | None = None,
                  reason: str | None = None) -> dict[str, Any]:
    """`open`: held open until an operator closes it (no half-open probes). `closed`: reset to closed, window cleared."""
    actor = check_actor(actor)
    if state not in (OPEN, CLOSED):
        raise UsageError(f"circuit state must be open or closed, not {state!r}")
    tool_id, version, base = _target(runtime, tool_id, version)
    now = runtime.store.now()
    why = reason or f"forced {state} by {actor}"
    with runtime.store.tx() as con:
        rev = tables.bump_seq(con)
        tables.ensure_health(con, tool_id, version, base, now)
        if state == OPEN:
            tables.open_circuit(con, tool_id, version, why, now, rev, forced=True)
        else:
            tables.close_circuit(con, tool_id, version, why, now, rev)
    return _done(runtime, "circuit", tool_id, version, actor, state=state, reason=why)


def set_disabled(runtime: Any, tool_id: str, disabled: bool, version: str | None = None, *, actor: str | None = None,
                 reason: str | None = None) -> dict[str, Any]:
    """Disable (or enable) one version, or with no version every version of the tool."""
    actor = check_actor(actor)
    check_tool_id(tool_id)
    if version is None:
        runtime.get_tool(tool_id)  # an unknown id is a clear error, not a silent row
        version = ALL_VERSIONS
    else:
        _target(runtime, tool_id, version)
    if reason is not None and (not isinstance(reason, str) or len(reason) > 200):
        raise UsageError("reason must be a string of at most 200 characters")
    now = runtime.store.now()
    with runtime.store.tx() as con:
        tables.bump_seq(con)
        if disabled:
            tables.disable(con, tool_id, version, reason, actor, now)
        else:
            tables.enable(con, tool_id, version, reason, actor, now)
    return _done(runtime, "disable" if disabled else "enable", tool_id, version, actor, reason=reason)
