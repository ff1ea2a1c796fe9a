"""evaluation.stats: exact AP from evidence, the vectorised paired bootstrap, gates.

Synthetic evidence only (no model, no validator run): fast. ultralytics is
imported for its own ``ap_per_class`` (the reference), offline and with a
private config dir set before the import (tests/conftest.py does the same
when it is loaded first).
"""

from __future__ import annotations

import json
import os
import tempfile
from typing import Any

os.environ.setdefault("YOLO_OFFLINE", "1")
os.environ.setdefault("YOLO_CONFIG_DIR", tempfile.mkdtemp(prefix="yolo-cfg-"))

import numpy as np
import pytest

from evaluation.stats import (
    bootstrap,
    engine,
    gates,
    layout,
    operating_point,
    reference,
)
from vocab.scoring import DEFAULT_WEIGHTS, composite_score

IOU_THRESHOLDS = np.linspace(0.5, 0.95, 10)


# --------------------------------------------------------------------------- synthetic evidence


def make_labels(rng: np.random.Generator, n_img: int, nc: int, lam: float = 3.0,
                class_p: list[float] | None = None) -> list[np.ndarray]:
    """Ground-truth classes per image (the label files shared by both models of a pair)."""
    return [rng.choice(nc, size=rng.poisson(lam), p=class_p) for _ in range(n_img)]


def make_evidence(rng: np.random.Generator, labels: list[np.ndarray], quality: float | list[float] = 0.7,
                  fp_rate: float = 2.0, nc: int = 3, ghost_class: bool = False, round_conf: int | None = None,
                  iou_low: float = 0.45) -> dict[str, np.ndarray]:
    """One model's evidence on the given labels.

    Each object is detected with probability quality[class] (conf ~ Beta(4, 2), IoU ~ U(iou_low, 1): its
    TP row follows the ten thresholds); FPs ~ Poisson(fp_rate) per image, conf ~ Beta(1, 5), random class
    (``ghost_class``: also a class no label has). gt_found = detected with conf >= 0.25 and IoU >= 0.5.
    """
    q = np.broadcast_to(np.asarray(quality, dtype=float), (nc,))
    pred_off, tgt_off = [0], [0]
    tps, confs, clss, founds, buckets = [], [], [], [], []
    for gt in labels:
        g = len(gt)
        det = rng.random(g) < q[gt]
        iou = rng.uniform(iou_low, 1.0, g)
        conf_tp = rng.beta(4, 2, g)
        n_fp = rng.poisson(fp_rate)
        fp_cls = rng.integers(0, nc + (1 if ghost_class else 0), n_fp)
        conf = np.concatenate([conf_tp[det], rng.beta(1, 5, n_fp)])
        if round_conf is not None:
            conf = np.round(conf, round_conf)
        cls = np.concatenate([gt[det], fp_cls])
        tp = np.concatenate([iou[det, None] >= IOU_THRESHOLDS[None, :], np.zeros((n_fp, 10), bool)])
        order = np.argsort(-conf, kind="stable")
        tps.append(tp[order])
        confs.append(conf[order])
        clss.append(cls[order])
        founds.append(det & (conf_tp >= 0.25) & (iou >= 0.5))
        buckets.append(rng.integers(0, 3, g))
        pred_off.append(pred_off[-1] + len(conf))
        tgt_off.append(tgt_off[-1] + g)
    def cat(xs: list[Any], dt: Any) -> np.ndarray:
        return np.concatenate(xs).astype(dt) if xs else np.zeros(0, dt)

    target = cat(labels, np.int64)
    return {
        "image_names": np.array([f"images/im{i:04d}.jpg" for i in range(len(labels))]),
        "pred_offsets": np.array(pred_off, dtype=np.int64),
        "tp": np.concatenate(tps).reshape(-1, 10).astype(bool) if tps else np.zeros((0, 10), bool),
        "conf": cat(confs, np.float64),
        "pred_cls": cat(clss, np.int64),
        "target_offsets": np.array(tgt_off, dtype=np.int64),
        "target_cls": target,
        "gt_offsets": np.array(tgt_off, dtype=np.int64),
        "gt_cls": target,
        "gt_bucket": cat(buckets, np.int8),
        "gt_found": cat(founds, bool),
        "conf_threshold": np.array(0.25),
    }


