"""Paired statistics of classification evidence against independent references (no torch).

(a) the bootstrap's full-sample values equal the point metrics (``classify_metrics.summary``, itself
    checked against sklearn in test_classification); (b) its per-resample values equal a naive loop
    over the expanded image list on a few resamples; (c) McNemar's exact test equals
    ``scipy.stats.binomtest``; (d) the output feeds the promotion gates unchanged; (e) evidence of
    both tasks round-trips and ``same_predictions`` tells them apart.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from evaluation.classify_metrics import summary
from evaluation.evidence import evidence_task, load_evidence, same_predictions, write_classification_evidence
from evaluation.stats.bootstrap import draw_multiplicities
from evaluation.stats.classification_stats import mcnemar, paired_bootstrap
from evaluation.stats.gates import evaluate_gates, gain_basis
from vocab.scoring import resolve_weights

NC = 7
NAMES = [f"c{i}" for i in range(NC)]


class Timing:
    def __init__(self, ms: float, images: int) -> None:
        self.ms, self.images = ms, images


def synthetic(rng: np.random.Generator, true: np.ndarray, skill: float) -> tuple[np.ndarray, np.ndarray]:
    """Top-5 rankings that put the true class first with probability ``skill`` (else a random order)."""
    top, conf = [], []
    for t in true:
        order = rng.permutation(NC)
        if rng.random() < skill:
            order = np.concatenate([[t], order[order != t]])
        top.append(order[:5])
        conf.append(np.sort(rng.random(5))[::-1])
    return np.array(top), np.array(conf)


def write(path: Path, true: np.ndarray, top: np.ndarray, conf: np.ndarray, batch_ms: list[float]) -> dict[str, Any]:
    names = [f"{NAMES[t]}/{i:04d}.png" for i, t in enumerate(true)]
    per = len(true) // len(batch_ms)
    timings = [Timing(ms, per) for ms in batch_ms]
    timings[-1].images += len(true) - per * len(batch_ms)
    write_classification_evidence(path, names, true, top, conf, NC, timings)
    return load_evidence(path)


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], dict[str, Any]]:
    """A strong (a) and a weak (b) model's evidence on 240 images of 7 classes, class 6 without images."""
    rng = np.random.default_rng(7)
    true = rng.integers(0, NC - 1, size=240)
    d = tmp_path_factory.mktemp("ev")
    ev_a = write(d / "a.npz", true, *synthetic(rng, true, 0.8), [30.0, 20.0, 21.0, 19.5, 22.0])
    ev_b = write(d / "b.npz", true, *synthetic(rng, true, 0.4), [25.0, 18.0, 18.5, 17.0, 19.0])
    return ev_a, ev_b


def naive(true: list[int], top: list[list[int]]) -> dict[str, Any]:
    """top1, top5, macro-F1 and per-class recall by counting, one image at a time."""
    n = len(true)
    c1 = c5 = 0
    tp = dict.fromkeys(range(NC), 0)
    sup = dict.fromkeys(range(NC), 0)
    pred = dict.fromkeys(range(NC), 0)
    for t, k in zip(true, top):
        c1 += k[0] == t
        c5 += t in k
        sup[t] += 1
        pred[k[0]] += 1
        tp[t] += k[0] == t
    f1 = [2 * tp[c] / (sup[c] + pred[c]) for c in range(NC) if sup[c]]
    return {"top1": c1 / n, "top5": c5 / n, "macro_f1": sum(f1) / len(f1),
            "recall": {c: tp[c] / sup[c] for c in range(NC) if sup[c]}}


def test_full_sample_values_equal_the_point_metrics(pair: tuple[dict[str, Any], dict[str, Any]]) -> None:
    ev_a, ev_b = pair
    stats = paired_bootstrap(ev_a, ev_b, n_resamples=50, seed=1, names=NAMES)
    for side, ev in (("a", ev_a), ("b", ev_b)):
        point = summary(ev["true"], ev["top5"], NAMES)
        for m in ("top1", "top5", "macro_f1"):
            assert stats["metrics"][m][side] == point[m]
        assert {k: v[side] for k, v in stats["per_class"].items()} == point["per_class"]
    assert "c6" not in stats["per_class"]  # no images: no per-class row
    assert stats["per_class"]["c0"]["support"] == int(np.sum(ev_a["true"] == 0))
    assert stats["metrics"]["top1"]["diff"] == stats["metrics"]["top1"]["a"] - stats["metrics"]["top1"]["b"]


