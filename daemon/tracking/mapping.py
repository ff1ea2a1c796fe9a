"""What each outbox record becomes in MLflow: run params, metrics and tags, registry tags. Pure.

Names (each defined here once):

- an evaluation's run: tags ``vision_evald.eval_id`` (its identity: one run per evaluation),
  ``vision_evald.model``, ``vision_evald.job_id``, ``vision_evald.kind = evaluation``; params
  ``EVAL_PARAMS``; metrics under our names, the result's task's ``compared_metrics``
  (``vocab.tasks``: accuracy metrics, ``inference_ms``, size recalls, ``score``);
- a comparison's run: identity ``vision_evald.job_id`` with ``vision_evald.kind = comparison``,
  linked to both evaluations by ``vision_evald.eval_id_a``/``_b`` and ``vision_evald.run_id_a``/``_b``;
  metrics ``<metric>_a``, ``<metric>_b``, ``<metric>_diff`` and, with statistics, ``<metric>_ci_low``,
  ``<metric>_ci_high``, ``<metric>_p_value``, ``<metric>_significant`` (1 or 0);
- a decision's run (only for a checkpoint with no evaluation run to hold it): identity
  ``vision_evald.promotion_id`` with ``vision_evald.kind = decision``;
- a registry version: tags ``checkpoint_sha256``, ``eval_id``, ``decision``; the decision's reason is
  its description. A decision is also written on its evaluation's run as ``vision_evald.decision``
  and ``vision_evald.decision_reason`` (the latest decision naming that evaluation).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from vocab.tasks import DEFAULT_TASK, task

EVAL_ID = "vision_evald.eval_id"
MODEL = "vision_evald.model"
JOB_ID = "vision_evald.job_id"
KIND = "vision_evald.kind"
PROMOTION_ID = "vision_evald.promotion_id"
DECISION = "vision_evald.decision"
DECISION_REASON = "vision_evald.decision_reason"
RUN_NAME = "mlflow.runName"
# param name -> result key
EVAL_PARAMS = {
    "model": "model_name", "checkpoint": "model_path", "checkpoint_sha256": "checkpoint_sha256",
    "dataset": "dataset", "dataset_fingerprint": "dataset_fingerprint", "imgsz": "imgsz", "batch": "batch",
    "device": "device", "split": "split", "format": "format",
}
_TEXT_MAX = 5000  # MLflow keeps tag values up to 8000 characters; reasons are cut well below


def millis(iso_time: str) -> int:
    """Milliseconds since the epoch of an ISO-8601 time (``daemon.clock.iso``)."""
    return int(datetime.fromisoformat(iso_time).timestamp() * 1000)


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _text(value: str) -> str:
    return value if len(value) <= _TEXT_MAX else value[:_TEXT_MAX - 1] + "…"


def eval_filter(eval_id: int) -> str:
    """The ``search_runs`` filter of an evaluation's run."""
    return f"tags.`{EVAL_ID}` = '{int(eval_id)}'"


def comparison_filter(job_id: str) -> str:
    return f"tags.`{KIND}` = 'comparison' and tags.`{JOB_ID}` = '{_quoted(job_id)}'"


def decision_filter(promotion_id: int) -> str:
    return f"tags.`{PROMOTION_ID}` = '{int(promotion_id)}' and tags.`{KIND}` = 'decision'"


def version_filter(registered_name: str, sha256: str) -> str:
    """The ``search_model_versions`` filter of the versions holding a checkpoint's bytes."""
    return f"name = '{_quoted(registered_name)}' and tag.checkpoint_sha256 = '{_quoted(sha256)}'"


def _quoted(value: str) -> str:
    return value.replace("\\", "\\\\").replace("'", "\\'")


def evaluation_params(result: Mapping[str, Any]) -> dict[str, str]:
    params = {name: str(result[key]) for name, key in EVAL_PARAMS.items() if result.get(key) is not None}
    params["task"] = task(result.get("task") or DEFAULT_TASK).name
    return params


