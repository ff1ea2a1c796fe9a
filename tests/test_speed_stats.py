"""Speed with an interval (issue 14): the warm-up rule, batch resampling, and the combined score interval.

Synthetic evidence (tests/test_compare_stats.py's generator) with synthetic
batch timings: fast, no model. Expected numbers are recomputed here by plain
loops, not taken from the code under test.
"""

from __future__ import annotations

import os
import tempfile

os.environ.setdefault("YOLO_OFFLINE", "1")
os.environ.setdefault("YOLO_CONFIG_DIR", tempfile.mkdtemp(prefix="yolo-cfg-"))

import numpy as np
import pytest

from evaluation.speed import speed_summary
from evaluation.stats import bootstrap, gates, reference
from tests.test_compare_stats import pair
from vocab.scoring import DEFAULT_WEIGHTS, composite_score


def with_timings(ev: dict, batch_ms: np.ndarray, batch_images: np.ndarray) -> dict:
    return {**ev, "batch_ms": np.asarray(batch_ms, float), "batch_images": np.asarray(batch_images, np.int64)}


def test_too_few_batches_give_no_speed_interval() -> None:
    ev, _ = pair(2, n_img=12)
    two = with_timings(ev, [90.0, 40.0], [8, 4])  # one batch left after the warm-up: no spread
    out = bootstrap.paired_bootstrap(two, two, n_resamples=50, seed=0)
    assert "score" not in out["metrics"] and gates.gain_basis(out) == "accuracy_score"


def test_speed_summary_leaves_out_the_warm_up_batch() -> None:
    ms, images = [500.0, 80.0, 100.0, 120.0, 30.0], [8, 8, 8, 8, 2]
    out = speed_summary(ms, images)
    assert out["inference_batches"] == 4
    assert out["inference_ms"] == pytest.approx((80 + 100 + 120 + 30) / (8 + 8 + 8 + 2), abs=1e-12)
    # per-image times 10, 12.5, 15, 15 (80/8, 100/8, 120/8, 30/2); quartiles by linear interpolation at
    # positions 0.75 and 2.25 of the sorted list: 10 + 0.75 * 2.5 = 11.875 and 15.
    assert out["inference_ms_iqr"] == pytest.approx(15 - 11.875, abs=1e-12)
    single = speed_summary([42.0], [4])  # one batch: nothing to leave out
    assert (single["inference_ms"], single["inference_ms_iqr"], single["inference_batches"]) == (10.5, 0.0, 1)
    assert speed_summary([], [])["inference_ms"] is None


def test_the_speed_interval_resamples_batches_and_the_score_combines_both_parts() -> None:
    a, b = pair(4, n_img=40, qa=0.6, qb=0.8)
    rng = np.random.default_rng(0)
    ms_a, ms_b = rng.lognormal(np.log(800), 0.2, 12), rng.lognormal(np.log(600), 0.2, 12)
    images = np.full(12, 8)
    ev_a, ev_b = with_timings(a, ms_a, images), with_timings(b, ms_b, images)
    out = bootstrap.paired_bootstrap(ev_a, ev_b, n_resamples=400, seed=3)
    plain = bootstrap.paired_bootstrap(a, b, n_resamples=400, seed=3)
    for name in bootstrap.BOOTSTRAP_METRICS:  # the accuracy part is untouched by the timings
        assert out["metrics"][name] == plain["metrics"][name], name
    assert "score" not in plain["metrics"] and "inference_ms" not in plain["metrics"]

    speed = out["metrics"]["inference_ms"]
    full_a, full_b = ms_a[1:].sum() / images[1:].sum(), ms_b[1:].sum() / images[1:].sum()
    assert (speed["a"], speed["b"]) == (pytest.approx(full_a, abs=1e-12), pytest.approx(full_b, abs=1e-12))
    # Recompute the batch resamples with a plain loop: kept batches 1..11, drawn with replacement, paired,
    # spread about the full value by t_0.975(10) / z_0.975 * sqrt(11 / 10) (t and z from printed tables).
    c = 2.228138852 / 1.959963985 * (11 / 10) ** 0.5
    draws = np.random.default_rng((3, 1)).integers(0, 11, size=(400, 11))
    diffs = [(full_a + c * (sum(ms_a[1:][d]) / sum(images[1:][d]) - full_a))
             - (full_b + c * (sum(ms_b[1:][d]) / sum(images[1:][d]) - full_b)) for d in draws]  # a - b
    lo, hi = np.quantile(diffs, [0.025, 0.975])
    # (rel 2e-5: the code's t quantile is a series approximation, 4e-6 off the table value at df 10)
    assert (speed["ci_low"], speed["ci_high"]) == (pytest.approx(lo, rel=2e-5), pytest.approx(hi, rel=2e-5))

    score = out["metrics"]["score"]
    for side, ev, ms in (("a", a, full_a), ("b", b, full_b)):
        expected = composite_score({**reference.ap_from_evidence(ev), "inference_ms": ms}, DEFAULT_WEIGHTS)
        assert score[side] == pytest.approx(expected, abs=1e-9), side
    # Both parts vary in the same resamples: the score's interval is wider than the accuracy part's alone.
    acc = out["metrics"]["accuracy_score"]
    assert score["ci_high"] - score["ci_low"] != pytest.approx(acc["ci_high"] - acc["ci_low"], abs=1e-6)
    assert gates.gain_basis(out) == "score" and gates.gain_basis(plain) == "accuracy_score"


def test_a_speed_only_gain_within_the_timing_spread_is_not_significant() -> None:
    ev, _ = pair(5, n_img=50)
    rng = np.random.default_rng(1)
    ms_a = rng.lognormal(np.log(1200), 0.25, 20)  # ~150 ms per image: inside the speed term's linear range
    ms_b = rng.permutation(ms_a) * 0.98  # 2% faster on average, far inside a 25% batch-to-batch spread
    images = np.full(20, 8)
    # the candidate (b's timings) is a, as a promotion runs it: diff is its gain
    out = bootstrap.paired_bootstrap(with_timings(ev, ms_b, images), with_timings(ev, ms_a, images),
                                     n_resamples=500, seed=0)
    score = out["metrics"]["score"]
    assert score["diff"] > 0  # the point estimate says "better" ...
    assert score["ci_low"] <= 0 < score["ci_high"]  # ... the interval says "noise"
    failures = gates.evaluate_gates(out, {"require_significant": True, "min_delta": 0.0})
    assert [(f["gate"], f["subject"]) for f in failures] == [("require_significant", "score")]
    assert failures[0]["ci_low"] == score["ci_low"]


def test_the_combined_interval_covers_zero_for_identical_models() -> None:
    """Identical predictions, timings drawn from one distribution for both: over 40 seeds (data and
    bootstrap), the score interval contains 0 in at least 90% of them."""
    ev, _ = pair(7, n_img=10)
    covered = 0
    for seed in range(40):
        rng = np.random.default_rng(100 + seed)
        images = np.full(25, 8)
        ms_a, ms_b = (rng.lognormal(np.log(1200), 0.25, 25) for _ in range(2))
        out = bootstrap.paired_bootstrap(with_timings(ev, ms_a, images), with_timings(ev, ms_b, images),
                                  n_resamples=300, seed=seed, threads=1)
        s = out["metrics"]["score"]
        assert out["metrics"]["accuracy_score"]["diff"] == 0.0
        covered += s["ci_low"] <= 0.0 <= s["ci_high"]
    assert covered >= 36, covered
