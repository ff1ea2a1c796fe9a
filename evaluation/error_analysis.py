"""Error analysis of one evaluation at its operating point (docs/metrics.md, "Error analysis").

Pure numpy: it runs in a worker (right after the validation pass, or later
from the stored predictions and label files) and its output is stored as the
``errors.json`` artifact beside the predictions.

Matching is COCOeval's for the area range "all" (``coco_match_pairs``): per
image and class, predictions with confidence >= the operating point, greedy
by confidence, IoU >= 0.5, at most 100 per image and class. IoU is the
boxes' unless the task brings its own overlap (``overlaps``, per image:
segmentation's mask IoU, pose's OKS, obb's ProbIoU; see
``evaluation.task_analysis``), which then types and matches every
prediction in its place; size buckets stay by box area. Every unmatched
prediction gets the first type that applies: ``duplicate``, ``classification``,
``localization``, ``both``, ``background``. The confusion matrix has rows =
predicted, columns = true, over the classes plus ``background``.

The artifact (``analyse``'s return value):

- ``overall``, ``per_class`` (by predicted class for false positives, by true
  class for found and missed boxes), ``per_size`` (false positives by their
  own box area, found and missed boxes by the ground truth's area): each
  ``{gt, tp, fp, missed, duplicate, classification, localization, both, background}``;
- ``confusion_matrix``: ``{labels, rows: "predicted", columns: "true", matrix}``;
- ``cells``: ``cells[i][j]`` = the indices (into ``images``, ascending) of the
  images that count in matrix cell (i, j): the images behind each cell;
- ``overlap``: the measure matched on (``box IoU``, or the task's);
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

import heapq
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from evaluation.size_recall import (
    BUCKETS,
    COCO_MAX_DETS,
    LARGE_MIN,
    SMALL_MAX,
    ImageBoxes,
    bb_iou,
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
_KEY = {k: i for i, k in enumerate(COUNT_KEYS)}
_FP_LETTERS = np.array([TYPE_LETTERS[t] for t in FP_TYPES])
_CLASSIFICATION, _BACKGROUND = FP_TYPES.index("classification"), FP_TYPES.index("background")


def _buckets(xywh: np.ndarray) -> np.ndarray:
    """0 small, 1 medium, 2 large by box area (``size_recall.bucket_index``, vectorised)."""
    area = xywh[:, 2] * xywh[:, 3]
    return np.where(area < SMALL_MAX, 0, np.where(area <= LARGE_MIN, 1, 2))


def fp_types(ious: np.ndarray, same_class: np.ndarray) -> np.ndarray:
    """The type (index into ``FP_TYPES``) of each prediction (row), were it unmatched: the first that applies.

    ``ious`` and ``same_class`` are (D x G): IoU with, and class equality to, each ground truth of the image.
    """
    best_same = np.where(same_class, ious, 0.0).max(1, initial=0.0)
    best_other = np.where(same_class, 0.0, ious).max(1, initial=0.0)
    return np.select([best_same >= MATCH_IOU, best_other >= MATCH_IOU, best_same >= OVERLAP_IOU,
                      best_other >= OVERLAP_IOU], [0, 1, 2, 3], _BACKGROUND)


class _TopK:
    """The ``k`` largest items by key, ties kept in arrival order; the item is built only if it enters."""

    def __init__(self, k: int = EXAMPLES_PER_TYPE) -> None:
        self.k, self.seq = k, 0
        self.heap: list[tuple[float, int, dict[str, Any]]] = []

    def full_above(self, key: float) -> bool:
        return len(self.heap) >= self.k and key <= self.heap[0][0]

    def push(self, key: float, build: Any) -> None:
        self.seq += 1
        if self.full_above(key):
            return
        item = (key, -self.seq, build())
        if len(self.heap) < self.k:
            heapq.heappush(self.heap, item)
        else:
            heapq.heapreplace(self.heap, item)

    def items(self) -> list[dict[str, Any]]:
        return [item for _, _, item in sorted(self.heap, key=lambda t: (-t[0], -t[1]))]


@dataclass
class _Tally:
    """Counts (per count key x class, and x size bucket), the matrix and the example candidates."""

    names: list[str]
    by_class: np.ndarray = field(init=False)
    by_size: np.ndarray = field(init=False)
    matrix: np.ndarray = field(init=False)
    top: dict[str, _TopK] = field(init=False)
    letters: list[str] = field(default_factory=list)
    cells: dict[tuple[int, int], list[int]] = field(default_factory=dict)
    missed_boxes: list[list[int]] = field(default_factory=list)

    def __post_init__(self) -> None:
        n = len(self.names)
        self.by_class = np.zeros((len(COUNT_KEYS), n), dtype=np.int64)
        self.by_size = np.zeros((len(COUNT_KEYS), len(BUCKETS)), dtype=np.int64)
        self.matrix = np.zeros((n + 1, n + 1), dtype=np.int64)
        self.top = {t: _TopK() for t in (*FP_TYPES, "missed")}

    def count(self, key: str | np.ndarray, cls: np.ndarray, bucket: np.ndarray) -> None:
        k = np.full(len(cls), _KEY[key]) if isinstance(key, str) else key
        np.add.at(self.by_class, (k, cls), 1)
        np.add.at(self.by_size, (k, bucket), 1)

    def counts(self) -> tuple[dict[str, int], dict[str, dict[str, int]], dict[str, dict[str, int]]]:
        overall = {k: int(self.by_class[i].sum()) for i, k in enumerate(COUNT_KEYS)}
        per_class = {n: {k: int(self.by_class[i, c]) for i, k in enumerate(COUNT_KEYS)} for c, n in enumerate(self.names)}
        per_size = {b: {k: int(self.by_size[i, j]) for i, k in enumerate(COUNT_KEYS)} for j, b in enumerate(BUCKETS)}
        return overall, per_class, per_size


def _box(xywh: np.ndarray) -> list[float]:
    return [round(float(v), 2) for v in xywh]


def _match_image(im: ImageBoxes, keep: np.ndarray, max_dets: int, ious: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(per detection: the GT index it matched or -1; per GT: the detection that found it or -1)."""
    det_gt = np.full(len(im.det_score), -1, dtype=np.int64)
    gt_det = np.full(len(im.gt_cls), -1, dtype=np.int64)
    for cls in np.unique(im.gt_cls):
        g_idx = np.flatnonzero(im.gt_cls == cls)
        d_idx = np.flatnonzero(keep & (im.det_cls == cls))
        areas = im.gt_xywh[g_idx, 2] * im.gt_xywh[g_idx, 3]
        by = coco_match_pairs(im.det_xywh[d_idx], im.det_score[d_idx], im.gt_xywh[g_idx], areas, _ALL_AREAS,
                              MATCH_IOU, max_dets, ious[np.ix_(d_idx, g_idx)])
        hit = by >= 0
        gt_det[g_idx[hit]] = d_idx[by[hit]]
        det_gt[d_idx[by[hit]]] = g_idx[hit]
    return det_gt, gt_det


