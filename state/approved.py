"""Approved code in the store: `approved_files` (the pins: each file of an approved version by name,
sha256 and size), `approved_blobs` (file contents by sha256, shared by every node) and
`proposal_files` (a candidate's files, so any node can review it).

tools/evolution/pins.py decides what is pinned, verified and written to disk; the SQL is here.
Functions taking `con` run inside the caller's transaction (an approval pins in its own).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from state.db import Store


def pins(store_or_con: Any, tool_id: str, version: str) -> dict[str, tuple[str, int]]:
    """name -> (sha256, size) of every pinned file of a version ({} when it was never approved)."""
    rows = store_or_con.execute(
        "SELECT name, sha256, size FROM approved_files WHERE tool_id=? AND version=?", (tool_id, version)).fetchall()
    return {r[0]: (r[1], int(r[2])) for r in rows}


def add_pins(con: Any, tool_id: str, version: str, files: Iterable[tuple[str, str, int]], proposal_id: int | None,
             now: float) -> None:
    """Pin (name, sha256, size) files of a version."""
    con.executemany("INSERT INTO approved_files(tool_id, version, name, sha256, size, proposal_id, approved_at)"
                    " VALUES (?,?,?,?,?,?,?)", [(tool_id, version, name, sha, size, proposal_id, now) for name, sha, size in files])


def pinned_versions(store: Store) -> set[tuple[str, str]]:
    """(tool_id, version) of every version with pins."""
    return {(r[0], r[1]) for r in store.query("SELECT tool_id, version FROM approved_files")}


def add_blobs(con: Any, blobs: Iterable[tuple[str, int, bytes]]) -> None:
    """Keep (sha256, size, bytes) contents; a content kept already is kept once."""
    con.executemany("INSERT INTO approved_blobs(sha256, size, data) VALUES (?,?,?) ON CONFLICT DO NOTHING",
                    sorted(blobs, key=lambda b: b[0]))  # key order: two approvals sharing contents never deadlock


def set_candidate_files(con: Any, proposal_id: int, files: Iterable[tuple[str, str, int]]) -> None:
    """A proposal's candidate files (name, sha256, size), replacing what it had."""
    con.execute("DELETE FROM proposal_files WHERE proposal_id=?", (proposal_id,))
    con.executemany("INSERT INTO proposal_files(proposal_id, name, sha256, size) VALUES (?,?,?,?)",
                    [(proposal_id, name, sha, size) for name, sha, size in files])


def candidate_files(store_or_con: Any, proposal_id: int) -> dict[str, tuple[str, int]]:
    """name -> (sha256, size) of a proposal's candidate files as its validation kept them ({} when none were kept)."""
    rows = store_or_con.execute("SELECT name, sha256, size FROM proposal_files WHERE proposal_id=?", (proposal_id,)).fetchall()
    return {r[0]: (r[1], int(r[2])) for r in rows}


def approved_contents(store: Store, tool_id: str, version: str) -> list[Any]:
    """(name, sha256, bytes or None when the content was never kept) of an approved version's files."""
    return store.query("SELECT f.name, f.sha256, b.data FROM approved_files f LEFT JOIN approved_blobs b ON b.sha256 = f.sha256"
                       " WHERE f.tool_id=? AND f.version=? ORDER BY f.name", (tool_id, version))


def candidate_contents(store: Store, proposal_id: int) -> list[Any]:
    """(name, sha256, bytes or None) of a proposal's candidate files."""
    return store.query("SELECT f.name, f.sha256, b.data FROM proposal_files f LEFT JOIN approved_blobs b ON b.sha256 = f.sha256"
                       " WHERE f.proposal_id=? ORDER BY f.name", (proposal_id,))
