"""Paired statistics of two classification evaluations over the same images (pure numpy).

``statistics`` is the worker's entry point (``evaluation.comparison.compare_evidence``
dispatches here on a classification evidence). Its result has the shape of
``evaluation.stats.bootstrap.paired_bootstrap``'s, so ``evaluation.stats.gates``
judges it unchanged:

``{"task": "classification", "per_class_metric": "recall", "n_images",
"n_resamples", "seed", "alpha", "weights", "metrics": {metric: {"a", "b", "diff", "ci_low", "ci_high",
"p_value", "significant", "n_valid"}}, "per_class": {class name:
{"class_index", "support", "a", "b", "diff", "ci_low", "ci_high",
"p_value", "significant", "n_valid"}}, "flips": {...}, "mcnemar": {"b",
"c", "n", "p_value", "significant"}}``

- ``metrics``: ``top1``, ``top5``, ``macro_f1``, ``accuracy_score`` (the
  composite score without its speed term), and, when both evidences hold
  timings, ``inference_ms`` and ``score`` (speed resampled by batches in the
  same resamples, as for detection: ``bootstrap._speed_and_score``).
- ``per_class``: per class with support, its recall (per-class accuracy, the
  result's ``per_class``); a resample in which the class has no image leaves
  its recall undefined (counted out of ``n_valid``).
- ``flips``: per true class, the images right (top-1) in one model only:
  ``{"class_index", "total", "found_a", "found_b", "a_only", "b_only",
  "examples_a_only", "examples_b_only"}`` (detection's flip-table keys;
  "found" = classified right; examples: the first ``max_examples`` images).
- ``mcnemar``: McNemar's exact test on top-1: b = images right only in a, c
  = right only in b, two-sided p = min(1, 2 P[X <= min(b, c)]) with X ~
  Bin(b + c, 1/2) (the binomial coefficients by their recurrence, exact
  integers, like ``math.comb`` but in one pass); p = 1 when b + c = 0;
  ``significant`` = p < alpha.

The bootstrap draws images with replacement (``bootstrap.draw_multiplicities``,
the same draws for both models). With K[r, i] the copies of image i in
resample r, every per-resample number is the exact value on the resampled
image list: weighted counts (top-1 and top-5 hits by K @ hits; per-class TP,
support and predicted by one weighted ``bincount`` per block of resamples),
in float64 (exact integers), then ``classify_metrics``' formulas.
Differences are ``a - b``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from evaluation.classify_metrics import correct_at, f1_rows, macro_rows
from evaluation.evidence import CLASSIFICATION, evidence_task
from evaluation.stats.bootstrap import (
    _interval,
    _score_rows,
    _speed_and_score,
    _value,
    draw_multiplicities,
)
from vocab.scoring import resolve_weights

METRICS: tuple[str, ...] = ("top1", "top5", "macro_f1", "accuracy_score")
BLOCK = 128  # resamples counted at once


class Counts:
    """One evidence, prepared for weighted counts: per image its true and top-1 class and its top-1 and
    top-5 hits."""

    def __init__(self, ev: Mapping[str, Any], nc: int) -> None:
        self.true = np.asarray(ev["true"], dtype=np.int64)
        top = np.asarray(ev["top5"], dtype=np.int64).reshape(len(self.true), -1)
        self.pred = top[:, 0]
        self.hit1, self.hit5 = correct_at(self.true, top)
        self.nc = nc

    def _per_class(self, K: np.ndarray, classes: np.ndarray, weights: np.ndarray) -> np.ndarray:
        """(R, nc): per resample, the copies drawn of the images of each class, weighted."""
        R, nc = len(K), self.nc
        index = (np.arange(R, dtype=np.int64)[:, None] * nc + classes[None, :]).ravel()
        return np.bincount(index, weights=weights.ravel(), minlength=R * nc).reshape(R, nc)

    def metrics(self, K: np.ndarray) -> dict[str, np.ndarray]:
        """Per resample (rows of K): top1, top5, macro_f1, and per class recall (R x nc, NaN without
        support). Exact integer counts (float64 sums of integers), in blocks of BLOCK resamples."""
        parts = [self._block(np.asarray(K[a:a + BLOCK], dtype=np.float64)) for a in range(0, len(K), BLOCK)]
        return {k: np.concatenate([part[k] for part in parts]) for k in parts[0]}

    def _block(self, K: np.ndarray) -> dict[str, np.ndarray]:
        n = K.sum(axis=1)
        tp = self._per_class(K, self.true, K * self.hit1)
        support = self._per_class(K, self.true, K)
        predicted = self._per_class(K, self.pred, K)
        with np.errstate(invalid="ignore", divide="ignore"):
            recall = np.where(support > 0, tp / support, np.nan)
        return {"top1": K @ self.hit1 / n, "top5": K @ self.hit5 / n,
                "macro_f1": macro_rows(f1_rows(tp, support, predicted)), "recall": recall}


def check_pair(ev_a: Mapping[str, Any], ev_b: Mapping[str, Any]) -> int:
    """The number of images; ValueError unless both are classification evidences over the same images with
    the same true classes."""
    for ev in (ev_a, ev_b):
        if evidence_task(ev) != CLASSIFICATION:
            raise ValueError(f"a {evidence_task(ev)} evidence is not a classification evidence")
    if not np.array_equal(np.asarray(ev_a["image_names"]), np.asarray(ev_b["image_names"])):
        raise ValueError("paired statistics need both evidences over the same images in the same order")
    if not np.array_equal(np.asarray(ev_a["true"]), np.asarray(ev_b["true"])):
        raise ValueError("the evidences hold different true classes for the same images")
    for ev in (ev_a, ev_b):
        if np.asarray(ev["true"]).max(initial=0) >= int(ev["n_classes"]) or \
                np.asarray(ev["top5"]).max(initial=0) >= int(ev["n_classes"]):
            raise ValueError("an evidence names a class index beyond its n_classes")
    return len(ev_a["image_names"])


def mcnemar(hit_a: np.ndarray, hit_b: np.ndarray, alpha: float = 0.05) -> dict[str, Any]:
    """McNemar's exact test on paired hits (see the module contract)."""
    b = int(np.sum(hit_a & ~hit_b))
    c = int(np.sum(~hit_a & hit_b))
    n = b + c
    if n == 0:
        p = 1.0
    else:
        term = tail = 1  # C(n, 0)
        for k in range(min(b, c)):  # C(n, k + 1) = C(n, k) (n - k) / (k + 1), exact in integers
            term = term * (n - k) // (k + 1)
            tail += term
        p = min(1.0, 2 * tail / (1 << n))  # int / int: correctly rounded
    return {"b": b, "c": c, "n": n, "p_value": p, "significant": bool(p < alpha)}


