"""A tool's records under a new id: an imported MCP tool whose id got shorter (`git_git_status` -> `git_status`)
keeps its calls, failures, scores, tags, circuit and controls. What a version's approval is keyed on (promotions,
pins, proposals) is never renamed: an id that has any keeps its old form (`pinned_ids`)."""

from __future__ import annotations

from typing import Any

#: append-only logs: every row of the old id moves
LOGS = ("calls", "failures", "score_history")
#: one row per (tool_id, version): moves unless the new id already has that version's row
KEYED = ("tool_health", "tool_controls", "call_counters")
#: where an approved or proposed version is keyed: an id found here is not renamed
PINNED = ("promotions", "promotion_history", "approved_files", "proposals")


def _marks(ids: list[str]) -> str:
    return ", ".join("?" for _ in ids)


def pinned_ids(store: Any, ids: list[str]) -> set[str]:
    """Which of `ids` a promotion, an approval's pins or a proposal is keyed on."""
    if not ids:
        return set()
    union = " UNION ".join(f"SELECT tool_id FROM {t} WHERE tool_id IN ({_marks(ids)})" for t in PINNED)
    return {r[0] for r in store.query(union, tuple(ids) * len(PINNED))}


def with_records(store: Any, ids: list[str]) -> set[str]:
    """Which of `ids` have records that `rename_records` would move."""
    if not ids:
        return set()
    union = " UNION ".join(f"SELECT tool_id FROM {t} WHERE tool_id IN ({_marks(ids)})" for t in (*LOGS, *KEYED))
    return {r[0] for r in store.query(union, tuple(ids) * (len(LOGS) + len(KEYED)))}


def rename_records(store: Any, old: str, new: str) -> dict[str, int]:
    """Move `old`'s records to `new` in one transaction; rows moved per table."""
    moved: dict[str, int] = {}
    with store.tx() as con:
        for table in LOGS:
            moved[table] = con.execute(f"UPDATE {table} SET tool_id=? WHERE tool_id=?", (new, old)).rowcount
        for table in KEYED:
            moved[table] = con.execute(
                f"UPDATE {table} SET tool_id=? WHERE tool_id=? AND NOT EXISTS"
                f" (SELECT 1 FROM {table} AS taken WHERE taken.tool_id=? AND taken.version={table}.version)",
                (new, old, new)).rowcount
    return moved
