"""The numbers of evaluate() against independent references (docs/metrics.md).

(a) mAP50, mAP50_95, P, R equal a bare ``YOLO(ckpt).val()`` with the same arguments;
(b) size-bucket recall equals pycocotools' COCOeval on the predictions artifact and a ground truth
    built here from the YOLO label files; the artifact's format; ``coco_match`` and ``size_recall``
    against COCOeval on randomized boxes with exact ties and boundary areas.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from PIL import Image

from evaluation.size_recall import ImageBoxes, coco_match, size_recall

BUCKETS = ("small", "medium", "large")
# DESIGN's buckets (small < 32^2 <= medium <= 96^2 < large) as COCOeval's inclusive areaRng.
COCO_AREA_RNG = {
    "small": [0.0, math.nextafter(1024.0, 0.0)],
    "medium": [1024.0, 9216.0],
    "large": [math.nextafter(9216.0, math.inf), 1e10],
}
IMG_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp"}


# --------------------------------------------------------------------------- independent COCO helpers


def coco_gt_from_yolo_labels(data_yaml: Path) -> dict[str, Any]:
    """A COCO ground-truth dict built straight from the YOLO label text files, image sizes read with PIL."""
    data = yaml.safe_load(Path(data_yaml).read_text())
    root = Path(data["path"])
    img_dir = root / data["val"]
    parts = list(img_dir.parts)
    parts[len(parts) - 1 - parts[::-1].index("images")] = "labels"
    label_dir = Path(*parts)
    images, annotations = [], []
    files = sorted(p for p in img_dir.rglob("*") if p.suffix.lower() in IMG_SUFFIXES)
    for image_id, path in enumerate(files, start=1):
        with Image.open(path) as im:
            width, height = im.size
        rel = path.relative_to(img_dir).as_posix()
        images.append({"id": image_id, "file_name": rel, "width": width, "height": height})
        label = label_dir / Path(rel).with_suffix(".txt")
        lines = label.read_text().split("\n") if label.exists() else []
        for line in lines:
            if not line.strip():
                continue
            c, cx, cy, w, h = (float(v) for v in line.split())
            x, y, bw, bh = (cx - w / 2) * width, (cy - h / 2) * height, w * width, h * height
            annotations.append({
                "id": len(annotations) + 1, "image_id": image_id, "category_id": int(c),
                "bbox": [x, y, bw, bh], "area": bw * bh, "iscrowd": 0,
            })
    names = data["names"]
    categories = [{"id": int(i), "name": str(n)} for i, n in (names.items() if isinstance(names, dict)
                                                              else enumerate(names))]
    return {"images": images, "annotations": annotations, "categories": categories}


def run_cocoeval(gt: dict[str, Any], dets: list[dict[str, Any]], *, max_dets: int = 100,
                 area_rng: dict[str, list[float]] = COCO_AREA_RNG):
    """COCOeval at IoU 0.5 with the given area ranges; returns the evaluated COCOeval object."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt = COCO()
        coco_gt.dataset = json.loads(json.dumps(gt))
        coco_gt.createIndex()
        coco_dt = coco_gt.loadRes(json.loads(json.dumps(dets))) if dets else _empty_res(coco_gt)
        ev = COCOeval(coco_gt, coco_dt, "bbox")
        ev.params.iouThrs = np.array([0.5])
        ev.params.areaRng = [area_rng[b] for b in area_rng]
        ev.params.areaRngLbl = list(area_rng)
        ev.params.maxDets = [max_dets]
        ev.params.imgIds = sorted(coco_gt.getImgIds())
        ev.evaluate()
    return ev


def _empty_res(coco_gt):
    from pycocotools.coco import COCO

    res = COCO()
    res.dataset = {"images": list(coco_gt.dataset["images"]), "annotations": [],
                   "categories": list(coco_gt.dataset["categories"])}
    res.createIndex()
    return res