def _analyse_image(tally: _Tally, index: int, name: str, im: ImageBoxes, conf: float, max_dets: int,
                   overlap: np.ndarray | None) -> None:
    nc = len(tally.names)
    keep = im.det_score >= conf
    ious = bb_iou(im.det_xywh, im.gt_xywh) if overlap is None else np.asarray(overlap).reshape(len(keep), len(im.gt_cls))
    det_gt, gt_det = _match_image(im, keep, max_dets, ious)
    same = im.det_cls[:, None] == im.gt_cls[None, :]
    det_cls, gt_cls = im.det_cls.astype(np.int64), im.gt_cls.astype(np.int64)
    gt_bucket = _buckets(im.gt_xywh)
    tp = keep & (det_gt >= 0)
    fp = keep & (det_gt < 0)
    kind = fp_types(ious, same)
    letters = np.full(len(keep), BELOW_THRESHOLD)
    letters[tp] = TYPE_LETTERS["tp"]
    letters[fp] = _FP_LETTERS[kind[fp]]
    tally.letters.append("".join(letters.tolist()))
    tally.count("tp", det_cls[tp], gt_bucket[det_gt[tp]])
    fp_bucket = _buckets(im.det_xywh[fp])
    tally.count("fp", det_cls[fp], fp_bucket)
    tally.count(kind[fp] + _KEY[FP_TYPES[0]], det_cls[fp], fp_bucket)
    background = fp & (kind == _BACKGROUND)
    np.add.at(tally.matrix, (det_cls[background], nc), 1)
    found = gt_det >= 0
    tally.count("gt", gt_cls, gt_bucket)
    tally.count("missed", gt_cls[~found], gt_bucket[~found])
    np.add.at(tally.matrix, (gt_cls[found], gt_cls[found]), 1)
    # An unfound box is confused with the highest-scoring classification FP overlapping it at IoU >= 0.5.
    confusing = (fp & (kind == _CLASSIFICATION))[:, None] & (ious >= MATCH_IOU)
    rows = np.full(len(gt_cls), nc)
    if len(keep):
        has = confusing.any(0)
        rows[has] = det_cls[np.where(confusing, im.det_score[:, None], -np.inf).argmax(0)[has]]
    np.add.at(tally.matrix, (rows[~found], gt_cls[~found]), 1)
    counted = np.concatenate([np.stack([det_cls[background], np.full(int(background.sum()), nc)]),
                              np.stack([gt_cls[found], gt_cls[found]]), np.stack([rows[~found], gt_cls[~found]])], 1)
    for r, c in {(int(r), int(c)) for r, c in counted.T}:
        tally.cells.setdefault((r, c), []).append(index)
    _collect_examples(tally, index, name, im, keep, fp, kind, ious, same, found)


