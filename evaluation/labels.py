"""YOLO label files, parsed per task as ultralytics 8.4 reads them (``verify_image_label``), with exact errors.

Light (no torch): the daemon calls it at submit time. A ``LabelSpec`` says how
the label files of a dataset are read: its task and the keypoint shape
(``label_spec`` builds it from the dataset YAML and, for pose, checks it
against the checkpoint's); ``evaluation.datasets.load_dataset`` builds it
from the YAML it read and hands it to ``parse_label_file`` for every file. Every row becomes a ``Label``: the class, the box
(normalised centre-x, centre-y, width, height) and the task's own geometry in
``points`` (normalised):

- ``detection``: ``cls cx cy w h`` or a polygon ``cls x1 y1 ... xn yn`` (its
  box is the polygon's extent; ``points`` stays empty: detection reads boxes
  only); one file may not mix both;
- ``segmentation``: polygons only (a box row means detection labels: an
  error naming both tasks); ``points`` = the polygon ``x1 y1 ... xn yn``;
- ``obb``: the four corners ``cls x1 y1 x2 y2 x3 y3 x4 y4`` (stricter than
  ultralytics, which takes the minimum-area rectangle of any polygon);
  ``points`` = the corners, the box their extent;
- ``pose``: ``cls cx cy w h`` then ``kpt_shape[0]`` keypoints of
  ``kpt_shape[1]`` numbers; ``points`` = ``x y v`` per keypoint (2-number
  keypoints get ultralytics' visibility: 0 when x or y is negative, else 1).

When the YAML declares a ``kpt_shape``, a non-pose task keeps the box of a
pose row, as ultralytics does. Shared rules, as ultralytics': an integer class
below ``nc``; coordinates (boxes, polygon vertices, keypoint x and y) at most
1.01 and not below -0.01 (width and height not negative); duplicate rows
(equal in float32) removed, the first kept. Each broken rule is a
``DatasetError`` naming the file and line: ultralytics would silently drop
the image, or refuse the whole dataset.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from vocab.errors import DatasetError
from vocab.tasks import DEFAULT_TASK, canonical_task

# The YAML keys of pose datasets ultralytics reads (validation: kpt_shape, flip_idx, kpt_oks_sigmas; training
# also kpt_names).
KPT_KEYS = ("kpt_shape", "flip_idx", "kpt_names", "kpt_oks_sigmas")


@dataclass(frozen=True)
class Label:
    """One ground-truth object: class index, normalised box, and the task's geometry (see module doc)."""

    cls: int
    cx: float
    cy: float
    w: float
    h: float
    points: tuple[float, ...] = ()


@dataclass(frozen=True)
class LabelSpec:
    """How a dataset's label files are read: the task and, when the YAML declares one, the keypoint shape;
    ``yaml_keys``: the YAML's pose keys handed on to ultralytics."""

    task: str = DEFAULT_TASK
    kpt_shape: tuple[int, int] | None = None
    yaml_keys: tuple[tuple[str, Any], ...] = ()

    @property
    def row_lengths(self) -> str:
        if self.task == "pose" and self.kpt_shape:
            return f"'class cx cy w h' and {self.kpt_shape[0]} keypoints of {self.kpt_shape[1]} numbers"
        return {"segmentation": "a polygon 'class x1 y1 x2 y2 ...'",
                "obb": "the four corners 'class x1 y1 x2 y2 x3 y3 x4 y4'"}.get(
            self.task, "'class cx cy w h' (5 numbers) or a polygon 'class x1 y1 x2 y2 ...'")


DETECTION = LabelSpec()  # how a detection checkpoint reads a YAML without kpt_shape


def _kpt_shape(raw: Any) -> tuple[int, int] | None:
    ok = (isinstance(raw, (list, tuple)) and len(raw) == 2 and all(isinstance(v, int) and not isinstance(v, bool)
                                                                     for v in raw))
    return (int(raw[0]), int(raw[1])) if ok and raw[0] > 0 and raw[1] in (2, 3) else None


def label_spec(task: str, data: Mapping[str, Any], model_kpt_shape: Any = None, source: str = "dataset") -> LabelSpec:
    """The spec of a dataset YAML mapping (``data``) for a checkpoint of ``task``.

    Pose: the YAML must declare ``kpt_shape`` ([keypoints, 2 or 3]) equal to
    the checkpoint's (``model_kpt_shape``, when known); ``flip_idx`` and
    ``kpt_oks_sigmas``, when given, must have one entry per keypoint
    (``flip_idx`` a permutation, the sigmas positive). DatasetError otherwise,
    naming ``source`` (the YAML's path). Classification reads no label files
    (its datasets are image folders): a DatasetError too.
    """
    task = canonical_task(task)
    if task == "classification":
        raise DatasetError(f"{source}: a classification model is evaluated on an image folder "
                           "(<split>/<class>/ images), not on a dataset YAML with label files")
    declared = data.get("kpt_shape")
    shape = _kpt_shape(declared)
    if task != "pose":
        return LabelSpec(task, shape)
    model_shape = _kpt_shape(list(model_kpt_shape)) if model_kpt_shape is not None else None
    wanted = f"; the checkpoint is a pose model with kpt_shape {list(model_shape)}" if model_shape else ""
    if shape is None:
        what = "no 'kpt_shape'" if declared is None else f"no valid 'kpt_shape' (got {declared!r})"
        raise DatasetError(f"{source} has {what}: a pose dataset declares [number of keypoints, 2 or 3], "
                           f"e.g. [17, 3]{wanted}")
    if model_shape is not None and model_shape != shape:
        raise DatasetError(f"{source} declares kpt_shape {list(shape)} but the checkpoint is a pose model with "
                           f"kpt_shape {list(model_shape)}: keypoint labels of another shape")
    flip = data.get("flip_idx")
    if flip is not None and (not isinstance(flip, list) or sorted(flip) != list(range(shape[0]))):
        raise DatasetError(f"{source}: 'flip_idx' must list each of the {shape[0]} keypoint indices once, got {flip!r}")
    sigmas = data.get("kpt_oks_sigmas")
    if sigmas is not None:
        values = np.asarray(sigmas, dtype=object).ravel() if isinstance(sigmas, list) else None
        if (values is None or len(values) != shape[0]
                or not all(isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0 for v in values)):
            raise DatasetError(f"{source}: 'kpt_oks_sigmas' must be {shape[0]} positive numbers, got {sigmas!r}")
    keys = tuple((k, data[k]) for k in KPT_KEYS if data.get(k) is not None)
    return LabelSpec(task, shape, keys)


