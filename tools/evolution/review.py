"""Review and promotion of evolved versions: the diff a person approves, and what it changes.

A proposal serves calls only after `approve` (or an explicit auto-approve
policy): the approval names the sha256 of the diff the reviewer saw, and is
refused when the candidate or its parent changed since. The diff, its sha256
and the pins are made of one read of the candidate's files
(tools.evolution.candidate), so what is pinned is what the hash bound; `review
show` and `review list` say when the files on disk are no longer the ones
validated or approved. Resolution reads the
`promotions` table (session scope, then 'global', then the base version).
`UnapprovedGuard` refuses an explicit call of an evolved version nobody
approved, so unapproved code never reaches a warm worker or a child process
outside the sandbox.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from state import approved, promotions, proposals
from state.redact import redact
from tools.errors import NotFoundError, StaleReviewError, ToolError, ToolUnavailableError, UsageError
from tools.evolution.candidate import Candidate, read_candidate
from tools.ids import check_name, check_tool_id, check_version

if TYPE_CHECKING:
    from tools.host import RuntimeHost

STATUSES = ("generating", "validating", "awaiting_review", "failed_validation", "approved", "rejected",
            "rolled_back", "cancelled", "failed",  # failed: interrupted, its runtime gone (tools.evolution.orphans)
            "model_error")  # the model could not answer (no recording, a refused request, the budget spent)
RUNNING = ("generating", "validating")
APPROVABLE = ("awaiting_review", "approved", "rolled_back")
#: a proposal in these states is validated again on request (tools.evolution.evolve.revalidate)
REVALIDATE_FROM = ("awaiting_review", "failed_validation")
_SHA256 = re.compile(r"[0-9a-f]{64}")


# -- reading proposals -----------------------------------------------------------------


def _row_to_dict(row: Any) -> dict[str, Any]:
    out = dict(row)
    for key in ("stages", "protections", "memory"):
        try:
            out[key] = json.loads(out.get(key) or ("[]" if key == "stages" else "{}"))
        except json.JSONDecodeError:
            out[key] = [] if key == "stages" else {}
    out["dynamic_schema"] = bool(out.get("dynamic_schema"))
    memory = out.get("memory")  # a revalidation's record of files an operator edited (tools.evolution.evolve._note_edit)
    out["edited"] = list(memory.get("edited") or []) if isinstance(memory, dict) else []
    out["tokens"] = {"input": out.get("input_tokens", 0), "output": out.get("output_tokens", 0)}
    out["replay"] = out.get("provider") == "replay"
    return out


def list_proposals(runtime: RuntimeHost, status: str | None = None, *, tool_id: str | None = None,
                   limit: int = 200, check_files: bool = False) -> list[dict[str, Any]]:
    """Newest first; the dashboard's review panel and `tooldeck review list`. With `check_files`, each proposal a
    decision may still follow (APPROVABLE) is read from disk as `review show` reads it, and says whether its files
    changed since validation or approval (`changed_on_disk`, `tampered`)."""
    if status is not None and status not in STATUSES:
        raise UsageError(f"unknown proposal status {status!r}: use one of {', '.join(STATUSES)}")
    if tool_id is not None:
        check_tool_id(tool_id)
    rows = [_row_to_dict(r) for r in proposals.list_rows(runtime.store, status=status, tool_id=tool_id, limit=limit)]
    for row in rows:
        row["changed_on_disk"] = row["tampered"] = None
        if check_files and row["status"] in APPROVABLE and row.get("path"):
            _localise(runtime, row)
            _with_candidate(runtime, row)
    return rows


def _proposal_id(value: Any) -> int:
    try:
        pid = int(value)
    except (TypeError, ValueError):
        raise UsageError(f"invalid proposal id {value!r}: expected a number") from None
    if pid <= 0:
        raise UsageError(f"invalid proposal id {value!r}: expected a positive number")
    return pid


def get_proposal(runtime: RuntimeHost, proposal_id: Any, *, with_diff: bool = True) -> dict[str, Any]:
    """One proposal with its stages, protections, tokens, model, and (by default) the diff and its sha256."""
    pid = _proposal_id(proposal_id)
    row = proposals.get_row(runtime.store, pid)
    if row is None:
        raise UsageError(f"no proposal {pid} (see tooldeck review list)")
    out = _row_to_dict(row)
    _localise(runtime, out)
    if with_diff and not out.get("path"):  # no candidate was written (the model failed, or it was cancelled first)
        out["diff"], out["current_diff_sha256"] = None, None  # not its parent's deletion: its failure says what happened
        out["tampered"] = out["changed_on_disk"] = None
        out["problems"] = []
    elif with_diff:
        _with_candidate(runtime, out)
    return out


def _with_candidate(runtime: RuntimeHost, out: dict[str, Any]) -> Candidate | None:
    """The proposal's diff and its sha256 as its files are now (one read), and what that read says of them:
    `tampered` (not the pinned files), `changed_on_disk` (not the diff validated or approved), `problems` (files
    that would not run or load as the diff shows them)."""
    try:
        candidate = read_candidate(out)
    except ToolError as exc:
        out["diff"], out["current_diff_sha256"] = f"(diff unavailable: {exc.message})", None
        out["tampered"] = out["changed_on_disk"] = None
        out["problems"] = []
        return None
    out["diff"], out["current_diff_sha256"] = candidate.diff, candidate.sha256
    out["tampered"] = tampered(runtime, out, candidate)
    out["changed_on_disk"] = changed_on_disk(runtime, out, candidate)
    out["problems"] = list(candidate.problems)
    return candidate


def _localise(runtime: RuntimeHost, proposal: dict[str, Any]) -> None:
    """A proposal made by another node (another workspace, another machine): its candidate as this
    node has it, in its own `.tooldeck/evolved/` (written from the store, each file checked against
    its sha256), and its parent as this node's catalog loads it. What is reviewed and pinned here is
    then this node's copy of the same bytes; a parent whose files differ here changes the diff's
    sha256, and the approval is refused."""
    path = proposal.get("path")
    evolved = runtime.home / "evolved"
    if not path or Path(path).is_relative_to(evolved):
        return
    folder = evolved / proposal["tool_id"] / proposal["version"]
    if not folder.is_dir():
        from tools.evolution.pins import materialise_candidate

        materialise_candidate(runtime.store, evolved, proposal["tool_id"], proposal["version"], proposal["id"])
    local = folder / Path(path).name
    if not local.is_file():
        return  # nothing kept in the store (a proposal older than schema 5): the path as recorded
    proposal["origin_path"], proposal["path"] = path, str(local)
    parent = runtime.catalog.find(proposal["tool_id"], proposal.get("parent_version"))
    if parent is not None:
        proposal["parent_path"] = str(parent.path)


def tampered(runtime: RuntimeHost, proposal: dict[str, Any], candidate: Candidate) -> str | None:
    """Why a pinned (approved) version's files, as `candidate` read them, are no longer the ones approved, or None."""
    from tools.evolution.pins import differs, pinned

    if not proposal.get("path") or proposal.get("approved_at") is None:
        return None
    pins = pinned(runtime.store, proposal["tool_id"], proposal["version"])
    return differs(candidate.folder, candidate.names(), candidate.digest, pins) if pins else None


