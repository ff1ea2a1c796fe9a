"""The reference: every accuracy number of an evaluation recomputed from its evidence, on any image multiset.

``ap_from_evidence`` recomputes what ultralytics' ``ap_per_class`` computes:
per-class AP50 and AP50-95 for every class with ground truth, mAP50,
mAP50_95, mean P and R at the operating point (argmax of the smoothed mean
F1 curve), f1 = 2PR/(P+R); plus size-bucket recall from the stored
COCO-style matches and the accuracy part of the composite score. On the
full image set the numbers equal ultralytics' own to the last bit: the same
sort (``confidence_order``: ``np.argsort(-conf)`` of the very array the
validator sorted, its predictions concatenated in the order it saw the
images, ``val_order``, with its float32 confidences), the same cumulative
sums, the same ``np.interp`` calls, the same ``eps``. (Evidence without
``val_order`` sorts the dataset-order concatenation: equal but for ties
between confidences.) The constants below are ultralytics'
(``ultralytics.utils.metrics``), reproduced exactly; the bootstrap engine
uses them too.

A task's metric families (``evaluation.families``) each have their own
true-positive matrix in the evidence (``tp``, ``tp_mask``, ``tp_pose``):
``ap_from_evidence`` takes the one to read (``tp_key``) and
``task_values`` names every family's numbers as the task's metrics.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from evaluation.evidence import evidence_task
from evaluation.families import FAMILY_METRICS, families
from evaluation.size_recall import BUCKETS
from vocab.scoring import composite_score
from vocab.tasks import DEFAULT_TASK, TASKS

EPS = 1e-16  # ap_per_class(eps=1e-16): recall = tpc / (n_l + eps), F1 = 2PR / (P + R + eps)
N_IOU = 10  # IoU thresholds 0.50:0.05:0.95
AP_GRID = np.linspace(0, 1, 101)  # compute_ap's 101-point COCO interpolation grid
PR_GRID = np.linspace(0, 1, 1000)  # ap_per_class's confidence grid for the P/R/F1 curves
_TRAPZ = getattr(np, "trapezoid", None) or getattr(np, "trapz")  # noqa: B009 - ultralytics: np.trapezoid on numpy >= 2
SMOOTH_F = 0.1  # smooth(f1_curve.mean(0), 0.1)

SIZE_KEYS: tuple[str, ...] = tuple(f"{b}_object_recall" for b in BUCKETS)


def score_keys(task: str = DEFAULT_TASK) -> tuple[str, ...]:
    """The accuracy metrics a task's score can weigh (its weight keys but speed)."""
    return tuple(k for k in TASKS[task].weight_keys if k != "speed")


SCORE_KEYS: tuple[str, ...] = score_keys()  # detection's
_REQUIRED = (
    "image_names", "pred_offsets", "tp", "conf", "pred_cls", "target_offsets", "target_cls",
    "gt_offsets", "gt_cls", "gt_bucket", "gt_found",
)


