"""Comparison statistics from stored evidence: exact AP on any image subset, paired bootstrap, gates.

Pure numpy (no torch, no ultralytics): this runs in the daemon process or in
a worker. Input is the per-image evidence of ``evaluation.evidence`` (one
dict of arrays per evaluation).

``ap_from_evidence``
    Recomputes, from the evidence alone, what ultralytics' ``ap_per_class``
    computes: per-class AP50 and AP50-95 for every class with ground truth,
    mAP50, mAP50_95, mean P and R at the operating point (argmax of the
    smoothed mean F1 curve), f1 = 2PR/(P+R); plus size-bucket recall from the
    stored COCO-style matches and the accuracy part of the composite score.
    On the full image set the numbers equal ultralytics' own to float
    rounding: same sort (``np.argsort(-conf)`` of the same array), same
    cumulative sums, same ``np.interp`` calls, same ``eps``.

``paired_bootstrap`` (and ``statistics``, the worker entry point)
    Paired image-level bootstrap of two evaluations over the same image list.
    Each resample draws the images with replacement once and uses the same
    draw for both models. Every per-resample number is the *exact* value that
    ``ap_from_evidence`` gives on the resampled image list (an image drawn k
    times counts k times, its predictions adjacent in the confidence order),
    computed for all resamples at once (see ``_Engine``): nothing is
    approximated, the per-image multiplicities are weights.

``evaluate_gates``
    Promotion gates on a comparison (significant gain, per-class and per-size
    regressions judged on their intervals).

Conventions: differences are ``b - a`` (b is the candidate). Percentile
intervals at level ``1 - alpha``; the two-sided bootstrap p-value is
``min(1, 2 * min(P(d <= 0), P(d >= 0)))`` over the resampled differences, so
two identical inputs give diff 0, interval [0, 0], p 1, not significant.
``significant`` means the interval excludes 0. A metric with no value
(for example a size bucket without ground truth) has ``None`` everywhere; a
resample in which a metric is undefined (for example no small object was
drawn) is left out of that metric's interval (``n_valid`` counts the rest).

Size recall on a subset counts the stored ``gt_found`` flags, i.e. matches at
the operating point of the full evaluation (the threshold is not re-derived
per subset). Confidence ties between different predictions keep the order of
the full-set sort; only the full set is guaranteed bit-for-bit equal to an
ultralytics run (its sort of a different array could order ties otherwise).

Cost of the bootstrap, per evaluation and resample: one gather and one
cumulative sum over every prediction (the weighted ``tpc + fpc``), about six
passes over the TP entries of the ten thresholds, and ~20 passes over
classes x 1000 for the P/R/F1 curves; memory is bounded by blocks of at most
64 resamples. ``benchmarks/bootstrap.py`` measures it.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from evaluation.scoring import DEFAULT_WEIGHTS, composite_score

# ultralytics.utils.metrics constants, reproduced exactly.
EPS = 1e-16  # ap_per_class(eps=1e-16): recall = tpc / (n_l + eps), F1 = 2PR / (P + R + eps)
N_IOU = 10  # IoU thresholds 0.50:0.05:0.95
_AP_X = np.linspace(0, 1, 101)  # compute_ap's 101-point COCO interpolation grid
_PX = np.linspace(0, 1, 1000)  # ap_per_class's confidence grid for the P/R/F1 curves
_TRAPZ = getattr(np, "trapezoid", None) or np.trapz  # ultralytics: np.trapezoid on numpy >= 2
_SMOOTH_F = 0.1  # smooth(f1_curve.mean(0), 0.1)

BUCKETS: tuple[str, ...] = ("small", "medium", "large")
SIZE_KEYS: tuple[str, ...] = tuple(f"{b}_object_recall" for b in BUCKETS)
# Metrics bootstrapped by paired_bootstrap, in report order.
BOOTSTRAP_METRICS: tuple[str, ...] = (
    "mAP50", "mAP50_95", "precision", "recall", "f1", *SIZE_KEYS, "accuracy_score",
)
_SCORE_KEYS: tuple[str, ...] = ("mAP50_95", "mAP50", "precision", "recall", "f1", *SIZE_KEYS)

GATE_DEFAULTS: dict[str, Any] = {
    "require_significant": False,
    "min_delta": 0.0,
    "max_class_regression": None,
    "min_class_support": 0,
    "max_size_recall_regression": None,
}

_REQUIRED = (
    "image_names", "pred_offsets", "tp", "conf", "pred_cls", "target_offsets", "target_cls",
    "gt_offsets", "gt_cls", "gt_bucket", "gt_found",
)


# --------------------------------------------------------------------------- helpers


def smooth(y: np.ndarray, f: float = 0.05) -> np.ndarray:
    """ultralytics.utils.metrics.smooth, operation for operation (box filter, edge padding)."""
    nf = round(len(y) * f * 2) // 2 + 1
    p = np.ones(nf // 2)
    yp = np.concatenate((p * y[0], y, p * y[-1]), 0)
    return np.convolve(yp, np.ones(nf) / nf, mode="valid")


def _f1(p: float, r: float) -> float:
    """2PR/(P+R), 0 when both are 0 (evaluation.metrics.f1_score)."""
    return 0.0 if p + r <= 0 else 2 * p * r / (p + r)


def _image_ids(offsets: np.ndarray) -> np.ndarray:
    offsets = np.asarray(offsets, dtype=np.int64)
    return np.repeat(np.arange(len(offsets) - 1, dtype=np.intp), np.diff(offsets))


def _check_evidence(ev: Mapping[str, Any]) -> int:
    missing = [k for k in _REQUIRED if k not in ev]
    if missing:
        raise ValueError(f"evidence lacks {', '.join(missing)}")
    n = len(ev["image_names"])
    for key, items in (("pred_offsets", "conf"), ("target_offsets", "target_cls"), ("gt_offsets", "gt_cls")):
        off = np.asarray(ev[key])
        if off.shape != (n + 1,) or off[0] != 0 or off[-1] != len(ev[items]) or np.any(np.diff(off) < 0):
            raise ValueError(f"evidence {key} does not partition {items} over {n} images")
    if np.asarray(ev["tp"]).reshape(-1, N_IOU).shape[0] != len(ev["conf"]) or len(ev["pred_cls"]) != len(ev["conf"]):
        raise ValueError("evidence tp / conf / pred_cls lengths differ")
    if not (len(ev["gt_bucket"]) == len(ev["gt_found"]) == len(ev["gt_cls"])):
        raise ValueError("evidence gt_cls / gt_bucket / gt_found lengths differ")
    return n


def _score_weights(weights: Mapping[str, float] | None) -> dict[str, float]:
    """Applied weights (as from scoring.resolve_weights); None = the defaults."""
    return dict(DEFAULT_WEIGHTS if weights is None else weights)


def accuracy_score(values: Mapping[str, float | None], weights: Mapping[str, float] | None = None) -> float | None:
    """The composite score without its speed term (inference_ms unknown: dropped, rest renormalised)."""
    result = {k: values.get(k) for k in _SCORE_KEYS}
    result["inference_ms"] = None
    return composite_score(result, _score_weights(weights))


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
    x = _PX
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
            ap[ci, j] = _TRAPZ(np.interp(_AP_X, mrec[:, j], mpre[:, j]), _AP_X)
    f1_curve = 2 * p_curve * r_curve / (p_curve + r_curve + EPS)
    i = int(smooth(f1_curve.mean(0), _SMOOTH_F).argmax()) if nc else 0
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
    n_img = _check_evidence(evidence)
    mult = _multiplicity(n_img, image_indices)
    bucket = np.asarray(evidence["gt_bucket"], dtype=np.int64)
    found = np.asarray(evidence["gt_found"], dtype=bool)
    w = np.ones(len(bucket), dtype=np.int64) if mult is None else mult[_image_ids(evidence["gt_offsets"])]
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
    evidence: Mapping[str, Any], image_indices: Any = None, weights: Mapping[str, float] | None = None
) -> dict[str, Any]:
    """Every accuracy number of an evaluation, recomputed from its evidence on a set of images.

    ``image_indices``: indices into ``image_names`` (repeats allowed: an image
    listed k times counts k times); None = every image, which reproduces
    ultralytics' own values. ``weights``: applied score weights (as from
    ``scoring.resolve_weights``; None = defaults) for ``accuracy_score``.

    Returns ``{"n_images", "classes": [int], "per_class": {class index:
    {"ap50", "ap50_95", "precision", "recall", "support"}}, "mAP50",
    "mAP50_95", "precision", "recall", "f1", "conf_threshold",
    "small_object_recall", "medium_object_recall", "large_object_recall",
    "size_counts": {bucket: {"found", "total"}}, "accuracy_score"}``.
    """
    n_img = _check_evidence(evidence)
    mult = _multiplicity(n_img, image_indices)
    tp = np.asarray(evidence["tp"], dtype=bool).reshape(-1, N_IOU)
    conf = np.asarray(evidence["conf"], dtype=np.float64)
    pred_cls = np.asarray(evidence["pred_cls"])
    target_cls = np.asarray(evidence["target_cls"])
    order = np.argsort(-conf)  # ap_per_class's own sort, on the same array
    if mult is not None:
        sel = order[mult[_image_ids(evidence["pred_offsets"])[order]] > 0]
        order = np.repeat(sel, mult[_image_ids(evidence["pred_offsets"])[sel]])
        target_cls = np.repeat(target_cls, mult[_image_ids(evidence["target_offsets"])])
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
        "f1": _f1(mp, mr),
        "conf_threshold": res["conf_threshold"],
    }
    out.update(size_recalls(evidence, image_indices))
    out["accuracy_score"] = accuracy_score(out, weights)
    return out


# --------------------------------------------------------------------------- the vectorised engine

# Trapezoid weights of the 101-point grid: AP = sum_g w_g V_g; C[g] = sum_{g' < g} w_g', CX likewise w_g x_g.
_AP_D = np.diff(_AP_X)
_AP_W = np.concatenate(([_AP_D[0] / 2], (_AP_D[:-1] + _AP_D[1:]) / 2, [_AP_D[-1] / 2]))
_AP_C = np.concatenate(([0.0], np.cumsum(_AP_W)))
_AP_CX = np.concatenate(([0.0], np.cumsum(_AP_W * _AP_X)))
# For integers 1 <= T <= n, the number of grid points x_g below the recall T/(n + eps) (np.interp's own
# float comparisons) is exactly ceil(100 T / n): linspace never lands below the correctly rounded g/100,
# and n + 1e-16 == n. Checked here, at import.
assert not any(_AP_X[g] < g / 100 for g in range(101))
assert all(float(n) + EPS == float(n) for n in (1, 2, 3, 1000))
_LEVELS = np.arange(100, dtype=np.float64)  # h - 1 for the grid levels h = 1..100
_INT32_MAX = np.iinfo(np.int32).max


def _groups(img: np.ndarray, bounds: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Images of items sorted by group, and the groups' [start, end) bounds (length n_groups + 1)."""
    return np.asarray(img, dtype=np.intp), np.asarray(bounds, dtype=np.intp)


