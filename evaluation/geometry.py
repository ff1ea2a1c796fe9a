"""What segmentation, pose and obb predict, in original image pixels, and each task's own overlap measure.

Pure numpy and OpenCV (no torch): the worker uses it right after the
validation pass and again, from the stored predictions artifact, for a later
error analysis. Shapes, all in original image pixels:

- masks: ``MaskCrops`` holds the validator's own predicted masks (a quarter
  of the letterbox resolution, ``MASK_STRIDE``) cropped and bit-packed;
  ``MaskCrops.polygons`` turns one into polygons (the outer contours of the
  mask drawn at letterbox resolution, pixel centres, mapped back through
  the letterbox, rounded to ``POLY_DECIMALS``); a polygon is ``[x1, y1, x2,
  y2, ...]`` (COCO's polygon layout);
- keypoints: ``(D, K, 3)`` x, y and the keypoint's confidence (ground truth:
  visibility);
- rotated boxes: ``(D, 5)`` centre x, centre y, width, height, angle in
  radians (ultralytics' ``xywhr``); ``corners`` gives their four corners.

Overlaps, each a (predictions x ground truth) matrix: ``polygon_iou`` (the
masks rasterised at the image's resolution), ``oks`` (ultralytics'
``kpt_iou``: COCO's OKS with the ground-truth box area x 0.53 as the
scale), ``probiou`` (ultralytics' ``batch_probiou``, the overlap its obb
validator matches with).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

MASK_STRIDE = 4  # SegmentationValidator's masks have a quarter of the letterbox resolution
POLY_DECIMALS = 2
_SUBPIXEL = 4  # cv2.fillPoly's fractional bits
Polygons = list[list[float]]
RatioPad = tuple[tuple[float, float], tuple[float, float]]  # ((gain_y, gain_x), (pad_x, pad_y))


def to_original(points: np.ndarray, ratio_pad: RatioPad, ori_shape: tuple[int, int]) -> np.ndarray:
    """Letterbox pixel coordinates (k, 2) back to the original image, clipped to it (``ops.scale_coords``)."""
    (gain_y, gain_x), (pad_x, pad_y) = ratio_pad
    out = (points - np.array([pad_x, pad_y])) / np.array([gain_x, gain_y])
    return np.clip(out, 0.0, np.array([ori_shape[1], ori_shape[0]], dtype=np.float64))


@dataclass
class MaskCrops:
    """One image's predicted masks on the validator's mask grid, each cropped to its extent and bit-packed."""

    ratio_pad: RatioPad
    ori_shape: tuple[int, int]  # (height, width)
    origin: np.ndarray  # (D, 2) int: the crop's (row, column) on the mask grid
    size: np.ndarray  # (D, 2) int: the crop's (rows, columns); 0 for an empty mask
    bits: list[np.ndarray]  # np.packbits of each crop

    @classmethod
    def from_masks(cls, masks: np.ndarray, ratio_pad: RatioPad, ori_shape: tuple[int, int]) -> MaskCrops:
        masks = np.asarray(masks, dtype=bool)
        if masks.ndim != 3 or not len(masks):
            return cls(ratio_pad, ori_shape, np.zeros((0, 2), np.int64), np.zeros((0, 2), np.int64), [])
        n, mh, mw = masks.shape
        rows: np.ndarray = np.any(masks, axis=2)
        cols: np.ndarray = np.any(masks, axis=1)
        top, left = rows.argmax(1), cols.argmax(1)
        bottom, right = mh - rows[:, ::-1].argmax(1), mw - cols[:, ::-1].argmax(1)
        empty: np.ndarray = ~np.any(rows, axis=1)
        size = np.where(empty[:, None], 0, np.stack([bottom - top, right - left], 1)).astype(np.int64)
        origin = np.stack([top, left], 1).astype(np.int64)
        bits = [np.packbits(masks[i, top[i] : top[i] + size[i, 0], left[i] : left[i] + size[i, 1]]) for i in range(n)]
        return cls(ratio_pad, ori_shape, origin.reshape(-1, 2), size.reshape(-1, 2), bits)

    def polygons(self, i: int) -> Polygons:
        """Mask ``i`` as polygons in original pixels (its outer contours; [] for an empty mask)."""
        rows, cols = (int(v) for v in self.size[i])
        if not rows or not cols:
            return []
        crop = np.unpackbits(self.bits[i], count=rows * cols).reshape(rows, cols)
        big = np.kron(crop, np.ones((MASK_STRIDE, MASK_STRIDE), dtype=np.uint8))  # the mask in letterbox pixels
        contours, _ = cv2.findContours(big, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
        offset = self.origin[i][::-1] * MASK_STRIDE + 0.5  # (x, y) of the crop's first pixel centre
        out = []
        for c in contours:
            if len(c) >= 3:
                xy = to_original(c.reshape(-1, 2) + offset, self.ratio_pad, self.ori_shape)
                out.append(np.round(xy, POLY_DECIMALS).ravel().tolist())
        return out


def corners(xywhr: np.ndarray) -> np.ndarray:
    """The four corners (n, 4, 2) of rotated boxes (``ops.xywhr2xyxyxyxy``)."""
    x = np.asarray(xywhr, dtype=np.float64).reshape(-1, 5)
    cos, sin = np.cos(x[:, 4:5]), np.sin(x[:, 4:5])
    v1 = np.concatenate([x[:, 2:3] / 2 * cos, x[:, 2:3] / 2 * sin], 1)
    v2 = np.concatenate([-x[:, 3:4] / 2 * sin, x[:, 3:4] / 2 * cos], 1)
    c = x[:, :2]
    return np.stack([c + v1 + v2, c + v1 - v2, c - v1 - v2, c - v1 + v2], 1)


def enclosing_xyxy(points: np.ndarray, ori_shape: tuple[int, int]) -> np.ndarray:
    """Axis-aligned boxes (n, 4) around point sets (n, k, 2), clipped to the image."""
    if not len(points):
        return np.zeros((0, 4))
    pts = np.asarray(points, dtype=np.float64).reshape(len(points), -1, 2)
    box = np.concatenate([pts.min(1), pts.max(1)], 1)
    return np.clip(box, 0.0, np.array([ori_shape[1], ori_shape[0]] * 2, dtype=np.float64))


def xywhr_of_corners(points: np.ndarray) -> np.ndarray:
    """Rotated boxes (n, 5) of corner sets (n, 4, 2), as ultralytics reads obb labels
    (``ops.xyxyxyxy2xywhr``: cv2.minAreaRect, w the longer side, angle in [-pi/4, 3pi/4))."""
    out = []
    for pts in np.asarray(points, dtype=np.float32).reshape(-1, 4, 2):
        (cx, cy), (w, h), angle = cv2.minAreaRect(pts)
        theta = angle / 180 * np.pi
        if w < h:
            w, h, theta = h, w, theta + np.pi / 2
        while theta >= 3 * np.pi / 4:
            theta -= np.pi
        while theta < -np.pi / 4:
            theta += np.pi
        out.append([cx, cy, w, h, theta])
    return np.asarray(out, dtype=np.float64).reshape(-1, 5)


def _raster(polygons: Polygons, shape: tuple[int, int]) -> np.ndarray:
    canvas = np.zeros(shape, dtype=np.uint8)
    pts = [np.round(np.asarray(p, dtype=np.float64).reshape(-1, 2) * (1 << _SUBPIXEL)).astype(np.int32)
           for p in polygons if len(p) >= 6]
    if pts:
        cv2.fillPoly(canvas, pts, 1, lineType=cv2.LINE_8, shift=_SUBPIXEL)
    return canvas.ravel()


def polygon_iou(pred: list[Polygons | None], gt: list[Polygons], shape: tuple[int, int]) -> np.ndarray:
    """Mask IoU (D x G) of predicted and ground-truth polygons drawn at ``shape`` (height, width); 0 for a
    prediction without polygons (``None``: not drawn)."""
    out = np.zeros((len(pred), len(gt)))
    drawn = [(i, p) for i, p in enumerate(pred) if p]
    if not drawn or not gt:
        return out
    rows = [i for i, _ in drawn]
    a = np.stack([_raster(p, shape) for _, p in drawn]).astype(np.float32)
    b = np.stack([_raster(g, shape) for g in gt]).astype(np.float32)
    inter = a @ b.T
    union = a.sum(1)[:, None] + b.sum(1)[None] - inter
    out[rows] = np.where(union > 0, inter / np.maximum(union, 1), 0.0)
    return out


def oks(pred: np.ndarray, gt: np.ndarray, gt_area: np.ndarray, sigma: np.ndarray, eps: float = 1e-7) -> np.ndarray:
    """OKS (D x G) of predicted keypoints (D, K, 3) against ground truth (G, K, 3) with visibility, as
    ultralytics' ``kpt_iou`` (``gt_area``: the ground-truth box area x 0.53)."""
    if not len(pred) or not len(gt):
        return np.zeros((len(pred), len(gt)))
    pred = np.asarray(pred, dtype=np.float64).reshape(len(pred), -1, 3)
    gt = np.asarray(gt, dtype=np.float64).reshape(len(gt), -1, 3)
    d = (gt[:, None, :, 0] - pred[None, :, :, 0]) ** 2 + (gt[:, None, :, 1] - pred[None, :, :, 1]) ** 2
    visible = gt[..., 2] != 0
    e = d / ((2 * np.asarray(sigma, dtype=np.float64)) ** 2 * (np.asarray(gt_area)[:, None, None] + eps) * 2)
    return ((np.exp(-e) * visible[:, None]).sum(-1) / (visible.sum(-1)[:, None] + eps)).T


