"""Core COCO-style metrics read from ultralytics' own ``DetMetrics`` (DESIGN.md definitions)."""

from __future__ import annotations

from typing import Any


def f1_score(precision: float, recall: float) -> float:
    """2PR/(P+R), 0 when both are 0."""
    return 0.0 if precision + recall <= 0 else 2 * precision * recall / (precision + recall)


def operating_conf(box: Any) -> float | None:
    """The confidence at which ultralytics reads P and R: argmax of the smoothed mean F1 curve."""
    from ultralytics.utils.metrics import smooth

    if not len(box.ap_class_index):
        return None
    return float(box.px[smooth(box.f1_curve.mean(0), 0.1).argmax()])


def core_metrics(metrics: Any, names: list[str]) -> dict[str, Any]:
    """mAP50, mAP50_95, P, R, F1, the operating point and the per-class breakdowns."""
    box = metrics.box
    precision, recall = float(box.mp), float(box.mr)
    support = metrics.nt_per_class
    per_class: dict[str, float] = {}
    per_class_metrics: dict[str, dict[str, float | int]] = {}
    for i, c in enumerate(box.ap_class_index):
        name = names[int(c)]
        per_class[name] = float(box.ap50[i])
        per_class_metrics[name] = {
            "ap50": float(box.ap50[i]),
            "ap50_95": float(box.ap[i]),
            "precision": float(box.p[i]),
            "recall": float(box.r[i]),
            "support": int(support[int(c)]) if support is not None else 0,
        }
    return {
        "mAP50": float(box.map50),
        "mAP50_95": float(box.map),
        "precision": precision,
        "recall": recall,
        "f1": f1_score(precision, recall),
        "conf_threshold": operating_conf(box),
        "per_class": per_class,
        "per_class_metrics": per_class_metrics,
    }
