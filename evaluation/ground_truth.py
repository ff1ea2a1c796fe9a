"""Ground-truth boxes of one image, from its label file, in the original image's pixels."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from evaluation.datasets import Dataset


def gt_boxes(dataset: Dataset, image: Path, ori_shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Ground truth of one image from its label file: xywh in original pixels (float64) and classes.

    x = (cx - w/2) * W, y = (cy - h/2) * H, w = w * W, h = h * H, with W x H the
    image size; the area of a box is w * h.
    """
    height, width = ori_shape
    labels = dataset.labels[image]
    xywh = np.array(
        [[(lb.cx - lb.w / 2) * width, (lb.cy - lb.h / 2) * height, lb.w * width, lb.h * height] for lb in labels],
        dtype=np.float64,
    ).reshape(-1, 4)
    cls = np.array([lb.cls for lb in labels], dtype=np.int64)
    return xywh, cls