def test_resampled_values_equal_a_naive_loop_over_the_expanded_images(
        pair: tuple[dict[str, Any], dict[str, Any]]) -> None:
    from evaluation.stats.classification_stats import Counts

    ev_a, _ = pair
    n = len(ev_a["true"])
    K = draw_multiplicities(n, 4, seed=3)
    rows = Counts(ev_a, NC).metrics(K)
    for r in range(4):
        idx = np.repeat(np.arange(n), K[r])
        ref = naive(ev_a["true"][idx].tolist(), ev_a["top5"][idx].tolist())
        for m in ("top1", "top5", "macro_f1"):
            assert rows[m][r] == pytest.approx(ref[m], abs=1e-12)
        for c in range(NC):
            if c in ref["recall"]:
                assert rows["recall"][r, c] == pytest.approx(ref["recall"][c], abs=1e-12)
            else:
                assert np.isnan(rows["recall"][r, c])


@pytest.mark.parametrize("b, c", [(0, 0), (0, 1), (3, 3), (1, 9), (12, 4), (40, 61), (700, 650)])
def test_mcnemar_equals_scipy_binomtest(b: int, c: int) -> None:
    from scipy.stats import binomtest

    hit_a = np.array([True] * b + [False] * c + [True] * 5 + [False] * 3)
    hit_b = np.array([False] * b + [True] * c + [True] * 5 + [False] * 3)
    got = mcnemar(hit_a, hit_b)
    want = 1.0 if b + c == 0 else binomtest(min(b, c), b + c, 0.5).pvalue
    assert (got["b"], got["c"], got["n"]) == (b, c, b + c)
    assert got["p_value"] == pytest.approx(want, rel=1e-9, abs=1e-300)
    assert got["significant"] == (got["p_value"] < 0.05)


def test_the_statistics_have_detections_shape_and_feed_the_gates(pair: tuple[dict[str, Any], dict[str, Any]]) -> None:
    ev_a, ev_b = pair
    weights = resolve_weights(None, "classification")
    better = paired_bootstrap(ev_a, ev_b, n_resamples=300, seed=0, weights=weights, names=NAMES)
    assert set(better) >= {"n_images", "n_resamples", "seed", "alpha", "weights", "metrics", "per_class", "mcnemar"}
    assert set(better["metrics"]) == {"top1", "top5", "macro_f1", "accuracy_score", "inference_ms", "score"}
    assert gain_basis(better) == "score"
    s = better["metrics"]["top1"]
    assert s["ci_low"] <= s["diff"] <= s["ci_high"] and s["significant"]
    assert better["mcnemar"]["b"] > better["mcnemar"]["c"] and better["mcnemar"]["significant"]
    assert evaluate_gates(better, {"require_significant": True}) == []
    worse = paired_bootstrap(ev_b, ev_a, n_resamples=300, seed=0, weights=weights, names=NAMES)
    failed = evaluate_gates(worse, {"require_significant": True, "max_class_regression": 0.0,
                                    "min_class_support": 30})
    gates = {f["gate"] for f in failed}
    assert gates == {"require_significant", "max_class_regression"}
    subjects = {f["subject"] for f in failed if f["gate"] == "max_class_regression"}
    assert subjects and all(worse["per_class"][s]["support"] >= 30 for s in subjects)
    assert all(": recall " in f["reason"] for f in failed if f["gate"] == "max_class_regression")  # not AP50


def test_identical_evidences_give_no_difference(pair: tuple[dict[str, Any], dict[str, Any]]) -> None:
    ev_a, _ = pair
    stats = paired_bootstrap(ev_a, ev_a, n_resamples=100, seed=0)
    for m in ("top1", "top5", "macro_f1", "accuracy_score", "score"):
        s = stats["metrics"][m]
        assert (s["diff"], s["ci_low"], s["ci_high"], s["significant"]) == (0.0, 0.0, 0.0, False)
    assert stats["mcnemar"] == {"b": 0, "c": 0, "n": 0, "p_value": 1.0, "significant": False}


def test_evidence_task_and_same_predictions(pair: tuple[dict[str, Any], dict[str, Any]], tmp_path: Path) -> None:
    ev_a, ev_b = pair
    assert evidence_task(ev_a) == "classification"
    copy = write(tmp_path / "copy.npz", ev_a["true"], ev_a["top5"], ev_a["conf"], [99.0, 98.0])
    assert same_predictions(ev_a, copy)  # timings aside
    assert not same_predictions(ev_a, ev_b)
    detection = {k: np.zeros(1) for k in ("image_names", "conf")}  # an old detection evidence: no task entry
    assert evidence_task(detection) == "detection"
    assert not same_predictions(ev_a, detection)
    with pytest.raises(ValueError, match="not a classification evidence"):
        paired_bootstrap(ev_a, detection)