def pooled_from_evalimgs(ev, area_rng: dict[str, list[float]] = COCO_AREA_RNG):
    """Per bucket: (found, total) pooled over images and categories, and the ids of found GT boxes."""
    label_of = {tuple(r): label for label, r in area_rng.items()}
    found = dict.fromkeys(area_rng, 0)
    total = dict.fromkeys(area_rng, 0)
    found_ids: dict[str, set[int]] = {b: set() for b in area_rng}
    for e in ev.evalImgs:
        if e is None:
            continue
        b = label_of[tuple(e["aRng"])]
        in_range = np.asarray(e["gtIgnore"]) == 0
        hit = np.asarray(e["gtMatches"])[0] > 0
        total[b] += int(in_range.sum())
        found[b] += int((hit & in_range).sum())
        found_ids[b].update(int(g) for g, ok in zip(e["gtIds"], hit & in_range) if ok)
    return found, total, found_ids


# --------------------------------------------------------------------------- (a) bare model.val()


@pytest.fixture(scope="module")
def bare_val(ultralytics_env, strong_eval, tmp_path_factory):
    """A bare ``YOLO(ckpt).val()`` with the arguments strong_eval used, on the same sanitised YAML."""
    from ultralytics import YOLO

    req = strong_eval.request
    return YOLO(str(req.model_path)).val(
        data=str(strong_eval.data_yaml), imgsz=req.imgsz, batch=req.batch, device="cpu", plots=False,
        save_dir=str(tmp_path_factory.mktemp("bare_val").resolve()),
    )


def test_checkpoint_is_trained(strong_eval):
    # The comparisons below are only meaningful on a detector that finds things.
    assert strong_eval.result["mAP50"] > 0.3, strong_eval.result["mAP50"]


def test_core_metrics_equal_bare_val(strong_eval, bare_val):
    r = strong_eval.result
    box = bare_val.box
    assert strong_eval.device == "cpu"
    assert r["mAP50"] == pytest.approx(float(box.map50), abs=1e-9)
    assert r["mAP50_95"] == pytest.approx(float(box.map), abs=1e-9)
    assert r["precision"] == pytest.approx(float(box.mp), abs=1e-9)
    assert r["recall"] == pytest.approx(float(box.mr), abs=1e-9)
    p, rc = float(box.mp), float(box.mr)
    assert r["f1"] == pytest.approx(0.0 if p + rc == 0 else 2 * p * rc / (p + rc), abs=1e-9)


def test_operating_point_and_per_class_equal_bare_val(strong_eval, bare_val):
    from ultralytics.utils.metrics import smooth

    r = strong_eval.result
    box = bare_val.box
    assert r["conf_threshold"] == pytest.approx(float(box.px[smooth(box.f1_curve.mean(0), 0.1).argmax()]), abs=1e-12)
    names = bare_val.names
    expected = {names[int(c)]: float(box.ap50[i]) for i, c in enumerate(box.ap_class_index)}
    assert set(r["per_class"]) == set(expected)
    for name, ap50 in expected.items():
        assert r["per_class"][name] == pytest.approx(ap50, abs=1e-9)
        i = list(box.ap_class_index).index(list(names.values()).index(name))
        assert r["per_class_metrics"][name]["ap50_95"] == pytest.approx(float(box.ap[i]), abs=1e-9)
        assert r["per_class_metrics"][name]["support"] == int(bare_val.nt_per_class[box.ap_class_index[i]])


# --------------------------------------------------------------------------- (b) size recall vs COCOeval


@pytest.fixture(scope="module", params=["synth", "synth_no_large"])
def eval_and_gt(request, strong_eval, strong_eval_no_large):
    run = strong_eval if request.param == "synth" else strong_eval_no_large
    return request.param, run, coco_gt_from_yolo_labels(Path(run.request.dataset_path))


