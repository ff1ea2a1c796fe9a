"""Tiny synthetic datasets of every task, written into a folder (for training tests).

Each image is a small noisy square with one coloured rectangle; the colour is
the class. ``make_task_dataset(root, ultralytics_task, n)`` writes ``n``
train and ``n`` val images and returns what ``train`` takes as ``dataset_path``:
a YOLO data YAML for detect/segment/pose/obb (boxes, 4-point polygons,
boxes with ``KPT_SHAPE`` keypoints, 8-number oriented boxes) and the
ImageFolder root (``train/<class>/``, ``val/<class>/``) for classify.
Deterministic: the same arguments give the same bytes.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import yaml
from PIL import Image

NAMES = ["red", "blue"]
COLOURS = [(220, 40, 40), (50, 80, 230)]
SIZE = 48  # image side in pixels
# 4 keypoints (the rectangle's corners), x and y each, without visibility flags (ultralytics' 2-number keypoints).
KPT_SHAPE = [4, 2]


def _image(rng: np.random.Generator, cls: int) -> tuple[np.ndarray, tuple[float, float, float, float]]:
    """An image and its rectangle as normalised x0, y0, x1, y1."""
    img = rng.integers(90, 150, size=(SIZE, SIZE, 3), dtype=np.uint8)
    w, h = (int(v) for v in rng.integers(14, 30, size=2))
    x, y = int(rng.integers(0, SIZE - w)), int(rng.integers(0, SIZE - h))
    img[y : y + h, x : x + w] = COLOURS[cls]
    return img, (x / SIZE, y / SIZE, (x + w) / SIZE, (y + h) / SIZE)


def _label(task: str, cls: int, box: tuple[float, float, float, float]) -> str:
    """One YOLO label line of ``task`` for a rectangle (corners clockwise from top-left)."""
    x0, y0, x1, y1 = box
    corners = [x0, y0, x1, y0, x1, y1, x0, y1]
    if task in ("segment", "obb"):
        values = corners
    else:
        values = [(x0 + x1) / 2, (y0 + y1) / 2, x1 - x0, y1 - y0]
        if task == "pose":
            values += corners
    return f"{cls} " + " ".join(f"{v:.6f}" for v in values) + "\n"


def _write_split(root: Path, task: str, split: str, n: int, rng: np.random.Generator) -> None:
    for i in range(n):
        cls = i % len(NAMES)
        img, box = _image(rng, cls)
        if task == "classify":
            target = root / split / NAMES[cls] / f"{i:03d}.png"
        else:
            target = root / "images" / split / f"{i:03d}.png"
            label = root / "labels" / split / f"{i:03d}.txt"
            label.parent.mkdir(parents=True, exist_ok=True)
            label.write_text(_label(task, cls, box))
        target.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(img).save(target)


def make_task_dataset(root: Path, task: str, n: int = 8, seed: int = 0) -> Path:
    """Write ``n`` train and ``n`` val images of ultralytics ``task`` under ``root``; return the dataset path."""
    rng = np.random.default_rng(seed)
    for split in ("train", "val"):
        _write_split(root, task, split, n, rng)
    if task == "classify":
        return root
    data: dict[str, object] = {"path": str(root.resolve()), "train": "images/train", "val": "images/val",
                               "names": dict(enumerate(NAMES))}
    if task == "pose":
        data["kpt_shape"] = KPT_SHAPE
    path = root / "data.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path