def _collect_examples(tally: _Tally, index: int, name: str, im: ImageBoxes, keep: np.ndarray, fp: np.ndarray,
                      kind: np.ndarray, ious: np.ndarray, same: np.ndarray, found: np.ndarray) -> None:
    for t, type_name in enumerate(FP_TYPES):
        idx = np.flatnonzero(fp & (kind == t))
        for d in idx[np.argsort(-im.det_score[idx], kind="stable")]:
            if tally.top[type_name].full_above(float(im.det_score[d])):
                break
            tally.top[type_name].push(float(im.det_score[d]), lambda d=d, tn=type_name: _fp_example(
                name, im, int(d), tn, ious[d], same[d], tally.names))
    missed = np.flatnonzero(~found)
    tally.missed_boxes.extend([index, int(g)] for g in missed)
    areas = im.gt_xywh[:, 2] * im.gt_xywh[:, 3]
    for g in missed[np.argsort(-areas[missed], kind="stable")]:
        if tally.top["missed"].full_above(float(areas[g])):
            break
        tally.top["missed"].push(float(areas[g]), lambda g=g: _miss_example(
            name, im, int(g), keep, ious[:, g], tally.names))


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


def analyse(images: list[ImageBoxes], image_names: list[str], names: list[str], conf_threshold: float | None,
            max_dets: int = COCO_MAX_DETS, overlaps: list[np.ndarray] | None = None,
            overlap_name: str = "box IoU") -> dict[str, Any]:
    """The error-analysis artifact of one evaluation (see module contract).

    ``images`` are in dataset order with detections in the predictions
    artifact's order; a ``None`` operating point (nothing to evaluate) counts
    every prediction. ``overlaps``: per image, the task's own overlap (D x G)
    in place of the boxes' IoU, named ``overlap_name``.
    """
    conf = 0.0 if conf_threshold is None else float(conf_threshold)
    tally = _Tally(list(names))
    for index, (name, im) in enumerate(zip(image_names, images)):
        _analyse_image(tally, index, name, im, conf, max_dets, None if overlaps is None else overlaps[index])
    overall, per_class, per_size = tally.counts()
    return {
        "conf_threshold": conf_threshold,
        "iou_threshold": MATCH_IOU,
        "overlap": overlap_name,
        "max_dets": max_dets,
        "classes": list(names),
        "overall": overall,
        "per_class": per_class,
        "per_size": per_size,
        "confusion_matrix": {
            "labels": [*names, "background"], "rows": "predicted", "columns": "true",
            "matrix": tally.matrix.tolist(),
        },
        "cells": [[tally.cells.get((r, c), []) for c in range(len(names) + 1)] for r in range(len(names) + 1)],
        "examples": {t: top.items() for t, top in tally.top.items()},
        "prediction_types": "".join(tally.letters),
        "missed_boxes": tally.missed_boxes,
        "images": list(image_names),
    }
