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

Cost of the bootstrap, per evaluation and resample (see ``_Engine``): one gathered
byte and one uint8 add per prediction up to each class's last TP and per TP
entry (exact integer prefix sums, streamed in blocks of 16), about ten float64
operations per run of adjacent TPs (the AP envelopes of the ten thresholds),
a few per class and grid confidence (bounds on the F1 curves) and about forty
per class and grid confidence on the few columns where the operating point
can lie (the exact P/R/F1 curves). Resamples are processed in blocks
(transposed: images x resamples) sized to ~64 MB of scratch memory per worker
thread. ``benchmarks/bootstrap.py`` measures it.
"""

from __future__ import annotations

import math
import os
import threading
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from evaluation.scoring import DEFAULT_WEIGHTS, composite_score
from evaluation.speed import draw_batches, evidence_timings, resampled_inference_ms

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


def _smooth_at(y: np.ndarray, first: int, last: int, f: float, n: int = 1000, offset: int = 0) -> np.ndarray:
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
# ceil(100 T / n) is computed as ceil(T * m) with m = (100 / n) (1 - _SHRINK): for integers T >= 0 and
# 1 <= n <= _N_EXACT, 100 T / n is an integer or at least 1/n away from one, and T * m lies below it by
# (100 T / n) 1e-11 +- 3e-16 relative: never past an integer (1/n > 1.1e-9 > 100 * 1.1e-11), always
# below an integral value. Larger n (never in practice) take the division.
_SHRINK = 1e-11
_N_EXACT = 5e8
# The same in float32 (half the bytes): T exact (T < 2^24), m32 = fl32((100 / n) (1 - _SHRINK32)), and for
# T <= n (100 T / n <= 100) T * m32 lies below 100 T / n by (2.5e-7 +- 1.2e-7) relative, i.e. by less than
# 3.7e-5 < 1/n: past no integer, always below an integral value (beyond n, c is capped at 100 anyway).
_SHRINK32 = 2.5e-7
_N_F32 = 27000
_F32_INT = 1 << 24

_B = 16  # scan block length; a sequence j is stored "k-major", at [j % _B, j // _B]
_SUPER = _B * _B  # the prefix sequence's segments are padded to whole superblocks of _B blocks
_BLOCK_BYTES = 64 << 20  # scratch memory per worker thread, which sets the default block of resamples
_PROBE = 4  # probe candidates tried for every column at once (a miss on all, ~2%: 16 more at a time)
# Every take() into an out= array uses mode="clip" (the indices are in range by construction): the default
# mode="raise" writes through a temporary copy, 2-4x slower here.


def _uint(top: int) -> type:
    """The narrowest unsigned dtype holding 0..top."""
    for dt in (np.uint8, np.uint16, np.uint32):
        if top <= np.iinfo(dt).max:
            return dt
    return np.int64


class _Work:
    """Scratch arrays reused across classes and blocks by one thread (a fresh large array costs page
    faults on every use). ``get`` hands out a view of the buffer of that name."""

    def __init__(self) -> None:
        self.bufs: dict[str, np.ndarray] = {}
        self.views: dict[tuple[str, tuple[int, ...], Any], np.ndarray] = {}

    def get(self, name: str, shape: tuple[int, ...], dtype: Any) -> np.ndarray:
        key = (name, shape, dtype)
        view = self.views.get(key)
        if view is not None:
            return view
        dt = np.dtype(dtype)
        size = math.prod(shape) * dt.itemsize
        buf = self.bufs.get(name)
        if buf is None or buf.nbytes < size:
            buf = self.bufs[name] = np.empty(max(size, 64), dtype=np.uint8)
            self.views = {k: v for k, v in self.views.items() if k[0] != name}
        view = self.views[key] = buf[:size].view(dt).reshape(shape)
        return view


def _scan_kmajor(Z: np.ndarray, op: np.ufunc, reverse: bool = False) -> None:
    """In place inclusive scan (op: np.add, or np.maximum of non-negatives) of the k-major sequence Z
    (_B, nb, ...): each in-block step is one contiguous slab, the block totals are scanned by
    ``_scan_rows``, one broadcast pass combines. ``reverse``: a suffix scan."""
    B = Z.shape[0]
    if reverse:
        for k in range(B - 2, -1, -1):
            op(Z[k], Z[k + 1], out=Z[k])
        tot = Z[0].copy()
        _scan_rows(tot, op, True)
        op(Z[:, :-1], tot[None, 1:], out=Z[:, :-1])
    else:
        for k in range(1, B):
            op(Z[k], Z[k - 1], out=Z[k])
        tot = Z[B - 1].copy()
        _scan_rows(tot, op, False)
        op(Z[:, 1:], tot[None, :-1], out=Z[:, 1:])


def _scan_rows(X: np.ndarray, op: np.ufunc, reverse: bool = False) -> None:
    """In place inclusive scan of X along axis 0 (rows in their natural order): a loop over the rows
    when there are few, else through a k-major copy (zero padding: neutral for both ops)."""
    L = X.shape[0]
    if L <= 2 * _B:
        if reverse:
            for j in range(L - 2, -1, -1):
                op(X[j], X[j + 1], out=X[j])
        else:
            for j in range(1, L):
                op(X[j], X[j - 1], out=X[j])
        return
    rest = X.shape[1:]
    full, tail = divmod(L, _B)
    Z = np.zeros((_B, full + (tail > 0), *rest), dtype=X.dtype)
    Zv = Z.swapaxes(0, 1)  # (nb, _B, ...) view: the natural order
    Zv[:full] = X[: full * _B].reshape(full, _B, *rest)
    if tail:
        Zv[full, :tail] = X[full * _B :]
    _scan_kmajor(Z, op, reverse)
    X[: full * _B].reshape(full, _B, *rest)[...] = Zv[:full]
    if tail:
        X[full * _B :] = Zv[full, :tail]


def _runs(rows: np.ndarray) -> np.ndarray:
    """Indices (into rows, sorted positions) of the last member of each run of consecutive positions."""
    if not len(rows):
        return np.zeros(0, dtype=np.intp)
    return np.concatenate((np.flatnonzero(np.diff(rows) != 1), [len(rows) - 1])).astype(np.intp)


class _Plan:
    """How one class's prefix sums are computed (see ``_Engine._prefix``): the rows of KT to gather, in
    streaming order, and where the sums are read."""

    def __init__(self, segs: list[np.ndarray], out_seg: np.ndarray, out_idx: np.ndarray, dummy: int) -> None:
        # The prefix sequence: the segments (images of their items) one after the other, each padded to whole
        # superblocks; s = b2 * _SUPER + k2 * _B + k is step k of block k2 * nb2 + b2.
        plen = [max(-(-len(s) // _SUPER), 1) * _SUPER for s in segs]
        offs = np.concatenate(([0], np.cumsum(plen))).astype(np.intp)
        seq = np.full(offs[-1], dummy, dtype=np.intp)
        for s, o in zip(segs, offs[:-1]):
            seq[o : o + len(s)] = s
        nb2 = int(offs[-1]) // _SUPER
        self.nb2 = nb2
        self.gather = np.ascontiguousarray(seq.reshape(nb2, _B, _B).transpose(2, 1, 0).reshape(_B, _B * nb2))
        self.base2 = np.repeat(offs[:-1] // _SUPER, np.asarray(plen) // _SUPER)  # first superblock of the segment
        # Outputs (in the order of the rows of O they fill): inclusive prefix of segment out_seg at out_idx.
        so = (offs[out_seg] + out_idx).astype(np.intp)
        self.m = len(so)
        k, k2, b2 = so % _B, (so // _B) % _B, so // _SUPER
        # Level 1 is streamed: after step k the running block sums are read at the outputs of step k.
        by_k = np.argsort(k, kind="stable")
        self.k_bounds = np.searchsorted(k[by_k], np.arange(_B + 1))
        self.o_blk = (k2 * nb2 + b2)[by_k]  # block of each output, in step order
        self.o_unsort = np.argsort(by_k).astype(np.intp)  # step order -> output order
        self.o_x2 = k2 * nb2 + b2  # row of the block's exclusive prefix, in output order


class _Class:
    """Static, resample-independent data of one class with ground truth and predictions: where every
    per-resample quantity is read (see ``_Engine``).

    Rows of O: the run slots (k-major, padded: T), T (threshold 0) before the cuts, W at the checkpoints
    (those up to the last TP, then those of the "tail" cuts past it), a 0 row. The head plan fills O without
    the tail checkpoints, summing the predictions up to the last TP only; the full plan fills all of it.
    """

    def __init__(self, img: np.ndarray, conf: np.ndarray, tp: np.ndarray, n_img: int) -> None:
        n = len(img)
        self.n = n
        self.img = img  # image of each prediction, in the full-set confidence order
        self.conf = conf
        self.tp = tp  # (n, 10) bool
        self.conf_tp0 = conf + 1j * tp[:, 0]  # what the right-hand probes read
        dummy = n_img  # an image never drawn (the zero row appended to the multiplicities)
        members = [np.flatnonzero(tp[:, t]) for t in range(N_IOU)]
        self.max_m = max(len(m) for m in members)
        last_tp = max((int(m[-1]) for m in members if len(m)), default=-1)
        run_end = [_runs(m) for m in members]  # last TP of each run of adjacent TPs, per threshold
        end_pos = [m[e] for m, e in zip(members, run_end)]
        # np.interp(-x, -conf, ...) reads, for each grid x, the last prediction with conf >= x: the "cut"
        # of x is the number of predictions with conf >= x (it falls as x grows).
        q = np.searchsorted(-conf, -_PX, side="right")
        tail = q - 1 > last_tp  # cuts past the last TP: columns 0 .. n_tail - 1
        self.n_tail = int(np.count_nonzero(tail))
        # W is read at the checkpoints: every run end and the last prediction before each cut.
        at_last = np.array([last_tp] if last_tp >= 0 else [], dtype=np.intp)
        ck_head = np.unique(np.concatenate([at_last, *end_pos, q[(q > 0) & ~tail] - 1])).astype(np.intp)
        ck_tail = np.unique(q[tail] - 1)
        ckpos = np.concatenate((ck_head, ck_tail)).astype(np.intp)
        self.n_ck_head, self.n_ck = len(ck_head), len(ckpos)
        t0_cut = np.searchsorted(members[0], q)  # TPs (threshold 0) before each cut
        t0_idx = np.unique(t0_cut[t0_cut > 0] - 1)
        n_t0 = len(t0_idx)
        self.n_t0 = n_t0

        # Run-level k-major layout (_B, G): run j of threshold t at [j % _B, gstart[t] + j // _B]; a threshold's
        # last block is padded with its last run (no new level; its precision is read as T / inf).
        nr = np.array([len(e) for e in run_end])
        nbt = -(-nr // _B)
        gstart = np.concatenate(([0], np.cumsum(nbt)))
        G = max(int(gstart[-1]), 1)
        self.G = G
        seg = np.zeros((_B, G), dtype=np.intp)  # slot: segment (1 + threshold) and index of its run end
        idx = np.zeros((_B, G), dtype=np.intp)
        rw = np.full((_B, G), self.n_ck, dtype=np.intp)  # Wf row of each slot (n_ck: the inf row, padding)
        self.tt = np.zeros(N_IOU, dtype=np.intp)  # slot of a threshold's last run: all of its TPs
        for t in range(N_IOU):
            if not nr[t]:
                continue
            j = np.arange(nbt[t] * _B)
            jj = np.minimum(j, nr[t] - 1)
            cell = (j % _B, gstart[t] + j // _B)
            seg[cell] = t + 1
            idx[cell] = run_end[t][jj]
            rw[cell] = np.where(j < nr[t], np.searchsorted(ck_head, end_pos[t][jj]), self.n_ck)
            last = nr[t] - 1
            self.tt[t] = (last % _B) * G + gstart[t] + last // _B
        self.rw = rw.ravel()
        self.n_slot = _B * G
        out_seg = np.concatenate((seg.ravel(), np.ones(n_t0, np.intp), np.zeros(self.n_ck, np.intp)))
        out_idx = np.concatenate((idx.ravel(), t0_idx, ckpos))
        segs = [img[m] for m in members]
        m_head = self.n_slot + n_t0 + self.n_ck_head
        self.head = _Plan([img[: last_tp + 1], *segs], out_seg[:m_head], out_idx[:m_head], dummy)
        self._full_args = ([img, *segs], out_seg, out_idx, dummy)
        self._full: _Plan | None = None
        self.zero = self.n_slot + n_t0 + self.n_ck  # the 0 row
        self.n_out = self.zero + 1
        nz = np.flatnonzero(nr)
        self.t_nz = nz  # thresholds with a TP
        self.g_first = gstart[nz]  # first block of each of them
        # Block-level suffix of the envelope, per threshold: block g of t is row d * N_IOU + t (d = g - gstart[t]).
        t_of = np.repeat(np.arange(N_IOU), nbt)
        d_of = np.arange(int(gstart[-1])) - gstart[t_of]
        self.maxnb = max(int(nbt.max()), 1)
        self.bt_row = d_of * N_IOU + t_of
        self.bt_next = np.where(d_of + 1 >= nbt[t_of], self.maxnb * N_IOU, (d_of + 1) * N_IOU + t_of)

        # Grid level (1000 columns): rows of O holding W and T (threshold 0) before each cut; W at the last TP.
        z, ck0 = self.zero, self.n_slot + n_t0
        cki = np.where(tail, self.n_ck_head + np.searchsorted(ck_tail, q - 1), np.searchsorted(ck_head, q - 1))
        self.wc = np.where(q > 0, ck0 + cki, z)
        self.t0c = np.where(t0_cut > 0, self.n_slot + np.searchsorted(t0_idx, t0_cut - 1), z)
        self.w_last = ck0 + int(np.searchsorted(ck_head, last_tp)) if last_tp >= 0 else z
        # Probes: left candidates q-1-s (last drawn before the cut), right q+s (first drawn from it). Tables:
        # column c = candidate _PROBE - c, column 0 = none drawn (left: 0, any finite abscissa, the curve is flat
        # there; right: NaN).
        S = _PROBE
        steps = np.arange(S)
        lp = q[None, :] - 1 - steps[:, None]
        rp = q[None, :] + steps[:, None]
        lok, rok = lp >= 0, rp < n
        lc, rc = np.clip(lp, 0, n - 1), np.clip(rp, 0, n - 1)
        self.l_img = np.where(lok, img[lc], dummy)  # (S, 1000)
        self.r_img = np.where(rok, img[rc], dummy)
        self.l_tab = np.zeros((len(q), S + 1))
        self.l_tab[:, 1:] = np.where(lok, conf[lc], 0.0)[::-1].T
        self.r_tab = np.full((len(q), S + 1), np.nan, dtype=np.complex128)
        self.r_tab[:, 1:] = np.where(rok, self.conf_tp0[rc], np.nan)[::-1].T
        self.l_next, self.r_next = q - 1 - S, q + S  # where a miss on every candidate goes on
        self.img_pad = np.concatenate((img, [dummy]))  # out of range: the never-drawn image

    @property
    def full(self) -> _Plan:
        """The full plan, built on first use (threads racing here build equal plans)."""
        if self._full is None:
            self._full = _Plan(*self._full_args)
        return self._full


class _Engine:
    """One evidence, prepared for exact per-resample metrics under image multiplicities.

    A resample is the evidence with image i drawn K[r, i] times, i.e. the
    full-set prediction list (in the full-set confidence order) with each
    prediction repeated K[r, img] times. A block of resamples is processed at
    once and transposed: the multiplicities as KT (images x resamples), every
    per-resample quantity as rows x resamples, so that each numpy call works
    on whole contiguous slabs (rows of KT gathered in precomputed orders).
    Per class, without expanding anything:

    - Prefix sums. W (cumulative weight of all predictions) is needed only at
      checkpoints (the run ends below and the cuts of the P/R curves), T_t
      (cumulative weight of the TPs at threshold t) only at run ends and
      cuts. One sequence holds the predictions (up to the class's last TP,
      unless the operating point needs more: see below), then the TPs of
      each threshold; its prefix sums are exact integer sums in three
      levels: blocks of 16 (uint8 while multiplicities are <= 15; streamed,
      the running sums stay in cache), superblocks of 16 blocks, and a scan
      over the superblocks.
    - AP. Within a run of adjacent TPs (no other prediction between them)
      precision never decreases ((T + k)/(W + k) >= T/W), so only the last TP
      of each run can carry the envelope: the AP reads T, W and p = T/W there
      only. compute_ap's curve after the envelope is flat between recall
      levels except on the first one: at grid point x it is E(j) = max
      precision of the TPs at or after j, j the first TP with recall above
      x; on [0, 1/n) it is the line from L0 (1 if the first real prediction
      is a TP, else E of the first TP) to E of the first TP; 0 past the last
      TP. A grid point x_g lies below recall T/n iff g < ceil(100 T/n), so
      with c(T) = min(100, ceil(100 T/n)) the levels first reached at run j
      number c(T_j) - c(T_j-1) and sum_h E(j_h) = sum_j S_j (c(T_j) -
      c(T_j-1)), S the suffix maximum of p (a scan). Then AP = 0.01
      sum_h E(j_h) - 0.005 E_1 + (L0 - E_1) a_first (a_first: the trapezoid
      weight of the first level's line). A run whose TPs were not drawn keeps
      its predecessor's T: it starts no level, and its precision is that of
      the real point before it, which never raises an envelope it belongs
      to.
    - P and R curves, at the 1000 grid confidences x: np.interp reads the
      last real prediction with conf >= x (prefix sums at a fixed cut) and
      interpolates towards the first copy of the next real one; both
      neighbours are found by probing the multiplicities, and the arithmetic
      is np.interp's. F1 = 2PR/(P+R+eps) summed over classes in class order,
      then ``smooth`` and argmax per resample, as ultralytics.
    - The operating point is searched, not scanned: bounds on every F1 curve
      need only the prefix sums (``_bounds``); smoothed, they rule out every
      grid point whose upper bound stays below the largest lower bound, and
      the curves are computed exactly (probes included) only on the columns
      that the remaining candidates' smoothing windows read. Those exact
      values are the ones the full computation gives, so the argmax (first
      maximum) is too. Past a class's last TP its W serves only those grid
      columns: its predictions there are summed only when the window
      reaches them.

    Every per-resample number equals ``ap_from_evidence`` on the resampled
    image list to float rounding (tested against it, and the operating
    point bit for bit against the exhaustive search): nothing is
    approximated.
    """

    def __init__(self, ev: Mapping[str, Any]) -> None:
        self.n_img = n_img = _check_evidence(ev)
        conf = np.asarray(ev["conf"], dtype=np.float64)
        tp = np.asarray(ev["tp"], dtype=bool).reshape(-1, N_IOU)
        pred_cls = np.asarray(ev["pred_cls"]).astype(np.int64)
        pred_img = _image_ids(ev["pred_offsets"])
        target_cls = np.asarray(ev["target_cls"]).astype(np.int64)
        tgt_img = _image_ids(ev["target_offsets"])
        self.classes, nt = np.unique(target_cls, return_counts=True)
        self.support = nt.astype(np.int64)
        nc = len(self.classes)
        order = np.argsort(-conf)  # ap_per_class's sort, on the same array as the full-set evaluation
        # Predictions of each class with ground truth, in that order (a stable sort by class keeps it).
        ids = [a for a in (pred_cls, self.classes) if len(a)]
        lo_c = min((int(a.min()) for a in ids), default=0)
        hi_c = max((int(a.max()) for a in ids), default=0)
        lut = np.full(hi_c - lo_c + 1, nc, dtype=np.int16 if nc < np.iinfo(np.int16).max else np.int64)
        lut[self.classes - lo_c] = np.arange(nc)
        pci = lut[pred_cls - lo_c]  # class index, nc for a class without ground truth (int16: radix sort)
        known = pci < nc
        order = order[np.argsort(pci[order], kind="stable")]
        bounds = np.searchsorted(pci[order], np.arange(nc + 1))
        img_o, conf_o, tp_o = pred_img[order], conf[order], tp[order]
        self.cls: list[_Class | None] = []  # None: a class without predictions (AP 0, curves 0)
        for ci in range(nc):
            sl = slice(bounds[ci], bounds[ci + 1])
            self.cls.append(_Class(img_o[sl], conf_o[sl], tp_o[sl], n_img) if bounds[ci + 1] > bounds[ci] else None)
        # Per image: ground truth and predictions of each class, objects per (size bucket, found). A block's
        # n_l, predictions drawn and size recalls are exact integer products with its multiplicities (einsum:
        # a BLAS call's worker threads cost more than the product here).
        gt_img = _image_ids(ev["gt_offsets"])
        size_key = np.asarray(ev["gt_bucket"], dtype=np.int64) * 2 + np.asarray(ev["gt_found"], dtype=bool)
        self.counts = np.concatenate((
            np.bincount(np.searchsorted(self.classes, target_cls) * n_img + tgt_img, minlength=nc * n_img),
            np.bincount(pci[known].astype(np.int64) * n_img + pred_img[known], minlength=nc * n_img),
            np.bincount(size_key * n_img + gt_img, minlength=6 * n_img),
        )).reshape(2 * nc + 6, n_img)
        self.counts32 = self.counts.astype(np.int32)
        self.counts_rowsum = int(self.counts.sum(1).max()) if self.counts.size else 0
        self.max_n = max((cd.n for cd in self.cls if cd is not None), default=0)
        # Scratch bytes per resample of a block (the default block holds _BLOCK_BYTES): the largest class's
        # run-level arrays and prefix sums, every class's grid W, T and exact P, R curves (at most the whole
        # grid), the bounds and curve scratch, the multiplicities.
        big = max((20 * _B * cd.G + 4 * cd.n_out + 8 * cd.n_ck + cd.n + 2 * cd.n_out
                   for cd in self.cls if cd is not None), default=0)
        self.bytes_per_resample = int(big + 24_000 * nc + 120_000 + 2 * n_img) + 1

    # ------------------------------------------------------------------ one block of resamples

    def block(self, K: np.ndarray, work: _Work | None = None) -> dict[str, np.ndarray]:
        """Metrics of the resamples of K (rows: resamples, columns: image multiplicities)."""
        work = work or _Work()
        K = np.asarray(K)
        R = K.shape[0]
        nc = len(self.classes)
        kmax = int(K.max()) if K.size else 0
        KT = work.get("KT", (self.n_img + 1, R), _uint(_B * kmax))  # + a never-drawn image
        KT[:-1] = K.T
        KT[-1] = 0
        drawn = np.greater(KT, 0, out=work.get("drawn", KT.shape, bool))
        # Per resample: ground truth and predictions drawn per class, objects per (size bucket, found).
        if kmax * self.counts_rowsum < np.iinfo(np.int32).max:  # int32 sums cannot overflow: the faster einsum
            drawn_counts = np.einsum("ci,ri->cr", self.counts32, K.astype(np.int32, copy=False))
        else:
            drawn_counts = np.einsum("ci,ri->cr", self.counts, K.astype(np.int64))
        drawn_counts = drawn_counts.astype(np.float64)
        n_l, w_tot, sg = drawn_counts[:nc], drawn_counts[nc : 2 * nc], drawn_counts[2 * nc :].T.reshape(R, 3, 2)
        present = n_l > 0
        npres = present.sum(0)
        den = np.maximum(npres, 1)
        ap = np.zeros((R, nc, N_IOU))
        lo = np.zeros((1000, R))  # bounds on the summed F1 curves
        hi = np.zeros((1000, R))
        state: list[tuple[np.ndarray, np.ndarray, np.ndarray] | None] = []
        with np.errstate(invalid="ignore", divide="ignore"):
            for ci, cd in enumerate(self.cls):
                if cd is None:  # no prediction of the class: AP 0, curves 0
                    state.append(None)
                    continue
                n = np.maximum(n_l[ci], 1.0)
                has_pred = w_tot[ci] > 0
                O, Wf = self._prefix(cd, cd.head, KT, kmax, work)
                first_tp = self._first_tp(cd, drawn, has_pred)
                ap[:, ci, :] = self._ap(cd, O, Wf, n, first_tp, kmax * cd.max_m < _F32_INT, work).T
                grid = self._bounds(cd, O, n, w_tot[ci], has_pred & present[ci], lo, hi, ci, work)
                state.append((n, has_pred, grid))
            # The operating point: the smoothed mean F1's argmax can only lie where its upper bound reaches the
            # largest lower bound; the F1 curves are computed exactly on the columns those points smooth over.
            cand, a, b = self._candidates(lo, hi, den, npres)
            f1_sum = np.zeros((b + 1 - a, R))
            pr: list[tuple[np.ndarray, np.ndarray] | None] = []
            for ci, cd in enumerate(self.cls):
                st = state[ci]
                if st is None or a > b:
                    pr.append(None)
                    continue
                n, has_pred, grid = st
                if a < cd.n_tail:  # the window reaches the tail columns: W there needs every prediction
                    O = self._prefix(cd, cd.full, KT, kmax, work)[0]
                    O.take(cd.wc[a : cd.n_tail], axis=0, out=grid[0][a : cd.n_tail], mode="clip")
                P, Rc, f1 = self._curves(cd, grid, drawn, n, has_pred, a, b, ci, work)
                f1 *= present[ci]
                f1_sum += f1
                pr.append((P, Rc))
        idx = np.zeros(R, dtype=np.intp)
        if a <= b:
            mean_f1 = (f1_sum / den).T  # exact on the columns a..b, which every candidate's smoothing reads
            first = cand.argmax(1)
            last = 999 - cand[:, ::-1].argmax(1)
            for r in np.flatnonzero(npres).tolist():
                c0, c1 = int(first[r]), int(last[r])
                sm = _smooth_at(mean_f1[r], c0, c1, _SMOOTH_F, offset=a)
                sm[~cand[r, c0 : c1 + 1]] = -np.inf  # the first maximum over the candidates is smooth's argmax
                idx[r] = c0 + int(sm.argmax())
        p_i = np.zeros((R, nc))
        r_i = np.zeros((R, nc))
        cols = np.arange(R)
        at = np.clip(idx - a, 0, max(b - a, 0))  # (resamples without any class present: not read)
        for ci, curves in enumerate(pr):
            if curves is not None:
                p_i[:, ci] = curves[0][at, cols]
                r_i[:, ci] = curves[1][at, cols]
        absent = ~present.T
        ap[absent] = np.nan
        p_i[absent] = 0.0
        r_i[absent] = 0.0
        mp = np.where(npres > 0, p_i.sum(1) / den, 0.0)
        mr = np.where(npres > 0, r_i.sum(1) / den, 0.0)
        map50 = np.where(npres > 0, np.nansum(ap[:, :, 0], 1) / den, 0.0)
        map5095 = np.where(npres > 0, np.nansum(ap.sum(2), 1) / (den * N_IOU), 0.0)
        with np.errstate(invalid="ignore", divide="ignore"):
            f1 = np.where(mp + mr > 0, 2 * mp * mr / (mp + mr), 0.0)
            size = sg[:, :, 1] / sg.sum(2)  # found / total; NaN: no object of the bucket drawn
        return {
            "mAP50": map50, "mAP50_95": map5095, "precision": mp, "recall": mr, "f1": f1,
            "small_object_recall": size[:, 0], "medium_object_recall": size[:, 1],
            "large_object_recall": size[:, 2], "ap50": ap[:, :, 0],
        }

    @staticmethod
    def _prefix(cd: _Class, plan: _Plan, KT: np.ndarray, kmax: int, work: _Work) -> tuple[np.ndarray, np.ndarray]:
        """Exact integer prefix sums, as the plan reads them. O (n_out, R): see ``_Class``; Wf: max(W, 1) at
        the checkpoints up to the last TP, then an inf row (float64)."""
        R = KT.shape[1]
        nb2 = plan.nb2
        m = plan.m
        # Level 1, streamed: the running sums of the blocks of 16 (small: they stay in cache), read after
        # step k at the outputs of step k.
        run = work.get("run", (_B * nb2, R), KT.dtype)
        tmp = work.get("runtmp", (_B * nb2, R), KT.dtype)
        y = work.get("y", (m, R), KT.dtype)
        kb = plan.k_bounds
        KT.take(plan.gather[0], axis=0, out=run, mode="clip")
        run.take(plan.o_blk[kb[0] : kb[1]], axis=0, out=y[kb[0] : kb[1]], mode="clip")
        for k in range(1, _B):
            KT.take(plan.gather[k], axis=0, out=tmp, mode="clip")
            run += tmp
            run.take(plan.o_blk[kb[k] : kb[k + 1]], axis=0, out=y[kb[k] : kb[k + 1]], mode="clip")
        # Level 2: each block's exclusive prefix in its superblock; level 3: the superblocks' exclusive
        # prefix from the start of their segment.
        dt = np.int32 if kmax * _SUPER * (nb2 + 1) < np.iinfo(np.int32).max else np.int64
        X2 = work.get("X2", (_B, nb2, R), dt)
        X2[0] = 0
        X2[1:] = run.reshape(_B, nb2, R)[:-1]
        for k in range(2, _B):
            np.add(X2[k], X2[k - 1], out=X2[k])
        last = run[(_B - 1) * nb2 :]  # the superblocks' last blocks
        E2 = X2[_B - 1] + last
        _scan_rows(E2, np.add)  # inclusive scan of the superblock totals
        E2 -= X2[_B - 1]
        E2 -= last
        E2 -= E2.take(plan.base2, axis=0)
        X2 += E2[None]
        O = work.get("O", (cd.n_out, R), dt)
        X2.reshape(-1, R).take(plan.o_x2, axis=0, out=O[:m], mode="clip")
        O[:m] += y.take(plan.o_unsort, axis=0, out=work.get("yu", (m, R), KT.dtype), mode="clip")
        O[cd.zero] = 0
        Wf = work.get("Wf", (cd.n_ck + 1, R), np.float64)
        ck = cd.n_slot + cd.n_t0
        np.maximum(O[ck : ck + cd.n_ck_head], 1, out=Wf[: cd.n_ck_head])
        Wf[cd.n_ck] = np.inf
        return O, Wf

    def _ap(self, cd: _Class, O: np.ndarray, Wf: np.ndarray, n: np.ndarray, first_tp: np.ndarray, exact32: bool,
            work: _Work) -> np.ndarray:
        """AP of one class at the ten thresholds (10, R); 0 for a threshold without a drawn TP."""
        R = O.shape[1]
        out = np.zeros((N_IOU, R))
        if not len(cd.t_nz):
            return out
        G = cd.G
        shape = (_B, G, R)
        Ti = O[: _B * G].reshape(shape)  # T at the run slots
        tt = Ti.reshape(-1, R).take(cd.tt[cd.t_nz], axis=0)  # every TP of the threshold
        S = Wf.take(cd.rw, axis=0, out=work.get("S", (_B * G, R), np.float64), mode="clip").reshape(shape)
        np.divide(Ti, S, out=S)  # precision at each run's last TP (padding: T / inf = 0)
        # Suffix maximum per threshold: within blocks, then over each threshold's blocks.
        for k in range(_B - 2, -1, -1):
            np.maximum(S[k], S[k + 1], out=S[k])
        bt = work.get("bt", (cd.maxnb * N_IOU + 1, R), np.float64)
        bt.fill(0.0)
        bt[cd.bt_row] = S[0]
        _scan_rows(bt[:-1].reshape(cd.maxnb, N_IOU * R), np.maximum, reverse=True)
        np.maximum(S, bt.take(cd.bt_next, axis=0, mode="clip")[None], out=S)
        # Levels first reached at each run: c(T_j) - c(T_j-1), c(T) = min(100, ceil(100 T / n)) (see _SHRINK,
        # _SHRINK32); T <= n unless an image holds more TPs of the class than objects (not ultralytics').
        if n.max() < _N_F32 and exact32:
            C = work.get("C32", shape, np.float32)
            C[...] = Ti
            C *= (100.0 / n * (1.0 - _SHRINK32)).astype(np.float32)
        else:
            C = work.get("C64", shape, np.float64)
            if n.max() <= _N_EXACT:
                np.multiply(Ti, 100.0 / n * (1.0 - _SHRINK), out=C)
            else:
                np.multiply(Ti, 100.0, out=C)
                np.divide(C, n, out=C)
        np.ceil(C, out=C)
        if np.any(tt > n):
            np.minimum(C, 100.0, out=C)
        dc = work.get("dc", shape, C.dtype)
        np.subtract(C[1:], C[:-1], out=dc[1:])
        np.subtract(C[0, 1:], C[_B - 1, :-1], out=dc[0, 1:])
        dc[0, cd.g_first] = C[0, cd.g_first]  # a threshold's first run starts from 0 levels
        e1 = S[0, cd.g_first]  # E at the first TP: the maximum precision
        S *= dc
        sum_e = np.add.reduceat(S.sum(0), cd.g_first, axis=0)
        g1 = np.ceil(100.0 / n).astype(np.intp)  # grid points on the first recall level [0, 1/n)
        a_first = _AP_C[g1] - _AP_CX[g1] * n
        l0 = np.where(first_tp[cd.t_nz], 1.0, e1)
        val = 0.01 * sum_e - 0.005 * e1 + (l0 - e1) * a_first
        out[cd.t_nz] = np.where(tt > 0, val, 0.0)
        return out

    @staticmethod
    def _bounds(cd: _Class, O: np.ndarray, n: np.ndarray, w_tot: np.ndarray, live: np.ndarray, lo: np.ndarray,
                hi: np.ndarray, ci: int, work: _Work) -> tuple[np.ndarray, np.ndarray]:
        """Add to lo / hi (1000, R) bounds of the class's F1 curve (0 where not live: absent or nothing
        drawn), without probing. Between a cut's last real point and the next, P lies in [T/(W+1),
        (T+1)/(W+1)] and R in [T/ne, (T+1)/ne] (T, W before the cut); F1 = 2PR/(P+R) grows with both, and
        at those corners it is 2T/(W+1+ne) and 2(T+1)/(W+1+ne) (eps dropped: far below the candidates'
        slack; no real point before the cut: F1 = 0, inside the bounds). Past the class's last TP (the
        tail), T is every TP, R = T/ne exactly and P lies in [T/(W_all+1), T/W_last]. Returns W and T
        (threshold 0) before each cut (the tail's W not yet read)."""
        R = O.shape[1]
        nt = cd.n_tail
        W = work.get(f"Wc{ci}", (1000, R), O.dtype)
        T0 = work.get(f"T0c{ci}", (1000, R), O.dtype)
        O.take(cd.wc[nt:], axis=0, out=W[nt:], mode="clip")
        O.take(cd.t0c, axis=0, out=T0, mode="clip")
        ne = n + EPS
        g = 2.0 * live
        d = work.get("bd", (1000 - nt, R), np.float64)
        f = work.get("bf", (1000 - nt, R), np.float64)
        np.add(W[nt:], 1.0 + ne, out=d)
        np.multiply(T0[nt:], g, out=f)
        f /= d
        lo[nt:] += f
        np.divide(g, d, out=d)
        f += d
        hi[nt:] += f
        if nt:
            t = T0[0].astype(np.float64)  # the tail's T: every TP at threshold 0
            r_t = t / ne
            for p_t, acc in ((t / (w_tot + 1.0), lo), (t / np.maximum(O[cd.w_last], 1.0), hi)):
                acc[:nt] += np.where(live, 2 * p_t * r_t / (p_t + r_t + EPS), 0.0)
        return W, T0

    @staticmethod
    def _candidates(lo: np.ndarray, hi: np.ndarray, den: np.ndarray,
                    npres: np.ndarray) -> tuple[np.ndarray, int, int]:
        """Per resample, the grid points whose smoothed mean F1 can be the largest (R, 1000); and the columns
        [a, b] every such point's smoothing window reads (a > b: none)."""
        width = round(1000 * _SMOOTH_F * 2) // 2 + 1  # smooth's box filter, its edges repeated half times
        half = width // 2

        def box(v: np.ndarray) -> np.ndarray:
            v = (v / den).T
            padded = np.concatenate((np.repeat(v[:, :1], half, 1), v, np.repeat(v[:, -1:], half, 1)), 1)
            c = np.zeros((padded.shape[0], padded.shape[1] + 1))
            np.cumsum(padded, axis=1, out=c[:, 1:])
            return (c[:, width:] - c[:, :-width]) / width

        slo, shi = box(lo), box(hi)
        # Rounding in the bounds and in these sums stays far below the slack (values <= 1, ~1100 terms).
        cand = shi >= slo.max(1, keepdims=True) - 1e-8
        cand[npres == 0] = False
        rows = np.flatnonzero(cand.any(1))
        if not len(rows):
            return cand, 0, -1
        first = int(cand[rows].argmax(1).min())
        last = 999 - int(cand[rows, ::-1].argmax(1).min())
        return cand, max(first - half, 0), min(last + half, 999)

    @staticmethod
    def _probe(cd: _Class, drawn: np.ndarray, imgs: np.ndarray, tab: np.ndarray, nxt: np.ndarray, step: int,
               src: np.ndarray, out: np.ndarray, work: _Work) -> np.ndarray:
        """Per column and resample, the table value of the first drawn candidate (column 0: none drawn)."""
        R = drawn.shape[1]
        S = _PROBE
        nq = len(nxt)
        hit = drawn.take(imgs, axis=0, out=work.get("hit", (S * nq, R), bool), mode="clip")
        hit = hit.reshape(S, nq, R).view(np.uint8)
        code = work.get("code", (nq, R), np.uint8)  # S - (index of the first hit), 0: no hit
        code[...] = hit[S - 1]
        for s in range(S - 2, -1, -1):
            np.maximum(code, hit[s] * np.uint8(S - s), out=code)
        ix = work.get("ix", (nq, R), np.intp)
        np.add(code, (np.arange(nq) * (S + 1))[:, None], out=ix)
        tab.take(ix, out=out, mode="clip")
        # The few columns without a hit: the following candidates, a window at a time.
        todo = np.flatnonzero(code.ravel() == 0)
        if not todo.size:
            return out
        q, r = np.divmod(todo, R)
        p = nxt[q]
        flat = out.ravel()
        dflat = drawn.ravel()
        win = np.arange(0, 16 * step, step)
        while todo.size:
            ok = (p >= 0) & (p < cd.n)
            todo, r, p = todo[ok], r[ok], p[ok]
            pos = p[:, None] + win
            pos = np.where((pos >= 0) & (pos < cd.n), pos, cd.n)
            h = dflat[cd.img_pad[pos] * R + r[:, None]]
            first = h.argmax(1)
            f = h[np.arange(len(first)), first]
            flat[todo[f]] = src[pos[f, first[f]]]
            todo, r, p = todo[~f], r[~f], p[~f] + 16 * step
        return out

    def _curves(
        self, cd: _Class, grid: tuple[np.ndarray, np.ndarray], drawn: np.ndarray, n: np.ndarray,
        has_pred: np.ndarray, a: int, b: int, ci: int, work: _Work,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """P, R and F1 at the grid confidences a..b (columns x resamples): np.interp(-x, -conf, precision |
        recall, left=1 | 0) = value + slope * (cl - x), ultralytics' arithmetic. P and R live in this class's
        own buffers (read again at the operating point)."""
        R = drawn.shape[1]
        sl = slice(a, b + 1)
        shape = (b + 1 - a, R)
        cl = self._probe(cd, drawn, cd.l_img[:, sl].ravel(), cd.l_tab[sl].ravel(), cd.l_next[sl], -1, cd.conf,
                         work.get("cl", shape, np.float64), work)
        right = self._probe(cd, drawn, cd.r_img[:, sl].ravel(), cd.r_tab[sl].ravel(), cd.r_next[sl], 1,
                            cd.conf_tp0, work.get("right", shape, np.complex128), work)
        cr, tq = right.real, right.imag
        Wc = work.get("Wc", shape, np.float64)
        Wc[...] = grid[0][sl]
        T0c = work.get("T0c", shape, np.float64)
        T0c[...] = grid[1][sl]
        no_left = np.equal(Wc, 0, out=work.get("no_left", shape, bool))  # then T0c = 0 too
        flat = np.isnan(cr, out=work.get("flat", shape, bool))  # past the last point: its value
        flat |= no_left  # before the first: left=1 / 0
        ne = n + EPS
        P = work.get(f"P{ci}", shape, np.float64)
        Rc = work.get(f"R{ci}", shape, np.float64)
        sp = work.get("sp", shape, np.float64)
        sr = work.get("sr", shape, np.float64)
        dx = work.get("dx", shape, np.float64)
        t1 = work.get("t1", shape, np.float64)
        np.divide(T0c, Wc, out=P)  # pl
        P[no_left] = 1.0
        np.divide(T0c, ne, out=Rc)  # rl (0 where no_left)
        np.subtract(cl, cr, out=dx)
        np.add(T0c, tq, out=t1)
        Wc += 1
        np.divide(t1, Wc, out=sp)
        sp -= P
        sp /= dx
        np.divide(t1, ne, out=sr)
        sr -= Rc
        sr /= dx
        sp[flat] = 0.0
        sr[flat] = 0.0
        none = ~has_pred  # no prediction of the class drawn: ultralytics leaves the curves at 0
        P[:, none] = 0.0
        Rc[:, none] = 0.0
        # P = slope * (cl - x) + value (np.interp's arithmetic), likewise R; F1 = 2PR / (P + R + eps).
        np.subtract(cl, _PX[sl, None], out=dx)
        sp *= dx
        P += sp
        sr *= dx
        Rc += sr
        f1 = np.multiply(P, 2, out=dx)
        f1 *= Rc
        np.add(P, Rc, out=sp)
        sp += EPS
        f1 /= sp
        return P, Rc, f1

    @staticmethod
    def _first_tp(cd: _Class, drawn: np.ndarray, has_pred: np.ndarray) -> np.ndarray:
        """(10, R): whether the first drawn prediction of the class is a TP at each threshold."""
        R = drawn.shape[1]
        pos = np.zeros(R, dtype=np.intp)
        todo = np.flatnonzero(has_pred)
        p = 0
        while todo.size:
            f = drawn[cd.img[p], todo]
            pos[todo[f]] = p
            todo = todo[~f]
            p += 1
        out = cd.tp[pos].T.copy()
        out[:, ~has_pred] = False
        return out


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
        per_resample = max((e.bytes_per_resample for e in engines), default=1)
        block = int(np.clip(_BLOCK_BYTES // per_resample, 16, 256))
    starts = list(range(0, R, block))
    if threads is None:
        threads = min(2, os.cpu_count() or 1)
    local = threading.local()  # scratch arrays per worker thread, for this call

    def run(a: int) -> list[dict[str, np.ndarray]]:
        work = getattr(local, "work", None)
        if work is None:
            work = local.work = _Work()
        Kb = np.ascontiguousarray(K[a : a + block], dtype=np.int32)
        return [e.block(Kb, work) for e in engines]

    if threads > 1 and len(starts) > 1:
        with ThreadPoolExecutor(threads) as ex:
            parts = list(ex.map(run, starts))
    else:
        parts = [run(a) for a in starts]
    return [{k: np.concatenate([p[i][k] for p in parts]) for k in parts[0][i]} for i in range(len(engines))]


def _score_rows(m: Mapping[str, np.ndarray], weights: Mapping[str, float]) -> np.ndarray:
    """composite_score row by row over the metrics in ``m`` (speed only when given; NaN metric = null term,
    dropped and renormalised)."""
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


def _speed_rows(timings: tuple[np.ndarray, np.ndarray], draws: np.ndarray, alpha: float) -> tuple[float, np.ndarray]:
    """(full-set inference_ms, inference_ms of every resample of batches)."""
    ms, images = timings
    return float(ms.sum() / images.sum()), resampled_inference_ms(ms, images, draws, alpha)


def _speed_and_score(
    ev_a: Mapping[str, Any], ev_b: Mapping[str, Any], part_a: tuple[dict[str, np.ndarray], dict[str, np.ndarray]],
    part_b: tuple[dict[str, np.ndarray], dict[str, np.ndarray]], weights: Mapping[str, float], n_resamples: int,
    seed: int, alpha: float,
) -> dict[str, dict[str, Any]]:
    """``inference_ms`` and the full composite ``score`` with intervals, when both evidences hold timings.

    Speed is resampled by batches (``evaluation.speed``: the warm-up batch left out), in the same
    bootstrap as the images: resample r pairs image draw r (accuracy) with batch draw r (speed), and its
    score combines both. Batches are paired (the same draw for a and b) when both evaluations ran the same
    batch sizes, else each side draws its own. {} without timings on both sides (fewer than two batches
    after the warm-up, or evidence written before they were kept): the gain is then judged on accuracy.
    """
    t_a, t_b = evidence_timings(ev_a), evidence_timings(ev_b)
    if t_a is None or t_b is None:
        return {}
    draws_a = draw_batches(len(t_a[0]), n_resamples, seed)
    paired = np.array_equal(t_a[1], t_b[1])
    draws_b = draws_a if paired else draw_batches(len(t_b[0]), n_resamples, seed + 1)
    out: dict[str, dict[str, Any]] = {}
    full_ms_a, rows_ms_a = _speed_rows(t_a, draws_a, alpha)
    full_ms_b, rows_ms_b = _speed_rows(t_b, draws_b, alpha)
    out["inference_ms"] = _interval(full_ms_a, full_ms_b, rows_ms_a, rows_ms_b, alpha)
    scores = []
    for (full, res), full_ms, rows_ms in ((part_a, full_ms_a, rows_ms_a), (part_b, full_ms_b, rows_ms_b)):
        full_score = _score_rows({**full, "speed": _speed_score_rows(np.array([full_ms]))}, weights)
        scores.append((_value(full_score[0]), _score_rows({**res, "speed": _speed_score_rows(rows_ms)}, weights)))
    out["score"] = _interval(scores[0][0], scores[1][0], scores[0][1], scores[1][1], alpha)
    return out


def _speed_score_rows(inference_ms: np.ndarray) -> np.ndarray:
    """scoring.speed_score, element-wise (the same arithmetic)."""
    return np.minimum(1.0, np.maximum(0.0, (500.0 - inference_ms) / 450.0))


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
    if threads is None:
        threads = min(2, os.cpu_count() or 1)
    ones = np.ones((1, n_a), dtype=np.int32)

    def prepare(ev: Mapping[str, Any]) -> tuple[_Engine, dict[str, np.ndarray]]:
        # Full-set values: the engine with every image once (= ap_from_evidence to float rounding).
        eng = _Engine(ev)
        return eng, eng.block(ones)

    if threads > 1:  # the two evaluations' preparation side by side
        with ThreadPoolExecutor(2) as ex:
            (eng_a, full_a), (eng_b, full_b) = ex.map(prepare, (ev_a, ev_b))
    else:
        (eng_a, full_a), (eng_b, full_b) = prepare(ev_a), prepare(ev_b)
    K = _draw_multiplicities(n_a, n_resamples, seed)
    res_a, res_b = bootstrap_metrics([eng_a, eng_b], K, threads=threads)
    for res in (res_a, res_b, full_a, full_b):
        res["accuracy_score"] = _score_rows(res, w)
    metrics = {m: _interval(_value(full_a[m][0]), _value(full_b[m][0]), res_a[m], res_b[m], alpha)
               for m in BOOTSTRAP_METRICS}
    metrics.update(_speed_and_score(ev_a, ev_b, (full_a, res_a), (full_b, res_b), w, n_resamples, seed, alpha))
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


def gain_basis(comparison: Mapping[str, Any]) -> str:
    """The metric whose interval judges the score gain: ``score`` (accuracy and speed, resampled together)
    when the comparison has it, else ``accuracy_score`` (evidence without timings)."""
    s = comparison.get("metrics", {}).get("score")
    return "score" if s and s.get("ci_low") is not None else "accuracy_score"


def evaluate_gates(comparison: Mapping[str, Any], gates: Mapping[str, Any] | None) -> list[dict[str, Any]]:
    """The gates a comparison (``paired_bootstrap``: b is the candidate) fails; [] = passes.

    gates (missing keys take GATE_DEFAULTS):

    - ``require_significant`` (bool) with ``min_delta`` (float): the score
      gain must be established: the lower bound of its interval (``score``,
      accuracy and speed together, or ``accuracy_score`` when the evidence
      holds no timings: ``gain_basis``) must be above min_delta. Without
      require_significant, min_delta is unused here.
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
        subject = gain_basis(comparison)
        s = metrics.get(subject) or {}
        min_delta = float(g["min_delta"] or 0.0)
        lo = s.get("ci_low")
        if lo is None:
            failures.append(_failure(
                "require_significant", subject, s, min_delta,
                "no score to compare (a model has no scorable metric): the gain cannot be established"))
        elif not lo > min_delta:
            failures.append(_failure(
                "require_significant", subject, s, min_delta,
                f"{subject.replace('_', ' ')} gain {s['diff']:+.4f} is not established above {min_delta:+.4f}: its "
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
