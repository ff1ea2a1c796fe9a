"""Size-bucket recall, matched exactly as pycocotools' COCOeval matches (docs/metrics.md, "Size recall").

For one image, one class and one area range, ``coco_match`` is COCOeval's
``evaluateImg`` at a single IoU threshold: detections sorted by score
(stable), the top ``max_dets`` kept, each taking the best still-unmatched
ground truth with IoU >= threshold, ground truth outside the area range
"ignored" and taken only when no in-range box matches. IoU is pycocotools'
``bbIou`` on ``[x, y, w, h]`` boxes, operation for operation, so that a box
on a threshold falls on the same side in both implementations.

Buckets, by box area w*h in original image pixels: small ``area < 32*32``,
medium ``32*32 <= area <= 96*96``, large ``area > 96*96``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

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
    return coco_match_pairs(det_xywh, det_score, gt_xywh, gt_area, area_range, iou_threshold, max_dets) >= 0


def coco_match_pairs(
    det_xywh: np.ndarray,
    det_score: np.ndarray,
    gt_xywh: np.ndarray,
    gt_area: np.ndarray,
    area_range: tuple[float, float],
    iou_threshold: float = 0.5,
    max_dets: int = COCO_MAX_DETS,
    overlap: np.ndarray | None = None,
) -> np.ndarray:
    """COCOeval's matching of one image and class: per GT (input order), the index of the detection
    (input order) that matched it, or -1. Detections past the top ``max_dets`` never match. ``overlap``:
    another overlap measure (D x G, input order) to match on instead of the boxes' IoU."""
    n_gt = len(gt_xywh)
    matched_by = np.full(n_gt, -1, dtype=np.int64)
    if n_gt == 0 or len(det_xywh) == 0:
        return matched_by
    ignore = (gt_area < area_range[0]) | (gt_area > area_range[1])
    gt_order = np.argsort(ignore.astype(np.int64), kind="mergesort")
    det_order = np.argsort(-det_score, kind="mergesort")[:max_dets]
    if overlap is None:
        ious = bb_iou(det_xywh[det_order], gt_xywh[gt_order])
    else:
        ious = np.asarray(overlap)[det_order][:, gt_order]
    ig = ignore[gt_order]
    taken = np.full(n_gt, -1, dtype=np.int64)
    start = min(iou_threshold, 1 - 1e-10)
    for di in range(len(det_order)):
        best, m = start, -1
        for gi in range(n_gt):
            if taken[gi] >= 0:
                continue
            if m > -1 and not ig[m] and ig[gi]:
                break
            if ious[di, gi] < best:
                continue
            best, m = ious[di, gi], gi
        if m > -1:
            taken[m] = det_order[di]
    matched_by[gt_order] = taken
    return matched_by


@dataclass
class ImageBoxes:
    """One image's detections and ground truth in original pixels, xywh, float64."""

    det_xywh: np.ndarray  # (D, 4)
    det_score: np.ndarray  # (D,)
    det_cls: np.ndarray  # (D,) int
    gt_xywh: np.ndarray  # (G, 4)
    gt_cls: np.ndarray  # (G,) int


@dataclass
class SizeRecall:
    """Pooled recall per bucket, its counts, and per-GT bucket and found flags in input order."""

    recall: dict[str, float | None]
    found: dict[str, int]
    total: dict[str, int]
    gt_bucket: list[np.ndarray]  # per image, (G,) int8
    gt_found: list[np.ndarray]  # per image, (G,) bool: found in its own bucket


def size_recall(images: list[ImageBoxes], conf_threshold: float, max_dets: int = COCO_MAX_DETS) -> SizeRecall:
    """Pooled size-bucket recall over all images and classes (None for an empty bucket)."""
    found = dict.fromkeys(BUCKETS, 0)
    total = dict.fromkeys(BUCKETS, 0)
    gt_buckets: list[np.ndarray] = []
    gt_founds: list[np.ndarray] = []
    for im in images:
        areas = im.gt_xywh[:, 2] * im.gt_xywh[:, 3] if len(im.gt_xywh) else np.zeros(0)
        buckets = np.where(areas < SMALL_MAX, 0, np.where(areas <= LARGE_MIN, 1, 2)).astype(np.int8)  # bucket_index
        hit = np.zeros(len(im.gt_xywh), dtype=bool)
        keep = im.det_score >= conf_threshold
        for cls in np.unique(im.gt_cls):
            g_idx = np.flatnonzero(im.gt_cls == cls)
            d_idx = np.flatnonzero(keep & (im.det_cls == cls))
            for b, name in enumerate(BUCKETS):
                in_bucket = buckets[g_idx] == b
                if not in_bucket.any():
                    continue
                m = coco_match(
                    im.det_xywh[d_idx], im.det_score[d_idx], im.gt_xywh[g_idx], areas[g_idx],
                    AREA_RANGES[name], max_dets=max_dets,
                )
                hit[g_idx[in_bucket]] = m[in_bucket]
        for b, name in enumerate(BUCKETS):
            sel = buckets == b
            total[name] += int(sel.sum())
            found[name] += int(hit[sel].sum())
        gt_buckets.append(buckets)
        gt_founds.append(hit)
    recall = {n: (found[n] / total[n] if total[n] else None) for n in BUCKETS}
    return SizeRecall(recall, found, total, gt_buckets, gt_founds)