def smooth(y: np.ndarray, f: float = 0.05) -> np.ndarray:
    """ultralytics.utils.metrics.smooth, operation for operation (box filter, edge padding)."""
    nf = round(len(y) * f * 2) // 2 + 1
    p = np.ones(nf // 2)
    yp = np.concatenate((p * y[0], y, p * y[-1]), 0)
    return np.convolve(yp, np.ones(nf) / nf, mode="valid")


def smooth_at(y: np.ndarray, first: int, last: int, f: float, n: int = 1000, offset: int = 0) -> np.ndarray:
    """smooth(y_full, f)[first : last + 1] for a curve y_full of length n of which y holds the entries from
    offset on (at least those the outputs read). Bit for bit: np.convolve's "valid" outputs are each one dot
    product of the kernel with their own window, and the edge padding repeats y_full[0] / y_full[n - 1]."""
    nf = round(n * f * 2) // 2 + 1
    half = nf // 2
    lo, hi = first - half, last + half + 1
    if lo >= 0 and hi <= n:
        seg = y[lo - offset : hi - offset]
    else:
        seg = y[np.clip(np.arange(lo, hi), 0, n - 1) - offset]
    return np.convolve(seg, np.ones(nf) / nf, mode="valid")


def f1_score(p: float, r: float) -> float:
    """2PR/(P+R), 0 when both are 0 (evaluation.metrics.f1_score)."""
    return 0.0 if p + r <= 0 else 2 * p * r / (p + r)


def image_ids(offsets: np.ndarray) -> np.ndarray:
    offsets = np.asarray(offsets, dtype=np.int64)
    return np.repeat(np.arange(len(offsets) - 1, dtype=np.intp), np.diff(offsets))


def check_evidence(ev: Mapping[str, Any], tp_key: str = "tp") -> int:
    missing = [k for k in (*_REQUIRED, tp_key) if k not in ev]
    if missing:
        raise ValueError(f"evidence lacks {', '.join(missing)}")
    n = len(ev["image_names"])
    for key, items in (("pred_offsets", "conf"), ("target_offsets", "target_cls"), ("gt_offsets", "gt_cls")):
        off = np.asarray(ev[key])
        if off.shape != (n + 1,) or off[0] != 0 or off[-1] != len(ev[items]) or np.any(np.diff(off) < 0):
            raise ValueError(f"evidence {key} does not partition {items} over {n} images")
    if np.asarray(ev[tp_key]).reshape(-1, N_IOU).shape[0] != len(ev["conf"]) or len(ev["pred_cls"]) != len(ev["conf"]):
        raise ValueError(f"evidence {tp_key} / conf / pred_cls lengths differ")
    if "val_order" in ev and not np.array_equal(np.sort(np.asarray(ev["val_order"])), np.arange(n)):
        raise ValueError("evidence val_order is not a permutation of its images")
    if not (len(ev["gt_bucket"]) == len(ev["gt_found"]) == len(ev["gt_cls"])):
        raise ValueError("evidence gt_cls / gt_bucket / gt_found lengths differ")
    return n


def check_task_evidence(ev: Mapping[str, Any]) -> int:
    """``check_evidence`` for every metric family of the evidence's task; its number of images."""
    return min(check_evidence(ev, f.evidence_key) for f in families(evidence_task(ev)))


def score_weights(weights: Mapping[str, float] | None, task: str = DEFAULT_TASK) -> dict[str, float]:
    """Applied weights (as from scoring.resolve_weights); None = the task's defaults."""
    return dict(TASKS[task].default_weights if weights is None else weights)


def accuracy_score(values: Mapping[str, float | None], weights: Mapping[str, float] | None = None,
                   task: str = DEFAULT_TASK) -> float | None:
    """The composite score without its speed term (inference_ms unknown: dropped, rest renormalised)."""
    result = {k: values.get(k) for k in score_keys(task)}
    result["inference_ms"] = None
    return composite_score(result, score_weights(weights, task))


def validator_order(ev: Mapping[str, Any]) -> np.ndarray:
    """The evidence's predictions in the order the validator concatenated them (its images in
    ``val_order``); the evidence's own order when it lacks ``val_order``."""
    offsets = np.asarray(ev["pred_offsets"], dtype=np.int64)
    if "val_order" not in ev:
        return np.arange(offsets[-1], dtype=np.intp)
    images = np.asarray(ev["val_order"], dtype=np.int64)
    counts = np.diff(offsets)[images]
    starts = np.repeat(offsets[:-1][images] - np.concatenate(([0], np.cumsum(counts)[:-1])), counts)
    return (np.arange(int(counts.sum())) + starts).astype(np.intp)


def confidence_order(ev: Mapping[str, Any]) -> np.ndarray:
    """The predictions (evidence indices) in ``ap_per_class``'s order: ``np.argsort(-conf)`` of the
    validator's concatenation, in the confidences' stored dtype (the validator's float32)."""
    order = validator_order(ev)
    return order[np.argsort(-np.asarray(ev["conf"])[order])]


# --------------------------------------------------------------------------- ap_per_class, from evidence


def _ap_per_class_sorted(
    tp: np.ndarray, conf: np.ndarray, pred_cls: np.ndarray, target_cls: np.ndarray
) -> dict[str, Any]:
    """ultralytics' ap_per_class on predictions already in its order (sorted by -conf).

    The same arithmetic as ultralytics 8.4 (metrics.ap_per_class / compute_ap),
    with compute_ap's envelope vectorised over the ten IoU thresholds.
    """
    unique_classes, nt = np.unique(target_cls, return_counts=True)
    nc = unique_classes.shape[0]
    x = PR_GRID
    ap = np.zeros((nc, tp.shape[1]))
    p_curve, r_curve = np.zeros((nc, 1000)), np.zeros((nc, 1000))
    for ci, c in enumerate(unique_classes):
        i = pred_cls == c
        n_l = nt[ci]
        n_p = i.sum()
        if n_p == 0 or n_l == 0:
            continue
        tpi = tp[i]
        fpc = (1 - tpi).cumsum(0)
        tpc = tpi.cumsum(0)
        recall = tpc / (n_l + EPS)
        r_curve[ci] = np.interp(-x, -conf[i], recall[:, 0], left=0)
        precision = tpc / (tpc + fpc)
        p_curve[ci] = np.interp(-x, -conf[i], precision[:, 0], left=1)
        # compute_ap for all thresholds: sentinels, precision envelope, 101-point interpolation.
        k = tp.shape[1]
        mrec = np.concatenate((np.zeros((1, k)), recall, recall[-1:], np.ones((1, k))), 0)
        mpre = np.concatenate((np.ones((1, k)), precision, np.zeros((2, k))), 0)
        mpre = np.flip(np.maximum.accumulate(np.flip(mpre, 0), 0), 0)
        for j in range(k):
            ap[ci, j] = _TRAPZ(np.interp(AP_GRID, mrec[:, j], mpre[:, j]), AP_GRID)
    f1_curve = 2 * p_curve * r_curve / (p_curve + r_curve + EPS)
    i = int(smooth(f1_curve.mean(0), SMOOTH_F).argmax()) if nc else 0
    return {
        "classes": unique_classes.astype(int),
        "nt": nt,
        "ap": ap,
        "p": p_curve[:, i],
        "r": r_curve[:, i],
        "conf_threshold": float(x[i]) if nc else None,
    }


def _multiplicity(n_img: int, image_indices: Any) -> np.ndarray | None:
    if image_indices is None:
        return None
    idx = np.asarray(image_indices, dtype=np.int64).reshape(-1)
    if idx.size and (idx.min() < 0 or idx.max() >= n_img):
        raise ValueError(f"image_indices must lie in [0, {n_img})")
    return np.bincount(idx, minlength=n_img)


def size_recalls(evidence: Mapping[str, Any], image_indices: Any = None) -> dict[str, Any]:
    """found/total per size bucket from the stored matches (None for a bucket without ground truth)."""
    n_img = check_evidence(evidence)
    mult = _multiplicity(n_img, image_indices)
    bucket = np.asarray(evidence["gt_bucket"], dtype=np.int64)
    found = np.asarray(evidence["gt_found"], dtype=bool)
    w = np.ones(len(bucket), dtype=np.int64) if mult is None else mult[image_ids(evidence["gt_offsets"])]
    total = np.bincount(bucket, weights=w, minlength=3)[:3]
    hit = np.bincount(bucket, weights=w * found, minlength=3)[:3]
    out: dict[str, Any] = {}
    counts: dict[str, dict[str, int]] = {}
    for b, name in enumerate(BUCKETS):
        out[f"{name}_object_recall"] = float(hit[b] / total[b]) if total[b] > 0 else None
        counts[name] = {"found": int(hit[b]), "total": int(total[b])}
    out["size_counts"] = counts
    return out


def ap_from_evidence(
    evidence: Mapping[str, Any], image_indices: Any = None, weights: Mapping[str, float] | None = None,
    tp_key: str = "tp",
) -> dict[str, Any]:
    """Every accuracy number of an evaluation, recomputed from its evidence on a set of images.

    ``image_indices``: indices into ``image_names`` (repeats allowed: an image
    listed k times counts k times); None = every image, which reproduces
    ultralytics' own values. ``weights``: applied score weights (as from
    ``scoring.resolve_weights``; None = defaults) for ``accuracy_score`` (of
    detection's metrics: ``task_values`` scores a task). ``tp_key``: the
    family's true-positive matrix (``tp``, ``tp_mask``, ``tp_pose``).

    Returns ``{"n_images", "classes": [int], "per_class": {class index:
    {"ap50", "ap50_95", "precision", "recall", "support"}}, "mAP50",
    "mAP50_95", "precision", "recall", "f1", "conf_threshold",
    "small_object_recall", "medium_object_recall", "large_object_recall",
    "size_counts": {bucket: {"found", "total"}}, "accuracy_score"}``.
    """
    n_img = check_evidence(evidence, tp_key)
    mult = _multiplicity(n_img, image_indices)
    tp = np.asarray(evidence[tp_key], dtype=bool).reshape(-1, N_IOU)
    conf = np.asarray(evidence["conf"])
    pred_cls = np.asarray(evidence["pred_cls"])
    target_cls = np.asarray(evidence["target_cls"])
    order = confidence_order(evidence)  # ap_per_class's own sort, on the validator's array
    if mult is not None:
        sel = order[mult[image_ids(evidence["pred_offsets"])[order]] > 0]
        order = np.repeat(sel, mult[image_ids(evidence["pred_offsets"])[sel]])
        target_cls = np.repeat(target_cls, mult[image_ids(evidence["target_offsets"])])
    res = _ap_per_class_sorted(tp[order], conf[order], pred_cls[order], target_cls)
    ap, classes, nc = res["ap"], res["classes"], len(res["classes"])
    per_class = {
        int(c): {
            "ap50": float(ap[i, 0]),
            "ap50_95": float(ap[i].mean()),
            "precision": float(res["p"][i]),
            "recall": float(res["r"][i]),
            "support": int(res["nt"][i]),
        }
        for i, c in enumerate(classes)
    }
    mp = float(res["p"].mean()) if nc else 0.0
    mr = float(res["r"].mean()) if nc else 0.0
    out: dict[str, Any] = {
        "n_images": int(n_img if mult is None else mult.sum()),
        "classes": [int(c) for c in classes],
        "per_class": per_class,
        "mAP50": float(ap[:, 0].mean()) if nc else 0.0,
        "mAP50_95": float(ap.mean()) if nc else 0.0,
        "precision": mp,
        "recall": mr,
        "f1": f1_score(mp, mr),
        "conf_threshold": res["conf_threshold"],
    }
    out.update(size_recalls(evidence, image_indices))
    out["accuracy_score"] = accuracy_score(out, weights)
    return out


def task_values(evidence: Mapping[str, Any], weights: Mapping[str, float] | None = None) -> dict[str, Any]:
    """Every accuracy number of an evaluation of its task (``evidence_task``), on every image: the box
    family's under detection's names (``ap_from_evidence``), each further family's ``FAMILY_METRICS`` under
    its prefixed names (``mask_mAP50``, ...), size recall, ``per_class`` of the primary family, and the
    task's ``accuracy_score``. Equal to the validator's own to the last bit."""
    task = evidence_task(evidence)
    out = ap_from_evidence(evidence, weights=weights)
    for fam in families(task)[1:]:
        res = ap_from_evidence(evidence, tp_key=fam.evidence_key)
        out.update({fam.metric(k): res[k] for k in FAMILY_METRICS})
        out[fam.metric("conf_threshold")] = res["conf_threshold"]
        out["per_class"] = res["per_class"]
    out["task"] = task
    out["accuracy_score"] = accuracy_score(out, weights, task)
    return out
