"""Paired statistics of segmentation, pose and obb, each on its task's own matching (evaluation.stats).

(a) the evidence holds the task, the validator's image order and each metric family's own matches;
(b) the full-sample numbers from the evidence equal the validator's to the bit: ``reference`` (every
    family, per class), ultralytics' own ``ap_per_class`` on the stored matrices, the statistics'
    ``a``/``b``; the bootstrap engine's full sample agrees to float rounding (its arithmetic differs);
(c) obb: the stored rotated boxes, matched again against the label files with ultralytics'
    ``batch_probiou`` and a plain matching loop, give the validator's matches;
(d) a re-saved copy of a checkpoint has identical evidence; weak against strong: strong is
    significantly better on the primary metric, the statistics' shape, the gates on the primary
    family's per-class AP50, ``same_predictions``;
(e) the overlap measures (OKS, ProbIoU, polygon mask IoU) against ultralytics' and pycocotools' own.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from evaluation.evidence import load_evidence, same_predictions
from evaluation.families import FAMILY_METRICS, families, primary
from evaluation.stats import bootstrap, engine, gates, reference
from tests.task_fixtures import TASK_BATCH, TASK_IMGSZ, TASKS, checkpoint, task_dataset
from vocab.tasks import TASKS as TASK_DEFS

IOU_THRESHOLDS = np.linspace(0.5, 0.95, 10)


@pytest.fixture(scope="module", params=[(t, k) for t in TASKS for k in ("weak", "strong")],
                ids=lambda p: f"{p[0]}-{p[1]}")
def task_run(request, run_eval, tmp_path_factory):
    task, kind = request.param
    run = run_eval(checkpoint(task, kind), task_dataset(tmp_path_factory, task), imgsz=TASK_IMGSZ, batch=TASK_BATCH)
    return task, kind, run, load_evidence(run.evidence_path)


# --------------------------------------------------------------------------- (a), (b)


def test_evidence_holds_the_task_and_each_familys_matches(task_run) -> None:
    task, kind, run, ev = task_run
    assert str(ev["task"]) == task
    n = len(ev["image_names"])
    assert sorted(ev["val_order"].tolist()) == list(range(n)) and ev["val_order"].tolist() != list(range(n))
    assert ev["conf"].dtype == np.float32
    for fam in families(task):
        assert ev[fam.evidence_key].shape == (len(ev["conf"]), 10) and ev[fam.evidence_key].dtype == bool
    assert not ({"tp_mask", "tp_pose"} - {f.evidence_key for f in families(task)}) & set(ev)


def test_full_sample_numbers_equal_the_validators_to_the_bit(task_run) -> None:
    from ultralytics.utils.metrics import ap_per_class

    task, kind, run, ev = task_run
    r = run.result
    values = reference.task_values(ev)
    for key in TASK_DEFS[task].metrics:
        assert values[key] == r[key], key
    names = r["class_names"]
    assert {names[c]: v["ap50"] for c, v in values["per_class"].items()} == r["per_class"]
    order = reference.validator_order(ev)
    for fam in families(task):
        res = reference.ap_from_evidence(ev, tp_key=fam.evidence_key)
        for c, row in res["per_class"].items():
            ours = r["per_class_metrics"][names[c]]
            assert (row["ap50"], row["ap50_95"]) == (ours[fam.metric("ap50")], ours[fam.metric("ap50_95")])
        # ultralytics' own ap_per_class on the stored arrays, in the validator's order
        out = ap_per_class(ev[fam.evidence_key][order], ev["conf"][order], ev["pred_cls"][order], ev["target_cls"])
        p, rc, ap = out[2], out[3], out[5]
        assert (ap[:, 0].mean(), ap.mean(), p.mean(), rc.mean()) == tuple(
            r[fam.metric(k)] for k in FAMILY_METRICS), fam
        eng = engine.BootstrapEngine(ev, fam.evidence_key).block(np.ones((1, len(ev["image_names"])), np.int32))
        for k in FAMILY_METRICS:
            assert eng[k][0] == pytest.approx(r[fam.metric(k)], abs=1e-12), (fam, k)
    stats = bootstrap.statistics(ev, ev, names=names, n_resamples=20, weights=r["weights"])
    for key in TASK_DEFS[task].metrics:
        assert stats["metrics"][key]["a"] == r[key] and stats["metrics"][key]["diff"] == 0.0, key
    assert stats["metrics"]["accuracy_score"]["a"] == pytest.approx(
        reference.accuracy_score(r, r["weights"], task), abs=1e-15)


# --------------------------------------------------------------------------- (c) obb matched again


def _match(iou: np.ndarray, same: np.ndarray, threshold: float) -> np.ndarray:
    """ultralytics' match_predictions for one threshold, as a plain loop: candidate pairs by falling IoU,
    each prediction keeps its best ground truth; a ground truth wanted by several goes to the first of them
    in prediction order (the most confident)."""
    pairs = sorted(((iou[g, d], g, d) for g, d in zip(*np.nonzero((iou >= threshold) & same))), key=lambda t: -t[0])
    best_of_pred: dict[int, int] = {}
    for _, g, d in pairs:
        best_of_pred.setdefault(int(d), int(g))
    taken: dict[int, int] = {}
    for d in sorted(best_of_pred):
        taken.setdefault(best_of_pred[d], d)
    out = np.zeros(iou.shape[1], dtype=bool)
    out[list(taken.values())] = True
    return out


def test_obb_rotated_boxes_matched_again_give_the_validators_matches(run_eval, tmp_path_factory) -> None:
    import torch
    from PIL import Image
    from ultralytics.utils.metrics import batch_probiou
    from ultralytics.utils.ops import xyxyxyxy2xywhr

    data = task_dataset(tmp_path_factory, "obb")
    run = run_eval(checkpoint("obb", "strong"), data, imgsz=TASK_IMGSZ, batch=TASK_BATCH)
    ev = load_evidence(run.evidence_path)
    rows = run.predictions
    tp = np.zeros((len(rows), 10), dtype=bool)
    near = np.zeros(len(rows), dtype=bool)  # an IoU within 1e-4 of a threshold: float32 vs float64 may differ
    start = 0
    for name in ev["image_names"]:
        mine = [row for row in rows if row["file_name"] == str(name)]
        with Image.open(data.parent / "images" / "val" / str(name)) as im:
            width, height = im.size
        lines = [[float(v) for v in ln.split()] for ln in
                 (data.parent / "labels" / "val" / f"{Path(str(name)).stem}.txt").read_text().splitlines()]
        if mine and lines:
            pts = np.array([ln[1:] for ln in lines]).reshape(-1, 4, 2) * [width, height]
            gt = xyxyxyxy2xywhr(pts)
            iou = batch_probiou(torch.tensor(gt), torch.tensor([row["obb"] for row in mine])).numpy()
            same = np.array([ln[0] for ln in lines])[:, None] == np.array([row["category_id"] for row in mine])[None]
            for t, thr in enumerate(IOU_THRESHOLDS):
                tp[start:start + len(mine), t] = _match(iou, same, thr)
            near[start:start + len(mine)] = (np.abs(iou[:, :, None] - IOU_THRESHOLDS) < 1e-4).any((0, 2))
        start += len(mine)
    assert start == len(ev["conf"]) and ev["tp"].any()
    differ = (tp != ev["tp"]).any(1)
    assert not (differ & ~near).any()
    assert differ.sum() <= 1


# --------------------------------------------------------------------------- (d) paired statistics


@pytest.mark.parametrize("task", TASKS)
def test_a_resaved_checkpoint_has_identical_evidence(task: str, run_eval, tmp_path_factory) -> None:
    import torch

    strong = checkpoint(task, "strong")
    ckpt = torch.load(strong, map_location="cpu", weights_only=False)
    ckpt["date"] = "resaved"
    copy = tmp_path_factory.mktemp("resaved") / f"{task}_copy.pt"
    torch.save(ckpt, copy)
    data = task_dataset(tmp_path_factory, task)
    runs = [run_eval(p, data, imgsz=TASK_IMGSZ, batch=TASK_BATCH) for p in (strong, copy)]
    assert runs[0].result["checkpoint_sha256"] != runs[1].result["checkpoint_sha256"]
    ev_a, ev_b = (load_evidence(r.evidence_path) for r in runs)
    assert same_predictions(ev_a, ev_b)
    key = primary(task).evidence_key
    changed = dict(ev_b, **{key: ~ev_b[key]})  # one family's matches differ: not the same predictions
    assert not same_predictions(ev_a, changed)


@pytest.mark.parametrize("task", TASKS)
def test_strong_beats_weak_significantly_on_the_tasks_primary_metric(task: str, run_eval, tmp_path_factory) -> None:
    data = task_dataset(tmp_path_factory, task)
    weak_run, strong_run = (run_eval(checkpoint(task, k), data, imgsz=TASK_IMGSZ, batch=TASK_BATCH)
                            for k in ("weak", "strong"))
    weak, strong = load_evidence(weak_run.evidence_path), load_evidence(strong_run.evidence_path)
    weak_result, strong_result = weak_run.result, strong_run.result
    names = weak_result["class_names"]
    out = bootstrap.statistics(strong, weak, names=names, n_resamples=300, seed=0)  # a - b: strong minus weak
    json.dumps(out)
    assert (out["task"], out["primary"]) == (task, TASK_DEFS[task].primary)
    assert out["per_class_metric"] == primary(task).metric("ap50")
    assert set(bootstrap.bootstrapped_metrics(task)) <= set(out["metrics"])
    assert not set(out["metrics"]) - set(bootstrap.bootstrapped_metrics(task)) - {"inference_ms", "score"}
    m = out["metrics"][TASK_DEFS[task].primary]
    assert m["diff"] > 0 and m["ci_low"] > 0 and m["significant"], m
    assert out["metrics"]["accuracy_score"]["diff"] > 0
    assert set(out["per_class"]) <= set(names) and out["per_class"]
    assert gates.evaluate_gates(out, {"require_significant": True, "max_class_regression": 0.0,
                                      "min_class_support": 0}) == []
    back = bootstrap.statistics(weak, strong, names=names, n_resamples=300, seed=0)  # weak as the candidate
    failed = gates.evaluate_gates(back, {"require_significant": True, "max_class_regression": 0.0,
                                         "min_class_support": 0})
    assert {f["gate"] for f in failed} == {"require_significant", "max_class_regression"}
    ap50 = primary(task).metric("ap50").replace("_", " ").replace("ap50", "AP50")  # mask AP50, pose AP50, AP50
    for f in failed[1:]:  # the primary family's per-class AP50, the results' own per_class
        assert f": {ap50} " in f["reason"], f["reason"]
        row = back["per_class"][f["subject"]]
        assert (row["a"], row["b"]) == (weak_result["per_class"][f["subject"]], strong_result["per_class"][f["subject"]])
    with pytest.raises(ValueError, match="one task"):
        bootstrap.statistics(strong, dict(weak, task=np.array("detection")), n_resamples=10)


# --------------------------------------------------------------------------- (e) overlap measures


def test_oks_and_probiou_equal_ultralytics() -> None:
    import torch
    from ultralytics.utils.metrics import batch_probiou, kpt_iou

    from evaluation.geometry import oks, probiou

    rng = np.random.default_rng(0)
    gt = np.concatenate([rng.uniform(0, 50, (5, 4, 2)), rng.integers(0, 3, (5, 4, 1))], 2)
    pred = np.concatenate([gt[rng.integers(0, 5, 7), :, :2] + rng.normal(0, 3, (7, 4, 2)), rng.random((7, 4, 1))], 2)
    area = rng.uniform(50, 500, 5)
    sigma = rng.uniform(0.05, 0.2, 4)
    theirs = kpt_iou(torch.tensor(gt), torch.tensor(pred), torch.tensor(area), sigma.tolist()).numpy()
    assert np.allclose(oks(pred, gt, area, sigma), theirs.T, atol=1e-12)
    a = np.concatenate([rng.uniform(10, 60, (6, 2)), rng.uniform(3, 30, (6, 2)), rng.uniform(-1, 2.5, (6, 1))], 1)
    b = np.concatenate([a[rng.integers(0, 6, 9), :2] + rng.normal(0, 4, (9, 2)), rng.uniform(3, 30, (9, 2)),
                        rng.uniform(-1, 2.5, (9, 1))], 1)
    assert np.allclose(probiou(b, a), batch_probiou(torch.tensor(a), torch.tensor(b)).numpy().T, atol=1e-12)


def test_mask_iou_of_the_artifacts_polygons_agrees_with_pycocotools(run_eval, tmp_path_factory) -> None:
    from pycocotools import mask as mask_utils

    from evaluation.geometry import polygon_iou

    data = task_dataset(tmp_path_factory, "segmentation")
    run = run_eval(checkpoint("segmentation", "strong"), data, imgsz=TASK_IMGSZ, batch=TASK_BATCH)
    from PIL import Image

    compared = 0
    for name in sorted({row["file_name"] for row in run.predictions}):
        polys = [row["segmentation"] for row in run.predictions if row["file_name"] == name and row["segmentation"]]
        lines = (data.parent / "labels" / "val" / f"{Path(name).stem}.txt").read_text().splitlines()
        with Image.open(data.parent / "images" / "val" / name) as im:
            width, height = im.size
        gt = [(np.array([float(v) for v in ln.split()[1:]]).reshape(-1, 2) * [width, height]).ravel().tolist()
              for ln in lines]
        if not polys or not gt:
            continue
        ours = polygon_iou(polys, [[g] for g in gt], (height, width))
        dt = [mask_utils.merge(mask_utils.frPyObjects(p, height, width)) for p in polys]
        gts = [mask_utils.merge(mask_utils.frPyObjects([g], height, width)) for g in gt]
        theirs = mask_utils.iou(dt, gts, [0] * len(gts))
        assert np.abs(ours - theirs).max() < 0.1, name
        clear = np.abs(theirs - 0.5) > 0.1
        assert ((ours >= 0.5) == (theirs >= 0.5))[clear].all(), name
        compared += ours.size
    assert compared > 10
