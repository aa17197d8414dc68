"""Evolving a tool: the model writes a new version beside the original, the sandbox validates it.

`evolve_tool` starts from the globally resolved version (a global promotion,
else the base), sends its code, manifest, tests and recent failures to the
configured model, and writes the answer to `.tooldeck/evolved/<id>/<version>/`
(`<id>.yaml` + `<id>_v1_1_0.py`) with the next unused minor version and a
`lineage:` mapping. The candidate is then validated (tools.evolution.stages) and
queued for review; a failed round is sent back to the model with the errors, up
to `[evolution] max_rounds` rounds. Nothing here imports or runs the candidate
outside the sandbox.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from state import approved, promotions, proposals
from state.redact import redact
from tools.catalog import Manifest, code_file, parse_manifest_text, read_manifest_data
from tools.errors import ManifestError, StaleReviewError, ToolError, ToolInputError, ToolUnavailableError, UsageError
from tools.evolution.candidate import Candidate, read_candidate
from tools.evolution.context import recent_failures, regressions, scenarios
from tools.evolution.memory import failure_shapes, failure_text, offered, prompt_section, recall, repeats
from tools.evolution.prompt import build_prompt, feedback_message
from tools.evolution.review import REVALIDATE_FROM, RUNNING, UnapprovedGuard, approve, get_proposal
from tools.evolution.stages import Cancelled, Cascade, Inputs
from tools.ids import check_tool_id, inside, parse_version

if TYPE_CHECKING:
    from tools.host import RuntimeHost

log = logging.getLogger("tooldeck.evolution")
Progress = Callable[[dict[str, Any]], None]


def install(runtime: RuntimeHost) -> None:
    """EXTENSIONS hook: the guard that keeps unapproved evolved versions off the call path, the pins
    that keep approved ones from serving once their files changed, and reaping interrupted evolutions."""
    from tools.evolution.pins import Pins

    guard = UnapprovedGuard()
    runtime.extensions["evolution_guard"] = guard
    runtime.hooks.append(guard)
    pins = Pins(runtime)
    runtime.extensions["evolution_pins"] = pins
    runtime.catalog.verifier = pins
    pins.drop_old_bytecode()  # once per node: what workers before pins covered bytecode left behind
    from tools.evolution.pins import materialise

    for tool_id, version in {(t, v) for (t, _scope), v in promotions.all_promotions(runtime.store).items()}:
        # approved on another node sharing the database: its files are here before discovery finds them
        materialise(runtime.store, runtime.home / "evolved", tool_id, version)
    from tools.evolution.orphans import reap

    reap(runtime)  # evolutions whose runtime died (an interrupted `tooldeck evolve`) end as failed


#: the reviewed diff kept with the proposal, for evolutions that learn from it later
MAX_KEPT_DIFF = 20_000


def code_name(tool_id: str, version: str) -> str:
    """`csv_parser_v1_1_0.py`, as the original system named evolved files."""
    return f"{tool_id}_v{version.replace('.', '_')}.py"


# -- proposals ------------------------------------------------------------------------------


def next_version(runtime: RuntimeHost, con: Any, tool_id: str, parent_version: str) -> str:
    """The next unused minor of the parent's major: proposals, folders and loaded versions all count."""
    major = parse_version(parent_version)[0]
    used = proposals.versions_of(con, tool_id)
    folder = runtime.home / "evolved" / tool_id
    if folder.is_dir():
        used.update(p.name for p in folder.iterdir() if p.is_dir())
    used.update(runtime.catalog.versions(tool_id))
    used.add(parent_version)
    base = runtime.catalog.find(tool_id)
    if base is not None and base.manifest is not None:
        used.add(base.manifest.version)
    minors = []
    for version in used:
        try:
            v = parse_version(version)
        except ToolError:
            continue
        if v[0] == major:
            minors.append(v[1])
    return f"{major}.{max(minors, default=0) + 1}.0"


