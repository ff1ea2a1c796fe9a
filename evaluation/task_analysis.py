"""Each task's own geometry in the predictions artifact, and its own overlap for the error analysis.

Pure numpy and OpenCV (``evaluation.geometry``); worker only. A
segmentation, pose or obb prediction row of ``predictions.json`` carries,
besides detection's ``{file_name, category_id, bbox [x, y, w, h], score}``,
what the task predicts, in original image pixels (``row_geometry``):

- segmentation: ``segmentation``: the mask as polygons ``[[x1, y1, x2, y2,
  ...], ...]`` (``MaskCrops.polygons``) for a prediction at or above the
  operating point, else null (masks below it would make the artifact large
  and are never drawn or typed);
- pose: ``keypoints``: ``[x1, y1, c1, ...]`` (c: the keypoint's confidence,
  or 1 for 2-number keypoints), at or above the operating point, else null;
- obb: ``obb``: ``[cx, cy, w, h, angle]`` (radians, ultralytics' xywhr) and
  ``poly``: its corners ``[x1, y1, ..., x4, y4]``, for every prediction
  (``bbox`` is their enclosing box).

The error analysis of those tasks types predictions with the task's own
overlap (``overlaps``), computed from exactly these rows and the label
files, so that the analysis of a stored evaluation gives the same artifact:
mask IoU of the polygons drawn at the image's resolution (segmentation),
OKS (pose: ultralytics' ``kpt_iou`` and sigmas), ProbIoU (obb: the overlap
its validator matches with). Rows below the operating point are never
typed, so they get no overlap.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from evaluation.geometry import MaskCrops, corners, oks, polygon_iou, probiou, xywhr_of_corners
from evaluation.labels import Label, LabelSpec

POSE_AREA_SCALE = 0.53  # ultralytics' PoseValidator: OKS scale = box area x 0.53


def row_geometry(task: str, geometry: Any, keep: np.ndarray) -> list[dict[str, Any]]:
    """The task's keys of each prediction row of one image (``[]`` for detection); ``keep``: at or above
    the operating point."""
    n = len(keep)
    if task == "segmentation":
        assert isinstance(geometry, MaskCrops)
        return [{"segmentation": geometry.polygons(i) if keep[i] else None} for i in range(n)]
    if task == "pose":
        kpts = np.asarray(geometry, dtype=np.float64)  # (D, K, 2 or 3)
        return [{"keypoints": _keypoint_triples(kpts[i]) if keep[i] else None} for i in range(n)]
    if task == "obb":
        rboxes = np.asarray(geometry, dtype=np.float64).reshape(-1, 5)
        polys = corners(rboxes).reshape(-1, 8)
        return [{"obb": rboxes[i].tolist(), "poly": polys[i].tolist()} for i in range(n)]
    return []


def _keypoint_triples(kpts: np.ndarray) -> list[float]:
    if kpts.shape[1] == 2:
        kpts = np.concatenate([kpts, np.ones((len(kpts), 1))], 1)
    return kpts.ravel().tolist()


def oks_sigma(spec: LabelSpec) -> np.ndarray:
    """The OKS sigmas ultralytics' PoseValidator uses: the YAML's ``kpt_oks_sigmas``, COCO's for 17 x 3
    keypoints, else 1 / keypoints each."""
    sigmas = dict(spec.yaml_keys).get("kpt_oks_sigmas")
    if sigmas is not None:
        return np.asarray(sigmas, dtype=np.float64).ravel()
    nkpt = spec.kpt_shape[0] if spec.kpt_shape else 0
    if spec.kpt_shape == (17, 3):
        from ultralytics.utils.metrics import OKS_SIGMA

        return np.asarray(OKS_SIGMA, dtype=np.float64)
    return np.ones(nkpt) / max(nkpt, 1)


def overlaps(task: str, rows: Sequence[dict[str, Any]], labels: Sequence[Label], ori_shape: tuple[int, int],
             sigma: np.ndarray | None = None) -> np.ndarray:
    """The task's overlap (predictions x ground truth) of one image's rows and label-file objects in
    original pixels (``ori_shape``: height, width); 0 for a row without the task's geometry."""
    height, width = ori_shape
    scale = np.array([width, height], dtype=np.float64)
    if task == "segmentation":
        gt_polys = [(np.asarray(lb.points).reshape(-1, 2) * scale).ravel().tolist() for lb in labels]
        return polygon_iou([r["segmentation"] for r in rows], [[p] for p in gt_polys], ori_shape)
    if task == "pose":
        out = np.zeros((len(rows), len(labels)))
        drawn = [i for i, r in enumerate(rows) if r["keypoints"] is not None]
        if drawn and labels:
            gt = np.array([lb.points for lb in labels], dtype=np.float64).reshape(len(labels), -1, 3)
            gt[..., :2] *= scale
            area = np.array([lb.w * width * lb.h * height for lb in labels]) * POSE_AREA_SCALE
            pred = np.array([rows[i]["keypoints"] for i in drawn], dtype=np.float64)
            out[drawn] = oks(pred, gt, area, sigma if sigma is not None else np.ones(gt.shape[1]) / gt.shape[1])
        return out
    if task == "obb":
        gt_xywhr = xywhr_of_corners(np.array([lb.points for lb in labels], dtype=np.float64).reshape(-1, 4, 2) * scale)
        return probiou(np.array([r["obb"] for r in rows], dtype=np.float64).reshape(-1, 5), gt_xywhr)
    raise ValueError(f"no task overlap for {task!r}: detection uses box IoU")