def changed_on_disk(runtime: RuntimeHost, proposal: dict[str, Any], candidate: Candidate) -> str | None:
    """What changed on disk since the proposal's diff was validated (and, for an approved one, approved), or None:
    the stages it shows, and any approval, are for that earlier diff."""
    recorded = proposal.get("diff_sha256")
    if not recorded or candidate.sha256 == recorded or proposal.get("status") in RUNNING:
        return None
    kept = approved.candidate_files(runtime.store, proposal["id"])
    if not kept:  # validated before the files were kept (schema 5): which side changed is unknown
        what = "the candidate or its parent changed"
    else:
        files = candidate.changed_from(kept)
        what = (f"{', '.join(files)} changed" if files
                else f"its parent ({proposal.get('tool_id')} {proposal.get('parent_version') or 'none'}) changed")
    hashes = f"(sha256 {recorded[:12]}...; now {candidate.sha256[:12]}...)"
    if proposal.get("status") in ("approved", "rolled_back"):
        return f"{what} on disk since approval: the diff is not the one approved {hashes}"
    again = (f"; validate it again: tooldeck review revalidate {proposal['id']}, or evolve again"
             if proposal.get("status") in REVALIDATE_FROM else "")
    return f"{what} on disk since validation: the stages shown are for the earlier diff {hashes}{again}"


# -- the diff --------------------------------------------------------------------------------


def diff_for(proposal: dict[str, Any]) -> tuple[str, str]:
    """Unified diff (manifest, then code) of the candidate against its parent, and the diff's sha256."""
    candidate = read_candidate(proposal)
    return candidate.diff, candidate.sha256


# -- decisions ------------------------------------------------------------------------------


def _scope(value: Any) -> str:
    if value in (None, "", "global"):
        return "global"
    return check_name(value, "scope (a session id, or global)")