def pair(seed: int, n_img: int = 60, nc: int = 3, qa: float | list[float] = 0.7, qb: float | list[float] = 0.7,
         **kw) -> tuple[dict, dict]:
    rng = np.random.default_rng(seed)
    labels = make_labels(rng, n_img, nc, **kw)
    return make_evidence(rng, labels, qa, nc=nc), make_evidence(rng, labels, qb, nc=nc)


def ultralytics_reference(ev: dict) -> dict:
    from ultralytics.utils.metrics import ap_per_class, smooth

    _, _, p, r, _, ap, classes, _, _, f1_curve, px, _ = ap_per_class(
        ev["tp"], ev["conf"], ev["pred_cls"], ev["target_cls"])
    nc = len(classes)
    return {
        "classes": [int(c) for c in classes], "ap": ap, "p": p, "r": r,
        "mAP50": ap[:, 0].mean() if nc else 0.0, "mAP50_95": ap.mean() if nc else 0.0,
        "precision": p.mean() if nc else 0.0, "recall": r.mean() if nc else 0.0,
        "conf_threshold": float(px[smooth(f1_curve.mean(0), 0.1).argmax()]) if nc else None,
    }


# --------------------------------------------------------------------------- (a) exact AP from evidence


@pytest.mark.parametrize("seed", range(8))
def test_ap_from_evidence_equals_ultralytics(seed: int) -> None:
    rng = np.random.default_rng(100 + seed)
    nc = int(rng.integers(1, 6))
    labels = make_labels(rng, int(rng.integers(5, 80)), nc, lam=float(rng.uniform(0.5, 4)))
    ev = make_evidence(rng, labels, list(rng.uniform(0.0, 1.0, nc)), fp_rate=float(rng.uniform(0, 6)), nc=nc,
                       ghost_class=seed % 2 == 0, round_conf=2 if seed % 3 == 0 else None)  # ties when rounded
    ours = reference.ap_from_evidence(ev)
    ref = ultralytics_reference(ev)
    assert ours["classes"] == ref["classes"]
    for key in ("mAP50", "mAP50_95", "precision", "recall"):
        assert ours[key] == pytest.approx(ref[key], abs=1e-9), key
    assert ours["f1"] == pytest.approx(reference.f1_score(ref["precision"], ref["recall"]), abs=1e-9)
    assert ours["conf_threshold"] == ref["conf_threshold"]
    for i, c in enumerate(ref["classes"]):
        pc = ours["per_class"][c]
        assert pc["ap50"] == pytest.approx(ref["ap"][i, 0], abs=1e-9)
        assert pc["ap50_95"] == pytest.approx(ref["ap"][i].mean(), abs=1e-9)
        assert pc["precision"] == pytest.approx(ref["p"][i], abs=1e-9)
        assert pc["recall"] == pytest.approx(ref["r"][i], abs=1e-9)
        assert pc["support"] == int((ev["target_cls"] == c).sum())


def test_ap_from_evidence_subset_is_the_subset_evaluation() -> None:
    """A subset (with repeats) is ultralytics on the concatenated evidence of those images."""
    ev, _ = pair(1, n_img=40)
    idx = np.array([3, 3, 7, 0, 21, 21, 21, 39])
    ours = reference.ap_from_evidence(ev, idx)
    po, to = ev["pred_offsets"], ev["target_offsets"]
    sub = {
        "tp": np.concatenate([ev["tp"][po[i]:po[i + 1]] for i in idx]),
        "conf": np.concatenate([ev["conf"][po[i]:po[i + 1]] for i in idx]),
        "pred_cls": np.concatenate([ev["pred_cls"][po[i]:po[i + 1]] for i in idx]),
        "target_cls": np.concatenate([ev["target_cls"][to[i]:to[i + 1]] for i in idx]),
    }
    ref = ultralytics_reference(sub)  # no conf ties here: the order is the same
    for key in ("mAP50", "mAP50_95", "precision", "recall"):
        assert ours[key] == pytest.approx(ref[key], abs=1e-9)
    assert ours["n_images"] == len(idx)
    # size recall: found / total over the chosen images, counted with their multiplicity
    sizes = ours["size_counts"]
    for b, name in enumerate(reference.BUCKETS):
        tot = sum(int((ev["gt_bucket"][to[i]:to[i + 1]] == b).sum()) for i in idx)
        hit = sum(int(((ev["gt_bucket"][to[i]:to[i + 1]] == b) & ev["gt_found"][to[i]:to[i + 1]]).sum()) for i in idx)
        assert sizes[name] == {"found": hit, "total": tot}
        assert ours[f"{name}_object_recall"] == (None if tot == 0 else pytest.approx(hit / tot))
    expected = composite_score({**{k: ours[k] for k in reference.SCORE_KEYS}, "inference_ms": None}, DEFAULT_WEIGHTS)
    assert ours["accuracy_score"] == pytest.approx(expected)