def test_dataset_shapes_cover_the_hard_cases(eval_and_gt):
    name, run, gt = eval_and_gt
    assert any(im["width"] != im["height"] for im in gt["images"]), "no non-square image"
    with_boxes = {a["image_id"] for a in gt["annotations"]}
    assert any(im["id"] not in with_boxes for im in gt["images"]), "no empty image"
    areas = np.array([a["area"] for a in gt["annotations"]])
    assert (areas < 1024).any() and ((areas >= 1024) & (areas <= 9216)).any()
    assert (areas > 9216).any() == (name == "synth")
    assert run.result["images"] == len(gt["images"])


def test_size_recall_equals_cocoeval(eval_and_gt):
    name, run, gt = eval_and_gt
    r = run.result
    conf = r["conf_threshold"]
    assert conf is not None and conf > 0
    id_of = {im["file_name"]: im["id"] for im in gt["images"]}
    dets = [
        {"image_id": id_of[p["file_name"]], "category_id": p["category_id"], "bbox": p["bbox"], "score": p["score"]}
        for p in run.predictions
        if p["score"] >= conf
    ]
    assert dets, "no detection above the operating point"
    assert r["size_recall_max_dets"] == 100
    ev = run_cocoeval(gt, dets, max_dets=100)
    found, total, _ = pooled_from_evalimgs(ev)
    for b in BUCKETS:
        assert r[f"{b}_object_count"] == total[b], b
        assert r[f"{b}_object_found"] == found[b], b
        if total[b] == 0:
            assert r[f"{b}_object_recall"] is None, b
        else:
            assert r[f"{b}_object_recall"] == pytest.approx(found[b] / total[b], abs=1e-9), b
    # Meaningful: the strong checkpoint finds some but the matching decides.
    assert 0 < sum(found.values()) <= sum(total.values())


def test_per_box_found_flags_equal_cocoeval(eval_and_gt):
    """The evidence file's per-GT found flags are exactly COCOeval's matched in-range GT boxes."""
    from evaluation.evidence import load_evidence

    name, run, gt = eval_and_gt
    conf = run.result["conf_threshold"]
    id_of = {im["file_name"]: im["id"] for im in gt["images"]}
    dets = [{"image_id": id_of[p["file_name"]], "category_id": p["category_id"], "bbox": p["bbox"],
             "score": p["score"]} for p in run.predictions if p["score"] >= conf]
    _, _, found_ids = pooled_from_evalimgs(run_cocoeval(gt, dets))
    ev = load_evidence(run.evidence_path)
    assert float(ev["conf_threshold"]) == conf
    anns_by_image: dict[int, list[dict]] = {}
    for a in gt["annotations"]:
        anns_by_image.setdefault(a["image_id"], []).append(a)
    off = ev["gt_offsets"]
    for i, fname in enumerate(ev["image_names"]):
        anns = anns_by_image.get(id_of[str(fname)], [])
        lo, hi = int(off[i]), int(off[i + 1])
        assert hi - lo == len(anns), fname
        for a, bucket, ok, cls in zip(anns, ev["gt_bucket"][lo:hi], ev["gt_found"][lo:hi], ev["gt_cls"][lo:hi]):
            assert int(cls) == a["category_id"]
            assert BUCKETS[int(bucket)] == next(b for b, (lo_a, hi_a) in COCO_AREA_RNG.items()
                                                if lo_a <= a["area"] <= hi_a)
            assert bool(ok) == (a["id"] in found_ids[BUCKETS[int(bucket)]]), (fname, a)


def test_no_large_objects_gives_null_and_renormalised_score(strong_eval_no_large):
    r = strong_eval_no_large.result
    assert r["large_object_count"] == 0 and r["large_object_found"] == 0
    assert r["large_object_recall"] is None
    assert r["small_object_recall"] is not None and r["medium_object_recall"] is not None
    applied = r["weights"]
    # The custom weight is kept; the defaults fill the remaining 0.8.
    assert applied["large_object_recall"] == 0.2
    defaults = {"mAP50_95": 0.35, "mAP50": 0.20, "small_object_recall": 0.20, "f1": 0.15, "speed": 0.10}
    for k, w in defaults.items():
        assert applied[k] == pytest.approx(w * 0.8, abs=1e-12)
    speed = min(1.0, max(0.0, (500.0 - r["inference_ms"]) / 450.0))
    values = {k: (speed if k == "speed" else r[k]) for k in defaults}
    expected = sum(applied[k] * values[k] for k in defaults) / sum(applied[k] for k in defaults)
    assert r["score"] == pytest.approx(expected, abs=1e-12)
    # Counting the null as 0 would give a different (lower) number.
    assert r["score"] != pytest.approx(sum(applied[k] * values[k] for k in defaults), abs=1e-6)


