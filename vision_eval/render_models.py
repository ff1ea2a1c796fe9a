"""The readable views of the daemon's state: jobs, models, one model in full, a promotion or rollback.

One model's view shows every promotion decision with its whole reason, and
every version with the status and reason the daemon gave it. Paths
are shown relative to the models root, which a model's detail gives (the
folder above the model's ``path``).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from vision_eval.formats import header, mb, metric, metrics_of, models_root, sha, shown_path, version
from vision_eval.text_table import field, fmt, paragraph, table


def _subject(job: Mapping[str, Any]) -> str:
    """What a job was about, as far as the public job shows it (its result)."""
    result = job.get("result") or {}
    if "model_a" in result:
        return f"{result['model_a']} vs {result['model_b']}"
    if result.get("model_name"):
        return result["model_name"] + (f" v{result['version']}" if result.get("version") else "")
    return ""


def render_jobs(reply: Mapping[str, Any], width: int | None = None) -> str:
    """The jobs, newest first; a failed job's whole error in the last column (wrapped)."""
    rows = [[j["job_id"], j["kind"], j["status"], f"{(j.get('progress') or 0) * 100:.0f}%", j["created_at"],
             j.get("completed_at"), j.get("error") or _subject(j)] for j in reply["jobs"]]
    return table(["JOB", "KIND", "STATUS", "PROGRESS", "CREATED", "FINISHED", "MODEL / ERROR"], rows,
                 empty="no jobs", width=width)


def render_cancelled(job: Mapping[str, Any], width: int | None = None) -> str:
    if job["status"] == "running":
        return f"job {job['job_id']}: cancel requested; it stops shortly"
    return f"job {job['job_id']}: {job['status']}"


def render_models(listing: Mapping[str, Any], width: int | None = None) -> str:
    """The models folder: each model's versions, whether it has a current.pt, and its latest evaluation."""
    rows = []
    for m in listing["models"]:
        latest = m.get("latest_evaluation") or {}
        rows.append([m["name"], ",".join(f"v{v}" for v in m["version_numbers"]) or "-",
                     "yes" if m["has_current"] else "no", mb(m.get("size_mb")), metric(latest.get("score")),
                     latest.get("timestamp"), shown_path(latest.get("dataset"))])
    return table(["MODEL", "VERSIONS", "CURRENT", "SIZE", "LAST_SCORE", "LAST_EVALUATED", "DATASET"], rows,
                 empty="no models in the models folder", width=width, wrap_at=None, paths=[-1])


def _current(m: Mapping[str, Any]) -> str:
    current = m.get("current")
    if current is None:
        return "none"
    if current.get("error"):
        return str(current["error"])
    if current.get("version") is None:
        return f"sha256 {sha(current.get('sha256'))} (no v<n>.pt has these bytes)"
    return f"{version(current.get('version'))} (sha256 {sha(current.get('sha256'))})"


def _versions(m: Mapping[str, Any], root: Path, width: int | None) -> str:
    current = m.get("current") or {}
    notes = any(v.get("error") for v in m["versions"])  # a link leaving the models root: not read
    rows = [[version(v["version"]), mb(v.get("size_mb")), sha(v.get("sha256")),
             "*" if current.get("sha256") and v.get("sha256") == current.get("sha256") else "",
             shown_path(v.get("onnx"), root), *([v.get("error") or ""] if notes else [])] for v in m["versions"]]
    return table(["VERSION", "SIZE", "SHA256", "CURRENT", "ONNX", *(["NOTE"] if notes else [])], rows, width=width)


def _evaluations(m: Mapping[str, Any], width: int | None) -> str:
    evaluations = m.get("evaluations") or []
    names, _ = metrics_of(evaluations)
    rows = [[e.get("eval_id"), e.get("timestamp"), version(e.get("version")), metric(e.get("score")),
             *(metric(e.get(k)) for k in names), shown_path(e.get("dataset"))] for e in evaluations]
    return table(["EVAL", "EVALUATED", "VERSION", "SCORE", *map(header, names), "DATASET"], rows, width=width,
                 wrap_at=None, paths=[-1])


def _decisions(m: Mapping[str, Any], width: int | None) -> str:
    rows = [[p.get("id"), p.get("timestamp"), p.get("decision"), p.get("actor"), version(p.get("version")),
             metric(p.get("new_score")), metric(p.get("previous_score")), p.get("reason") or "-"]
            for p in m.get("promotions") or []]
    return table(["ID", "WHEN", "DECISION", "BY", "VERSION", "NEW_SCORE", "OLD_SCORE", "REASON"], rows, width=width)


def _same_bytes(v: Mapping[str, Any]) -> str:
    return f" (the same bytes as {version(v['same_bytes_as'])})" if v.get("same_bytes_as") is not None else ""


def _checkpoints(m: Mapping[str, Any], root: Path, width: int | None) -> str:
    """Each version's status and whole reason, as the daemon decided them (``daemon.app.version_status``)."""
    rows = [[shown_path(v["path"], root), v.get("status") or "-", v.get("since") or "-",
             f"{v.get('reason') or '-'}{_same_bytes(v)}"] for v in m["versions"]]
    return table(["CHECKPOINT", "STATUS", "SINCE", "REASON"], rows, width=width, paths=[0])


def render_model(m: Mapping[str, Any], width: int | None = None) -> str:
    """One model: its folder, what current.pt holds, its versions, evaluations, every promotion decision
    and every checkpoint's status, each with its whole reason."""
    root = Path(m["path"]).parent if m.get("path") else models_root()
    return "\n".join([
        field("model", m["name"], width, 10), field("folder", shown_path(m.get("path")), width, 10),
        field("current", _current(m), width, 10),
        "", "versions:", _versions(m, root, width),
        "", "evaluations (newest first):", _evaluations(m, width),
        "", "promotion decisions (newest first):", _decisions(m, width),
        "", paragraph(f"checkpoints (paths under {shown_path(str(root))}):", width), _checkpoints(m, root, width),
    ])


def render_decision(name: str, d: Mapping[str, Any], width: int | None = None) -> str:
    """A manual promotion or a rollback, as the daemon recorded it."""
    what = "rolled back" if d["decision"] == "rollback" else d["decision"]
    return "\n".join([
        paragraph(f"{name}: {what}; current.pt now holds {version(d.get('version'))} "
                  f"(sha256 {sha(d.get('new_sha256'))}), previously sha256 {sha(d.get('previous_sha256'))}", width),
        paragraph(f"reason: {fmt(d.get('reason'))}", width)])