def _group_sums(K: np.ndarray, img: np.ndarray, bounds: np.ndarray) -> np.ndarray:
    """(rc, n_groups): per resample, the number of drawn copies of the items of each group."""
    out = np.zeros((K.shape[0], len(bounds) - 1), dtype=np.int64)
    full = np.flatnonzero(bounds[1:] > bounds[:-1])  # reduceat cannot express an empty group
    if len(full):
        out[:, full] = np.add.reduceat(K.take(img, axis=1), bounds[:-1][full], axis=1, dtype=np.int64)
    return out


class _Class:
    """Static, resample-independent data of one class with ground truth."""

    __slots__ = ("start", "n", "img", "tp_rows", "tp_img", "union", "in_union", "cuts", "cut_inv", "n_tp0_before",
                 "first_tp")

    def __init__(self, start: int, img: np.ndarray, conf: np.ndarray, tp: np.ndarray, n_img: int) -> None:
        self.start = start  # first position of the class in the engine's concatenated order
        self.n = len(img)
        self.img = img  # image of each prediction, in the full-set confidence order
        self.first_tp = tp  # (n, 10) bool, read at the first real prediction of a resample
        self.tp_rows = [np.flatnonzero(tp[:, t]) for t in range(N_IOU)]
        self.tp_img = [img[r] for r in self.tp_rows]
        self.union = np.flatnonzero(tp.any(1))  # rows that are a TP at some threshold
        self.in_union = [np.searchsorted(self.union, r) for r in self.tp_rows]
        # np.interp(-x, -conf, ...) reads, for each grid x, the last prediction with conf >= x.
        cuts = np.searchsorted(-conf, -_PX, side="right")
        self.cuts, self.cut_inv = np.unique(cuts, return_inverse=True)
        self.n_tp0_before = np.searchsorted(self.tp_rows[0], self.cuts, side="left")