def test_predictions_artifact_format(strong_eval):
    preds = strong_eval.predictions
    assert isinstance(preds, list) and preds
    gt = coco_gt_from_yolo_labels(Path(strong_eval.request.dataset_path))
    sizes = {im["file_name"]: (im["width"], im["height"]) for im in gt["images"]}
    val_dir = Path(yaml.safe_load(strong_eval.data_yaml.read_text())["path"]) / "images" / "val"
    seen = set()
    full_precision = False
    for p in preds:
        assert set(p) == {"file_name", "category_id", "bbox", "score"}, p
        assert isinstance(p["file_name"], str) and not Path(p["file_name"]).is_absolute()
        assert (val_dir / p["file_name"]).is_file()
        assert type(p["category_id"]) is int and 0 <= p["category_id"] < 3
        assert isinstance(p["bbox"], list) and len(p["bbox"]) == 4
        assert all(isinstance(v, float) for v in p["bbox"])
        x, y, w, h = p["bbox"]
        width, height = sizes[p["file_name"]]
        assert w >= 0 and h >= 0
        assert -1e-6 <= x and x + w <= width + 1e-6 and -1e-6 <= y and y + h <= height + 1e-6
        assert isinstance(p["score"], float) and 0.001 <= p["score"] <= 1.0
        full_precision |= any(round(v, 3) != v for v in p["bbox"])
        seen.add(p["file_name"])
    assert full_precision, "bbox values look rounded"
    assert seen <= set(sizes)
    assert max(sum(1 for p in preds if p["file_name"] == f) for f in seen) <= 300


# --------------------------------------------------------------------------- coco_match / size_recall unit tests

SIDES = [4.0, 8.0, 16.0, 31.0, 32.0, 33.0, 64.0, 95.0, 96.0, 97.0, 100.0]


def _random_scene(rng: np.random.Generator, n_cls: int = 1):
    """GT and detections on one image, built to hit exact IoU ties, IoU == 0.5 and bucket-boundary areas."""
    n_gt = int(rng.integers(0, 7))
    gts = []
    for _ in range(n_gt):
        if rng.random() < 0.3 and gts:
            gts.append(list(gts[int(rng.integers(len(gts)))]))  # duplicate GT: an exact IoU tie
            continue
        w, h = (float(rng.choice(SIDES)), float(rng.choice(SIDES))) if rng.random() < 0.7 else tuple(
            rng.uniform(2, 120, 2))
        gts.append([float(rng.integers(0, 60)), float(rng.integers(0, 60)), w, h])
    dets = []
    for _ in range(int(rng.integers(0, 9))):
        kind = rng.random()
        if gts and kind < 0.3:
            dets.append(list(gts[int(rng.integers(len(gts)))]))  # IoU 1
        elif gts and kind < 0.5:
            x, y, w, h = gts[int(rng.integers(len(gts)))]
            dets.append([x, y, 2 * w, h] if rng.random() < 0.5 else [x, y, w, 2 * h])  # IoU exactly 0.5
        elif gts and kind < 0.8:
            x, y, w, h = gts[int(rng.integers(len(gts)))]
            dets.append([x + rng.normal(0, w / 5), y + rng.normal(0, h / 5), w * rng.uniform(0.6, 1.5),
                         h * rng.uniform(0.6, 1.5)])
        else:
            dets.append([float(rng.integers(0, 80)), float(rng.integers(0, 80)), float(rng.choice(SIDES)),
                         float(rng.choice(SIDES))])
    scores = rng.choice([0.9, 0.7, 0.7, 0.5, 0.3], size=len(dets)) if rng.random() < 0.5 else rng.random(len(dets))
    gt_cls = rng.integers(0, n_cls, len(gts))
    det_cls = rng.integers(0, n_cls, len(dets))
    return (np.array(gts, dtype=np.float64).reshape(-1, 4), gt_cls, np.array(dets, dtype=np.float64).reshape(-1, 4),
            np.asarray(scores, dtype=np.float64), det_cls)