def _update(runtime: RuntimeHost, pid: int, *, only_running: bool = True, **fields: Any) -> bool:
    """Update a proposal row; while it runs, an operator's cancel wins over every later write."""
    fields["updated"] = time.time()
    for key in ("stages", "protections"):
        if key in fields and not isinstance(fields[key], str):
            fields[key] = json.dumps(fields[key], default=str)
    for key in ("stages", "failure", "explanation", "diff"):  # model- and tool-written text: no secret reaches the store
        if isinstance(fields.get(key), str):
            fields[key] = redact(fields[key])
    with runtime.store.tx() as con:
        return proposals.update(con, pid, fields, only_in=RUNNING if only_running else ())


class _Run:
    """One evolution in flight: progress, cancellation and the proposal row."""

    def __init__(self, runtime: RuntimeHost, pid: int, tool_id: str, version: str, progress: Progress | None,
                 cancel: threading.Event | None) -> None:
        self.runtime = runtime
        self.pid = pid
        self.tool_id = tool_id
        self.version = version
        self.progress_cb = progress
        self.cancel_event = cancel
        self._checked = 0.0

    def progress(self, stage: str, message: str, **extra: Any) -> None:
        payload = {"proposal_id": self.pid, "stage": stage, "message": message, **extra}
        self.runtime.events.emit("evolution.progress", self.tool_id, self.version, **payload)
        if self.progress_cb is not None:
            self.progress_cb(payload)

    def cancelled(self) -> bool:
        if self.cancel_event is not None and self.cancel_event.is_set():
            return True
        now = time.monotonic()
        if now - self._checked < 0.2:
            return False
        self._checked = now
        state = proposals.cancel_state(self.runtime.store, self.pid)
        return state is None or state[0] or state[1] == "cancelled"

    def check_cancel(self) -> None:
        self._checked = 0.0
        if self.cancelled():
            raise Cancelled

    def ask(self, provider: Any, request: Any) -> Any:
        """The model call in a helper thread, so a cancel is noticed within ~0.2 s."""
        box: dict[str, Any] = {}

        def call() -> None:
            try:
                box["ok"] = provider.complete(request)
            except BaseException as exc:  # handed back to the evolving thread below
                box["err"] = exc

        worker = threading.Thread(target=call, name=f"evolve-model-{self.pid}", daemon=True)
        worker.start()
        while worker.is_alive():
            worker.join(0.1)
            if worker.is_alive() and self.cancelled():
                raise Cancelled
        if "err" in box:
            raise box["err"]
        return box["ok"]


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def _set_top_scalar(text: str, key: str, value: str) -> str | None:
    """Replace one top-level `key: value` line in YAML text; None when there is no such single line."""
    pattern = re.compile(rf"^{key}:[ \t]*[^\n]*$", re.MULTILINE)
    if len(pattern.findall(text)) != 1:
        return None
    return pattern.sub(lambda _m: f"{key}: {value}", text)