def test_empty_bucket_is_none_and_dropped_from_the_score() -> None:
    ev, _ = pair(2, n_img=20)
    ev["gt_bucket"] = np.where(ev["gt_bucket"] == 0, 1, ev["gt_bucket"]).astype(np.int8)  # no small object
    res = reference.ap_from_evidence(ev)
    assert res["small_object_recall"] is None
    w = dict(DEFAULT_WEIGHTS)
    expected = (w["mAP50_95"] * res["mAP50_95"] + w["mAP50"] * res["mAP50"] + w["f1"] * res["f1"]) / (
        w["mAP50_95"] + w["mAP50"] + w["f1"])
    assert res["accuracy_score"] == pytest.approx(expected)


def assert_resamples_exact(ev: dict, K: np.ndarray, **kw) -> None:
    """bootstrap_metrics row r = ap_from_evidence on the image list of K[r] (to float rounding)."""
    eng = engine.BootstrapEngine(ev)
    out = bootstrap.bootstrap_metrics([eng], K, **kw)[0]
    for r in range(len(K)):
        ref = reference.ap_from_evidence(ev, np.repeat(np.arange(K.shape[1]), K[r]))
        for key in ("mAP50", "mAP50_95", "precision", "recall", "f1", *reference.SIZE_KEYS):
            if ref[key] is None:
                assert np.isnan(out[key][r])
            else:
                assert out[key][r] == pytest.approx(ref[key], abs=1e-12), (r, key)
        for i, c in enumerate(eng.classes):
            if int(c) in ref["per_class"]:
                assert out["ap50"][r, i] == pytest.approx(ref["per_class"][int(c)]["ap50"], abs=1e-12)
            else:
                assert np.isnan(out["ap50"][r, i])  # class not drawn: no AP in this resample


@pytest.mark.parametrize("seed", range(6))
def test_vectorised_resamples_equal_the_direct_computation(seed: int) -> None:
    """Each bootstrap resample's numbers = ap_from_evidence on that resample's image list (row 0: the full
    set, which paired_bootstrap reports as a and b)."""
    rng = np.random.default_rng(200 + seed)
    nc = int(rng.integers(1, 5))
    labels = make_labels(rng, int(rng.integers(1, 30)), nc, lam=float(rng.uniform(0.3, 4)))
    ev = make_evidence(rng, labels, list(rng.uniform(0.1, 1.0, nc)), fp_rate=float(rng.uniform(0, 5)), nc=nc,
                       ghost_class=bool(seed % 2), round_conf=2 if seed % 2 else None)
    K = np.vstack([np.ones((1, len(labels)), np.int32), bootstrap.draw_multiplicities(len(labels), 12, seed)])
    assert_resamples_exact(ev, K, block=5, threads=2)


def drop_predictions(ev: dict, drop: np.ndarray) -> dict:
    """The evidence without the predictions flagged in drop."""
    keep = ~drop
    counts = np.add.reduceat(keep, ev["pred_offsets"][:-1]) if len(keep) else np.zeros(0, int)
    counts = np.where(np.diff(ev["pred_offsets"]) > 0, counts, 0)
    return dict(ev, tp=ev["tp"][keep], conf=ev["conf"][keep], pred_cls=ev["pred_cls"][keep],
                pred_offsets=np.concatenate(([0], np.cumsum(counts))).astype(np.int64))


