"""One status per checkpoint of a model, with its whole reason, from ``GET /v1/vision/models/{name}``.

The model's detail lists what the daemon knows in separate parts: the
``versions`` on disk, the watcher's ``checkpoints`` (state per content:
queued, evaluated, retry, failed, cancelled), the ``skipped`` checkpoints,
the paths ``waiting`` to settle, the ``evaluations`` and the promotion
decisions (``promotions``, each naming the content it read, ``new_sha256``).
``checkpoint_statuses`` merges them into one row per checkpoint path; the
first that applies wins:

- ``waiting``: the watcher waits for the file to settle (its reason, for how long);
- ``queued``: an evaluation of its content is queued or running;
- ``promoted``, ``refused`` or ``rollback``: the newest decision on its content, with its reason;
- ``failed``: its evaluation failed (its error; when the daemon retries it, when);
- ``cancelled``: its evaluation was cancelled;
- ``skipped``: the watcher cannot evaluate it (why);
- ``evaluated``: evaluated, no decision (its score, and where);
- ``not evaluated``: on disk, nothing else known.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from vision_eval.formats import count, metric, seconds


@dataclass(frozen=True)
class CheckpointStatus:
    path: str
    status: str
    since: str | None  # when the status began, as the daemon wrote it (None: not known)
    reason: str


def _by(rows: Any, key: str) -> dict[str, dict[str, Any]]:
    """``rows`` by their ``key``, the first row of each kept (the daemon lists newest first)."""
    out: dict[str, dict[str, Any]] = {}
    for row in rows or []:
        if isinstance(row, Mapping) and row.get(key) is not None:
            out.setdefault(row[key], dict(row))
    return out


def _state_status(state: dict[str, Any]) -> CheckpointStatus | None:
    path, since, error = state["path"], state.get("updated_at"), state.get("last_error") or "no error given"
    if state.get("state") == "retry":
        tries = count(state.get("attempts"), "failed attempt")
        return CheckpointStatus(path, "failed", since, f"{error} ({tries}; retried at {state.get('next_retry_at')})")
    if state.get("state") == "failed":
        return CheckpointStatus(path, "failed", since, f"{error} (retried when its bytes change)")
    if state.get("state") == "cancelled":
        return CheckpointStatus(path, "cancelled", since, f"its evaluation (job {state.get('job_id')}) was cancelled")
    return None


def _status(path: str, sha: str | None, parts: dict[str, dict[str, dict[str, Any]]]) -> CheckpointStatus:
    waiting = parts["waiting"].get(path)
    if waiting is not None:
        return CheckpointStatus(path, "waiting", None,
                                f"{waiting.get('reason')} (for {seconds(waiting.get('waiting_s'))})")
    state = parts["states"].get(sha) if sha else parts["states_by_path"].get(path)
    if state is not None and state.get("state") == "queued":
        return CheckpointStatus(path, "queued", state.get("updated_at"),
                                f"its evaluation is queued or running (job {state.get('job_id')})")
    decision = parts["decisions"].get(sha or "")
    if decision is not None:
        return CheckpointStatus(path, decision["decision"], decision.get("timestamp"), decision.get("reason") or "")
    failed = _state_status(state) if state is not None else None
    if failed is not None:
        return failed
    skipped = parts["skipped"].get(path)
    if skipped is not None:
        return CheckpointStatus(path, "skipped", skipped.get("created_at"), skipped.get("reason") or "")
    evaluation = parts["evaluations"].get(sha or "")
    if evaluation is not None or (state is not None and state.get("state") == "evaluated"):
        e = evaluation or {}
        where = f"score {metric(e.get('score'))} on {e.get('dataset')} (eval {e.get('eval_id')})" if e else "evaluated"
        return CheckpointStatus(path, "evaluated", e.get("timestamp") or (state or {}).get("updated_at"),
                                f"{where}; no promotion decision on it")
    return CheckpointStatus(path, "not evaluated", None, "on disk; no evaluation of these bytes is known")


def checkpoint_statuses(m: Mapping[str, Any]) -> list[CheckpointStatus]:
    """One status per checkpoint path the model's detail names (versions first, by version), see the
    module's contract."""
    decisions = _by([p for p in m.get("promotions") or [] if p.get("decision") in ("promoted", "refused", "rollback")],
                    "new_sha256")
    parts = {
        "waiting": _by(m.get("waiting"), "path"), "states": _by(m.get("checkpoints"), "sha256"),
        "states_by_path": {r["path"]: r for r in m.get("checkpoints") or []},  # listed oldest first: the newest wins
        "decisions": decisions,
        "skipped": _by(m.get("skipped"), "path"), "evaluations": _by(m.get("evaluations"), "checkpoint_sha256"),
    }
    shas = {v["path"]: v.get("sha256") for v in m.get("versions") or [] if v.get("path")}
    for rows in (m.get("checkpoints"), m.get("skipped")):
        for row in rows or []:
            shas.setdefault(row["path"], row.get("sha256"))
    for row in m.get("waiting") or []:
        shas.setdefault(row["path"], None)
    return [_status(path, sha, parts) for path, sha in shas.items()]
