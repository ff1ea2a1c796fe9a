"""Each version of a model with its status, since when and why, as ``/v1/vision/models/{name}`` shows them.

A version's status, the first that applies:

- ``current``: current.pt holds its bytes (with the decision that put them there, when known);
- ``waiting``: the watcher is waiting for it (being written, settling), with why and for how long;
- ``skipped``: the watcher could not queue it (no dataset, an unusable file, another task), with why;
- ``queued``: its evaluation job is queued or running (until the job records its decision);
- ``retry``: its evaluation failed for an outside reason and is retried at ``next_retry_at``;
- ``failed``: its evaluation failed; another look comes when its bytes change, or when its dataset or
  export changes if the failure came from them (``cause``);
- ``cancelled``: its evaluation was cancelled;
- ``promoted``/``refused``/``rollback``: the newest decision on its bytes, with its reason;
- ``evaluated``: evaluated, no decision (its score, on what, which evaluation);
- ``not evaluated``: on disk, nothing else known.

``reason`` is always a whole sentence, never cut. A version whose bytes an earlier version already has
is listed with ``same_bytes_as`` (that version) and shares its status: the watcher never evaluates the
same bytes twice. This module is the one place these rules live; the CLI and the dashboard show its rows.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Known:
    """What the daemon knows about a model's checkpoints, each keyed the way the rules look it up."""

    current_sha: str | None
    waiting: Mapping[str, dict[str, Any]]  # by path
    skipped: Mapping[str, dict[str, Any]]  # by path
    states: Mapping[str, dict[str, Any]]  # by sha256
    decisions: Mapping[str, dict[str, Any]]  # newest decision by sha256
    evaluations: Mapping[str, dict[str, Any]]  # newest evaluation by sha256

    @classmethod
    def of(cls, current_sha: str | None, waiting: Sequence[dict[str, Any]], skipped: Sequence[dict[str, Any]],
           states: Sequence[dict[str, Any]], decisions: Mapping[str, dict[str, Any]],
           evaluations: Sequence[dict[str, Any]]) -> Known:
        """``evaluations`` newest first (``store.rankings.latest_for_model``): the first per sha256 is kept."""
        newest: dict[str, dict[str, Any]] = {}
        for e in evaluations:
            if e.get("checkpoint_sha256"):
                newest.setdefault(e["checkpoint_sha256"], e)
        return cls(current_sha, {w["path"]: w for w in waiting}, {s["path"]: s for s in skipped},
                   {s["sha256"]: s for s in states}, decisions, newest)


def with_status(versions: Sequence[dict[str, Any]], known: Known) -> list[dict[str, Any]]:
    """``versions`` (``describe_files``' rows) each with ``status``, ``since``, ``reason`` and ``same_bytes_as``."""
    first: dict[str, int] = {}
    out = []
    for row in versions:
        sha = row.get("sha256")
        same = first.setdefault(sha, row["version"]) if sha else row["version"]
        status, since, reason = _status(row["path"], sha, known)
        out.append({**row, "status": status, "since": since, "reason": reason,
                    "same_bytes_as": same if same != row["version"] else None})
    return out


def _status(path: str, sha: str | None, known: Known) -> tuple[str, str | None, str]:
    decision = known.decisions.get(sha) if sha else None
    if sha is not None and sha == known.current_sha:
        return _current(decision)
    if path in known.waiting:
        w = known.waiting[path]
        return "waiting", None, f"{w['reason']} (for {w['waiting_s']:.1f} s)"
    if path in known.skipped:
        s = known.skipped[path]
        return "skipped", s.get("created_at"), s["reason"]
    state = known.states.get(sha) if sha else None
    if state is not None and state["state"] in ("queued", "retry", "failed", "cancelled") \
            and not _decided_by_its_job(decision, state):
        return state["state"], state.get("updated_at"), _state_reason(state)
    if decision is not None:
        return decision["decision"], decision.get("timestamp"), decision["reason"]
    evaluation = known.evaluations.get(sha) if sha else None
    if evaluation is not None:
        return "evaluated", evaluation.get("timestamp"), (
            f"score {evaluation['score']:.4f} on {evaluation.get('dataset')} (eval {evaluation['eval_id']}); "
            "no promotion decision on it")
    if state is not None and state["state"] == "evaluated":
        return "evaluated", state.get("updated_at"), "evaluated; no promotion decision on it"
    return "not evaluated", None, "on disk; no evaluation of these bytes is known"


def _decided_by_its_job(decision: dict[str, Any] | None, state: dict[str, Any]) -> bool:
    """A queued version whose job has recorded its decision already: the job writes the decision, then
    completes, and its state catches up only then. The decision is what happened."""
    job = state.get("job_id")
    return (state["state"] == "queued" and decision is not None and job is not None
            and (decision.get("details") or {}).get("job_id") == job)


def _current(decision: dict[str, Any] | None) -> tuple[str, str | None, str]:
    if decision is None or decision["decision"] not in ("promoted", "rollback"):
        return "current", None, "current.pt holds these bytes"
    return "current", decision.get("timestamp"), f"current.pt holds these bytes ({decision['decision']}: " \
                                                 f"{decision['reason']})"


def _state_reason(state: dict[str, Any]) -> str:
    job, error = state.get("job_id"), state.get("last_error") or "no error given"
    if state["state"] == "queued":
        return f"its evaluation is queued or running (job {job})"
    if state["state"] == "cancelled":
        return f"its evaluation (job {job}) was cancelled"
    if state["state"] == "retry":
        tries = state.get("attempts") or 0
        return f"{error} ({tries} failed attempt{'' if tries == 1 else 's'}; retried at {state.get('next_retry_at')})"
    if state.get("cause"):
        return f"{error} (looked at again when its {state['cause']} or its bytes change)"
    return f"{error} (looked at again when its bytes change)"
