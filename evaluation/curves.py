"""Curves of one evaluation, from ultralytics' own per-class curves of the validation pass.

ultralytics' ``ap_per_class`` (run by the validator, or on the stored evidence)
gives, on a 1000-point grid ``px`` in [0, 1]: precision at recall ``px`` at
IoU 0.5 (``prec_values``), and precision, recall and F1 at confidence ``px``
(``p_curve``, ``r_curve``, ``f1_curve``), one row per class with ground truth.
``build_curves`` keeps at most ``MAX_POINTS`` points of each, per class and
for all classes (the mean over classes, as ultralytics plots them), and marks
the operating point. Pure numpy: the ``curves.json`` artifact.

A task with several metric families (``evaluation.families``) gets one set
of curves per family (``task_curves``): the box family's at the top level,
as detection's, and each further family's under its name (``mask``,
``pose``), each with its own operating point; ``families`` lists the names,
box first.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

MAX_POINTS = 101


@dataclass
class CurveArrays:
    """ultralytics' curve arrays (``Metric`` attributes, or ``ap_per_class``'s outputs)."""

    px: np.ndarray  # (K,)
    prec_values: np.ndarray  # (C, K): precision at recall px, IoU 0.5
    p_curve: np.ndarray  # (C, K): precision at confidence px
    r_curve: np.ndarray  # (C, K)
    f1_curve: np.ndarray  # (C, K)
    class_index: np.ndarray  # (C,) class ids of the rows


def from_metric(box: Any) -> CurveArrays:
    """The arrays of a validator's ``DetMetrics.box``."""
    return CurveArrays(np.asarray(box.px), np.asarray(box.prec_values), np.asarray(box.p_curve),
                       np.asarray(box.r_curve), np.asarray(box.f1_curve), np.asarray(box.ap_class_index))


def from_evidence(evidence: dict[str, np.ndarray], tp_key: str = "tp") -> CurveArrays:
    """Recompute the arrays from stored evidence with ultralytics' ``ap_per_class`` on the predictions in
    the validator's own order (``reference.validator_order``), from the true-positive matrix ``tp_key``
    (a family's ``evidence_key``); worker only."""
    from ultralytics.utils.metrics import ap_per_class

    from evaluation.stats.reference import validator_order

    order = validator_order(evidence)
    out = ap_per_class(np.asarray(evidence[tp_key])[order], np.asarray(evidence["conf"])[order],
                       np.asarray(evidence["pred_cls"])[order], evidence["target_cls"])
    return CurveArrays(px=out[10], prec_values=out[11], p_curve=out[7], r_curve=out[8], f1_curve=out[9],
                       class_index=out[6])


def _sample(n: int) -> np.ndarray:
    return np.unique(np.linspace(0, n - 1, min(n, MAX_POINTS)).round().astype(int))


def _series(x: np.ndarray, y: np.ndarray, idx: np.ndarray) -> list[list[float]]:
    return [[round(float(x[i]), 5), round(float(y[i]), 5)] for i in idx]


def build_curves(arrays: CurveArrays, names: list[str], operating: dict[str, Any]) -> dict[str, Any]:
    """The curves artifact: ``pr`` (recall, precision), ``precision``/``recall``/``f1`` (confidence, value).

    Each is ``{"all": [[x, y], ...], "per_class": {name: [[x, y], ...]}}`` with
    at most ``MAX_POINTS`` points; ``operating_point`` holds the confidence and
    the P, R and F1 read there (``operating``: the result's ``conf_threshold``,
    ``precision``, ``recall``, ``f1``).
    """
    px = np.asarray(arrays.px, dtype=np.float64)
    idx = _sample(len(px)) if len(px) else np.zeros(0, dtype=int)
    has_rows = len(arrays.class_index) > 0
    out: dict[str, Any] = {"max_points": MAX_POINTS}
    for key, rows in (("pr", arrays.prec_values), ("precision", arrays.p_curve), ("recall", arrays.r_curve),
                      ("f1", arrays.f1_curve)):
        rows = np.asarray(rows, dtype=np.float64)
        per_class = {names[int(c)]: _series(px, rows[i], idx) for i, c in enumerate(arrays.class_index)}
        out[key] = {"all": _series(px, rows.mean(0), idx) if has_rows else [], "per_class": per_class}
    out["x_axis"] = {"pr": "recall", "precision": "confidence", "recall": "confidence", "f1": "confidence"}
    out["operating_point"] = {k: operating.get(k) for k in ("conf_threshold", "precision", "recall", "f1")}
    return out


def task_curves(arrays: dict[str, CurveArrays], names: list[str], operating: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The curves artifact of a task: ``arrays`` and ``operating`` by family name, ``box`` first (see the
    module contract)."""
    out = build_curves(arrays["box"], names, operating["box"])
    for family, fam_arrays in arrays.items():
        if family != "box":
            out[family] = build_curves(fam_arrays, names, operating[family])
    out["families"] = list(arrays)
    return out