def check_scope(runtime: RuntimeHost, scope: str, *, promoted: Iterable[str] = (), what: str = "") -> None:
    """`global`, a session that is live now (another runtime's), or one of `promoted` (the scopes that have a
    promotion of the tool, for a rollback): a typo must not promote for nobody, nor report that nobody's version
    did not change. Else a UsageError naming the scopes that would do."""
    promoted = sorted(set(promoted))
    if scope == "global" or scope in promoted:
        return
    live = [r for r in runtime.live_runtimes() if r["session"] != runtime.session]
    if any(r["session"] == scope for r in live):
        return
    sessions = ", ".join(sorted({f"{r['session']} ({r.get('label') or 'runtime'}, pid {r['pid']})" for r in live})) or "none"
    if what:
        raise UsageError(f"{what}: scope {scope!r} is not global, a scope with a promotion of it, or a live session; "
                         f"scopes with a promotion: {', '.join(promoted) or 'none'}; live sessions: {sessions}")
    raise UsageError(f"scope {scope!r} is not global or a live session; live sessions: {sessions}")


def _changed(runtime: RuntimeHost) -> None:
    runtime.invalidate_promotions()
    for name in ("evolution_guard", "evolution_pins"):
        extension = runtime.extensions.get(name)
        if extension is not None:
            extension.invalidate()


def approve(runtime: RuntimeHost, proposal_id: Any, scope: str = "global", reviewer: str | None = None,
            diff_sha256: str | None = None) -> dict[str, Any]:
    """Promote a validated proposal for `scope` (a session id, or 'global'), if the diff is the one reviewed.

    The candidate's files are read once: the diff's sha256 is computed from those bytes, compared with the one the
    reviewer gives, and exactly those bytes are pinned (a file swapped on disk after the read is not served: it
    differs from its pin). Approving a version for a scope it already serves changes nothing (`unchanged`)."""
    scope = _scope(scope)
    proposal = get_proposal(runtime, proposal_id, with_diff=False)
    pid, tool_id, version = proposal["id"], proposal["tool_id"], proposal["version"]
    if proposal["status"] not in APPROVABLE:
        raise StaleReviewError(f"proposal {pid} is {proposal['status']}: only a proposal awaiting review, or approved or rolled "
                               "back before (for another scope, or again), can be approved",
                               tool_id=tool_id)
    if not proposal.get("path"):
        raise ToolUnavailableError(f"proposal {pid} has no candidate files", tool_id=tool_id)
    candidate = _with_candidate(runtime, proposal)  # the one read: diff, sha256 and pins are made of these bytes
    if candidate is None:
        raise ToolUnavailableError(f"proposal {pid}: {proposal['diff']}", tool_id=tool_id)
    if proposal.get("tampered"):
        raise ToolUnavailableError(f"proposal {pid}: {proposal['tampered']}; evolve again", tool_id=tool_id)
    current = candidate.sha256
    if not diff_sha256:
        raise UsageError(f"approve proposal {pid}: give the sha256 of the diff you reviewed (--diff {current})")
    given = diff_sha256.strip().lower()
    if not _SHA256.fullmatch(given):
        raise UsageError(f"approve proposal {pid}: --diff must be the full 64-hex sha256 (tooldeck review show {pid} prints it)")
    if given != current:
        raise StaleReviewError(
            f"proposal {pid}: stale diff hash {given[:12]}...: the diff is now {current}; review it again "
            f"(tooldeck review show {pid})", tool_id=tool_id)
    if proposal["status"] == "approved" and promotions.promoted(runtime.store, tool_id, scope) == version:
        return _unchanged(runtime, pid, scope)
    if proposal.get("diff_sha256") and current != proposal["diff_sha256"]:
        again = (f"validate it again (tooldeck review revalidate {pid}) or evolve again" if proposal["status"] in REVALIDATE_FROM
                 else "evolve again")
        raise ToolUnavailableError(
            f"proposal {pid}: the candidate or its parent changed on disk after validation (diff was "
            f"{proposal['diff_sha256'][:12]}..., now {current[:12]}...); {again}", tool_id=tool_id)
    refused = [*candidate.problems, *candidate.unreadable.values()]
    if candidate.manifest_error:
        refused.insert(0, candidate.manifest_error)
    if refused:
        raise ToolUnavailableError(f"proposal {pid}: {'; '.join(refused)}; evolve again", tool_id=tool_id)
    extra = candidate.unshown()
    if extra:
        raise ToolUnavailableError(
            f"proposal {pid}: {candidate.folder} holds files the diff does not show ({', '.join(extra)}); remove them or evolve "
            "again", tool_id=tool_id)
    now = runtime.store.now()
    from tools.evolution.pins import pin

    with runtime.store.tx() as con:
        _still(con, runtime, proposal, APPROVABLE, "approved")
        previous = promotions.promoted(con, tool_id, scope)
        if previous != version:  # else another approval of this scope committed meanwhile: nothing to change
            pin(con, tool_id, version, candidate.files, pid)  # what was reviewed is what may serve: these bytes, no re-read
            promotions.promote(con, tool_id, scope, version, original_version=proposal["parent_version"], proposal_id=pid,
                               reason=proposal.get("mutation_hint"), reviewer=reviewer, now=now)
            proposals.mark_approved(con, pid, reviewer, scope, now)
            promotions.note(con, tool_id, scope, "approved", version, previous, pid, reviewer, proposal.get("mutation_hint"),
                            now)
    if previous == version:
        return _unchanged(runtime, pid, scope)
    _ensure_loaded(runtime, proposal)
    _changed(runtime)
    runtime.events.emit("promotion.approved", tool_id, version, proposal_id=pid, scope=scope, reviewer=reviewer,
                        previous_version=previous, diff_sha256=current)
    return get_proposal(runtime, pid, with_diff=False)


