"""Size-bucket recall, matched exactly as pycocotools' COCOeval matches (docs/metrics.md, "Size recall").

For one image, one class and one area range, ``coco_match`` is COCOeval's
``evaluateImg`` at a single IoU threshold: detections sorted by score
(stable), the top ``max_dets`` kept, each taking the best still-unmatched
ground truth with IoU >= threshold, ground truth outside the area range
"ignored" and taken only when no in-range box matches. IoU is pycocotools'
``bbIou`` on ``[x, y, w, h]`` boxes, operation for operation, so that a box
on a threshold falls on the same side in both implementations.

``match`` runs that matching for every image and class at once (vectorised,
one step per detection rank), so its cost grows with the number of
detections kept, not with the number of images times Python's overhead.

Buckets, by box area w*h in original image pixels: small ``area < 32*32``,
medium ``32*32 <= area <= 96*96``, large ``area > 96*96``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

BUCKETS: tuple[str, ...] = ("small", "medium", "large")
SMALL_MAX = 32.0 * 32.0
LARGE_MIN = 96.0 * 96.0
# Inclusive [lo, hi] area ranges, as COCOeval's params.areaRng, for DESIGN's buckets.
AREA_RANGES: dict[str, tuple[float, float]] = {
    "small": (0.0, math.nextafter(SMALL_MAX, 0.0)),
    "medium": (SMALL_MAX, LARGE_MIN),
    "large": (math.nextafter(LARGE_MIN, math.inf), math.inf),
}
COCO_MAX_DETS = 100  # COCOeval's default maxDets[-1], per image and class


def bucket_index(area: float) -> int:
    """0 small, 1 medium, 2 large."""
    if area < SMALL_MAX:
        return 0
    if area <= LARGE_MIN:
        return 1
    return 2


def bb_iou(dets: np.ndarray, gts: np.ndarray) -> np.ndarray:
    """IoU matrix (D x G) of xywh boxes, computed as pycocotools' C ``bbIou`` (no crowd)."""
    if len(dets) == 0 or len(gts) == 0:
        return np.zeros((len(dets), len(gts)))
    d = dets[:, None, :]
    g = gts[None, :, :]
    w = np.minimum(d[..., 2] + d[..., 0], g[..., 2] + g[..., 0]) - np.maximum(d[..., 0], g[..., 0])
    h = np.minimum(d[..., 3] + d[..., 1], g[..., 3] + g[..., 1]) - np.maximum(d[..., 1], g[..., 1])
    inter = w * h
    da = d[..., 2] * d[..., 3]
    ga = g[..., 2] * g[..., 3]
    with np.errstate(divide="ignore", invalid="ignore"):
        iou = inter / (da + ga - inter)
    return np.where((w > 0) & (h > 0), iou, 0.0)


def coco_match(
    det_xywh: np.ndarray,
    det_score: np.ndarray,
    gt_xywh: np.ndarray,
    gt_area: np.ndarray,
    area_range: tuple[float, float],
    iou_threshold: float = 0.5,
    max_dets: int = COCO_MAX_DETS,
) -> np.ndarray:
    """Which ground-truth boxes of one image and class are matched (bool per GT, input order)."""
    flat = flatten([ImageBoxes(det_xywh, det_score, np.zeros(len(det_score), np.int64), gt_xywh,
                               np.zeros(len(gt_xywh), np.int64))])
    ignore = (gt_area < area_range[0]) | (gt_area > area_range[1])
    return match(flat, np.arange(len(det_score)), ignore, iou_threshold, max_dets)[1] >= 0


@dataclass
class ImageBoxes:
    """One image's detections and ground truth in original pixels, xywh, float64."""

    det_xywh: np.ndarray  # (D, 4)
    det_score: np.ndarray  # (D,)
    det_cls: np.ndarray  # (D,) int
    gt_xywh: np.ndarray  # (G, 4)
    gt_cls: np.ndarray  # (G,) int


@dataclass
class FlatBoxes:
    """Every image's ``ImageBoxes`` concatenated in image order; ``*_offsets`` (length images + 1) give each
    image's slice, ``*_image`` each row's image."""

    det_xywh: np.ndarray  # (P, 4)
    det_score: np.ndarray  # (P,)
    det_cls: np.ndarray  # (P,) int64
    det_image: np.ndarray  # (P,) int64
    det_offsets: np.ndarray
    gt_xywh: np.ndarray  # (T, 4)
    gt_cls: np.ndarray  # (T,) int64
    gt_image: np.ndarray  # (T,) int64
    gt_offsets: np.ndarray

    @property
    def gt_area(self) -> np.ndarray:
        return self.gt_xywh[:, 2] * self.gt_xywh[:, 3]


def _offsets(lengths: list[int]) -> np.ndarray:
    return np.concatenate([[0], np.cumsum(lengths, dtype=np.int64)]).astype(np.int64)


