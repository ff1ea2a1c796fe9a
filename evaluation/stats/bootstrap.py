"""The paired image-level bootstrap of two evaluations over the same images (``paired_bootstrap``).

Each resample draws the images with replacement once and uses the same draw
for both models. Every per-resample number is the *exact* value that
``reference.ap_from_evidence`` gives on the resampled image list (an image
drawn k times counts k times, its predictions adjacent in the confidence
order), computed for all resamples at once by ``engine.BootstrapEngine``:
nothing is approximated, the per-image multiplicities are weights. Speed is
resampled by batches in the same resamples (``evaluation.speed``), and the
composite ``score`` combines both parts.

Each task is resampled on its own matchings (``evaluation.families``): one
engine per metric family of the task (box; and mask for segmentation, pose
for pose; obb's box family is its rotated-IoU matching), under the same
draws, so that every metric of the task (``vocab.tasks``) gets an interval
and the score combines them per resample. The full-set values ``a`` and
``b`` are ``reference.task_values``: the validator's own numbers to the
last bit.

Cost, per evaluation and resample (see ``engine.BootstrapEngine``): one
gathered byte and one uint8 add per prediction up to each class's last TP
and per TP entry (exact integer prefix sums, streamed in blocks of 16), about
ten float64 operations per run of adjacent TPs (the AP envelopes of the ten
thresholds), a few per class and grid confidence (bounds on the F1 curves)
and about forty per class and grid confidence on the few columns where the
operating point can lie (the exact P/R/F1 curves). Resamples are processed
in blocks (transposed: images x resamples) sized to ~64 MB of scratch memory
per worker thread. ``benchmarks/bootstrap.py`` measures it.
"""

from __future__ import annotations

import math
import os
import threading
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from evaluation.evidence import evidence_task
from evaluation.families import FAMILY_METRICS, Family, families, primary
from evaluation.speed import draw_batches, evidence_timings, resampled_inference_ms
from evaluation.stats.engine import BootstrapEngine
from evaluation.stats.layout import Scratch
from evaluation.stats.reference import (
    SIZE_KEYS,
    check_task_evidence,
    image_ids,
    score_weights,
    task_values,
)
from vocab.tasks import DEFAULT_TASK, TASKS


def bootstrapped_metrics(task: str) -> tuple[str, ...]:
    """The metrics paired_bootstrap reports for a task, in report order (then inference_ms and score, given
    timings): the task's metrics, size recall where the task defines it, the accuracy part of the score."""
    t = TASKS[task]
    return (*t.metrics, *(SIZE_KEYS if t.size_recall else ()), "accuracy_score")


BOOTSTRAP_METRICS: tuple[str, ...] = bootstrapped_metrics(DEFAULT_TASK)  # detection's
BLOCK_BYTES = 64 << 20  # scratch memory per worker thread, which sets the default block of resamples