def flip_table(ev_a: Mapping[str, Any], hit_a: np.ndarray, hit_b: np.ndarray, names: Sequence[str],
               max_examples: int = 3) -> dict[str, dict[str, Any]]:
    """Per true class, the images classified right by one model only (see the module contract)."""
    image_names = [str(s) for s in np.asarray(ev_a["image_names"])]
    true = np.asarray(ev_a["true"], dtype=np.int64)
    out: dict[str, dict[str, Any]] = {}
    for c in np.unique(true).tolist():
        m = true == c
        a_only, b_only = m & hit_a & ~hit_b, m & hit_b & ~hit_a
        out[_name(c, names)] = {
            "class_index": c, "total": int(m.sum()), "found_a": int((m & hit_a).sum()),
            "found_b": int((m & hit_b).sum()), "a_only": int(a_only.sum()), "b_only": int(b_only.sum()),
            "examples_a_only": [image_names[i] for i in np.flatnonzero(a_only)[:max_examples]],
            "examples_b_only": [image_names[i] for i in np.flatnonzero(b_only)[:max_examples]],
        }
    return out


def _name(c: int, names: Sequence[str] | None) -> str:
    return str(names[c]) if names is not None and 0 <= c < len(names) else str(c)


def paired_bootstrap(
    ev_a: Mapping[str, Any], ev_b: Mapping[str, Any], n_resamples: int = 1000, seed: int = 0, alpha: float = 0.05,
    weights: Mapping[str, float] | None = None, *, names: Sequence[str] | None = None,
) -> dict[str, Any]:
    """Paired image-level bootstrap of a against b (see the module contract); ``weights``: the applied
    classification weights (None: the task's defaults)."""
    n = check_pair(ev_a, ev_b)
    if n_resamples < 1:
        raise ValueError("n_resamples must be >= 1")
    if not 0 < alpha < 1:
        raise ValueError("alpha must lie in (0, 1)")
    w = dict(weights) if weights is not None else resolve_weights(None, CLASSIFICATION)
    nc = max(int(ev_a["n_classes"]), int(ev_b["n_classes"]))
    counts_a, counts_b = Counts(ev_a, nc), Counts(ev_b, nc)
    K = draw_multiplicities(n, n_resamples, seed)
    ones = np.ones((1, n), dtype=np.int32)
    full_a, full_b = counts_a.metrics(ones), counts_b.metrics(ones)
    res_a, res_b = counts_a.metrics(K), counts_b.metrics(K)
    for m in (full_a, full_b, res_a, res_b):
        m["accuracy_score"] = _score_rows({k: m[k] for k in ("top1", "top5", "macro_f1")}, w)
    metrics = {m: _interval(_value(full_a[m][0]), _value(full_b[m][0]), res_a[m], res_b[m], alpha)
               for m in METRICS}
    scalar = ("top1", "top5", "macro_f1")
    metrics.update(_speed_and_score(
        ev_a, ev_b, ({k: full_a[k] for k in scalar}, {k: res_a[k] for k in scalar}),
        ({k: full_b[k] for k in scalar}, {k: res_b[k] for k in scalar}), w, n_resamples, seed, alpha))
    support = np.bincount(counts_a.true, minlength=nc)
    per_class: dict[str, dict[str, Any]] = {}
    for c in np.flatnonzero(support).tolist():
        row: dict[str, Any] = {"class_index": c, "support": int(support[c])}
        row.update(_interval(_value(full_a["recall"][0, c]), _value(full_b["recall"][0, c]),
                             res_a["recall"][:, c], res_b["recall"][:, c], alpha))
        per_class[_name(c, names)] = row
    return {
        "task": CLASSIFICATION, "per_class_metric": "recall", "n_images": n, "n_resamples": n_resamples, "seed": seed, "alpha": alpha,
        "weights": w, "metrics": metrics, "per_class": per_class,
        "flips": flip_table(ev_a, counts_a.hit1, counts_b.hit1, names or []),
        "mcnemar": mcnemar(counts_a.hit1, counts_b.hit1, alpha),
    }


def statistics(
    ev_a: Mapping[str, Any], ev_b: Mapping[str, Any], *, names: Sequence[str] | None = None,
    weights: Mapping[str, float] | None = None, n_resamples: int = 1000, seed: int = 0, alpha: float = 0.05,
) -> dict[str, Any]:
    """The worker's compare statistics of two classification evidences: ``paired_bootstrap``."""
    return paired_bootstrap(ev_a, ev_b, n_resamples=n_resamples, seed=seed, alpha=alpha, weights=weights,
                            names=names)