def _cat(parts: list[np.ndarray], shape: tuple[int, ...], dtype: Any) -> np.ndarray:
    return np.concatenate([np.asarray(p, dtype=dtype).reshape(-1, *shape) for p in parts]) if parts else \
        np.zeros((0, *shape), dtype)


def flat_boxes(det_xywh: np.ndarray, det_score: list[np.ndarray], det_cls: list[np.ndarray],
               gt_xywh: list[np.ndarray], gt_cls: list[np.ndarray]) -> FlatBoxes:
    """A ``FlatBoxes`` from every image's detections (``det_xywh``: already concatenated; scores and classes
    per image) and ground truth (per image)."""
    d_len = [len(s) for s in det_score]
    g_len = [len(c) for c in gt_cls]
    images = np.arange(len(d_len))
    return FlatBoxes(
        np.asarray(det_xywh, dtype=np.float64).reshape(-1, 4), _cat(det_score, (), np.float64),
        _cat(det_cls, (), np.int64), np.repeat(images, d_len), _offsets(d_len), _cat(gt_xywh, (4,), np.float64),
        _cat(gt_cls, (), np.int64), np.repeat(images, g_len), _offsets(g_len),
    )


def flatten(images: list[ImageBoxes]) -> FlatBoxes:
    """``images`` as one ``FlatBoxes``."""
    return flat_boxes(_cat([im.det_xywh for im in images], (4,), np.float64), [im.det_score for im in images],
                      [im.det_cls for im in images], [im.gt_xywh for im in images], [im.gt_cls for im in images])


def per_image(flat: FlatBoxes) -> list[ImageBoxes]:
    """Each image's ``ImageBoxes``: views of ``flat``'s arrays (no copies)."""
    d, g = flat.det_offsets, flat.gt_offsets
    return [ImageBoxes(flat.det_xywh[d[i]:d[i + 1]], flat.det_score[d[i]:d[i + 1]], flat.det_cls[d[i]:d[i + 1]],
                       flat.gt_xywh[g[i]:g[i + 1]], flat.gt_cls[g[i]:g[i + 1]]) for i in range(len(d) - 1)]


def pair_iou(dets: np.ndarray, gts: np.ndarray) -> np.ndarray:
    """IoU of row i of ``dets`` with row i of ``gts`` (xywh), with ``bb_iou``'s operations, element for
    element."""
    w = np.minimum(dets[:, 2] + dets[:, 0], gts[:, 2] + gts[:, 0]) - np.maximum(dets[:, 0], gts[:, 0])
    h = np.minimum(dets[:, 3] + dets[:, 1], gts[:, 3] + gts[:, 1]) - np.maximum(dets[:, 1], gts[:, 1])
    inter = w * h
    with np.errstate(divide="ignore", invalid="ignore"):
        iou = inter / (dets[:, 2] * dets[:, 3] + gts[:, 2] * gts[:, 3] - inter)
    return np.where((w > 0) & (h > 0), iou, 0.0)


def pair_values(flat: FlatBoxes, pair_det: np.ndarray, pair_gt: np.ndarray,
                overlaps: list[np.ndarray] | None = None) -> np.ndarray:
    """The overlap of each (det row, gt row) pair of one image: the boxes' IoU (``pair_iou``), or the task's
    own (``overlaps``: per image, its D x G matrix over all its detections and ground truth)."""
    if overlaps is None:
        return pair_iou(flat.det_xywh[pair_det], flat.gt_xywh[pair_gt])
    sizes = [np.asarray(o).size for o in overlaps]
    values = np.concatenate([np.asarray(o, dtype=np.float64).ravel() for o in overlaps]) if overlaps else np.zeros(0)
    image = flat.det_image[pair_det]
    width = flat.gt_offsets[image + 1] - flat.gt_offsets[image]
    at = _offsets(sizes)[image] + (pair_det - flat.det_offsets[image]) * width + (pair_gt - flat.gt_offsets[image])
    return values[at]


def image_pairs(flat: FlatBoxes, dets: np.ndarray, same_class: bool) -> tuple[np.ndarray, np.ndarray]:
    """Every (det, gt) of one image, for the detections ``dets`` (row indices), optionally only of one
    class: (det rows, gt rows), by det in ``dets`` order, then by gt row."""
    image = flat.det_image[dets]
    first = flat.gt_offsets[image]
    count = flat.gt_offsets[image + 1] - first
    pair_det = np.repeat(dets, count)
    within = np.arange(len(pair_det)) - np.repeat(np.cumsum(count) - count, count)
    pair_gt = np.repeat(first, count) + within
    if same_class:
        keep = flat.det_cls[pair_det] == flat.gt_cls[pair_gt]
        pair_det, pair_gt = pair_det[keep], pair_gt[keep]
    return pair_det, pair_gt