def _candidate_manifest(answer: dict[str, Any], parent_raw: dict[str, Any] | None, parent: Manifest | None, tool_id: str,
                        version: str, dynamic_schema: bool, lineage: dict[str, Any]) -> str:
    """The model's manifest with what is not the model's call fixed: id, version, code file, lineage.

    The model's text is kept where possible (so the reviewer's diff shows its real edit); when a
    nested field must change, the manifest is re-serialised.
    """
    text = str(answer.get("manifest_yaml") or "")
    try:  # bounded like any manifest: a model's alias bomb is refused here, not expanded
        data = parse_manifest_text(text, "the model's manifest") if text.strip() else None
    except ManifestError:
        return text  # shown as is; the manifest stage says why it is invalid
    if data is None and parent_raw is not None:
        data = {k: v for k, v in parent_raw.items() if k != "lineage"}
        text = ""
    if not isinstance(data, dict):
        return text
    wanted = dict(data)
    wanted["name"] = tool_id
    wanted["version"] = version
    name = code_name(tool_id, version)
    kind = wanted.get("type", parent.type if parent and parent.type != "mcp" else "python")  # an MCP tool's replacement: python
    if kind == "python":
        entry = str(wanted.get("entry") or (parent.entry if parent else "") or "")
        func = entry.split(":", 1)[1] if ":" in entry else "run"
        wanted["entry"] = f"{name}:{func}"
    elif kind == "executable" and isinstance(wanted.get("executable"), dict):
        spec = dict(wanted["executable"])
        args = [str(a) for a in spec.get("args") or []]
        spec["args"] = [f"{{tool_dir}}/{name}" if a.startswith("{tool_dir}/") and a.endswith(".py") else a for a in args]
        wanted["executable"] = spec
    if parent_raw is not None:
        if not dynamic_schema:
            if "output_schema" in parent_raw:
                wanted["output_schema"] = parent_raw["output_schema"]
            else:
                wanted.pop("output_schema", None)
        if not wanted.get("tests") and parent_raw.get("tests"):
            wanted["tests"] = parent_raw["tests"]
    wanted.pop("lineage", None)
    patched: str | None = text if text and "lineage" not in data else None
    for key in ("name", "version", "entry"):
        if patched is not None and wanted.get(key) != data.get(key):
            patched = _set_top_scalar(patched, key, json.dumps(wanted[key]) if key == "entry" else str(wanted[key]))
    untouched = ("name", "version", "entry", "lineage")
    if patched is not None and any(wanted.get(k) != data.get(k) for k in set(wanted) | set(data) if k not in untouched):
        patched = None  # a nested field had to change: re-serialise
    lineage = redact(lineage)  # written beside the code, read by every reviewer: never a secret
    lineage_text = yaml.safe_dump({"lineage": lineage}, sort_keys=False, allow_unicode=True)
    if patched is not None:
        return patched.rstrip("\n") + "\n" + lineage_text
    return yaml.safe_dump({**wanted, "lineage": lineage}, sort_keys=False, allow_unicode=True)


# -- the evolution ----------------------------------------------------------------------------------


def _parent(runtime: RuntimeHost, tool_id: str) -> Any:
    """What a new version evolves from: the version that globally serves calls now (the resolver's answer)."""
    runtime.invalidate_promotions()  # an approval a moment ago on another node counts
    res = runtime.resolution(tool_id, session="global")
    for version, why in res.fell_back_from:
        log.warning("evolution: global promotion %s %s unusable, evolving %s: %s", tool_id, version, res.version, why)
    return res.entry


def _settings(runtime: RuntimeHost) -> dict[str, Any]:
    return {**runtime.settings.section("model"), **runtime.settings.section("evolution")}


def evolve_tool(runtime: RuntimeHost, tool_id: str, error_message: str = "", mutation_hint: str = "", dynamic_schema: bool = False,
                *, progress: Progress | None = None, cancel: threading.Event | None = None, origin: str = "operator") -> dict[str, Any]:
    """Propose, write and validate a new version of `tool_id`; returns the proposal (see review.get_proposal)."""
    check_tool_id(tool_id)
    if not (error_message or "").strip() and not (mutation_hint or "").strip():
        raise UsageError(f"evolve {tool_id}: give a mutation hint or the error to fix")
    from tools.invoke import get_provider

    parent = _parent(runtime, tool_id)  # an unknown tool is the first thing to say
    manifest = parent.manifest
    if manifest.type == "mcp":
        server = manifest.mcp.server if manifest.mcp is not None else "?"
        raise ToolUnavailableError(f"evolve {tool_id}: an MCP tool's code lives in its server ({server!r}), not here; ask for a "
                                   f"local replacement instead: tooldeck generate --from-tool {tool_id}", tool_id=tool_id)
    if manifest.type not in ("python", "executable"):
        raise ToolUnavailableError(f"evolve {tool_id}: {manifest.type} tools cannot be evolved (python and executable only)",
                                   tool_id=tool_id)
    parent_code_path = code_file(manifest, parent.tool_dir)
    if parent_code_path is None or not parent_code_path.is_file():
        raise ToolUnavailableError(f"evolve {tool_id}: cannot find the code file its manifest runs", tool_id=tool_id)
    parent_raw = read_manifest_data(parent.path)
    provider = get_provider(runtime)  # no model configured: say how, before anything is written
    return _evolve(runtime, provider, tool_id=tool_id, parent=manifest, parent_path=parent.path, parent_raw=parent_raw,
                   parent_code=parent_code_path.read_text(encoding="utf-8", errors="replace"),
                   error_message=error_message or "", mutation_hint=mutation_hint or "", dynamic_schema=bool(dynamic_schema),
                   progress=progress, cancel=cancel, origin=origin)