def _unchanged(runtime: RuntimeHost, pid: int, scope: str) -> dict[str, Any]:
    """An approval for a scope the version already serves: nothing written, the first approval's record kept (as a
    rollback to what already serves)."""
    out = get_proposal(runtime, pid, with_diff=False)
    out["unchanged"], out["scope"] = True, scope  # the scope asked for, which it serves already
    return out


def _still(con: Any, runtime: RuntimeHost, proposal: dict[str, Any], allowed: tuple[str, ...], verb: str) -> None:
    """Inside the decision's transaction, with the proposal's row locked: is it still in a state that
    may be `verb`? (Another reviewer, on this node or another, may have decided meanwhile.)"""
    status = proposals.locked_status(runtime.store, con, proposal["id"])
    if status not in allowed:
        raise StaleReviewError(f"proposal {proposal['id']} is {status} (decided meanwhile): it cannot be {verb} now",
                                   tool_id=proposal["tool_id"])


def _ensure_loaded(runtime: RuntimeHost, proposal: dict[str, Any]) -> None:
    """The catalog knows the promoted version even if no watcher saw its files land."""
    if runtime.catalog.find(proposal["tool_id"], proposal["version"]) is None and proposal.get("path"):
        runtime.catalog.reload_path(Path(proposal["path"]))


def reject(runtime: RuntimeHost, proposal_id: Any, reason: str, reviewer: str | None = None) -> dict[str, Any]:
    """Refuse a proposal; its version number stays used, so the next evolution takes the next minor."""
    if not reason or not str(reason).strip():
        raise UsageError("reject needs a reason (--reason)")
    proposal = get_proposal(runtime, proposal_id, with_diff=False)
    pid = proposal["id"]
    if proposal["status"] not in ("awaiting_review", "failed_validation"):
        hint = "; use rollback to stop serving it" if proposal["status"] == "approved" else ""
        raise StaleReviewError(f"proposal {pid} is {proposal['status']}: only a proposal awaiting review or failed validation "
                               f"can be rejected{hint}",
                                   tool_id=proposal["tool_id"])
    reason = redact(str(reason))
    now = runtime.store.now()
    with runtime.store.tx() as con:
        _still(con, runtime, proposal, ("awaiting_review", "failed_validation"), "rejected")
        proposals.mark_rejected(con, pid, reviewer, reason[:2000], now)
    _changed(runtime)
    runtime.events.emit("promotion.rejected", proposal["tool_id"], proposal["version"], proposal_id=pid, reason=str(reason)[:500],
                        reviewer=reviewer)
    return get_proposal(runtime, pid, with_diff=False)


