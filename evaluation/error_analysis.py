"""Error analysis of one evaluation at its operating point (docs/metrics.md, "Error analysis").

Pure numpy, every image at once (``evaluation.size_recall.match``): it runs in
a worker (right after the validation pass, or later from the stored
predictions and label files) and its output is stored as the ``errors.json``
artifact beside the predictions.

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

from typing import Any

import numpy as np

from evaluation.size_recall import (
    BUCKETS,
    COCO_MAX_DETS,
    LARGE_MIN,
    SMALL_MAX,
    FlatBoxes,
    ImageBoxes,
    bb_iou,
    flatten,
    image_pairs,
    match,
    pair_values,
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
_KEY = {k: i for i, k in enumerate(COUNT_KEYS)}
_FP_LETTERS = np.array([TYPE_LETTERS[t] for t in FP_TYPES], dtype="S1")
_CLASSIFICATION, _BACKGROUND = FP_TYPES.index("classification"), FP_TYPES.index("background")


def _buckets(xywh: np.ndarray) -> np.ndarray:
    """0 small, 1 medium, 2 large by box area (``size_recall.bucket_index``, vectorised)."""
    area = xywh[:, 2] * xywh[:, 3]
    return np.where(area < SMALL_MAX, 0, np.where(area <= LARGE_MIN, 1, 2))


def fp_types(best_same: np.ndarray, best_other: np.ndarray) -> np.ndarray:
    """The type (index into ``FP_TYPES``) of each unmatched prediction, the first that applies, from its best
    overlap with a ground truth of its own class (``best_same``) and of another class (``best_other``)."""
    return np.select([best_same >= MATCH_IOU, best_other >= MATCH_IOU, best_same >= OVERLAP_IOU,
                      best_other >= OVERLAP_IOU], [0, 1, 2, 3], _BACKGROUND)


class _Counts:
    """Counts per count key x class and x size bucket, and the confusion matrix (rows predicted, columns true,
    the last of each ``background``)."""

    def __init__(self, nc: int) -> None:
        self.nc = nc
        self.by_class = np.zeros((len(COUNT_KEYS), nc), dtype=np.int64)
        self.by_size = np.zeros((len(COUNT_KEYS), len(BUCKETS)), dtype=np.int64)
        self.matrix = np.zeros((nc + 1, nc + 1), dtype=np.int64)

    def count(self, key: str | np.ndarray, cls: np.ndarray, bucket: np.ndarray) -> None:
        k = np.full(len(cls), _KEY[key]) if isinstance(key, str) else key
        np.add.at(self.by_class, (k, cls), 1)
        np.add.at(self.by_size, (k, bucket), 1)

    def tables(self, names: list[str]) -> tuple[dict[str, int], dict[str, dict[str, int]], dict[str, dict[str, int]]]:
        overall = {k: int(self.by_class[i].sum()) for i, k in enumerate(COUNT_KEYS)}
        per_class = {n: {k: int(self.by_class[i, c]) for i, k in enumerate(COUNT_KEYS)} for c, n in enumerate(names)}
        per_size = {b: {k: int(self.by_size[i, j]) for i, k in enumerate(COUNT_KEYS)} for j, b in enumerate(BUCKETS)}
        return overall, per_class, per_size


def _cells(n: int, row: np.ndarray, col: np.ndarray, image: np.ndarray) -> list[list[list[int]]]:
    """Per cell (``row``, ``col``) of an ``n`` x ``n`` matrix, the images (ascending, once each) of the counts
    that fell in it, one count per element of the three arrays."""
    key = np.unique((row.astype(np.int64) * n + col) * (int(image.max(initial=0)) + 1) + image)
    cell, img = np.divmod(key, int(image.max(initial=0)) + 1)
    bounds = np.searchsorted(cell, np.arange(n * n + 1))
    flat = img.tolist()
    return [[flat[bounds[r * n + c]:bounds[r * n + c + 1]] for c in range(n)] for r in range(n)]


def _box(xywh: np.ndarray) -> list[float]:
    return [round(float(v), 2) for v in xywh]


def _overlap_row(im: ImageBoxes, d: int, overlap: np.ndarray | None) -> np.ndarray:
    """Detection ``d``'s overlap with every ground truth of its image."""
    if overlap is None:
        return bb_iou(im.det_xywh[d:d + 1], im.gt_xywh).reshape(-1)
    return np.asarray(overlap).reshape(len(im.det_score), len(im.gt_cls))[d]


def _overlap_column(im: ImageBoxes, g: int, overlap: np.ndarray | None) -> np.ndarray:
    """Ground truth ``g``'s overlap with every detection of its image."""
    if overlap is None:
        return bb_iou(im.det_xywh, im.gt_xywh[g:g + 1]).reshape(-1)
    return np.asarray(overlap).reshape(len(im.det_score), len(im.gt_cls))[:, g]


def _fp_example(name: str, im: ImageBoxes, d: int, kind: str, ious: np.ndarray, names: list[str]) -> dict[str, Any]:
    example: dict[str, Any] = {
        "image": name, "box": _box(im.det_xywh[d]), "class": names[int(im.det_cls[d])],
        "score": round(float(im.det_score[d]), 5), "type": kind, "gt": None,
    }
    same = im.det_cls[d] == im.gt_cls
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