def _evolve(runtime: RuntimeHost, provider: Any, *, tool_id: str, parent: Manifest | None, parent_path: Path | None,
            parent_raw: dict[str, Any] | None, parent_code: str, error_message: str, mutation_hint: str,
            dynamic_schema: bool, progress: Progress | None, cancel: threading.Event | None,
            spec_text: str | None = None, base_version: str = "1.0.0", origin: str = "operator") -> dict[str, Any]:
    cfg = _settings(runtime)
    parent_version = parent.version if parent else None
    error_message, mutation_hint = redact(error_message), redact(mutation_hint)  # stored, sent, written: never a secret
    now = time.time()
    with runtime.store.tx() as con:
        for _ in range(10):
            version = next_version(runtime, con, tool_id, parent_version) if parent_version else base_version
            # another node's evolution of this tool may take the same version and commit first: on
            # PostgreSQL this insert then waits for it, does nothing, and the next minor is tried
            # (SQLite's write lock serialises the two transactions instead)
            pid = proposals.create(
                con, tool_id=tool_id, version=version, parent_version=parent_version,
                parent_path=str(parent_path) if parent_path else None, status="generating", error_message=error_message,
                mutation_hint=mutation_hint, dynamic_schema=int(dynamic_schema), provider=provider.name, model=provider.model,
                session=runtime.session, pid=os.getpid(), node=runtime.node, created=now, updated=now, origin=origin)
            if pid is not None or not parent_version:
                break
        if pid is None:
            raise ToolUnavailableError(f"evolve {tool_id}: version {version} is taken by another proposal; try again",
                                       tool_id=tool_id)
    runtime.events.emit("evolution.started", tool_id, version, proposal_id=pid, parent_version=parent_version,
                        provider=provider.name, model=provider.model, hint=mutation_hint, error=error_message)
    run = _Run(runtime, pid, tool_id, version, progress, cancel)
    try:
        return _rounds(runtime, run, provider, cfg, parent=parent, parent_raw=parent_raw, parent_code=parent_code,
                       error_message=error_message, mutation_hint=mutation_hint, dynamic_schema=dynamic_schema,
                       spec_text=spec_text)
    except Cancelled:
        if _update(runtime, pid, status="cancelled", cancel_requested=1, failure="cancelled by the operator"):
            runtime.events.emit("evolution.cancelled", tool_id, version, proposal_id=pid)  # else cancel() emitted it
        return get_proposal(runtime, pid)
    except ToolError as exc:  # the model could not answer (no recording, refused, budget spent): nothing was validated
        if _update(runtime, pid, status="model_error", failure=exc.message):
            runtime.events.emit("evolution.model_error", tool_id, version, proposal_id=pid, error_class=exc.error_class,
                                error=exc.message)
        exc.message = f"{'evolve' if parent_version else 'generate'} {tool_id} (proposal {pid}): {exc.message}"
        exc.args = (exc.message,)
        exc.details = {**exc.details, "proposal_id": pid}
        raise
    except Exception as exc:  # never leave a proposal generating or validating behind
        reason = redact(f"internal error: {type(exc).__name__}: {exc}")[:2000]
        if _update(runtime, pid, status="failed_validation", failure=reason):
            runtime.events.emit("evolution.failed_validation", tool_id, version, proposal_id=pid, stage="internal", error=reason)
        log.exception("evolution: proposal %s of %s failed", pid, tool_id)
        raise ToolError(f"{'evolve' if parent_version else 'generate'} {tool_id} (proposal {pid}): {reason}", tool_id=tool_id,
                        details={"proposal_id": pid}) from exc