def _scenes_to_coco(scenes):
    images, anns, dets = [], [], []
    for image_id, (g, gc, d, s, dc) in enumerate(scenes, start=1):
        images.append({"id": image_id, "file_name": f"{image_id}.png", "width": 200, "height": 200})
        for box, c in zip(g.tolist(), gc.tolist()):
            anns.append({"id": len(anns) + 1, "image_id": image_id, "category_id": int(c), "bbox": box,
                         "area": box[2] * box[3], "iscrowd": 0})
        for box, sc, c in zip(d.tolist(), s.tolist(), dc.tolist()):
            dets.append({"image_id": image_id, "category_id": int(c), "bbox": box, "score": sc})
    n_cls = 1 + max([int(c) for sc in scenes for c in sc[1]] + [int(c) for sc in scenes for c in sc[4]] + [0])
    cats = [{"id": c, "name": str(c)} for c in range(n_cls)]
    return {"images": images, "annotations": anns, "categories": cats}, dets


@pytest.mark.parametrize("max_dets", [100, 3])
@pytest.mark.parametrize("seed", range(12))
def test_coco_match_equals_cocoeval(seed, max_dets):
    rng = np.random.default_rng(seed)
    scenes = [_random_scene(rng) for _ in range(60)]
    gt, dets = _scenes_to_coco(scenes)
    ev = run_cocoeval(gt, dets, max_dets=max_dets)
    label_of = {tuple(r): label for label, r in COCO_AREA_RNG.items()}
    coco = {(e["image_id"], label_of[tuple(e["aRng"])]): e for e in ev.evalImgs if e is not None}
    first_gt_id = 1
    compared = 0
    for image_id, (g, _, d, s, _) in enumerate(scenes, start=1):
        ids = list(range(first_gt_id, first_gt_id + len(g)))
        first_gt_id += len(g)
        for label, rng_ in COCO_AREA_RNG.items():
            ours = coco_match(d, s, g, g[:, 2] * g[:, 3], tuple(rng_), max_dets=max_dets)
            e = coco.get((image_id, label))
            if e is None:
                assert len(g) == 0 and len(d) == 0
                continue
            theirs = {int(gid) for gid, m in zip(e["gtIds"], e["gtMatches"][0]) if m > 0}
            assert {gid for gid, ok in zip(ids, ours) if ok} == theirs, (seed, image_id, label)
            compared += len(g)
    assert compared > 100


@pytest.mark.parametrize("seed", range(8))
def test_size_recall_pooled_equals_cocoeval(seed):
    rng = np.random.default_rng(1000 + seed)
    scenes = [_random_scene(rng, n_cls=3) for _ in range(40)]
    conf = float(rng.choice([0.0, 0.5, 0.7, 0.45]))
    images = [ImageBoxes(d, s, dc, g, gc) for g, gc, d, s, dc in scenes]
    ours = size_recall(images, conf)
    gt, dets = _scenes_to_coco(scenes)
    found, total, found_ids = pooled_from_evalimgs(run_cocoeval(gt, [x for x in dets if x["score"] >= conf]))
    for b in BUCKETS:
        assert ours.total[b] == total[b] and ours.found[b] == found[b], (b, ours, found, total)
        assert ours.recall[b] == (found[b] / total[b] if total[b] else None)
    flat_found = np.concatenate(ours.gt_found)
    flat_bucket = np.concatenate(ours.gt_bucket)
    for gid, (ok, b) in enumerate(zip(flat_found, flat_bucket), start=1):
        assert bool(ok) == (gid in found_ids[BUCKETS[int(b)]])


