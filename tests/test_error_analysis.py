"""Error analysis and curves artifacts, checked against an independent recomputation.

The recomputation below reads only the predictions artifact, the YOLO label
files and the image sizes (PIL), and applies the "Error analysis" rules of docs/metrics.md
definitions box for box with its own IoU and its own greedy matching: it
shares no code with ``evaluation.error_analysis``.
"""

from __future__ import annotations

import json
import shutil
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from PIL import Image

FP_TYPES = ("duplicate", "classification", "localization", "both", "background")
LETTER = {"tp": "T", "duplicate": "D", "classification": "C", "localization": "L", "both": "B", "background": "G"}


def iou(a: list[float], b: list[float]) -> float:
    """IoU of two [x, y, w, h] boxes."""
    iw = min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0])
    ih = min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1])
    if iw <= 0 or ih <= 0:
        return 0.0
    inter = iw * ih
    return inter / (a[2] * a[3] + b[2] * b[3] - inter)


def read_ground_truth(data_yaml: Path) -> tuple[list[str], dict[str, list[tuple[int, list[float]]]]]:
    """Class names and, per val-relative image name, its label boxes in pixels (label-file order)."""
    data = yaml.safe_load(data_yaml.read_text())
    root = Path(data["path"])
    val = root / data["val"]
    names = data["names"]
    names = [names[i] for i in sorted(names)] if isinstance(names, dict) else list(names)
    out: dict[str, list[tuple[int, list[float]]]] = {}
    for image in sorted(p for p in val.rglob("*") if p.suffix.lower() in (".png", ".jpg", ".jpeg")):
        w, h = Image.open(image).size
        label = Path(str(image.parent).replace("/images", "/labels")) / (image.stem + ".txt")
        boxes = []
        if label.is_file():
            for line in label.read_text().split("\n"):
                if line.strip():
                    c, cx, cy, bw, bh = line.split()
                    cx, cy, bw, bh = float(cx), float(cy), float(bw), float(bh)
                    boxes.append((int(c), [(cx - bw / 2) * w, (cy - bh / 2) * h, bw * w, bh * h]))
        out[image.relative_to(val).as_posix()] = boxes
    return names, out


def recompute(predictions: list[dict[str, Any]], gts: dict[str, list[tuple[int, list[float]]]], nc: int,
              conf: float) -> dict[str, Any]:
    """The error types of docs/metrics.md, missed boxes and confusion matrix, straightforwardly."""
    types: list[str] = []
    counts = dict.fromkeys(("tp", "fp", "missed", *FP_TYPES), 0)
    matrix = [[0] * (nc + 1) for _ in range(nc + 1)]
    by_image: dict[str, list[int]] = defaultdict(list)
    for i, p in enumerate(predictions):
        by_image[p["file_name"]].append(i)
    kind_of: dict[int, str] = {}
    for image, boxes in gts.items():
        kept = [i for i in by_image.get(image, []) if predictions[i]["score"] >= conf]
        found: dict[int, int] = {}  # gt index -> prediction index
        matched: set[int] = set()
        for c in range(nc):
            dets = sorted((i for i in kept if predictions[i]["category_id"] == c),
                          key=lambda i: -predictions[i]["score"])[:100]
            for i in dets:
                best, best_g = 0.5, None
                for g, (gc, gbox) in enumerate(boxes):
                    if gc != c or g in found:
                        continue
                    v = iou(predictions[i]["bbox"], gbox)
                    if v >= best:
                        best, best_g = v, g
                if best_g is not None:
                    found[best_g] = i
                    matched.add(i)
        for i in kept:
            p = predictions[i]
            if i in matched:
                kind_of[i] = "tp"
                continue
            same = [iou(p["bbox"], b) for gc, b in boxes if gc == p["category_id"]] or [0.0]
            other = [iou(p["bbox"], b) for gc, b in boxes if gc != p["category_id"]] or [0.0]
            if max(same) >= 0.5:
                kind_of[i] = "duplicate"
            elif max(other) >= 0.5:
                kind_of[i] = "classification"
            elif max(same) >= 0.1:
                kind_of[i] = "localization"
            elif max(other) >= 0.1:
                kind_of[i] = "both"
            else:
                kind_of[i] = "background"
                matrix[p["category_id"]][nc] += 1
        for g, (gc, gbox) in enumerate(boxes):
            if g in found:
                matrix[gc][gc] += 1
                continue
            counts["missed"] += 1
            confusers = [i for i in kept if kind_of[i] == "classification" and iou(predictions[i]["bbox"], gbox) >= 0.5]
            if confusers:
                top = max(confusers, key=lambda i: predictions[i]["score"])
                matrix[predictions[top]["category_id"]][gc] += 1
            else:
                matrix[nc][gc] += 1
    for i in range(len(predictions)):
        kind = kind_of.get(i)
        types.append("-" if kind is None else LETTER[kind])
        if kind == "tp":
            counts["tp"] += 1
        elif kind is not None:
            counts["fp"] += 1
            counts[kind] += 1
    return {"types": "".join(types), "counts": counts, "matrix": matrix}