def _rounds(runtime: RuntimeHost, run: _Run, provider: Any, cfg: dict[str, Any], *, parent: Manifest | None,
            parent_raw: dict[str, Any] | None, parent_code: str, error_message: str, mutation_hint: str,
            dynamic_schema: bool, spec_text: str | None) -> dict[str, Any]:
    from tools.invoke import WRITE_TOOL, Request

    tool_id, version, pid = run.tool_id, run.version, run.pid
    failures = recent_failures(runtime, tool_id, parent.version) if parent else []
    name = code_name(tool_id, version)
    shapes = failure_shapes([error_message, *(str(f.get("error") or "") for f in failures[:10])])
    remembered = _remember(runtime, run, cfg, failure_text(error_message, mutation_hint, failures), shapes)
    system, user = build_prompt(tool_id=tool_id, version=version, code_name=name, parent=parent, parent_raw=parent_raw,
                                parent_code=parent_code, failures=failures, error_message=error_message,
                                mutation_hint=mutation_hint, dynamic_schema=dynamic_schema, spec_text=spec_text,
                                memory=remembered)
    prompt_sha = hashlib.sha256(json.dumps([system, user]).encode("utf-8")).hexdigest()
    messages: list[dict[str, Any]] = [{"role": "user", "content": user}]
    folder = inside(runtime.home / "evolved", Path(tool_id) / version)
    inputs = Inputs(tool_id, version, name, parent, dynamic_schema, scenarios(failures, error_message),
                    regressions(runtime, tool_id, parent.version, int(cfg["regression_cases"])) if parent else [],
                    float(cfg["sandbox_timeout_seconds"]), int(cfg["sandbox_memory_mb"]), int(cfg["sandbox_disk_mb"]),
                    str(cfg["sandbox_launcher"]))
    tokens_in = tokens_out = 0
    max_rounds = max(1, int(cfg["max_rounds"]))
    stages: list[dict[str, Any]] = []
    protections: dict[str, Any] = {}
    for round_no in range(1, max_rounds + 1):
        run.check_cancel()
        run.progress("model", f"round {round_no}/{max_rounds}: asking {provider.name} ({provider.model})", round=round_no)
        request = Request(system=system, messages=messages, tool=WRITE_TOOL, max_tokens=int(cfg["max_tokens"]),
                          timeout=float(cfg["timeout_seconds"]), purpose=f"proposal {pid}",
                          context={"tool_id": tool_id, "hint": mutation_hint, "error": error_message, "round": round_no})
        answer = run.ask(provider, request)
        run.check_cancel()
        tokens_in += answer.input_tokens
        tokens_out += answer.output_tokens
        lineage = {"parent_version": parent.version if parent else None, "error": error_message, "hint": mutation_hint,
                   "provider": answer.provider, "model": answer.model, "prompt_sha256": prompt_sha,
                   "tokens": {"input": tokens_in, "output": tokens_out}, "proposal_id": pid, "round": round_no,
                   "dynamic_schema": dynamic_schema, "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
        if answer.provider == "replay":
            lineage["replay"] = answer.note
        _update(runtime, pid, model=answer.model, provider=answer.provider, prompt_sha256=prompt_sha, input_tokens=tokens_in,
                output_tokens=tokens_out, rounds=round_no)
        tool_input = answer.tool_input
        if not tool_input or not isinstance(tool_input.get("code"), str):
            problem = "the model answered without calling write_tool_version with a code string"
            stages = [{"name": "answer", "passed": False, "detail": problem, "ms": 0.0}]
            messages += [{"role": "assistant", "content": answer.text or "(no text)"},
                         {"role": "user", "content": f"{problem}. Call write_tool_version with the complete code and manifest."}]
            continue
        folder.mkdir(parents=True, exist_ok=True)
        _write_atomic(folder / name, tool_input["code"])
        manifest_text = _candidate_manifest(tool_input, parent_raw, parent, tool_id, version, dynamic_schema, lineage)
        _write_atomic(folder / f"{tool_id}.yaml", manifest_text)
        explanation = str(tool_input.get("explanation") or "")
        if answer.provider == "replay":
            explanation = f"[replay] {explanation}"
        if not _update(runtime, pid, status="validating", path=str(folder / f"{tool_id}.yaml"), explanation=explanation[:4000]):
            raise Cancelled
        run.progress("validating", f"round {round_no}: validating in the sandbox")
        validated = read_candidate(get_proposal(runtime, pid, with_diff=False))
        cascade = Cascade(inputs, folder / f"{tool_id}.yaml", run.check_cancel, lambda s, m: run.progress(s, m))
        passed = cascade.run()
        stages, protections = cascade.stages, cascade.protections or protections
        if passed:
            return _finish(runtime, run, stages, protections, passed=True, validated=validated)
        if round_no < max_rounds:
            failed = stages[-1]
            run.progress("retry", f"round {round_no} failed {failed['name']}: {failed['detail'][:200]}")
            messages += [
                {"role": "assistant", "content": [{"type": "tool_use", "id": answer.tool_use_id or f"toolu_{round_no}",
                                                   "name": WRITE_TOOL["name"], "input": tool_input}]},
                {"role": "user", "content": [{"type": "tool_result", "tool_use_id": answer.tool_use_id or f"toolu_{round_no}",
                                              "is_error": True, "content": feedback_message(stages)}]},
            ]
            if not _update(runtime, pid, status="generating", stages=stages, protections=protections):
                raise Cancelled
    return _finish(runtime, run, stages, protections, passed=False)


def _remember(runtime: RuntimeHost, run: _Run, cfg: dict[str, Any], query: str, shapes: list[str]) -> str:
    """The prompt's memory of similar past decisions (recorded on the proposal, with the shapes of the wrong
    answers it is made for, by which later evolutions find it), or "" when turned off."""
    if not cfg.get("memory", True):  # a bool: tools/settings.py checks the type
        return ""
    fixes, avoid = recall(runtime.store, query, limit=max(0, int(cfg.get("memory_examples", 3))), exclude=run.pid)
    record: dict[str, Any] = offered(fixes, avoid) if fixes or avoid else {}
    if shapes:
        record["shapes"] = shapes
    if record:
        _update(runtime, run.pid, memory=json.dumps(record))
    if fixes or avoid:
        runtime.events.emit("evolution.memory", run.tool_id, run.version, proposal_id=run.pid,
                            fixes=[r["proposal_id"] for r in record["fixes"]], avoid=[r["proposal_id"] for r in record["avoid"]])
    return prompt_section(fixes, avoid)


def _finish(runtime: RuntimeHost, run: _Run, stages: list[dict[str, Any]], protections: dict[str, Any], *, passed: bool,
            validated: Candidate | None = None) -> dict[str, Any]:
    """Record the validation's result with the diff it is for. `validated` is the candidate as read before the stages
    ran: when its files changed on disk meanwhile, the stages may be for other bytes, and it fails."""
    pid = run.pid
    proposal = get_proposal(runtime, pid, with_diff=False)
    candidate = read_candidate(proposal) if proposal.get("path") else None  # one read: the diff, its sha256, the kept files
    if passed and candidate is not None and validated is not None and (
            candidate.files != validated.files or candidate.unreadable != validated.unreadable):
        changed = candidate.changed_from({name: validated.digest(name) for name in validated.files})
        stages = [*stages, {"name": "unchanged_on_disk", "passed": False, "ms": 0.0,
                            "detail": f"{', '.join(changed) or 'the candidate'} changed on disk while it was validated: the "
                                      "stages above may be for other bytes than the diff shown"}]
        passed = False
    diff_text, sha = (candidate.diff, candidate.sha256) if candidate is not None else ("", None)
    failed = next((s for s in stages if not s["passed"]), None)
    status = "awaiting_review" if passed else "failed_validation"
    if candidate is not None:  # any node sharing the database can then show this diff and approve it
        from tools.evolution.pins import keep_candidate

        keep_candidate(runtime.store, pid, candidate.files)
    memory = dict(proposal.get("memory") or {})
    remembering = bool(_settings(runtime).get("memory", True))
    repeated = repeats(runtime.store, run.tool_id, diff_text, exclude=pid) if passed and diff_text and remembering else None
    if repeated is not None:  # shown to the reviewer: this repeats an approach a person already turned down
        memory["repeats"] = repeated
        runtime.events.emit("evolution.repeats_rejected", run.tool_id, run.version, proposal_id=pid, repeats=repeated)
    if not _update(runtime, pid, status=status, stages=stages, protections=protections, diff_sha256=sha,
                   diff=diff_text[:MAX_KEPT_DIFF] if diff_text else None, memory=json.dumps(memory),
                   failure=None if passed else f"{failed['name']}: {failed['detail']}" if failed else "no candidate"):
        raise Cancelled
    summary = [{"name": s["name"], "passed": s["passed"], "skipped": bool(s.get("skipped")), "ms": s["ms"]} for s in stages]
    if passed:
        runtime.events.emit("evolution.proposed", run.tool_id, run.version, proposal_id=pid, stages=summary, diff_sha256=sha,
                            protections=protections)
        policy = str(runtime.settings.get("evolution", "auto_approve", "off")).strip().lower()
        if policy not in ("off", "all-stages-passed"):
            log.warning("evolution: [evolution] auto_approve = %r is not off or all-stages-passed; treated as off", policy)
        elif proposal.get("origin") == "auto_propose":  # proposing on its own, never approving on its own
            pass
        elif policy == "all-stages-passed" and sha and all(s["passed"] and not s.get("skipped") for s in stages):
            approve(runtime, pid, "global", "auto-approve policy (all-stages-passed)", sha)
    else:
        runtime.events.emit("evolution.failed_validation", run.tool_id, run.version, proposal_id=pid,
                            stage=failed["name"] if failed else None, error=failed["detail"] if failed else None)
    out = get_proposal(runtime, pid)
    out["diff"] = diff_text or out.get("diff")
    return out


def revalidate(runtime: RuntimeHost, proposal_id: Any, *, progress: Progress | None = None) -> dict[str, Any]:
    """Validate a proposal's candidate again, in the sandbox, against the failures and calls recorded since: a
    proposal that said `failing_scenario (skipped: no recorded failing input)` is checked against the failures
    the tool has had after it. The code is not asked for again; its status follows the new result.

    Files edited on disk since the last validation are validated as they are now, and the proposal records that
    the change was not the model's (`edited`: by an operator, which files, the diffs before and after); the
    model's explanation is labelled as one of its earlier code."""
    from tools.evolution.review import _proposal_id

    pid = _proposal_id(proposal_id)
    proposal = get_proposal(runtime, pid, with_diff=False)
    status = proposal.get("status")
    if status not in REVALIDATE_FROM:
        raise StaleReviewError(f"proposal {pid} is {status}: only a proposal awaiting review or failed validation is validated again")
    if not proposal.get("path") or not Path(proposal["path"]).is_file():
        raise StaleReviewError(f"proposal {pid} has no candidate to validate (the model wrote none)")
    with runtime.store.tx() as con:  # another reviewer's approve or reject in the meantime wins
        if not proposals.update(con, pid, {"status": "validating", "updated": time.time()}, only_in=REVALIDATE_FROM):
            raise StaleReviewError(f"proposal {pid} changed while it was asked for again; look at it again")
    tool_id, version = str(proposal["tool_id"]), str(proposal["version"])
    run = _Run(runtime, pid, tool_id, version, progress, None)
    try:
        validated = read_candidate(proposal)
        _note_edit(runtime, run, proposal, validated)
        cfg = _settings(runtime)
        parent_entry = _parent(runtime, tool_id) if proposal.get("parent_version") else None
        parent = parent_entry.manifest if parent_entry is not None else None
        parent_version = str(proposal.get("parent_version") or (parent.version if parent else ""))
        failures = recent_failures(runtime, tool_id, parent_version) if parent_version else []
        inputs = Inputs(tool_id, version, code_name(tool_id, version), parent, bool(proposal.get("dynamic_schema")),
                        scenarios(failures, str(proposal.get("error_message") or "")),
                        regressions(runtime, tool_id, parent_version, int(cfg["regression_cases"])) if parent_version else [],
                        float(cfg["sandbox_timeout_seconds"]), int(cfg["sandbox_memory_mb"]), int(cfg["sandbox_disk_mb"]),
                        str(cfg["sandbox_launcher"]))
        run.progress("validating", f"validating #{pid} again with {len(inputs.scenarios)} recorded failing inputs")
        cascade = Cascade(inputs, Path(proposal["path"]), run.check_cancel, lambda s, m: run.progress(s, m))
        passed = cascade.run()
        runtime.events.emit("evolution.revalidated", tool_id, version, proposal_id=pid, passed=passed)
        return _finish(runtime, run, cascade.stages, cascade.protections or {}, passed=passed, validated=validated)
    except BaseException:
        with runtime.store.tx() as con:  # never left validating: back to what it was
            proposals.update(con, pid, {"status": status, "updated": time.time()}, only_in=("validating",))
        raise


def _note_edit(runtime: RuntimeHost, run: _Run, proposal: dict[str, Any], candidate: Candidate) -> None:
    """Files changed on disk since the proposal was validated were not written by the model: say so, and record it
    on the proposal (`edited`), with the model's explanation labelled as one of its earlier code."""
    recorded = proposal.get("diff_sha256")
    if not recorded or candidate.sha256 == recorded:
        return
    kept = approved.candidate_files(runtime.store, run.pid)
    files = candidate.changed_from(kept) if kept else None
    if files == []:
        return  # only its parent changed: the candidate's files are still the model's
    what = ", ".join(files) if files else "the candidate (or its parent)"
    run.progress("edited", f"{what} changed on disk since validation, not by the model: validating the files as they are "
                           "now, recorded as edited by an operator")
    edit = {"by": "operator", "files": files, "validated_diff_sha256": recorded, "diff_sha256": candidate.sha256,
            "at": time.time()}
    memory = dict(proposal.get("memory") or {})
    edits = [*(memory.get("edited") or []), edit]
    explanation = str(proposal.get("explanation") or "")
    if len(edits) == 1:  # labelled once: every later edit is also after the code the model explained
        explanation = (f"[the model's explanation of its earlier code (diff sha256 {recorded[:12]}...), before an operator "
                       f"edited {what} on disk] {explanation}")
    _update(runtime, run.pid, memory=json.dumps({**memory, "edited": edits}), explanation=explanation[:4000])
    runtime.events.emit("evolution.edited", run.tool_id, run.version, proposal_id=run.pid, files=files,
                        validated_diff_sha256=recorded, diff_sha256=candidate.sha256)


# -- the builtin tool ----------------------------------------------------------------------------


def tool_entry(runtime: RuntimeHost, data: Any) -> dict[str, Any]:
    """`call_tool("evolve_tool", {...})`: the original callers' JSON in, the proposal's summary out."""
    if not isinstance(data, dict):
        raise ToolInputError("evolve_tool: input must be an object with tool_id, error_message, mutation_hint", tool_id="evolve_tool")
    tool_id = check_tool_id(data.get("tool_id"))
    proposal = evolve_tool(runtime, tool_id, str(data.get("error_message") or ""), str(data.get("mutation_hint") or ""),
                           bool(data.get("dynamic_schema", False)))
    return summarize(proposal)


def summarize(proposal: dict[str, Any]) -> dict[str, Any]:
    pid, sha = proposal["id"], proposal.get("diff_sha256")
    next_step = {
        "awaiting_review": f"review it: tooldeck review show {pid}; approve: tooldeck review approve {pid} --diff {sha} --scope global",
        "approved": f"approved for {proposal.get('scope')} and serving there",
        "failed_validation": f"validation failed; see tooldeck review show {pid}",
        "cancelled": "cancelled",
        "failed": f"{proposal.get('failure') or 'failed'}; evolve again",
    }.get(proposal["status"], proposal["status"])
    return {
        "success": proposal["status"] in ("awaiting_review", "approved"), "proposal_id": pid, "tool_id": proposal["tool_id"],
        "version": proposal["version"], "parent_version": proposal.get("parent_version"), "status": proposal["status"],
        "provider": proposal.get("provider"), "model": proposal.get("model"), "replay": proposal.get("replay"),
        "tokens": proposal.get("tokens"), "diff_sha256": sha, "failure": proposal.get("failure"),
        "stages": [{"name": s["name"], "passed": s["passed"], "skipped": bool(s.get("skipped")), "detail": s["detail"],
                    "ms": s["ms"]} for s in proposal.get("stages") or []],
        "protections": proposal.get("protections"), "evolved_file": code_name(proposal["tool_id"], proposal["version"]),
        "next": next_step,
    }
