"""The metrics of a result, read from the validator's own metrics object (docs/metrics.md definitions).

``core_metrics`` reads the box family (``DetMetrics.box``: detection, the
boxes of segmentation and pose, obb's rotated boxes) under the detection
names. ``task_metrics`` adds each further family of the task
(``evaluation.families``: ``SegmentMetrics.seg``, ``PoseMetrics.pose``)
under its prefixed names (``mask_mAP50``, ``mask_mAP50_95``,
``mask_precision``, ``mask_recall``, ``mask_conf_threshold``; likewise
``pose_*``), and per class ``per_class_metrics[name]`` gains the family's
``mask_ap50``, ``mask_ap50_95``, ``mask_precision``, ``mask_recall``.
``per_class`` is ``{name: AP50}`` of the task's primary family (the mask
AP50 for segmentation, the pose AP50 for pose; the box AP50 otherwise): the
family the task is judged by, and the one the promotion gate's per-class
regression reads. Every number is ultralytics' own, unrounded: bit-identical
to a bare ``YOLO(ckpt).val()`` at the same settings.
"""

from __future__ import annotations

from typing import Any

from evaluation.families import families


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


def task_metrics(metrics: Any, names: list[str], task: str) -> dict[str, Any]:
    """``core_metrics`` plus every further family of ``task`` (see the module contract)."""
    out = core_metrics(metrics, names)
    for fam in families(task)[1:]:
        m = getattr(metrics, fam.attr)
        out[fam.metric("mAP50")] = float(m.map50)
        out[fam.metric("mAP50_95")] = float(m.map)
        out[fam.metric("precision")] = float(m.mp)
        out[fam.metric("recall")] = float(m.mr)
        out[fam.metric("conf_threshold")] = operating_conf(m)
        for i, c in enumerate(m.ap_class_index):
            row = out["per_class_metrics"][names[int(c)]]
            row.update({fam.metric("ap50"): float(m.ap50[i]), fam.metric("ap50_95"): float(m.ap[i]),
                        fam.metric("precision"): float(m.p[i]), fam.metric("recall"): float(m.r[i])})
            out["per_class"][names[int(c)]] = float(m.ap50[i])  # the last family is the primary one
    return out
