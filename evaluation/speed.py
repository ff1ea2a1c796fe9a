"""Inference speed from per-batch timings: the reported figure, its spread, and its resampling.

Pure numpy. The validator times the model's forward pass of every batch
(``batch_ms``: milliseconds for the whole batch, device synchronised;
``batch_images``: the images in it), in the order the batches ran.

The warm-up rule: the first batch is left out whenever there are two or more
(it pays for lazy initialisation, allocator growth and cold caches); a
single-batch evaluation keeps its only batch. Over the kept batches:

- ``inference_ms`` = sum of their times / sum of their images (per image);
- ``inference_ms_iqr`` = the interquartile range (75th - 25th percentile,
  numpy's linear interpolation) of their per-image times
  ``batch_ms / batch_images``;
- ``inference_batches`` = how many were kept.

The bootstrap resamples the kept batches with replacement and recomputes
``inference_ms`` as the same ratio on every draw (``resampled_inference_ms``).
Evaluations have few batches (24 images at batch 8: two kept), and a plain
percentile interval over n batches is too narrow by about the factor
``t(n-1) / z * sqrt(n / (n-1))``; the resampled values are spread about the
full-set value by that factor (``expansion``: Hesterberg's expanded
percentile interval), which restores the nominal coverage for small n.
Fewer than two kept batches give no spread at all: no interval then.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from statistics import NormalDist
from typing import Any

import numpy as np


def kept_batches(batch_ms: Any, batch_images: Any) -> tuple[np.ndarray, np.ndarray]:
    """The batches the speed figures use (the warm-up rule above), as float64 times and int64 counts."""
    ms = np.asarray(batch_ms, dtype=np.float64).reshape(-1)
    images = np.asarray(batch_images, dtype=np.int64).reshape(-1)
    if ms.shape != images.shape or np.any(images <= 0) or not np.all(np.isfinite(ms)):
        raise ValueError("batch timings: batch_ms and batch_images must be equally long, with images > 0")
    start = 1 if len(ms) >= 2 else 0
    return ms[start:], images[start:]


def speed_summary(batch_ms: Any, batch_images: Any) -> dict[str, Any]:
    """``{"inference_ms", "inference_ms_iqr", "inference_batches"}`` (None, None, 0 without batches)."""
    ms, images = kept_batches(batch_ms, batch_images)
    if not len(ms):
        return {"inference_ms": None, "inference_ms_iqr": None, "inference_batches": 0}
    q25, q75 = np.percentile(ms / images, [25, 75])
    return {"inference_ms": float(ms.sum() / images.sum()), "inference_ms_iqr": float(q75 - q25),
            "inference_batches": len(ms)}


def evidence_timings(evidence: Mapping[str, Any]) -> tuple[np.ndarray, np.ndarray] | None:
    """The kept batches of an evidence file; None when fewer than two (no spread to resample) or when it
    holds no timings (written before they were kept)."""
    if "batch_ms" not in evidence or "batch_images" not in evidence:
        return None
    ms, images = kept_batches(evidence["batch_ms"], evidence["batch_images"])
    return (ms, images) if len(ms) >= 2 else None


def draw_batches(n_batches: int, n_resamples: int, seed: int) -> np.ndarray:
    """(n_resamples, n_batches) indices of batches drawn with replacement; a random stream of its own
    (seeded by ``(seed, 1)``), so that the image draws of the same seed are unchanged by it."""
    rng = np.random.default_rng((seed, 1))
    return rng.integers(0, n_batches, size=(n_resamples, n_batches))




def _t_quantile(p: float, df: int) -> float:
    """Student's t quantile: exact for df 1 and 2 (closed forms), else the Cornish-Fisher expansion about
    the normal quantile (Abramowitz-Stegun 26.7.5; within 1e-3 of the exact value from df = 3 on)."""
    if df == 1:
        return math.tan(math.pi * (p - 0.5))
    if df == 2:
        return (2 * p - 1) / math.sqrt(2 * p * (1 - p))
    z = NormalDist().inv_cdf(p)
    terms = ((z**3 + z) / 4, (5 * z**5 + 16 * z**3 + 3 * z) / 96,
             (3 * z**7 + 19 * z**5 + 17 * z**3 - 15 * z) / 384,
             (79 * z**9 + 776 * z**7 + 1482 * z**5 - 1920 * z**3 - 945 * z) / 92160)
    return z + sum(t / df ** (k + 1) for k, t in enumerate(terms))


def expansion(n_batches: int, alpha: float) -> float:
    """The factor that widens a percentile interval over ``n_batches`` resampled batches to the nominal
    coverage: ``t_{1-alpha/2}(n-1) / z_{1-alpha/2} * sqrt(n / (n-1))`` (n >= 2)."""
    p = 1 - alpha / 2
    return _t_quantile(p, n_batches - 1) / NormalDist().inv_cdf(p) * math.sqrt(n_batches / (n_batches - 1))


def resampled_inference_ms(ms: np.ndarray, images: np.ndarray, draws: np.ndarray, alpha: float) -> np.ndarray:
    """``inference_ms`` of every resample (sum of the drawn batches' times / sum of their images), spread
    about the full-set value by ``expansion``."""
    full = ms.sum() / images.sum()
    plain = ms[draws].sum(axis=1) / images[draws].sum(axis=1)
    return full + expansion(len(ms), alpha) * (plain - full)
