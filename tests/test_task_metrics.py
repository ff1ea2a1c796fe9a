"""Segmentation, pose and obb evaluations against independent references.

(a) every metric of the task's result equals a bare ``YOLO(ckpt).val()`` at the same settings, to the
    bit (``==``), weak and strong checkpoints, every metric family, per class, the operating points;
(b) size recall (segmentation and pose: by box) equals pycocotools' COCOeval on the predictions
    artifact; obb has none;
(c) the artifacts carry the task's geometry, one set of curves per family, an error analysis typed
    with the task's own overlap, and a stored evaluation's analysis gives the same artifacts again;
(d) the label files are read as ultralytics' own ``verify_image_label`` reads them.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from evaluation.families import families, primary
from evaluation.geometry import corners
from evaluation.metrics import f1_score
from tests.task_fixtures import TASK_BATCH, TASK_IMGSZ, TASKS, bare_val, checkpoint, task_dataset
from tests.test_evaluation_metrics import BUCKETS, pooled_from_evalimgs, run_cocoeval
from vocab.scoring import composite_score, resolve_weights
from vocab.tasks import TASKS as TASK_DEFS


@pytest.fixture(scope="module", params=[(t, k) for t in TASKS for k in ("weak", "strong")],
                ids=lambda p: f"{p[0]}-{p[1]}")
def task_run(request, run_eval, tmp_path_factory):
    task, kind = request.param
    run = run_eval(checkpoint(task, kind), task_dataset(tmp_path_factory, task), imgsz=TASK_IMGSZ, batch=TASK_BATCH)
    return task, kind, run


# --------------------------------------------------------------------------- (a) bare model.val()


def test_every_metric_equals_bare_val(task_run, tmp_path_factory) -> None:
    from ultralytics.utils.metrics import smooth

    task, kind, run = task_run
    r = run.result
    bare = bare_val(tmp_path_factory, run.request.model_path, run.data_yaml)
    assert r["task"] == task and set(TASK_DEFS[task].metrics) <= set(r)
    names = [str(bare.names[i]) for i in sorted(bare.names)]
    for fam in families(task):
        m = getattr(bare, fam.attr)
        assert r[fam.metric("mAP50")] == float(m.map50), fam
        assert r[fam.metric("mAP50_95")] == float(m.map), fam
        assert r[fam.metric("precision")] == float(m.mp), fam
        assert r[fam.metric("recall")] == float(m.mr), fam
        assert r[fam.metric("conf_threshold")] == float(m.px[smooth(m.f1_curve.mean(0), 0.1).argmax()]), fam
        for i, c in enumerate(m.ap_class_index):
            row = r["per_class_metrics"][names[int(c)]]
            assert (row[fam.metric("ap50")], row[fam.metric("ap50_95")]) == (float(m.ap50[i]), float(m.ap[i]))
            assert (row[fam.metric("precision")], row[fam.metric("recall")]) == (float(m.p[i]), float(m.r[i]))
            assert row["support"] == int(bare.nt_per_class[int(c)])
    assert r["f1"] == f1_score(float(bare.box.mp), float(bare.box.mr))
    prim = getattr(bare, primary(task).attr)
    assert r["per_class"] == {names[int(c)]: float(prim.ap50[i]) for i, c in enumerate(prim.ap_class_index)}
    assert r["weights"] == resolve_weights(None, task)
    assert r["score"] == composite_score(r, r["weights"])


def test_strong_checkpoints_are_trained_and_better_than_weak(run_eval, tmp_path_factory) -> None:
    for task in TASKS:
        data = task_dataset(tmp_path_factory, task)
        weak, strong = (run_eval(checkpoint(task, k), data, imgsz=TASK_IMGSZ, batch=TASK_BATCH).result
                        for k in ("weak", "strong"))
        key = TASK_DEFS[task].primary
        assert strong[key] > 0.25 and 0 < weak[key] < strong[key], (task, weak[key], strong[key])


# --------------------------------------------------------------------------- (b) size recall vs COCOeval


def coco_gt_by_box(data_yaml: Path) -> tuple[dict, list[Path]]:
    """COCO ground truth with each object's box (a polygon's extent; a pose row's first four numbers),
    read straight from the label files, image sizes with PIL."""
    import yaml
    from PIL import Image

    data = yaml.safe_load(data_yaml.read_text())
    img_dir = Path(data["path"]) / data["val"]
    images, annotations = [], []
    files = sorted(img_dir.glob("*.png"))
    for image_id, path in enumerate(files, start=1):
        with Image.open(path) as im:
            width, height = im.size
        images.append({"id": image_id, "file_name": path.name, "width": width, "height": height})
        for line in (Path(data["path"]) / "labels" / "val" / f"{path.stem}.txt").read_text().splitlines():
            v = [float(x) for x in line.split()]
            if "kpt_shape" in data:
                x, y, w, h = (v[1] - v[3] / 2) * width, (v[2] - v[4] / 2) * height, v[3] * width, v[4] * height
            else:
                xs, ys = np.array(v[1::2]) * width, np.array(v[2::2]) * height
                x, y, w, h = xs.min(), ys.min(), xs.max() - xs.min(), ys.max() - ys.min()
            annotations.append({"id": len(annotations) + 1, "image_id": image_id, "category_id": int(v[0]),
                                "bbox": [x, y, w, h], "area": w * h, "iscrowd": 0})
    cats = [{"id": int(i), "name": str(n)} for i, n in data["names"].items()]
    return {"images": images, "annotations": annotations, "categories": cats}, files


def test_size_recall_equals_cocoeval_and_obb_has_none(task_run) -> None:
    task, kind, run = task_run
    r = run.result
    if not TASK_DEFS[task].size_recall:
        assert not any(k.endswith(("_object_recall", "_object_count", "_object_found")) for k in r)
        return
    gt, _ = coco_gt_by_box(Path(run.request.dataset_path))
    id_of = {im["file_name"]: im["id"] for im in gt["images"]}
    dets = [{"image_id": id_of[p["file_name"]], "category_id": p["category_id"], "bbox": p["bbox"],
             "score": p["score"]} for p in run.predictions if p["score"] >= r["conf_threshold"]]
    found, total, _ = pooled_from_evalimgs(run_cocoeval(gt, dets))
    for b in BUCKETS:
        assert (r[f"{b}_object_count"], r[f"{b}_object_found"]) == (total[b], found[b]), b
    assert sum(total.values()) > 10


# --------------------------------------------------------------------------- (c) artifacts


def test_predictions_carry_the_tasks_geometry(task_run) -> None:
    task, kind, run = task_run
    rows = run.predictions
    conf = run.result[primary(task).metric("conf_threshold")]
    key = {"segmentation": "segmentation", "pose": "keypoints", "obb": "obb"}[task]
    assert rows and all(key in row for row in rows)
    drawn = [row for row in rows if row[key] is not None]
    if task == "obb":
        from PIL import Image

        assert len(drawn) == len(rows)
        images = Path(run.request.dataset_path).parent / "images" / "val"
        for row in rows:
            poly = np.array(row["poly"]).reshape(4, 2)
            assert np.allclose(poly, corners(np.array(row["obb"]))[0])
            with Image.open(images / row["file_name"]) as im:
                width, height = im.size
            lo, hi = np.clip(poly.min(0), 0, [width, height]), np.clip(poly.max(0), 0, [width, height])
            assert np.allclose(row["bbox"], [*lo, *(hi - lo)])
        return
    assert [row["score"] >= conf for row in rows] == [row[key] is not None for row in rows]
    assert drawn
    for row in drawn:
        x, y, w, h = row["bbox"]
        if task == "pose":
            kpts = np.array(row["keypoints"]).reshape(-1, 3)
            assert kpts.shape == (4, 3) and (kpts[:, :2] >= 0).all()
        else:
            pts = np.concatenate([np.array(p).reshape(-1, 2) for p in row["segmentation"]])
            assert len(pts) >= 3  # a mask drawn by the model lies (near) its box
            assert pts[:, 0].min() >= x - 4 and pts[:, 0].max() <= x + w + 4


def test_curves_per_family_and_errors_typed_with_the_tasks_overlap(task_run) -> None:
    task, kind, run = task_run
    work = run.predictions_path.parent
    curves = json.loads((work / "curves.json").read_text())
    errors = json.loads((work / "errors.json").read_text())
    assert curves["families"] == [f.name for f in families(task)]
    for fam in families(task):
        part = curves if fam.name == "box" else curves[fam.name]
        assert part["operating_point"]["conf_threshold"] == run.result[fam.metric("conf_threshold")]
        assert part["pr"]["all"]
    assert errors["overlap"] == {"segmentation": "mask IoU", "pose": "OKS", "obb": "ProbIoU"}[task]
    assert errors["conf_threshold"] == run.result[primary(task).metric("conf_threshold")]
    assert errors["overall"] == run.result["error_counts"]
    assert errors["overall"]["gt"] == sum(len(p.read_text().splitlines())
                                          for p in (Path(run.request.dataset_path).parent / "labels" / "val").iterdir())


def test_a_stored_evaluation_is_analysed_again_to_the_same_artifacts(task_run, tmp_path) -> None:
    from evaluation.analysis_store import analyse_stored

    task, kind, run = task_run
    for name in ("predictions.json", "evidence.npz"):
        shutil.copy(run.predictions_path.parent / name, tmp_path / name)
    r = run.result
    analyse_stored({
        "predictions_path": str(tmp_path / "predictions.json"), "evidence_path": str(tmp_path / "evidence.npz"),
        "dataset_path": str(run.request.dataset_path), "dataset_fingerprint": r["dataset_fingerprint"],
        "class_names": r["class_names"],
        "operating": {k: r[k] for k in ("conf_threshold", "precision", "recall", "f1")},
    })
    for name in ("errors.json", "curves.json"):
        again = json.loads((tmp_path / name).read_text())
        assert again == json.loads((run.predictions_path.parent / name).read_text()), name


# --------------------------------------------------------------------------- (d) labels as ultralytics reads them


@pytest.mark.parametrize("task", TASKS)
def test_labels_are_read_as_ultralytics_reads_them(task: str, tmp_path_factory, ultralytics_env) -> None:
    from ultralytics.data.utils import verify_image_label

    from evaluation.dataset_yaml import label_path_for
    from evaluation.datasets import load_dataset

    dataset = load_dataset(task_dataset(tmp_path_factory, task), task=task)
    nkpt, ndim = dataset.label_spec.kpt_shape or (0, 0)
    for image, labels in dataset.labels.items():
        out = verify_image_label((str(image), str(label_path_for(image)), "", task == "pose", dataset.nc,
                                  nkpt, ndim, False))
        lb, segments, keypoints = out[1], out[3], out[4]
        assert len(lb) == len(labels)
        ours = np.array([[x.cls, x.cx, x.cy, x.w, x.h] for x in labels]).reshape(-1, 5)
        assert np.allclose(ours, lb, atol=1e-6)
        if task == "pose":
            assert np.allclose(np.array([x.points for x in labels]).reshape(keypoints.shape), keypoints, atol=1e-6)
        else:
            assert all(np.allclose(np.reshape(x.points, (-1, 2)), s, atol=1e-6) for x, s in zip(labels, segments))
