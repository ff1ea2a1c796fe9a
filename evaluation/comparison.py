"""Head-to-head comparison of two evaluation results on one dataset (the spec's shape).

``compare_results`` is pure Python (it runs in the daemon). ``metrics`` holds,
for every compared metric, ``a``, ``b``, ``diff = a - b`` and ``better``:
``"a"``, ``"b"``, ``"tie"`` for exactly equal values, or ``None`` when either
side has no value. Lower ``inference_ms`` is better; higher is better for
everything else. ``winner`` is the model with the higher score, ``"tie"`` for
exactly equal scores (never silently given to one side).
"""

from __future__ import annotations

from typing import Any

from vocab.errors import InvalidRequest
from vocab.tasks import DEFAULT_TASK, task

LOWER_IS_BETTER = frozenset({"inference_ms"})


def _better(metric: str, a: float | None, b: float | None) -> str | None:
    if a is None or b is None:
        return None
    if a == b:
        return "tie"
    a_wins = a < b if metric in LOWER_IS_BETTER else a > b
    return "a" if a_wins else "b"


def compare_results(result_a: dict[str, Any], result_b: dict[str, Any], name_a: str, name_b: str) -> dict[str, Any]:
    """The spec's compare result for two results of one task (both scored with the same weights), over the
    task's compared metrics (``vocab.tasks.Task.compared_metrics``; a result without ``task`` is a
    detection result). InvalidRequest when the tasks differ."""
    task_a, task_b = (r.get("task", DEFAULT_TASK) for r in (result_a, result_b))
    if task_a != task_b:
        raise InvalidRequest(f"cannot compare a {task_a} model ({name_a}) with a {task_b} model ({name_b})")
    metrics: dict[str, dict[str, Any]] = {}
    for m in task(task_a).compared_metrics:
        a, b = result_a.get(m), result_b.get(m)
        metrics[m] = {
            "a": a,
            "b": b,
            "diff": None if a is None or b is None else a - b,
            "better": _better(m, a, b),
        }
    verdict = metrics["score"]["better"]
    winner = {"a": name_a, "b": name_b, "tie": "tie"}.get(verdict or "", None)
    sa, sb = result_a.get("score"), result_b.get("score")
    return {
        "model_a": name_a,
        "model_b": name_b,
        "winner": winner,
        "score_diff": None if sa is None or sb is None else abs(sa - sb),
        "metrics": metrics,
    }


def compare_evidence(params: dict[str, Any]) -> dict[str, Any]:
    """Worker task: paired bootstrap statistics from two evidence files, by the evidences' task
    (evaluation.stats.bootstrap for detection, evaluation.stats.classification_stats; one shape for both).

    params: ``evidence_a``, ``evidence_b``, ``names`` (class names by index), ``weights`` (the applied
    weights of the evidences' task), ``n_resamples``, ``seed``.
    """
    from evaluation.evidence import CLASSIFICATION, evidence_task, load_evidence
    from evaluation.stats import bootstrap, classification_stats

    ev_a = load_evidence(params["evidence_a"])
    ev_b = load_evidence(params["evidence_b"])
    statistics = classification_stats.statistics if evidence_task(ev_a) == CLASSIFICATION else bootstrap.statistics
    return statistics(
        ev_a, ev_b, names=params["names"], weights=params.get("weights"),
        n_resamples=int(params.get("n_resamples", 1000)), seed=int(params.get("seed", 0)),
    )


ERROR_KEYS: tuple[str, ...] = (
    "tp", "fp", "missed", "duplicate", "classification", "localization", "both", "background",
)
_ERROR_LABELS = {
    "tp": "true positives", "fp": "false positives", "missed": "missed objects",
    "duplicate": "duplicate false positives", "classification": "classification errors",
    "localization": "localization errors", "both": "classification+localization errors",
    "background": "background false positives",
}


def _rows(counts_a: dict[str, int], counts_b: dict[str, int]) -> dict[str, dict[str, Any]]:
    """Each count of either side (detection's in ERROR_KEYS order; another task's, e.g. classification's
    images/correct/wrong, as given) with ``diff = a - b``."""
    keys = [k for k in ERROR_KEYS if k in counts_a or k in counts_b] or list(dict.fromkeys([*counts_a, *counts_b]))
    return {k: {"a": counts_a.get(k), "b": counts_b.get(k),
                "diff": counts_a[k] - counts_b[k] if k in counts_a and k in counts_b else None} for k in keys}


def compare_errors(errors_a: dict[str, Any] | None, errors_b: dict[str, Any] | None) -> dict[str, Any]:
    """Both error breakdowns (docs/metrics.md, "Error analysis", each at its own operating point) side by side.

    ``errors_a``/``errors_b``: an evaluation's ``overall`` counts, with its
    ``per_class`` and ``per_size`` counts where known (its errors artifact), or
    None when its analysis is unavailable. Returns ``a``/``b`` (the overall
    counts), ``rows`` (per count ``{a, b, diff = a - b}``), the same rows
    ``per_class`` and ``per_size`` where both sides have them, and ``changes``:
    readable lines such as ``"localization errors 412 -> 170"`` for every
    overall count that differs.
    """
    if errors_a is None or errors_b is None:
        return {"available": False, "a": (errors_a or {}).get("overall"), "b": (errors_b or {}).get("overall"),
                "detail": "the error analysis of one of the evaluations is unavailable"}
    rows = _rows(errors_a["overall"], errors_b["overall"])
    out: dict[str, Any] = {"available": True, "a": errors_a["overall"], "b": errors_b["overall"], "rows": rows,
                           "changes": [f"{_ERROR_LABELS.get(k, k)} {r['a']} -> {r['b']}" for k, r in rows.items()
                                       if r["diff"]]}
    for part in ("per_class", "per_size"):
        pa, pb = errors_a.get(part), errors_b.get(part)
        if pa and pb:
            out[part] = {key: _rows(pa[key], pb[key]) for key in pa if key in pb}
    return out