@pytest.mark.parametrize("which", ["strong_eval", "weak_eval"])
def test_errors_equal_an_independent_recomputation(which: str, request: pytest.FixtureRequest) -> None:
    run = request.getfixturevalue(which)
    errors = json.loads((run.predictions_path.parent / "errors.json").read_text())
    names, gts = read_ground_truth(run.data_yaml)
    conf = run.result["conf_threshold"]
    expected = recompute(run.predictions, gts, len(names), conf)
    assert errors["prediction_types"] == expected["types"]  # box for box
    overall = errors["overall"]
    assert {k: overall[k] for k in expected["counts"]} == expected["counts"]
    assert errors["confusion_matrix"]["matrix"] == expected["matrix"]
    assert errors["confusion_matrix"]["labels"] == [*names, "background"]
    # The five types sum to the false positives at the operating point; TPs are the found boxes.
    kept = sum(p["score"] >= conf for p in run.predictions)
    assert sum(overall[t] for t in FP_TYPES) == overall["fp"] == kept - overall["tp"]
    assert overall["gt"] == sum(len(b) for b in gts.values()) == overall["tp"] + overall["missed"]
    matrix = np.array(errors["confusion_matrix"]["matrix"])
    per_class_gt = [sum(1 for b in gts.values() for c, _ in b if c == j) for j in range(len(names))]
    assert matrix[:, : len(names)].sum(0).tolist() == per_class_gt
    for key in ("per_class", "per_size"):
        for k in expected["counts"]:
            assert sum(v[k] for v in errors[key].values()) == overall[k], (key, k)
    assert run.result["error_counts"] == overall


def test_examples_are_the_top_by_confidence_with_their_ground_truth(strong_eval) -> None:
    errors = json.loads((strong_eval.predictions_path.parent / "errors.json").read_text())
    for kind in FP_TYPES:
        shown = errors["examples"][kind]
        assert len(shown) == min(20, errors["overall"][kind])
        scores = [e["score"] for e in shown]
        assert scores == sorted(scores, reverse=True)
        for e in shown:
            assert e["type"] == kind and e["image"] in errors["images"] and len(e["box"]) == 4
            assert (e["gt"] is None) == (kind == "background")
    missed = errors["examples"]["missed"]
    assert len(missed) == min(20, errors["overall"]["missed"])
    assert [e["area"] for e in missed] == sorted((e["area"] for e in missed), reverse=True)


def test_curves_are_downsampled_and_mark_the_operating_point(strong_eval) -> None:
    curves = json.loads((strong_eval.predictions_path.parent / "curves.json").read_text())
    result = strong_eval.result
    for key in ("pr", "precision", "recall", "f1"):
        assert 2 <= len(curves[key]["all"]) <= 101
        assert set(curves[key]["per_class"]) == set(result["per_class"])
        for series in curves[key]["per_class"].values():
            assert len(series) <= 101 and all(0 <= x <= 1 and 0 <= y <= 1 for x, y in series)
    op = curves["operating_point"]
    assert op["conf_threshold"] == result["conf_threshold"] and op["recall"] == result["recall"]
    # F1 against confidence, all classes, peaks near the operating point (ultralytics smooths before argmax).
    f1 = curves["f1"]["all"]
    assert max(y for _, y in f1) >= result["f1"] - 0.05


def test_stored_evaluation_analysis_is_recomputed_identically(strong_eval, tmp_path: Path) -> None:
    """An evaluation stored before the artifacts existed: recomputed from predictions + evidence + labels, on
    the split it evaluated (here the dataset's ``test:``, whose ``val:`` holds other images)."""
    from evaluation.analysis_store import analyse_stored
    from evaluation.datasets import fingerprint, load_dataset

    for name in ("predictions.json", "evidence.npz"):
        (tmp_path / name).write_bytes((strong_eval.predictions_path.parent / name).read_bytes())
    r = strong_eval.result
    root = Path(r["dataset"]).parent
    other = sorted((root / "images" / "val").iterdir())[0]
    (tmp_path / "images" / "other").mkdir(parents=True)
    (tmp_path / "labels" / "other").mkdir(parents=True)
    shutil.copy(other, tmp_path / "images" / "other")
    shutil.copy(root / "labels" / "val" / f"{other.stem}.txt", tmp_path / "labels" / "other")
    moved = yaml.safe_load(Path(r["dataset"]).read_text())
    moved.update(path=str(root), val=str(tmp_path / "images" / "other"), test="images/val")
    (tmp_path / "moved.yaml").write_text(yaml.safe_dump(moved))
    as_test = load_dataset(tmp_path / "moved.yaml", "test")  # the same images, named by another split
    assert as_test.images == load_dataset(r["dataset"]).images
    out = analyse_stored({
        "predictions_path": str(tmp_path / "predictions.json"), "evidence_path": str(tmp_path / "evidence.npz"),
        "dataset_path": str(tmp_path / "moved.yaml"), "split": "test", "dataset_fingerprint": fingerprint(as_test),
        "class_names": r["class_names"], "operating": r,
    })
    assert out["error_counts"] == r["error_counts"]
    for name in ("errors.json", "curves.json"):
        assert json.loads((tmp_path / name).read_text()) == json.loads(
            (strong_eval.predictions_path.parent / name).read_text())