def evaluation_metrics(result: Mapping[str, Any]) -> dict[str, float]:
    """The task's compared metrics the result has a finite value for."""
    names = task(result.get("task") or DEFAULT_TASK).compared_metrics
    return {name: float(result[name]) for name in names if _number(result.get(name))}


def evaluation_tags(record: Mapping[str, Any]) -> dict[str, str]:
    result = record["result"]
    tags = {EVAL_ID: str(record["eval_id"]), MODEL: str(result["model_name"]), KIND: "evaluation",
            RUN_NAME: f"{result['model_name']} eval {record['eval_id']}"}
    if record.get("job_id"):
        tags[JOB_ID] = str(record["job_id"])
    return tags


def comparison_metrics(comparison: Mapping[str, Any]) -> dict[str, float]:
    """The side-by-side values and differences, then the statistics' intervals (see module contract)."""
    rows: dict[str, dict[str, Any]] = {m: dict(row) for m, row in comparison.get("metrics", {}).items()}
    for metric, stat in ((comparison.get("statistics") or {}).get("metrics") or {}).items():
        rows[metric] = {**stat, **rows.get(metric, {})}
    out: dict[str, float] = {}
    for metric, row in rows.items():
        for part in ("a", "b", "diff", "ci_low", "ci_high", "p_value"):
            if _number(row.get(part)):
                out[f"{metric}_{part}"] = float(row[part])
        if isinstance(row.get("significant"), bool):
            out[f"{metric}_significant"] = float(row["significant"])
    if isinstance(comparison.get("winner_significant"), bool):
        out["winner_significant"] = float(comparison["winner_significant"])
    return out


def comparison_params(comparison: Mapping[str, Any]) -> dict[str, str]:
    stats = comparison.get("statistics") or {}
    values = {"model_a": comparison.get("model_a"), "model_b": comparison.get("model_b"),
              "dataset": comparison.get("dataset"), "n_resamples": stats.get("n_resamples"),
              "seed": stats.get("seed"), "alpha": stats.get("alpha")}
    return {k: str(v) for k, v in values.items() if v is not None}


def comparison_tags(record: Mapping[str, Any], run_a: str | None, run_b: str | None) -> dict[str, str]:
    """The run's identity and its links to both evaluations (a run id only where that run exists)."""
    c = record["comparison"]
    tags = {KIND: "comparison", JOB_ID: str(record["job_id"]),
            RUN_NAME: f"compare {c.get('model_a')} vs {c.get('model_b')}",
            "vision_evald.eval_id_a": str(c.get("eval_id_a")), "vision_evald.eval_id_b": str(c.get("eval_id_b")),
            "vision_evald.winner": str(c.get("winner"))}
    for side, run_id in (("a", run_a), ("b", run_b)):
        if run_id is not None:
            tags[f"vision_evald.run_id_{side}"] = run_id
    return tags


def decision_run_tags(record: Mapping[str, Any]) -> dict[str, str]:
    d = record["decision"]
    return {KIND: "decision", PROMOTION_ID: str(d["promotion_id"]), MODEL: record["model_name"],
            RUN_NAME: f"{record['model_name']} {d['decision']} {d['promotion_id']}"}


def decision_tags(decision: Mapping[str, Any]) -> dict[str, str]:
    """What a decision writes on its evaluation's run."""
    return {DECISION: decision["decision"], DECISION_REASON: _text(decision["reason"]),
            PROMOTION_ID: str(decision["promotion_id"])}


def version_tags(decision: Mapping[str, Any]) -> dict[str, str]:
    """The tags of the registry version a decision registers."""
    tags = {"checkpoint_sha256": decision["new_sha256"], "decision": decision["decision"]}
    if decision.get("eval_id") is not None:
        tags["eval_id"] = str(decision["eval_id"])
    return tags


def version_description(decision: Mapping[str, Any]) -> str:
    return _text(decision["reason"])