def _covariance(boxes: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    a, b = boxes[:, 2] ** 2 / 12, boxes[:, 3] ** 2 / 12
    cos, sin = np.cos(boxes[:, 4]), np.sin(boxes[:, 4])
    return a * cos**2 + b * sin**2, a * sin**2 + b * cos**2, (a - b) * cos * sin


def probiou(pred: np.ndarray, gt: np.ndarray, eps: float = 1e-7) -> np.ndarray:
    """ProbIoU (D x G) of rotated boxes (``xywhr``), ultralytics' ``batch_probiou`` in float64."""
    p = np.asarray(pred, dtype=np.float64).reshape(-1, 5)
    g = np.asarray(gt, dtype=np.float64).reshape(-1, 5)
    a1, b1, c1 = (v[:, None] for v in _covariance(g))
    a2, b2, c2 = (v[None] for v in _covariance(p))
    x1, y1 = g[:, 0:1], g[:, 1:2]
    x2, y2 = p[None, :, 0], p[None, :, 1]
    den = (a1 + a2) * (b1 + b2) - (c1 + c2) ** 2
    t1 = ((a1 + a2) * (y1 - y2) ** 2 + (b1 + b2) * (x1 - x2) ** 2) / (den + eps) * 0.25
    t2 = ((c1 + c2) * (x2 - x1) * (y1 - y2)) / (den + eps) * 0.5
    t3 = np.log(den / (4 * np.sqrt(np.clip(a1 * b1 - c1**2, 0, None) * np.clip(a2 * b2 - c2**2, 0, None)) + eps)
                + eps) * 0.5
    bd = np.clip(t1 + t2 + t3, eps, 100.0)
    return (1 - np.sqrt(1.0 - np.exp(-bd) + eps)).T