def _examples(flat: FlatBoxes, images: list[ImageBoxes], image_names: list[str], names: list[str], conf: float,
              fps: np.ndarray, kind: np.ndarray, missed: np.ndarray,
              overlaps: list[np.ndarray] | None) -> dict[str, list[dict[str, Any]]]:
    """Per FP type its ``EXAMPLES_PER_TYPE`` highest-scoring predictions, and the largest misses (ties: in
    image order, then in the image's own order)."""
    out: dict[str, list[dict[str, Any]]] = {}
    for t, type_name in enumerate(FP_TYPES):
        rows = fps[kind == t]
        rows = rows[np.lexsort((rows, -flat.det_score[rows]))][:EXAMPLES_PER_TYPE]
        out[type_name] = []
        for d in rows:
            image = int(flat.det_image[d])
            im, local = images[image], int(d - flat.det_offsets[image])
            overlap = overlaps[image] if overlaps is not None else None
            out[type_name].append(_fp_example(image_names[image], im, local, type_name,
                                              _overlap_row(im, local, overlap), names))
    area = flat.gt_area[missed]
    out["missed"] = []
    for g in missed[np.lexsort((missed, -area))][:EXAMPLES_PER_TYPE]:
        image = int(flat.gt_image[g])
        im, local = images[image], int(g - flat.gt_offsets[image])
        overlap = overlaps[image] if overlaps is not None else None
        out["missed"].append(_miss_example(image_names[image], im, local, im.det_score >= conf,
                                           _overlap_column(im, local, overlap), names))
    return out


def analyse(images: list[ImageBoxes], image_names: list[str], names: list[str], conf_threshold: float | None,
            max_dets: int = COCO_MAX_DETS, overlaps: list[np.ndarray] | None = None,
            overlap_name: str = "box IoU", flat: FlatBoxes | None = None) -> dict[str, Any]:
    """The error-analysis artifact of one evaluation (see module contract).

    ``images`` are in dataset order with detections in the predictions
    artifact's order; a ``None`` operating point (nothing to evaluate) counts
    every prediction. ``overlaps``: per image, the task's own overlap (D x G)
    in place of the boxes' IoU, named ``overlap_name``. ``flat``:
    ``size_recall.flatten(images)``, when the caller has it.
    """
    conf = 0.0 if conf_threshold is None else float(conf_threshold)
    flat = flatten(images) if flat is None else flat
    nc = len(names)
    keep = flat.det_score >= conf
    det_gt, gt_det = match(flat, np.flatnonzero(keep), np.zeros(len(flat.gt_cls), dtype=bool), MATCH_IOU, max_dets,
                           overlaps)
    det_cls, gt_cls, gt_bucket = flat.det_cls, flat.gt_cls, _buckets(flat.gt_xywh)
    tps, fps = np.flatnonzero(keep & (det_gt >= 0)), np.flatnonzero(keep & (det_gt < 0))
    # each false positive's best overlap with a ground truth of its image, of its own class and of another
    pair_det, pair_gt = image_pairs(flat, fps, same_class=False)
    value = pair_values(flat, pair_det, pair_gt, overlaps)
    same = det_cls[pair_det] == gt_cls[pair_gt]
    best = np.zeros((2, len(det_cls)))
    np.maximum.at(best, (np.where(same, 0, 1), pair_det), value)
    kind = fp_types(best[0, fps], best[1, fps])
    letters = np.full(len(det_cls), BELOW_THRESHOLD, dtype="S1")
    letters[tps] = TYPE_LETTERS["tp"]
    letters[fps] = _FP_LETTERS[kind]
    counts = _Counts(nc)
    counts.count("tp", det_cls[tps], gt_bucket[det_gt[tps]])
    fp_bucket = _buckets(flat.det_xywh[fps])
    counts.count("fp", det_cls[fps], fp_bucket)
    counts.count(kind + _KEY[FP_TYPES[0]], det_cls[fps], fp_bucket)
    background = fps[kind == _BACKGROUND]
    np.add.at(counts.matrix, (det_cls[background], nc), 1)
    found = gt_det >= 0
    counts.count("gt", gt_cls, gt_bucket)
    counts.count("missed", gt_cls[~found], gt_bucket[~found])
    np.add.at(counts.matrix, (gt_cls[found], gt_cls[found]), 1)
    # An unfound box is confused with the highest-scoring classification FP overlapping it at IoU >= 0.5
    # (ties: the first in the image's order).
    kind_of = np.full(len(det_cls), -1)
    kind_of[fps] = kind
    confusing = np.flatnonzero((kind_of[pair_det] == _CLASSIFICATION) & (value >= MATCH_IOU))
    confusing = confusing[np.lexsort((pair_det[confusing], -flat.det_score[pair_det[confusing]], pair_gt[confusing]))]
    first = np.ones(len(confusing), dtype=bool)
    first[1:] = pair_gt[confusing][1:] != pair_gt[confusing][:-1]
    rows = np.full(len(gt_cls), nc)
    rows[pair_gt[confusing[first]]] = det_cls[pair_det[confusing[first]]]
    np.add.at(counts.matrix, (rows[~found], gt_cls[~found]), 1)
    missed = np.flatnonzero(~found)
    cells = _cells(nc + 1, np.concatenate([det_cls[background], gt_cls[found], rows[missed]]),
                   np.concatenate([np.full(len(background), nc), gt_cls[found], gt_cls[missed]]),
                   np.concatenate([flat.det_image[background], flat.gt_image[found], flat.gt_image[missed]]))
    overall, per_class, per_size = counts.tables(list(names))
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
            "matrix": counts.matrix.tolist(),
        },
        "cells": cells,
        "examples": _examples(flat, images, image_names, list(names), conf, fps, kind, missed, overlaps),
        "prediction_types": letters.tobytes().decode("ascii"),
        "missed_boxes": np.stack([flat.gt_image[missed], missed - flat.gt_offsets[flat.gt_image[missed]]],
                                 axis=1).tolist(),
        "images": list(image_names),
    }