def rollback(runtime: RuntimeHost, tool_id: str, to_version: str, scope: str = "global", actor: str | None = None) -> dict[str, Any]:
    """Serve `to_version` (the base version, or any version once approved) for `scope` again."""
    check_tool_id(tool_id)
    check_version(to_version)
    scope = _scope(scope)
    base = runtime.get_tool(tool_id)
    base_version = base.served_version
    every = promotions.all_promotions(runtime.store)
    current = every.get((tool_id, scope))
    target_proposal = None
    if to_version != base_version:
        target_proposal = proposals.approved_id(runtime.store, tool_id, to_version)
        if target_proposal is None:
            raise NotFoundError(
                f"rollback {tool_id}: {to_version} is neither the base version ({base_version}) nor a version that was approved",
                tool_id=tool_id)
    if current is None:  # no promotion here: a live session, or a typo that must not read as "nothing changed"
        check_scope(runtime, scope, promoted=[s for (t, s) in every if t == tool_id], what=f"rollback {tool_id}")
    if (current or base_version) == to_version:  # a no-op, as gh and kubectl treat one: nothing to change
        return {"tool_id": tool_id, "scope": scope, "version": to_version, "previous_version": current, "unchanged": True}
    now = runtime.store.now()
    with runtime.store.tx() as con:
        if target_proposal is None:
            promotions.unpromote(con, tool_id, scope)
        else:
            promotions.promote(con, tool_id, scope, to_version, original_version=base_version, proposal_id=target_proposal,
                               reason=f"rollback from {current}", reviewer=actor, now=now)
            proposals.mark_serving_again(con, target_proposal, now)
        if current is not None and not promotions.scopes_served(con, tool_id, current):
            proposals.mark_rolled_back(con, tool_id, current, now)
        promotions.note(con, tool_id, scope, "rolled_back", to_version, current, target_proposal, actor, None, now)
    _changed(runtime)
    runtime.events.emit("promotion.rolled_back", tool_id, to_version, scope=scope, previous_version=current, actor=actor)
    return {"tool_id": tool_id, "scope": scope, "version": to_version, "previous_version": current}


def cancel(runtime: RuntimeHost, proposal_id: Any) -> dict[str, Any]:
    """Stop a running evolution (in this or another process); its version number stays used."""
    proposal = get_proposal(runtime, proposal_id, with_diff=False)
    pid = proposal["id"]
    with runtime.store.tx() as con:
        done = proposals.request_cancel(con, pid, RUNNING, runtime.store.now())
    if not done:
        raise StaleReviewError(f"proposal {pid} is {proposal['status']}: only a running evolution (generating, validating) "
                               "can be cancelled", tool_id=proposal["tool_id"])
    runtime.events.emit("evolution.cancelled", proposal["tool_id"], proposal["version"], proposal_id=pid)
    return get_proposal(runtime, pid, with_diff=False)


# -- the guard on the call path ---------------------------------------------------------------


class UnapprovedGuard:
    """A CallHook refusing evolved versions that no person (or explicit policy) approved.

    The hot path costs one attribute comparison for every non-evolved tool; for an
    evolved one, a set lookup in a cache refreshed at most every `max_age` seconds
    (and immediately before refusing, so a fresh approval elsewhere is seen).
    It is a guard: it runs before unobserved calls too (`tooldeck test TOOL --version V`).
    """

    guard = True

    def __init__(self, max_age: float = 1.0) -> None:
        self.max_age = max_age
        self._allowed: frozenset[tuple[str, str]] = frozenset()
        self._at = 0.0
        self._lock = threading.Lock()

    def invalidate(self) -> None:
        self._at = 0.0

    def _refresh(self, runtime: RuntimeHost) -> frozenset[tuple[str, str]]:
        with self._lock:
            allowed = proposals.ever_approved(runtime.store)
            allowed.update((tool_id, version) for (tool_id, _scope), version in runtime.promotions(0).items())
            self._allowed = frozenset(allowed)
            self._at = time.monotonic()
            return self._allowed

    def before_call(self, runtime: RuntimeHost, entry: Any) -> None:
        if entry.source != "evolved":
            return
        key = (entry.tool_id, entry.served_version)
        allowed = self._allowed if time.monotonic() - self._at < self.max_age else self._refresh(runtime)
        if key in allowed or key in self._refresh(runtime):
            return
        row = proposals.latest(runtime.store, *key)
        state = f"proposal {row[0]} is {row[1]}" if row else "it has no proposal"
        if row is not None and row[1] == "awaiting_review":  # the one state an approval can follow
            hint = f"it runs only once approved: `tooldeck review show {row[0]}` says how"
        else:
            hint = "nothing can approve it now; evolve the tool again for a version to review"
        raise ToolUnavailableError(f"{entry.tool_id} {entry.served_version} is an evolved version nobody approved ({state}); "
                                   f"{hint}", tool_id=entry.tool_id, version=entry.served_version)

    def after_call(self, runtime: RuntimeHost, entry: Any, outcome: str, duration_ms: float, error: Any, data: Any) -> None:
        return None