def draw_multiplicities(n_img: int, n_resamples: int, seed: int) -> np.ndarray:
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
    engines: Sequence[BootstrapEngine], K: np.ndarray, *, block: int | None = None, threads: int | None = None
) -> list[dict[str, np.ndarray]]:
    """Per-resample metrics of each engine under the same multiplicities K, in blocks of resamples."""
    R = K.shape[0]
    if block is None:
        per_resample = max((e.bytes_per_resample for e in engines), default=1)
        block = int(np.clip(BLOCK_BYTES // per_resample, 16, 256))
    starts = list(range(0, R, block))
    if threads is None:
        threads = min(2, os.cpu_count() or 1)
    local = threading.local()  # scratch arrays per worker thread, for this call

    def run(a: int) -> list[dict[str, np.ndarray]]:
        work = getattr(local, "work", None)
        if work is None:
            work = local.work = Scratch()
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
    like = next(v for v in m.values() if np.ndim(v) == 1)  # a metric's row (per-class entries are 2-D)
    num = np.zeros_like(like, dtype=np.float64)
    den = np.zeros_like(like, dtype=np.float64)
    for k, w in weights.items():
        if w > 0 and k in m:
            v = m[k]
            ok = ~np.isnan(v)
            num += np.where(ok, w * np.nan_to_num(v), 0.0)
            den += np.where(ok, w, 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, num / den, np.nan)


def _value(x: Any) -> float | None:
    x = float(x)
    return None if math.isnan(x) else x


def _merge(parts: Sequence[dict[str, np.ndarray]], fams: Sequence[Family]) -> dict[str, np.ndarray]:
    """One evaluation's per-resample metrics from its families' engines: the box family's under detection's
    names, each further family's under its own, ``ap50`` (per class) of the primary family."""
    out = dict(parts[0])
    for part, fam in zip(parts[1:], fams[1:]):
        out.update({fam.metric(k): part[k] for k in FAMILY_METRICS})
        out["ap50"] = part["ap50"]
    return out


def _full_rows(values: Mapping[str, Any], names: Sequence[str], classes: np.ndarray) -> dict[str, np.ndarray]:
    """``reference.task_values`` as one-resample rows (NaN for a null metric; ``ap50`` aligned with the
    primary engine's classes)."""
    rows = {k: np.array([np.nan if values.get(k) is None else float(values[k])]) for k in names}
    rows["ap50"] = np.array([[values["per_class"][int(c)]["ap50"] for c in classes]], dtype=np.float64)
    return rows


def _interval(a: float | None, b: float | None, da: np.ndarray, db: np.ndarray, alpha: float) -> dict[str, Any]:
    """The full-set values, ``diff = a - b`` and the percentile interval of the resampled ``a - b``."""
    d = da - db
    d = d[~np.isnan(d)]
    if a is None or b is None or not d.size:
        return {"a": a, "b": b, "diff": None if a is None or b is None else a - b, "ci_low": None,
                "ci_high": None, "p_value": None, "significant": False, "n_valid": int(d.size)}
    lo, hi = np.quantile(d, [alpha / 2, 1 - alpha / 2])
    p = min(1.0, 2.0 * min(float(np.mean(d <= 0)), float(np.mean(d >= 0))))
    return {
        "a": a, "b": b, "diff": a - b, "ci_low": float(lo), "ci_high": float(hi), "p_value": p,
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
    img = image_ids(ev_a["gt_offsets"])
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
    """Paired image-level bootstrap of a against b (in a promotion: a the candidate, b the baseline) on the
    same images; every ``diff`` and interval is of ``a - b``.

    Returns ``{"task", "primary", "n_images", "n_resamples", "seed",
    "alpha", "weights", "metrics": {metric: {"a", "b", "diff", "ci_low",
    "ci_high", "p_value", "significant", "n_valid"}} for
    ``bootstrapped_metrics(task)``, "per_class": {class name:
    {"class_index", "support", "a", "b", "diff", "ci_low", "ci_high",
    "p_value", "significant", "n_valid"}} (AP50 of the task's primary family,
    named by "per_class_metric"), "flips": flip_table(...)}``. a, b are the
    full-set values (``reference.task_values``: the validator's own to the
    last bit); intervals come from the resamples. ``weights``: applied score
    weights (default: the task's). ``names``: class names (index -> name) for
    the per-class keys (default: the class index as a string). ``threads``:
    worker threads (default min(2, CPUs)); results do not depend on it.
    Raises ValueError unless both are of one task over the same image list.
    """
    task = evidence_task(ev_a)
    if evidence_task(ev_b) != task:
        raise ValueError(f"paired bootstrap needs two evaluations of one task, got {task} and {evidence_task(ev_b)}")
    fams = families(task)
    n_a, n_b = check_task_evidence(ev_a), check_task_evidence(ev_b)
    if n_a != n_b or not np.array_equal(np.asarray(ev_a["image_names"]), np.asarray(ev_b["image_names"])):
        raise ValueError("paired bootstrap needs both evidences over the same images in the same order")
    if n_resamples < 1:
        raise ValueError("n_resamples must be >= 1")
    if not 0 < alpha < 1:
        raise ValueError("alpha must lie in (0, 1)")
    w = score_weights(weights, task)
    if threads is None:
        threads = min(2, os.cpu_count() or 1)
    reported = bootstrapped_metrics(task)
    keys = [k for k in reported if k != "accuracy_score"] + [k for k in SIZE_KEYS if k not in reported]

    def prepare(ev: Mapping[str, Any]) -> tuple[list[BootstrapEngine], dict[str, np.ndarray]]:
        engines = [BootstrapEngine(ev, f.evidence_key) for f in fams]
        return engines, _full_rows(task_values(ev, w), keys, engines[-1].classes)

    if threads > 1:  # the two evaluations' preparation side by side
        with ThreadPoolExecutor(2) as ex:
            (engs_a, full_a), (engs_b, full_b) = ex.map(prepare, (ev_a, ev_b))
    else:
        (engs_a, full_a), (engs_b, full_b) = prepare(ev_a), prepare(ev_b)
    eng_a, eng_b = engs_a[-1], engs_b[-1]  # the primary family's: per class
    K = draw_multiplicities(n_a, n_resamples, seed)
    parts = bootstrap_metrics([*engs_a, *engs_b], K, threads=threads)
    res_a, res_b = _merge(parts[: len(fams)], fams), _merge(parts[len(fams) :], fams)
    for res in (res_a, res_b, full_a, full_b):
        res["accuracy_score"] = _score_rows(res, w)
    metrics = {m: _interval(_value(full_a[m][0]), _value(full_b[m][0]), res_a[m], res_b[m], alpha)
               for m in reported}
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
        "task": task, "primary": TASKS[task].primary, "per_class_metric": primary(task).metric("ap50"),
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