def test_coco_match_boundaries_by_hand():
    """Hand-made cases: IoU exactly 0.5 matches; areas 1023/1024 and 9216/9217 fall in their buckets."""
    gt = np.array([[0, 0, 10, 10]], float)
    det = np.array([[0, 0, 20, 10]], float)  # IoU = 100 / 200 = 0.5 exactly
    assert coco_match(det, np.array([0.9]), gt, np.array([100.0]), (0.0, 1e10)).tolist() == [True]
    det = np.array([[0, 0, 20.0001, 10]], float)  # IoU just below 0.5
    assert coco_match(det, np.array([0.9]), gt, np.array([100.0]), (0.0, 1e10)).tolist() == [False]
    boxes = [[0, 0, 31, 33], [0, 0, 32, 32], [0, 0, 96, 96], [0, 0, 97, 95], [0, 0, 97, 96]]  # 1023 1024 9216 9215 9312
    expected = {"small": [0], "medium": [1, 2, 3], "large": [4]}
    images = [ImageBoxes(np.array([b], float), np.array([1.0]), np.array([0]), np.array([b], float), np.array([0]))
              for b in boxes]
    res = size_recall(images, 0.5)
    assert res.total == {k: len(v) for k, v in expected.items()}
    assert res.found == res.total
    assert [int(x[0]) for x in res.gt_bucket] == [0, 1, 1, 1, 2]


# --------------------------------------------------------------------------- identity of what was evaluated


def test_result_identifies_the_checkpoint_and_dataset(strong_eval):
    import hashlib

    from evaluation.datasets import fingerprint, load_dataset

    r = strong_eval.result
    path = Path(strong_eval.request.model_path)
    assert r["checkpoint_sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert r["model_size_mb"] == path.stat().st_size / (1024 * 1024)
    assert r["dataset_fingerprint"] == fingerprint(load_dataset(strong_eval.request.dataset_path))


class _FakeValidator:
    """Stands in for evaluation.validator: 'loads' by reading the file, and can swap it mid-load."""

    def __init__(self, path: Path, swaps: list[bytes]):
        self.path, self.swaps, self.loaded = path, list(swaps), []

    def load_model(self, path):
        data = Path(path).read_bytes()
        if self.swaps:  # a promotion replaces the file right after we read it
            tmp = self.path.with_suffix(".tmp")
            tmp.write_bytes(self.swaps.pop(0))
            os.replace(tmp, self.path)
        self.loaded.append(data)
        return data


@pytest.mark.parametrize("n_swaps", [0, 1, 2])
def test_checkpoint_hash_is_of_the_file_that_was_loaded(tmp_path, n_swaps):
    import hashlib
    from concurrent.futures import ThreadPoolExecutor

    from evaluation.evaluate import _load_and_hash

    ckpt = tmp_path / "current.pt"
    ckpt.write_bytes(b"old checkpoint")
    fake = _FakeValidator(ckpt, [f"new checkpoint {i}".encode() for i in range(n_swaps)])
    with ThreadPoolExecutor(2) as pool:
        model, sha, ident = _load_and_hash(fake, ckpt, pool)
        assert sha.result() == hashlib.sha256(model).hexdigest()
    assert len(fake.loaded) == n_swaps + 1
    assert ident[2] == len(model)


def test_checkpoint_that_keeps_changing_is_refused(tmp_path):
    from concurrent.futures import ThreadPoolExecutor

    from evaluation.evaluate import _load_and_hash
    from vocab.errors import CheckpointError

    ckpt = tmp_path / "current.pt"
    ckpt.write_bytes(b"v0")
    fake = _FakeValidator(ckpt, [f"v{i}".encode() for i in range(1, 10)])
    with ThreadPoolExecutor(2) as pool, pytest.raises(CheckpointError, match="changing"):
        _load_and_hash(fake, ckpt, pool)