def group_rank(flat: FlatBoxes, dets: np.ndarray) -> np.ndarray:
    """Each of ``dets``' rank within its image and class, by descending score (ties: row order), as COCOeval
    sorts (a stable sort of -score)."""
    order = np.lexsort((dets, -flat.det_score[dets], flat.det_cls[dets], flat.det_image[dets]))
    image, cls = flat.det_image[dets][order], flat.det_cls[dets][order]
    new_group = np.ones(len(order), dtype=bool)
    new_group[1:] = (image[1:] != image[:-1]) | (cls[1:] != cls[:-1])
    starts = np.flatnonzero(new_group)
    rank_sorted = np.arange(len(order)) - np.repeat(starts, np.diff(np.append(starts, len(order))))
    rank = np.empty(len(order), dtype=np.int64)
    rank[order] = rank_sorted
    return rank


def match(flat: FlatBoxes, dets: np.ndarray, gt_ignore: np.ndarray, iou_threshold: float = 0.5,
          max_dets: int = COCO_MAX_DETS, overlaps: list[np.ndarray] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """COCOeval's matching (``evaluateImg`` at one IoU threshold) of every image and class at once: the
    detections ``dets`` (rows; those below the operating point left out by the caller), each image and
    class's top ``max_dets`` by score taking, in score order, the best still-unmatched ground truth of its
    class with IoU >= ``iou_threshold``, a ground truth outside the area range (``gt_ignore``) only when no
    other matches, the last of equal IoUs in COCOeval's ground-truth order. ``overlaps``: the task's own
    overlap to match on instead of the boxes' IoU (``pair_values``).

    Returns (per det row: the gt row it matched or -1; per gt row: the det row that matched it or -1).
    """
    det_match = np.full(len(flat.det_score), -1, dtype=np.int64)
    gt_match = np.full(len(flat.gt_cls), -1, dtype=np.int64)
    pair_det, pair_gt = image_pairs(flat, dets, same_class=True)
    value = pair_values(flat, pair_det, pair_gt, overlaps)
    rank = np.full(len(flat.det_score), -1, dtype=np.int64)
    rank[dets] = group_rank(flat, dets)
    pair_rank = rank[pair_det]
    usable = (pair_rank < max_dets) & (value >= min(iou_threshold, 1 - 1e-10))
    pairs = np.flatnonzero(usable)
    pairs = pairs[np.argsort(pair_rank[pairs], kind="stable")]
    bounds = np.searchsorted(pair_rank[pairs], np.arange(max_dets + 1))
    preferred = ~gt_ignore[pair_gt]
    for r in range(max_dets):  # one detection of each image and class per step, in score order
        step = pairs[bounds[r]:bounds[r + 1]]
        if not len(step):
            continue
        step = step[gt_match[pair_gt[step]] < 0]
        # per detection, the best by (not ignored, IoU, gt row): the last of its run after sorting
        step = step[np.lexsort((pair_gt[step], value[step], preferred[step], pair_det[step]))]
        last = np.ones(len(step), dtype=bool)
        last[:-1] = pair_det[step][1:] != pair_det[step][:-1]
        chosen = step[last]
        det_match[pair_det[chosen]] = pair_gt[chosen]
        gt_match[pair_gt[chosen]] = pair_det[chosen]
    return det_match, gt_match


@dataclass
class SizeRecall:
    """Pooled recall per bucket, its counts, and per-GT bucket and found flags in input order."""

    recall: dict[str, float | None]
    found: dict[str, int]
    total: dict[str, int]
    gt_bucket: list[np.ndarray]  # per image, (G,) int8
    gt_found: list[np.ndarray]  # per image, (G,) bool: found in its own bucket


def size_recall(images: list[ImageBoxes], conf_threshold: float, max_dets: int = COCO_MAX_DETS,
                flat: FlatBoxes | None = None) -> SizeRecall:
    """Pooled size-bucket recall over all images and classes (None for an empty bucket): per bucket, COCOeval's
    matching of the detections at or above ``conf_threshold`` with the other buckets' ground truth ignored,
    every image and class at once. ``flat``: ``flatten(images)``, when the caller has it."""
    flat = flatten(images) if flat is None else flat
    area = flat.gt_area
    buckets = np.where(area < SMALL_MAX, 0, np.where(area <= LARGE_MIN, 1, 2)).astype(np.int8)  # bucket_index
    dets = np.flatnonzero(flat.det_score >= conf_threshold)
    hit = np.zeros(len(area), dtype=bool)
    found, total = dict.fromkeys(BUCKETS, 0), dict.fromkeys(BUCKETS, 0)
    for b, name in enumerate(BUCKETS):
        lo, hi = AREA_RANGES[name]
        in_bucket = buckets == b
        if in_bucket.any():
            matched = match(flat, dets, (area < lo) | (area > hi), max_dets=max_dets)[1] >= 0
            hit[in_bucket] = matched[in_bucket]
        total[name] = int(in_bucket.sum())
        found[name] = int(hit[in_bucket].sum())
    recall = {n: (found[n] / total[n] if total[n] else None) for n in BUCKETS}
    cuts = flat.gt_offsets[1:-1]
    per_image = (np.split(buckets, cuts), np.split(hit, cuts)) if len(images) else ([], [])
    return SizeRecall(recall, found, total, *per_image)