class _Engine:
    """One evidence, prepared for exact per-resample metrics under image multiplicities.

    A resample is the evidence with image i drawn K[r, i] times, i.e. the
    full-set prediction list (in the full-set confidence order) with each
    prediction repeated K[r, img] times. Per class and per resample, without
    expanding anything:

    - W = cumulative weights of all predictions (= ``tpc + fpc`` at each
      prediction's last copy) and, per IoU threshold, T = cumulative weights
      of its TPs (= ``tpc``); recall T/(n + eps), precision T/W.
    - compute_ap's curve after the envelope is flat between recall levels
      except on the first one: at grid point x it is E(j) = max precision of
      the TPs at or after j, j the first TP with recall above x (the copies of
      one TP span several levels at one envelope value; FP points never raise
      an envelope past the TP before them); on [0, 1/n) it is the line from
      L0 (1 if the first real prediction is a TP, else E of the first TP) to
      E of the first TP; 0 past the last TP. A grid point x_g lies below
      recall T/n iff g < ceil(100 T/n), so grid level h = 1..100 is first
      reached by the first TP with T >= floor((h-1) n/100) + 1 (one
      searchsorted for all resamples) and AP = sum_h w E(j_h) + the
      first-level correction, with E(j_h) from segment maxima of the
      precisions between consecutive level TPs (one reduceat) and a suffix
      max over the <= 100 levels.
      A TP of an image not drawn has weight 0: its T is its predecessor's,
      it starts no level, and its "precision" is that of the real point
      before it, which never raises an envelope it belongs to.
    - P and R curves: at grid confidence x, np.interp reads the last real
      prediction with conf >= x (prefix sums at a fixed cut) and interpolates
      towards the first copy of the next real one; both neighbours are found
      by probing the multiplicities, and the arithmetic is np.interp's.

    Every per-resample number equals ``ap_from_evidence`` on the resampled
    image list to float rounding (tested against it).
    """

    def __init__(self, ev: Mapping[str, Any]) -> None:
        self.n_img = _check_evidence(ev)
        conf = np.asarray(ev["conf"], dtype=np.float64)
        tp = np.asarray(ev["tp"], dtype=bool).reshape(-1, N_IOU)
        pred_cls = np.asarray(ev["pred_cls"]).astype(np.int64)
        pred_img = _image_ids(ev["pred_offsets"])
        target_cls = np.asarray(ev["target_cls"]).astype(np.int64)
        tgt_img = _image_ids(ev["target_offsets"])
        self.classes, nt = np.unique(target_cls, return_counts=True)
        self.support = nt.astype(np.int64)
        nc = len(self.classes)
        by_class = np.argsort(target_cls, kind="stable")
        self.gt_groups = _groups(tgt_img[by_class], np.concatenate(([0], np.cumsum(nt))))
        order = np.argsort(-conf)  # ap_per_class's sort, on the same array as the full-set evaluation
        cls_sorted = pred_cls[order]
        self.cls: list[_Class] = []
        parts = []
        start = 0
        for c in self.classes:
            pos = order[cls_sorted == c]
            parts.append(pos)
            self.cls.append(_Class(start, pred_img[pos], conf[pos], tp[pos], self.n_img))
            start += len(pos)
        allpos = np.concatenate(parts) if parts else np.zeros(0, dtype=np.intp)
        self.img = pred_img[allpos]
        self.conf = conf[allpos]
        self.tp0 = tp[allpos, 0].astype(np.float64)
        self.max_n = max((cd.n for cd in self.cls), default=0)
        self.max_m = max((len(r) for cd in self.cls for r in cd.tp_rows), default=0)
        # Probe columns for all classes at once: the first real prediction of each class (forwards from its
        # start), and around every cut the last real prediction before it and the first one from it on.
        starts, steps, lo, hi = [], [], [], []
        for cd in self.cls:
            s, e, nu = cd.start, cd.start + cd.n, len(cd.cuts)
            starts += [[s], s + cd.cuts - 1, s + cd.cuts]
            steps += [[1], np.full(nu, -1), np.full(nu, 1)]
            lo.append(np.full(1 + 2 * nu, s))
            hi.append(np.full(1 + 2 * nu, e))

        def cat(xs: list[Any]) -> np.ndarray:
            return np.concatenate(xs).astype(np.intp) if xs else np.zeros(0, dtype=np.intp)

        self.probe_start, self.probe_step, self.probe_lo, self.probe_hi = cat(starts), cat(steps), cat(lo), cat(hi)
        gt_img = _image_ids(ev["gt_offsets"])
        bucket = np.asarray(ev["gt_bucket"], dtype=np.int64)
        found = np.asarray(ev["gt_found"], dtype=bool)
        key = bucket * 2 + found  # groups (bucket, found): 0..5
        by_key = np.argsort(key, kind="stable")
        self.size_groups = _groups(gt_img[by_key], np.searchsorted(key[by_key], np.arange(7)))

    # ------------------------------------------------------------------ probing

    def _probe(self, K: np.ndarray, steps: int = 3) -> np.ndarray:
        """For every probe column and resample: the first position from the column's start, moving by
        its step inside [lo, hi), whose image was drawn; -1 where there is none.

        The first ``steps`` positions are tried for all columns at once (an image is drawn with
        probability ~0.63, so ~95% are settled), the rest one position at a time on what is left.
        """
        rc, n_img = K.shape
        start, step, lo, hi = self.probe_start, self.probe_step, self.probe_lo, self.probe_hi
        q_n = len(start)
        out = np.full((rc, q_n), -1, dtype=np.intp)
        if not q_n or not len(self.img):
            return out
        last = len(self.img) - 1
        hit = np.empty((rc, q_n), dtype=bool)
        for d in range(steps):
            p = start + d * step
            inside = (p >= lo) & (p < hi)
            k = K.take(self.img[np.clip(p, 0, last)], axis=1)
            np.greater(k, 0, out=hit)
            hit &= inside
            hit &= out < 0
            np.copyto(out, np.broadcast_to(p, out.shape), where=hit)
        p = start + steps * step
        todo = np.flatnonzero((out < 0) & ((p >= lo) & (p < hi)))
        r, q = np.divmod(todo, q_n)
        p = p[q]
        flatk = K.ravel()
        flat_out = out.ravel()
        while todo.size:
            found = flatk[r * n_img + self.img[p]] > 0
            flat_out[todo[found]] = p[found]
            miss = ~found
            todo, r, q, p = todo[miss], r[miss], q[miss], p[miss] + step[q[miss]]
            ok = (p >= lo[q]) & (p < hi[q])
            if not ok.all():
                todo, r, q, p = todo[ok], r[ok], q[ok], p[ok]
        return out

    # ------------------------------------------------------------------ one block of resamples

    def block(self, K: np.ndarray) -> dict[str, np.ndarray]:
        """Metrics of the resamples of K (rows: resamples, columns: image multiplicities, int32)."""
        K = np.ascontiguousarray(K, dtype=np.int32)
        rc = K.shape[0]
        nc = len(self.classes)
        kmax = int(K.max()) if K.size else 0
        # Gathers read a narrow copy of K: its rows stay in L1 and the gathered arrays are small.
        Kn = K.astype(np.uint8 if kmax <= np.iinfo(np.uint8).max else np.int32)
        n_l = _group_sums(Kn, *self.gt_groups).astype(np.float64)  # (rc, nc) ground truth per class
        present = n_l > 0
        probes = self._probe(Kn)
        ap = np.zeros((rc, nc, N_IOU))
        f1_sum = np.zeros((rc, 1000))
        ws = {
            "W": np.empty(rc * self.max_n, dtype=np.int32),
            "G": np.empty(rc * max(self.max_n, self.max_m), dtype=Kn.dtype),
            "T": np.empty(rc * self.max_m, dtype=np.int32),
            "T2": np.empty(rc * self.max_m, dtype=np.int32),
            "Wt": np.empty(rc * self.max_m, dtype=np.int32),
            "p": np.empty(rc * self.max_m + 1),
        }
        gb = [np.empty((rc, 1000)) for _ in range(4)]
        curves = []
        col = 0
        with np.errstate(invalid="ignore", divide="ignore"):
            for ci, cd in enumerate(self.cls):
                nu = len(cd.cuts)
                first = probes[:, col]
                left = probes[:, col + 1 : col + 1 + nu]
                right = probes[:, col + 1 + nu : col + 1 + 2 * nu]
                col += 1 + 2 * nu
                n = np.maximum(n_l[:, ci], 1.0)
                T0c, Wc, has_pred = self._class_ap(Kn, kmax, cd, n, first, ap[:, ci], ws)
                cv = self._curves(cd, n, has_pred, T0c, Wc, left, right)
                curves.append(cv)
                f1_sum += self._f1_grid(cd, cv, present[:, ci], gb)
        npres = present.sum(1)
        den = np.maximum(npres, 1)
        mean_f1 = f1_sum / den[:, None]
        idx = np.zeros(rc, dtype=np.intp)
        for r in range(rc):
            if npres[r]:
                idx[r] = int(smooth(mean_f1[r], _SMOOTH_F).argmax())
        p_i = np.zeros((rc, nc))
        r_i = np.zeros((rc, nc))
        for ci, cd in enumerate(self.cls):
            p_i[:, ci], r_i[:, ci] = self._grid(cd, curves[ci], idx)
        ap[~present] = np.nan
        p_i[~present] = 0.0
        r_i[~present] = 0.0
        mp = np.where(npres > 0, p_i.sum(1) / den, 0.0)
        mr = np.where(npres > 0, r_i.sum(1) / den, 0.0)
        map50 = np.where(npres > 0, np.nansum(ap[:, :, 0], 1) / den, 0.0)
        map5095 = np.where(npres > 0, np.nansum(ap.sum(2), 1) / (den * N_IOU), 0.0)
        with np.errstate(invalid="ignore", divide="ignore"):
            f1 = np.where(mp + mr > 0, 2 * mp * mr / (mp + mr), 0.0)
            sg = _group_sums(Kn, *self.size_groups).astype(np.float64).reshape(rc, 3, 2)
            size = sg[:, :, 1] / sg.sum(2)  # found / total; NaN: no object of the bucket drawn
        return {
            "mAP50": map50, "mAP50_95": map5095, "precision": mp, "recall": mr, "f1": f1,
            "small_object_recall": size[:, 0], "medium_object_recall": size[:, 1],
            "large_object_recall": size[:, 2], "ap50": ap[:, :, 0],
        }

    def _class_ap(
        self, K: np.ndarray, kmax: int, cd: _Class, n: np.ndarray, first: np.ndarray, ap_out: np.ndarray,
        ws: dict[str, np.ndarray],
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """AP of one class at the ten thresholds, into ap_out (rc x 10).

        Returns T (threshold 0) and W at the class's cuts, and whether any prediction was drawn.
        """
        rc = K.shape[0]
        nu = len(cd.cuts)
        T0c = np.zeros((rc, nu))
        Wc = np.zeros((rc, nu))
        if cd.n == 0:
            return T0c, Wc, np.zeros(rc, dtype=bool)
        W = ws["W"][: rc * cd.n].reshape(rc, cd.n)
        G = ws["G"][: rc * cd.n].reshape(rc, cd.n)
        K.take(cd.img, axis=1, out=G)
        np.cumsum(G, axis=1, dtype=np.int32, out=W)  # inclusive prefix weights of every prediction
        has_pred = W[:, -1] > 0
        WU = W.take(cd.union, axis=1)  # W at the TP rows (a small array: the per-threshold takes stay in cache)
        cut_ok = cd.cuts > 0
        Wc[:, cut_ok] = W[:, cd.cuts[cut_ok] - 1]
        real = first >= 0
        first_tp = np.zeros((rc, N_IOU), dtype=bool)
        first_tp[real] = cd.first_tp[first[real] - cd.start]
        g1 = np.ceil(100.0 / n).astype(np.intp)  # grid points on the first recall level [0, 1/n)
        a_first = _AP_C[g1] - _AP_CX[g1] * n
        levels = np.floor(_LEVELS[None, :] * n[:, None] / 100.0) + 1.0  # (rc, 100): first T of each level
        rows_r = np.arange(rc)
        for t in range(N_IOU):
            rows = cd.tp_rows[t]
            m = len(rows)
            if m == 0:
                continue
            big = m * kmax + 1  # > any row's total
            G = ws["G"][: rc * m].reshape(rc, m)
            K.take(cd.tp_img[t], axis=1, out=G)
            T = ws["T2"][: rc * m].reshape(rc, m)
            np.cumsum(G, axis=1, dtype=np.int32, out=T)  # tpc
            if rc * big < _INT32_MAX:
                To = ws["T"][: rc * m].reshape(rc, m)
                off = rows_r.astype(np.int32) * np.int32(big)
            else:
                To = np.empty((rc, m), dtype=np.int64)
                off = rows_r.astype(np.int64) * big
            np.add(T, off[:, None], out=To)  # T + row offset: the rows of the flat array stay sorted
            if t == 0:
                cnt = cd.n_tp0_before
                ok = cnt > 0
                T0c[:, ok] = T[:, cnt[ok] - 1]
            Wt = ws["Wt"][: rc * m].reshape(rc, m)
            WU.take(cd.in_union[t], axis=1, out=Wt)
            pf = ws["p"][: rc * m + 1]
            pf[-1] = 0.0
            p = pf[:-1].reshape(rc, m)
            np.divide(T, Wt, out=p)  # precision at each TP's last copy (0/0 before the first real prediction)
            tt = T[:, -1]
            valid = levels <= tt[:, None]
            hmax = int(valid.sum(1).max())  # levels reached by some resample (recall * 100 at most)
            if hmax == 0:
                continue  # no TP drawn anywhere: AP 0
            lv, valid = levels[:, :hmax], valid[:, :hmax]
            q = lv.astype(To.dtype) + off[:, None]  # same dtype as To: no conversion of To
            j = np.searchsorted(To.ravel(), q.ravel()).reshape(rc, hmax)
            row_end = (rows_r + 1) * m
            j = np.minimum(j, row_end[:, None])
            bounds = np.concatenate([j, row_end[:, None]], 1).ravel()
            seg = np.maximum.reduceat(pf, bounds).reshape(rc, hmax + 1)[:, :hmax]
            seg[~valid] = 0.0
            E = np.maximum.accumulate(seg[:, ::-1], axis=1)[:, ::-1]  # E at the first TP of each level
            e1 = E[:, 0]
            l0 = np.where(first_tp[:, t], 1.0, e1)
            val = 0.01 * E.sum(1) - 0.005 * e1 + (l0 - e1) * a_first
            ap_out[:, t] = np.where(tt > 0, val, 0.0)
        return T0c, Wc, has_pred

    def _curves(
        self, cd: _Class, n: np.ndarray, has_pred: np.ndarray, T0c: np.ndarray, Wc: np.ndarray,
        left: np.ndarray, right: np.ndarray,
    ) -> tuple[np.ndarray, ...]:
        """np.interp(-x, -conf, precision | recall, left=1 | 0) per unique cut: value + slope * (cl - x)."""
        if cd.n == 0:
            zero = np.zeros_like(T0c)
            return zero, zero, zero, zero, zero
        has_left = Wc > 0
        has_right = right >= 0
        cl = self.conf[np.maximum(left, 0)]
        cr = self.conf[np.maximum(right, 0)]
        tq = self.tp0[np.maximum(right, 0)]
        ne = n[:, None] + EPS
        pl = T0c / Wc
        rl = T0c / ne
        dx = cl - cr
        sp = ((T0c + tq) / (Wc + 1) - pl) / dx
        sr = ((T0c + tq) / ne - rl) / dx
        flat = ~has_right | ~has_left  # past the last point: its value; before the first: left=1 / 0
        sp[flat] = 0.0
        sr[flat] = 0.0
        pl[~has_left] = 1.0
        rl[~has_left] = 0.0
        none = ~has_pred  # no prediction of the class drawn: ultralytics leaves the curves at 0
        pl[none] = 0.0
        rl[none] = 0.0
        return pl, rl, sp, sr, cl

    @staticmethod
    def _f1_grid(cd: _Class, cv: tuple[np.ndarray, ...], present: np.ndarray, gb: list[np.ndarray]) -> np.ndarray:
        """2PR/(P+R+eps) at the 1000 grid confidences (0 for resamples without the class), in buffers."""
        pl, rl, sp, sr, cl = cv
        inv = cd.cut_inv
        bx, bp, br, bt = gb
        np.take(cl, inv, axis=1, out=bx)
        np.subtract(bx, _PX, out=bx)  # cl - x
        np.take(sp, inv, axis=1, out=bp)
        np.multiply(bp, bx, out=bp)
        np.take(pl, inv, axis=1, out=bt)
        np.add(bp, bt, out=bp)  # P = slope * (cl - x) + value, np.interp's arithmetic
        np.take(sr, inv, axis=1, out=br)
        np.multiply(br, bx, out=br)
        np.take(rl, inv, axis=1, out=bt)
        np.add(br, bt, out=br)
        np.multiply(bp, 2, out=bx)
        np.multiply(bx, br, out=bx)
        np.add(bp, br, out=bt)
        np.add(bt, EPS, out=bt)
        np.divide(bx, bt, out=bx)  # 2 * P * R / (P + R + eps), ultralytics' order
        np.multiply(bx, present[:, None], out=bx)
        return bx

    @staticmethod
    def _grid(cd: _Class, cv: tuple[np.ndarray, ...], idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """P and R of one class at one grid confidence per resample (idx: its grid index)."""
        pl, rl, sp, sr, cl = cv
        rows = np.arange(len(idx))
        q = cd.cut_inv[idx]
        xl = cl[rows, q] - _PX[idx]
        return sp[rows, q] * xl + pl[rows, q], sr[rows, q] * xl + rl[rows, q]


def _draw_multiplicities(n_img: int, n_resamples: int, seed: int) -> np.ndarray:
    """K[r, i] = how many times image i is drawn in resample r (n_img draws with replacement)."""
    K = np.zeros((n_resamples, n_img), dtype=np.int32)
    if n_img == 0:
        return K
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, n_img, size=(n_resamples, n_img))
    for r in range(n_resamples):
        K[r] = np.bincount(draws[r], minlength=n_img)
    return K


def bootstrap_metrics(
    engines: Sequence[_Engine], K: np.ndarray, *, block: int | None = None, threads: int | None = None
) -> list[dict[str, np.ndarray]]:
    """Per-resample metrics of each engine under the same multiplicities K, in blocks of resamples."""
    R = K.shape[0]
    if block is None:
        biggest = max((e.max_n for e in engines), default=1)
        block = int(np.clip(2_000_000 // max(biggest, 1), 8, 64))
    starts = list(range(0, R, block))
    if threads is None:
        threads = min(2, os.cpu_count() or 1)

    def run(a: int) -> list[dict[str, np.ndarray]]:
        Kb = np.ascontiguousarray(K[a : a + block], dtype=np.int32)
        return [e.block(Kb) for e in engines]

    if threads > 1 and len(starts) > 1:
        with ThreadPoolExecutor(threads) as ex:
            parts = list(ex.map(run, starts))
    else:
        parts = [run(a) for a in starts]
    return [{k: np.concatenate([p[i][k] for p in parts]) for k in parts[0][i]} for i in range(len(engines))]


def _score_rows(m: Mapping[str, np.ndarray], weights: Mapping[str, float]) -> np.ndarray:
    """composite_score without speed, row by row (NaN metric = null term, dropped and renormalised)."""
    num = np.zeros_like(m["mAP50"])
    den = np.zeros_like(m["mAP50"])
    for k, w in weights.items():
        if w > 0 and k in m:
            v = m[k]
            ok = ~np.isnan(v)
            num += np.where(ok, w * np.nan_to_num(v), 0.0)
            den += np.where(ok, w, 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, num / den, np.nan)


# --------------------------------------------------------------------------- the paired bootstrap


def _value(x: Any) -> float | None:
    x = float(x)
    return None if math.isnan(x) else x


def _interval(a: float | None, b: float | None, da: np.ndarray, db: np.ndarray, alpha: float) -> dict[str, Any]:
    d = db - da
    d = d[~np.isnan(d)]
    if a is None or b is None or not d.size:
        return {"a": a, "b": b, "diff": None if a is None or b is None else b - a, "ci_low": None,
                "ci_high": None, "p_value": None, "significant": False, "n_valid": int(d.size)}
    lo, hi = np.quantile(d, [alpha / 2, 1 - alpha / 2])
    p = min(1.0, 2.0 * min(float(np.mean(d <= 0)), float(np.mean(d >= 0))))
    return {
        "a": a, "b": b, "diff": b - a, "ci_low": float(lo), "ci_high": float(hi), "p_value": p,
        "significant": bool(lo > 0 or hi < 0), "n_valid": int(d.size),
    }


def _class_name(c: int, names: Sequence[str] | Mapping[int, str] | None) -> str:
    if names is None:
        return str(c)
    try:
        return str(names[c])
    except (KeyError, IndexError):
        return str(c)


def flip_table(
    ev_a: Mapping[str, Any], ev_b: Mapping[str, Any], names: Sequence[str] | Mapping[int, str] | None = None,
    max_examples: int = 3,
) -> dict[str, dict[str, Any]]:
    """Per class, label-file objects found (gt_found) by one model and missed by the other.

    Returns ``{class name: {"class_index", "total", "found_a", "found_b",
    "a_only", "b_only", "examples_a_only": [image name], "examples_b_only":
    [image name]}}`` (examples: the first ``max_examples`` distinct images, in
    dataset order). Both evidences must hold the same label-file objects.
    """
    for key in ("gt_offsets", "gt_cls"):
        if not np.array_equal(np.asarray(ev_a[key]), np.asarray(ev_b[key])):
            raise ValueError(f"the evidences hold different ground truth ({key} differs)")
    names_list = [str(s) for s in np.asarray(ev_a["image_names"])]
    img = _image_ids(ev_a["gt_offsets"])
    cls = np.asarray(ev_a["gt_cls"]).astype(np.int64)
    fa = np.asarray(ev_a["gt_found"], dtype=bool)
    fb = np.asarray(ev_b["gt_found"], dtype=bool)
    out: dict[str, dict[str, Any]] = {}
    for c in np.unique(cls):
        m = cls == c
        a_only = m & fa & ~fb
        b_only = m & fb & ~fa

        def examples(mask: np.ndarray) -> list[str]:
            ims = np.unique(img[mask])[:max_examples]
            return [names_list[i] for i in ims]

        out[_class_name(int(c), names)] = {
            "class_index": int(c), "total": int(m.sum()), "found_a": int((m & fa).sum()),
            "found_b": int((m & fb).sum()), "a_only": int(a_only.sum()), "b_only": int(b_only.sum()),
            "examples_a_only": examples(a_only), "examples_b_only": examples(b_only),
        }
    return out


def paired_bootstrap(
    ev_a: Mapping[str, Any],
    ev_b: Mapping[str, Any],
    n_resamples: int = 1000,
    seed: int = 0,
    alpha: float = 0.05,
    weights: Mapping[str, float] | None = None,
    *,
    names: Sequence[str] | Mapping[int, str] | None = None,
    threads: int | None = None,
) -> dict[str, Any]:
    """Paired image-level bootstrap of b (candidate) against a on the same images.

    Returns ``{"n_images", "n_resamples", "seed", "alpha", "weights",
    "metrics": {metric: {"a", "b", "diff", "ci_low", "ci_high", "p_value",
    "significant", "n_valid"}} for BOOTSTRAP_METRICS, "per_class": {class
    name: {"class_index", "support", "a", "b", "diff", "ci_low", "ci_high",
    "p_value", "significant", "n_valid"}} (AP50), "flips": flip_table(...)}``.
    a, b are the full-set values (the engine with every image once, equal to
    ``ap_from_evidence``, i.e. to ultralytics, to float rounding); intervals
    come from the resamples. ``names``: class names (index -> name) for the
    per-class keys (default: the class index as a string). ``threads``:
    worker threads (default min(2, CPUs)); results do not depend on it.
    Raises ValueError unless both are over the same image list.
    """
    n_a, n_b = _check_evidence(ev_a), _check_evidence(ev_b)
    if n_a != n_b or not np.array_equal(np.asarray(ev_a["image_names"]), np.asarray(ev_b["image_names"])):
        raise ValueError("paired bootstrap needs both evidences over the same images in the same order")
    if n_resamples < 1:
        raise ValueError("n_resamples must be >= 1")
    if not 0 < alpha < 1:
        raise ValueError("alpha must lie in (0, 1)")
    w = _score_weights(weights)
    eng_a, eng_b = _Engine(ev_a), _Engine(ev_b)
    # Full-set values: the engine with every image once (= ap_from_evidence to float rounding).
    ones = np.ones((1, n_a), dtype=np.int32)
    full_a, full_b = eng_a.block(ones), eng_b.block(ones)
    K = _draw_multiplicities(n_a, n_resamples, seed)
    res_a, res_b = bootstrap_metrics([eng_a, eng_b], K, threads=threads)
    for res in (res_a, res_b, full_a, full_b):
        res["accuracy_score"] = _score_rows(res, w)
    metrics = {m: _interval(_value(full_a[m][0]), _value(full_b[m][0]), res_a[m], res_b[m], alpha)
               for m in BOOTSTRAP_METRICS}
    per_class: dict[str, dict[str, Any]] = {}
    cls_a = {int(c): i for i, c in enumerate(eng_a.classes)}
    cls_b = {int(c): i for i, c in enumerate(eng_b.classes)}
    nan = np.full(n_resamples, np.nan)
    for c in sorted(set(cls_a) | set(cls_b)):
        ia, ib = cls_a.get(c), cls_b.get(c)
        va = None if ia is None else _value(full_a["ap50"][0, ia])
        vb = None if ib is None else _value(full_b["ap50"][0, ib])
        da = nan if ia is None else res_a["ap50"][:, ia]
        db = nan if ib is None else res_b["ap50"][:, ib]
        support = eng_a.support[ia] if ia is not None else eng_b.support[ib]
        row = {"class_index": c, "support": int(support)}
        row.update(_interval(va, vb, da, db, alpha))
        per_class[_class_name(c, names)] = row
    try:
        flips: dict[str, Any] = flip_table(ev_a, ev_b, names)
    except ValueError as exc:
        flips = {"error": str(exc)}
    return {
        "n_images": n_a, "n_resamples": n_resamples, "seed": seed, "alpha": alpha, "weights": w,
        "metrics": metrics, "per_class": per_class, "flips": flips,
    }


def statistics(
    ev_a: Mapping[str, Any], ev_b: Mapping[str, Any], *, names: Sequence[str] | Mapping[int, str] | None = None,
    weights: Mapping[str, float] | None = None, n_resamples: int = 1000, seed: int = 0, alpha: float = 0.05,
) -> dict[str, Any]:
    """The worker's compare statistics (evaluation.comparison.compare_evidence): ``paired_bootstrap``."""
    return paired_bootstrap(ev_a, ev_b, n_resamples=n_resamples, seed=seed, alpha=alpha, weights=weights,
                            names=names)


# --------------------------------------------------------------------------- gates


def _failure(gate: str, subject: str, s: Mapping[str, Any], threshold: float | None, reason: str) -> dict[str, Any]:
    return {"gate": gate, "subject": subject, "value": s.get("diff"), "ci_low": s.get("ci_low"),
            "ci_high": s.get("ci_high"), "threshold": threshold, "reason": reason}


def _regressed(s: Mapping[str, Any], threshold: float) -> bool:
    """A significant loss larger than the threshold: diff < -threshold and the interval lies below 0."""
    d, hi = s.get("diff"), s.get("ci_high")
    return d is not None and hi is not None and d < -threshold and hi < 0


def evaluate_gates(comparison: Mapping[str, Any], gates: Mapping[str, Any] | None) -> list[dict[str, Any]]:
    """The gates a comparison (``paired_bootstrap``: b is the candidate) fails; [] = passes.

    gates (missing keys take GATE_DEFAULTS):

    - ``require_significant`` (bool) with ``min_delta`` (float): the
      accuracy-score gain must be established: its interval's lower bound must
      be above min_delta. Without require_significant, min_delta is unused.
    - ``max_class_regression`` (float or None) with ``min_class_support``
      (int): no class with at least that many ground-truth objects may lose
      AP50 significantly by more than the threshold. A class fails when its
      point estimate diff < -threshold AND its interval lies entirely below 0
      (ci_high < 0). This is the conservative reading for a promotion gate:
      it refuses on any established loss whose size exceeds the threshold,
      where "the whole interval below -threshold" would wave through losses
      that are certain but not yet certainly beyond the threshold. Classes
      below the support are reported in the comparison but never gated.
    - ``max_size_recall_regression`` (float or None): the same rule for
      small/medium/large object recall (a bucket without ground truth is not
      gated).

    Each failure: ``{"gate", "subject", "value" (the diff), "ci_low",
    "ci_high", "threshold", "reason"}``.
    """
    g = dict(GATE_DEFAULTS)
    unknown = set(gates or {}) - set(GATE_DEFAULTS)
    if unknown:
        raise ValueError(f"unknown gates: {', '.join(sorted(unknown))}; allowed: {', '.join(GATE_DEFAULTS)}")
    g.update(gates or {})
    failures: list[dict[str, Any]] = []
    metrics = comparison.get("metrics", {})

    if g["require_significant"]:
        s = metrics.get("accuracy_score") or {}
        min_delta = float(g["min_delta"] or 0.0)
        lo = s.get("ci_low")
        if lo is None:
            failures.append(_failure(
                "require_significant", "accuracy_score", s, min_delta,
                "no accuracy score to compare (a model has no scorable metric): the gain cannot be established"))
        elif not lo > min_delta:
            failures.append(_failure(
                "require_significant", "accuracy_score", s, min_delta,
                f"accuracy-score gain {s['diff']:+.4f} is not established above {min_delta:+.4f}: its "
                f"{1 - comparison.get('alpha', 0.05):.0%} interval [{lo:+.4f}, {s['ci_high']:+.4f}] "
                f"reaches {min_delta:+.4f}"))

    thr = g["max_class_regression"]
    if thr is not None:
        thr = float(thr)
        min_support = int(g["min_class_support"] or 0)
        for name, s in comparison.get("per_class", {}).items():
            if s.get("support", 0) < min_support:
                continue
            if _regressed(s, thr):
                failures.append(_failure(
                    "max_class_regression", str(name), s, thr,
                    f"class {name} (support {s['support']}) loses {-s['diff']:.4f} AP50 "
                    f"({s['a']:.4f} -> {s['b']:.4f}), more than the allowed {thr:.4f}, and the loss is "
                    f"significant: interval [{s['ci_low']:+.4f}, {s['ci_high']:+.4f}] lies below 0"))

    thr = g["max_size_recall_regression"]
    if thr is not None:
        thr = float(thr)
        for key in SIZE_KEYS:
            s = metrics.get(key) or {}
            if _regressed(s, thr):
                failures.append(_failure(
                    "max_size_recall_regression", key, s, thr,
                    f"{key.replace('_', ' ')} drops by {-s['diff']:.4f} ({s['a']:.4f} -> {s['b']:.4f}), "
                    f"more than the allowed {thr:.4f}, and the drop is significant: interval "
                    f"[{s['ci_low']:+.4f}, {s['ci_high']:+.4f}] lies below 0"))
    return failures


__all__ = [
    "BOOTSTRAP_METRICS", "GATE_DEFAULTS", "accuracy_score", "ap_from_evidence", "evaluate_gates", "flip_table",
    "paired_bootstrap", "size_recalls", "smooth", "statistics",
]