@pytest.mark.parametrize("block_len", [16, 4])
def test_exact_on_long_sequences_and_every_engine_path(monkeypatch: pytest.MonkeyPatch, block_len: int) -> None:
    """Long sequences (block_len 4: the scans recurse over several levels), multiplicities above 15 (wider
    integer sums), a class with predictions but no TP, one with ground truth but no prediction, and the
    float64 level count (as for classes with >= 27000 objects)."""
    monkeypatch.setattr(layout, "BLOCK", block_len)
    monkeypatch.setattr(layout, "SUPERBLOCK", block_len * block_len)
    rng = np.random.default_rng(7)
    labels = make_labels(rng, 300, 4, lam=4.0, class_p=[0.4, 0.4, 0.19, 0.01])
    ev = make_evidence(rng, labels, [0.9, 0.6, 0.0, 0.5], fp_rate=12.0, nc=4, round_conf=3)
    ev = drop_predictions(ev, ev["pred_cls"] == 3)  # class 3: ground truth, never predicted
    eng = engine.BootstrapEngine(ev)
    assert eng.layouts[3] is None and eng.layouts[2] is not None and not len(eng.layouts[2].thresholds_with_tp)
    if block_len == 4:
        assert max(cd.full.nb2 for cd in eng.layouts if cd is not None) > 16 * block_len  # three levels of sums
        assert max(cd.maxnb for cd in eng.layouts if cd is not None) > 4 * block_len  # envelope blocks, recursed
    K = np.vstack([np.ones((1, 300), np.int32), bootstrap.draw_multiplicities(300, 3, 1)])
    K[2] = 0
    K[2, :40] = 17  # multiplicities above 15: block sums no longer fit uint8
    K[2, 250] = 300
    assert_resamples_exact(ev, K, block=2, threads=1)
    monkeypatch.setattr(engine, "N_F32", 0)  # every level count through the float64 path
    assert_resamples_exact(ev, K[:2], threads=1)


def test_operating_point_search_is_exact(monkeypatch: pytest.MonkeyPatch) -> None:
    """The F1 curves are computed exactly only where the smoothed mean F1's maximum can be (bounds elsewhere),
    and the predictions past a class's last TP are summed only when that window reaches them: the result is
    bit for bit the one of the exhaustive search (every grid point a candidate), on data where both shortcuts
    apply, and equals the direct computation."""
    rng = np.random.default_rng(11)
    labels = make_labels(rng, 400, 3, lam=5.0)
    ev = make_evidence(rng, labels, [0.9, 0.8, 0.7], fp_rate=20.0, nc=3)
    eng = engine.BootstrapEngine(ev)
    K = np.vstack([np.ones((1, 400), np.int32), bootstrap.draw_multiplicities(400, 7, 5)])
    windows = []
    real = operating_point.candidates

    def spy(*args):
        cand, a, b = real(*args)
        windows.append((a, b))
        return cand, a, b

    monkeypatch.setattr(operating_point, "candidates", spy)
    fast = bootstrap.bootstrap_metrics([eng], K, block=4, threads=1)[0]
    assert all(b - a < 600 for a, b in windows)  # a narrow window ...
    assert all(a >= min(cd.n_tail for cd in eng.layouts) for a, b in windows)  # ... above some class's tail

    def everything(lo, hi, den, npres):
        cand = np.ones((lo.shape[1], 1000), dtype=bool)
        cand[npres == 0] = False
        return cand, 0, 999

    monkeypatch.setattr(operating_point, "candidates", everything)
    full = bootstrap.bootstrap_metrics([eng], K, block=4, threads=1)[0]
    for key in fast:
        assert np.array_equal(fast[key], full[key], equal_nan=True), key
    assert_resamples_exact(ev, K[:3], threads=1)


def test_smoothing_a_window_is_bit_for_bit_smooth() -> None:
    """The operating point smooths only around its candidates: the same numbers as smooth on the whole curve."""
    rng = np.random.default_rng(12)
    for trial in range(300):
        y = rng.random(1000) * rng.choice([1e-3, 1.0, 0.37])
        if trial % 3 == 0:
            y = np.round(y, 3)  # plateaus: exact ties
        first = int(rng.integers(0, 1000))
        last = int(rng.integers(first, min(first + 200, 999) + 1))
        a, b = max(first - 50 - int(rng.integers(0, 5)), 0), min(last + 50 + int(rng.integers(0, 5)), 999)
        assert np.array_equal(reference.smooth_at(y[a : b + 1], first, last, 0.1, offset=a),
                              reference.smooth(y, 0.1)[first : last + 1])


