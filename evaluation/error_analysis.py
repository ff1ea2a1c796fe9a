"""Error analysis of one evaluation at its operating point (DESIGN.md, "Error analysis").

Pure numpy: it runs in a worker (right after the validation pass, or later
from the stored predictions and label files) and its output is stored as the
``errors.json`` artifact beside the predictions.

Matching is COCOeval's for the area range "all" (``coco_match_pairs``): per
image and class, predictions with confidence >= the operating point, greedy
by confidence, IoU >= 0.5, at most 100 per image and class. Every unmatched
prediction gets the first type that applies: ``duplicate``, ``classification``,
``localization``, ``both``, ``background``. The confusion matrix has rows =
predicted, columns = true, over the classes plus ``background``.

The artifact (``analyse``'s return value):

- ``overall``, ``per_class`` (by predicted class for false positives, by true
  class for found and missed boxes), ``per_size`` (false positives by their
  own box area, found and missed boxes by the ground truth's area): each
  ``{gt, tp, fp, missed, duplicate, classification, localization, both, background}``;
- ``confusion_matrix``: ``{labels, rows: "predicted", columns: "true", matrix}``;
- ``examples``: per FP type the top 20 by confidence, ``missed`` the 20
  largest misses; each ``{image, box [x,y,w,h], class, score, type, gt}`` where
  ``gt`` is the matched or overlapping ground truth ``{box, class, iou}`` (for
  a miss: ``prediction``, the best-overlapping kept prediction, if any);
- ``prediction_types``: one letter per row of ``predictions.json``, in its
  order (``TYPE_LETTERS``; ``-`` below the operating point);
- ``missed_boxes``: every missed ground truth as ``[image index, label index]``;
- ``images``: the image names, in dataset order.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from evaluation.size_recall import (
    BUCKETS,
    COCO_MAX_DETS,
    ImageBoxes,
    bb_iou,
    bucket_index,
    coco_match_pairs,
)

FP_TYPES: tuple[str, ...] = ("duplicate", "classification", "localization", "both", "background")
COUNT_KEYS: tuple[str, ...] = ("gt", "tp", "fp", "missed", *FP_TYPES)
TYPE_LETTERS: dict[str, str] = {
    "tp": "T", "duplicate": "D", "classification": "C", "localization": "L", "both": "B", "background": "G",
}
BELOW_THRESHOLD = "-"
MATCH_IOU = 0.5
OVERLAP_IOU = 0.1
EXAMPLES_PER_TYPE = 20
_ALL_AREAS = (0.0, float("inf"))


@dataclass
class _Tally:
    """Counters and example candidates filled image by image."""

    names: list[str]
    overall: dict[str, int] = field(default_factory=lambda: dict.fromkeys(COUNT_KEYS, 0))
    per_class: dict[str, dict[str, int]] = field(default_factory=dict)
    per_size: dict[str, dict[str, int]] = field(default_factory=lambda: {b: dict.fromkeys(COUNT_KEYS, 0) for b in BUCKETS})
    matrix: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), dtype=np.int64))
    candidates: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    letters: list[str] = field(default_factory=list)
    missed_boxes: list[list[int]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.per_class = {n: dict.fromkeys(COUNT_KEYS, 0) for n in self.names}
        n = len(self.names) + 1
        self.matrix = np.zeros((n, n), dtype=np.int64)
        self.candidates = {t: [] for t in (*FP_TYPES, "missed")}

    def count(self, key: str, cls: int, bucket: int) -> None:
        self.overall[key] += 1
        self.per_class[self.names[cls]][key] += 1
        self.per_size[BUCKETS[bucket]][key] += 1


def _box(xywh: np.ndarray) -> list[float]:
    return [round(float(v), 2) for v in xywh]


def classify_false_positive(ious: np.ndarray, same_class: np.ndarray) -> str:
    """The type of one unmatched prediction from its IoU with every ground truth of its image."""
    same = ious[same_class]
    other = ious[~same_class]
    best_same = float(same.max()) if len(same) else 0.0
    best_other = float(other.max()) if len(other) else 0.0
    if best_same >= MATCH_IOU:
        return "duplicate"
    if best_other >= MATCH_IOU:
        return "classification"
    if best_same >= OVERLAP_IOU:
        return "localization"
    if best_other >= OVERLAP_IOU:
        return "both"
    return "background"


def _match_image(im: ImageBoxes, keep: np.ndarray, max_dets: int) -> tuple[np.ndarray, np.ndarray]:
    """(per detection: the GT index it matched or -1; per GT: the detection that found it or -1)."""
    det_gt = np.full(len(im.det_score), -1, dtype=np.int64)
    gt_det = np.full(len(im.gt_cls), -1, dtype=np.int64)
    for cls in np.unique(im.gt_cls):
        g_idx = np.flatnonzero(im.gt_cls == cls)
        d_idx = np.flatnonzero(keep & (im.det_cls == cls))
        areas = im.gt_xywh[g_idx, 2] * im.gt_xywh[g_idx, 3]
        by = coco_match_pairs(im.det_xywh[d_idx], im.det_score[d_idx], im.gt_xywh[g_idx], areas, _ALL_AREAS,
                              MATCH_IOU, max_dets)
        for gi, di in zip(g_idx, by):
            if di >= 0:
                gt_det[gi] = d_idx[di]
                det_gt[d_idx[di]] = gi
    return det_gt, gt_det


def _analyse_image(tally: _Tally, index: int, name: str, im: ImageBoxes, conf: float, max_dets: int) -> None:
    keep = im.det_score >= conf
    det_gt, gt_det = _match_image(im, keep, max_dets)
    ious = bb_iou(im.det_xywh, im.gt_xywh)
    gt_bucket = [bucket_index(float(w * h)) for w, h in im.gt_xywh[:, 2:4]]
    bg = len(tally.names)
    fp_type: dict[int, str] = {}
    for d in range(len(im.det_score)):
        if not keep[d]:
            tally.letters.append(BELOW_THRESHOLD)
            continue
        cls = int(im.det_cls[d])
        if det_gt[d] >= 0:
            tally.letters.append(TYPE_LETTERS["tp"])
            tally.count("tp", cls, gt_bucket[det_gt[d]])
            continue
        same = im.gt_cls == cls
        kind = classify_false_positive(ious[d], same)
        fp_type[d] = kind
        tally.letters.append(TYPE_LETTERS[kind])
        bucket = bucket_index(float(im.det_xywh[d, 2] * im.det_xywh[d, 3]))
        tally.count("fp", cls, bucket)
        tally.count(kind, cls, bucket)
        if kind == "background":
            tally.matrix[cls, bg] += 1
        tally.candidates[kind].append(_fp_example(name, im, d, kind, ious[d], same, tally.names))
    for g in range(len(im.gt_cls)):
        j = int(im.gt_cls[g])
        tally.count("gt", j, gt_bucket[g])
        if gt_det[g] >= 0:
            tally.matrix[j, j] += 1
            continue
        tally.count("missed", j, gt_bucket[g])
        tally.missed_boxes.append([index, g])
        confused = [d for d, t in fp_type.items() if t == "classification" and ious[d, g] >= MATCH_IOU]
        row = int(im.det_cls[max(confused, key=lambda d: (im.det_score[d], -d))]) if confused else bg
        tally.matrix[row, j] += 1
        tally.candidates["missed"].append(_miss_example(name, im, g, keep, ious[:, g], tally.names))


def _fp_example(name: str, im: ImageBoxes, d: int, kind: str, ious: np.ndarray, same: np.ndarray,
                names: list[str]) -> dict[str, Any]:
    example: dict[str, Any] = {
        "image": name, "box": _box(im.det_xywh[d]), "class": names[int(im.det_cls[d])],
        "score": round(float(im.det_score[d]), 5), "type": kind, "gt": None,
    }
    pool = {"duplicate": same, "localization": same, "classification": ~same, "both": ~same}.get(kind)
    if pool is not None and pool.any():
        g = int(np.flatnonzero(pool)[np.argmax(ious[pool])])
        example["gt"] = {"box": _box(im.gt_xywh[g]), "class": names[int(im.gt_cls[g])], "iou": round(float(ious[g]), 4)}
    return example


def _miss_example(name: str, im: ImageBoxes, g: int, keep: np.ndarray, ious: np.ndarray,
                  names: list[str]) -> dict[str, Any]:
    w, h = im.gt_xywh[g, 2], im.gt_xywh[g, 3]
    example: dict[str, Any] = {
        "image": name, "box": _box(im.gt_xywh[g]), "class": names[int(im.gt_cls[g])], "score": None,
        "type": "missed", "area": round(float(w * h), 2), "gt": None, "prediction": None,
    }
    kept = np.flatnonzero(keep)
    if len(kept) and ious[kept].max() >= OVERLAP_IOU:
        d = int(kept[np.argmax(ious[kept])])
        example["prediction"] = {"box": _box(im.det_xywh[d]), "class": names[int(im.det_cls[d])],
                                 "score": round(float(im.det_score[d]), 5), "iou": round(float(ious[d]), 4)}
    return example


def _top_examples(candidates: dict[str, list[dict[str, Any]]]) -> dict[str, list[dict[str, Any]]]:
    out = {t: sorted(candidates[t], key=lambda e: -e["score"])[:EXAMPLES_PER_TYPE] for t in FP_TYPES}
    out["missed"] = sorted(candidates["missed"], key=lambda e: -e["area"])[:EXAMPLES_PER_TYPE]
    return out


def analyse(images: list[ImageBoxes], image_names: list[str], names: list[str], conf_threshold: float | None,
            max_dets: int = COCO_MAX_DETS) -> dict[str, Any]:
    """The error-analysis artifact of one evaluation (see module contract).

    ``images`` are in dataset order with detections in the predictions
    artifact's order; a ``None`` operating point (nothing to evaluate) counts
    every prediction.
    """
    conf = 0.0 if conf_threshold is None else float(conf_threshold)
    tally = _Tally(list(names))
    for index, (name, im) in enumerate(zip(image_names, images)):
        _analyse_image(tally, index, name, im, conf, max_dets)
    return {
        "conf_threshold": conf_threshold,
        "iou_threshold": MATCH_IOU,
        "max_dets": max_dets,
        "classes": list(names),
        "overall": tally.overall,
        "per_class": tally.per_class,
        "per_size": tally.per_size,
        "confusion_matrix": {
            "labels": [*names, "background"], "rows": "predicted", "columns": "true",
            "matrix": tally.matrix.tolist(),
        },
        "examples": _top_examples(tally.candidates),
        "prediction_types": "".join(tally.letters),
        "missed_boxes": tally.missed_boxes,
        "images": list(image_names),
    }