def _box_of(coords: list[float]) -> tuple[float, float, float, float]:
    xs, ys = coords[0::2], coords[1::2]
    x0, x1, y0, y1 = min(xs), max(xs), min(ys), max(ys)
    return (x0 + x1) / 2, (y0 + y1) / 2, x1 - x0, y1 - y0


def _row(values: list[float], spec: LabelSpec, where: str, line: str) -> tuple[Label, list[float]]:
    """One parsed row as a Label, and the numbers it was read from (a pose row's box alone for a box task);
    DatasetError (``where``: file:line)."""
    n = len(values)
    kpt_len = 5 + spec.kpt_shape[0] * spec.kpt_shape[1] if spec.kpt_shape else None
    if spec.task == "pose":
        if n != kpt_len:
            raise DatasetError(f"{where}: label line has {n} numbers; the checkpoint is a pose model and the "
                               f"dataset's kpt_shape {list(spec.kpt_shape or ())} needs {kpt_len}: "
                               f"{spec.row_lengths}")
        return _pose_label(values, spec, where, line), values
    if n == kpt_len:
        values, n = values[:5], 5  # a pose row read for a box task: its box
    if n == 5:
        if spec.task in ("segmentation", "obb"):
            raise DatasetError(f"{where}: a box row 'class cx cy w h' (detection labels), but the checkpoint is "
                               f"a {spec.task} model: its labels are {spec.row_lengths}")
        c, cx, cy, w, h = values
        _check_coords(values[1:], w, h, where, line)
        return Label(int(c), cx, cy, w, h), values
    if n < 7 or n % 2 == 0 or (spec.task == "obb" and n != 9):
        raise DatasetError(f"{where}: label line has {n} numbers; expected {spec.row_lengths}")
    coords = values[1:]
    cx, cy, w, h = _box_of(coords)
    _check_coords(coords, w, h, where, line)
    return Label(int(values[0]), cx, cy, w, h, () if spec.task == DEFAULT_TASK else tuple(coords)), values


def _pose_label(values: list[float], spec: LabelSpec, where: str, line: str) -> Label:
    assert spec.kpt_shape is not None
    nkpt, ndim = spec.kpt_shape
    kpts = np.asarray(values[5:], dtype=np.float64).reshape(nkpt, ndim)
    c, cx, cy, w, h = values[:5]
    if kpts[:, :2].max(initial=0.0) > 1.01 or max(values[1:5]) > 1.01:
        raise DatasetError(f"{where}: coordinates must be normalised to [0, 1]: {line!r}")
    if min(values[1:]) < -0.01 or min(w, h) < 0:
        raise DatasetError(f"{where}: negative label values: {line!r}")
    if ndim == 2:  # ultralytics: a keypoint with a negative coordinate is not visible
        visible = np.where((kpts[:, 0] < 0) | (kpts[:, 1] < 0), 0.0, 1.0)
        kpts = np.concatenate([kpts, visible[:, None]], 1)
    return Label(int(c), cx, cy, w, h, tuple(kpts.ravel().tolist()))


def _check_coords(coords: list[float], w: float, h: float, where: str, line: str) -> None:
    if max(coords) > 1.01 or min(coords) < -0.01 or min(w, h) < 0:
        raise DatasetError(f"{where}: coordinates must be normalised to [0, 1]: {line!r}")


def parse_label_file(path: Path, nc: int, spec: LabelSpec = DETECTION) -> list[Label]:
    """Parse one YOLO label file as ultralytics does for ``spec``'s task, with exact errors (see the module
    contract)."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise DatasetError(f"cannot read label file {path}: {exc}") from exc
    labels: dict[bytes, Label] = {}
    kinds: set[bool] = set()
    for lineno, line in enumerate(text.strip().splitlines(), start=1):
        parts = line.split()
        if not parts:
            continue
        where = f"{path}:{lineno}"
        try:
            values = [float(x) for x in parts]
        except ValueError:
            raise DatasetError(f"{where}: label line does not parse: {line.strip()!r}") from None
        if values[0] != int(values[0]):
            raise DatasetError(f"{where}: class index {parts[0]!r} is not an integer")
        if not 0 <= int(values[0]) < nc:
            raise DatasetError(
                f"{where}: class index {int(values[0])} is out of range: the dataset has {nc} "
                f"classes (0..{nc - 1}); ultralytics would silently drop this image"
            )
        label, used = _row(values, spec, where, line.strip())
        kinds.add(len(used) > 5 and spec.task != "pose")  # a polygon row
        if len(kinds) > 1:
            raise DatasetError(f"{where}: this file mixes box rows and polygon rows; ultralytics would silently "
                               "drop this image")
        labels.setdefault(np.asarray(used, dtype=np.float32).tobytes(), label)  # duplicates: the first is kept
    return list(labels.values())