def test_level_count_by_multiplication_is_exact() -> None:
    """The AP's level count ceil(100 T / n) is taken as ceil(T * m) (float32 below _N_F32 objects, float64
    beyond): equal to the integer result for every T in [0, n]."""
    rng = np.random.default_rng(13)
    ns = np.unique(np.concatenate([np.arange(1, 300), rng.integers(300, engine.N_F32, 150),
                                   np.arange(engine.N_F32 - 60, engine.N_F32)]))
    for n in ns:
        T = np.arange(n + 1)
        exact = -((-100 * T) // n)
        assert np.array_equal(np.ceil(T.astype(np.float32) * np.float32(100.0 / n * (1.0 - engine.SHRINK32))), exact)
        assert np.array_equal(np.ceil(T * (100.0 / n * (1.0 - engine.SHRINK))), exact)
    for n in rng.integers(engine.N_F32, 10**8, 50):
        T = np.concatenate([rng.integers(0, n + 1, 5000), (np.arange(101) * n) // 100, (np.arange(100) * n) // 100 + 1])
        assert np.array_equal(np.ceil(T * (100.0 / n * (1.0 - engine.SHRINK))), -((-100 * T) // n))


# --------------------------------------------------------------------------- (b) identical models


def test_identical_models_have_exactly_zero_difference() -> None:
    ev, _ = pair(3, n_img=50)
    out = bootstrap.paired_bootstrap(ev, ev, n_resamples=200, seed=1)
    json.dumps(out)  # the worker's result is stored as JSON
    for name, m in out["metrics"].items():
        assert m["diff"] == 0.0, name
        assert (m["ci_low"], m["ci_high"]) == (0.0, 0.0), name
        assert m["p_value"] == 1.0 and m["significant"] is False, name
    for row in out["per_class"].values():
        assert row["diff"] == 0.0 and row["ci_low"] == 0.0 and row["ci_high"] == 0.0
        assert row["significant"] is False
    assert all(f["a_only"] == 0 and f["b_only"] == 0 for f in out["flips"].values())
    assert gates.evaluate_gates(out, {"require_significant": False, "max_class_regression": 0.0,
                                      "max_size_recall_regression": 0.0}) == []


def test_same_seed_same_result_and_image_lists_must_match() -> None:
    a, b = pair(4, n_img=30)
    one = bootstrap.paired_bootstrap(a, b, n_resamples=100, seed=7)
    two = bootstrap.paired_bootstrap(a, b, n_resamples=100, seed=7, threads=1)
    assert one == two
    other = dict(b, image_names=b["image_names"][::-1].copy())
    with pytest.raises(ValueError, match="same images"):
        bootstrap.paired_bootstrap(a, other, n_resamples=10)


# --------------------------------------------------------------------------- (c) no true difference


def test_interval_covers_zero_when_there_is_no_true_difference() -> None:
    covered = {"mAP50": 0, "accuracy_score": 0}
    seeds = range(50)
    for seed in seeds:
        a, b = pair(1000 + seed, n_img=100, qa=0.6, qb=0.6)  # same generator per image, independent draws
        out = bootstrap.paired_bootstrap(a, b, n_resamples=200, seed=seed)
        for name in covered:
            m = out["metrics"][name]
            covered[name] += m["ci_low"] <= 0.0 <= m["ci_high"]
    for name, hits in covered.items():
        assert hits >= 0.9 * len(seeds), (name, hits)


# --------------------------------------------------------------------------- (d) a large true difference


def test_large_true_difference_is_significant_in_the_right_direction() -> None:
    weak, strong = pair(5, n_img=80, qa=0.3, qb=0.9)
    up = bootstrap.paired_bootstrap(strong, weak, n_resamples=300, seed=0)  # diff is a - b: strong minus weak
    for name in ("mAP50", "mAP50_95", "recall", "f1", "accuracy_score"):
        m = up["metrics"][name]
        assert m["diff"] > 0 and m["ci_low"] > 0 and m["significant"] and m["p_value"] < 0.05, name
        assert m["ci_low"] <= m["diff"] <= m["ci_high"], name
    down = bootstrap.paired_bootstrap(weak, strong, n_resamples=300, seed=0)
    m = down["metrics"]["mAP50"]
    assert m["diff"] < 0 and m["ci_high"] < 0 and m["significant"]
    assert m["diff"] == -up["metrics"]["mAP50"]["diff"]
    assert (m["ci_low"], m["ci_high"]) == pytest.approx((-up["metrics"]["mAP50"]["ci_high"],
                                                         -up["metrics"]["mAP50"]["ci_low"]), abs=1e-12)
    flips = up["flips"]
    assert sum(f["a_only"] for f in flips.values()) > sum(f["b_only"] for f in flips.values())
    row = next(iter(flips.values()))
    assert row["a_only"] == 0 or row["examples_a_only"][0].startswith("images/")


# --------------------------------------------------------------------------- (e) gates


def test_gates_refuse_a_better_candidate_that_loses_a_supported_class() -> None:
    rng = np.random.default_rng(6)
    # four common classes and a rare one (a handful of objects)
    labels = make_labels(rng, 150, 5, lam=3.0, class_p=[0.25, 0.25, 0.25, 0.24, 0.01])
    incumbent = make_evidence(rng, labels, [0.4, 0.4, 0.4, 0.9, 1.0], nc=5, iou_low=0.5)
    candidate = make_evidence(rng, labels, [0.95, 0.95, 0.95, 0.6, 0.0], nc=5)  # better overall; loses bird and yak
    # as a promotion runs it: the candidate is a, the baseline b, so every diff is the candidate's gain
    out = bootstrap.paired_bootstrap(candidate, incumbent, n_resamples=300, seed=0,
                                     names=["cat", "dog", "cow", "bird", "yak"])
    score = out["metrics"]["accuracy_score"]
    assert score["diff"] > 0 and score["ci_low"] > 0.0  # better overall, significantly
    support = {k: v["support"] for k, v in out["per_class"].items()}
    assert support["yak"] < 10 <= min(support[k] for k in ("cat", "dog", "cow", "bird"))
    yak = out["per_class"]["yak"]
    assert yak["diff"] < -0.2 and yak["significant"]  # reported, with its (small) support
    settings = {"require_significant": True, "min_delta": 0.0, "max_class_regression": 0.05, "min_class_support": 10}
    failures = gates.evaluate_gates(out, settings)
    assert [(f["gate"], f["subject"]) for f in failures] == [("max_class_regression", "bird")]
    f = failures[0]
    assert set(f) == {"gate", "subject", "value", "ci_low", "ci_high", "a", "b", "support", "threshold", "reason"}
    assert (f["a"], f["b"], f["support"]) == (out["per_class"]["bird"]["a"], out["per_class"]["bird"]["b"], support["bird"])
    assert f["value"] < -0.05 and f["ci_high"] < 0 and f["threshold"] == 0.05
    assert "bird" in f["reason"] and "AP50" in f["reason"]
    # without the support floor the rare class is gated too
    gated = gates.evaluate_gates(out, dict(settings, min_class_support=0))
    assert {f["subject"] for f in gated} == {"bird", "yak"}
    # a loss within the allowance passes
    assert gates.evaluate_gates(out, dict(settings, max_class_regression=1.0)) == []


def test_gate_require_significant_and_size_regression() -> None:
    a, b = pair(8, n_img=60, qa=0.6, qb=0.6)
    out = bootstrap.paired_bootstrap(a, b, n_resamples=200, seed=0)
    fails = gates.evaluate_gates(out, {"require_significant": True, "min_delta": 0.5})
    assert [f["gate"] for f in fails] == ["require_significant"]
    assert fails[0]["subject"] == "accuracy_score" and fails[0]["threshold"] == 0.5
    assert gates.evaluate_gates(out, {"require_significant": False, "min_delta": 0.5}) == []
    # b misses every small object it used to find: a significant size-recall regression
    worse = dict(b, gt_found=np.where(b["gt_bucket"] == 0, False, b["gt_found"]))
    out = bootstrap.paired_bootstrap(worse, a, n_resamples=200, seed=0)  # the candidate is a
    fails = gates.evaluate_gates(out, {"require_significant": False, "max_size_recall_regression": 0.1})
    assert [(f["gate"], f["subject"]) for f in fails] == [("max_size_recall_regression", "small_object_recall")]
    with pytest.raises(ValueError, match="unknown gates"):
        gates.evaluate_gates(out, {"max_regression": 0.1})
