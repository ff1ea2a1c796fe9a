"""Per-image evidence: what it takes to recompute AP on any subset of images without the model.

Stored as a compressed ``.npz`` beside the predictions artifact. Arrays, with
``*_offsets`` giving each image's slice (length n_images + 1):

- ``task``: the evaluation's task (``detection``, ``segmentation``, ``pose``,
  ``obb``); evidence written before tasks lacks it and is detection's
  (``evidence_task``);
- ``image_names``: val-relative file names, in dataset order;
- ``val_order``: the images (indices into ``image_names``) in the order the
  validator saw them (it concatenates its predictions in that order before
  sorting them by confidence); older evidence lacks it;
- ``pred_offsets``, ``tp`` (P x 10 bool, the validator's own matches at IoU
  0.50:0.05:0.95; obb: rotated IoU), ``conf`` (P, float32 as the validator
  holds them; older evidence: float64), ``pred_cls`` (P): every post-NMS
  prediction;
- ``tp_mask`` (segmentation: mask IoU), ``tp_pose`` (pose: keypoint OKS):
  the validator's own matches of the task's further metric family
  (``evaluation.families``), P x 10 bool, rows as ``tp``;
- ``target_offsets``, ``target_cls``: the validator's ground-truth classes;
- ``gt_offsets``, ``gt_cls``, ``gt_bucket`` (0 small, 1 medium, 2 large),
  ``gt_found`` (matched at IoU 0.5 at the operating point, COCO-style): every
  label-file box, in label-file order (obb, which has no size recall: found
  by the error analysis' rotated-IoU matching; the buckets by the enclosing
  box's area, unused);
- ``conf_threshold``: the operating point;
- ``batch_ms``, ``batch_images``: the model's inference time of every batch
  (milliseconds for the whole batch) and its image count, in the order the
  batches ran, the warm-up batch included (``evaluation.speed`` applies the
  warm-up rule). Evidence written before timings were kept lacks them.

A classification evidence (``task`` = ``"classification"``, written by
``write_classification_evidence``) holds instead, per image in dataset order:
``image_names``, ``true`` (n, the class index), ``top5`` (n x k, the
validator's top-k class indices, most probable first, k = min(5, classes)),
``conf`` (n x k, their probabilities), ``n_classes`` (the table's classes,
``evaluation.classify_metrics.table_names``), and the same ``batch_ms`` /
``batch_images``.

``same_predictions`` says whether two evidences hold the same predictions on
the same images (timings aside).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from evaluation.families import families
from evaluation.size_recall import ImageBoxes, SizeRecall

DETECTION, CLASSIFICATION = "detection", "classification"  # vocab.tasks' names


def _offsets(lengths: list[int]) -> np.ndarray:
    return np.concatenate([[0], np.cumsum(lengths, dtype=np.int64)]).astype(np.int64)


def write_evidence(
    path: Path,
    image_names: list[str],
    records: list[Any],
    boxes: list[ImageBoxes],
    sizes: SizeRecall,
    conf_threshold: float | None,
    timings: Sequence[Any] = (),
    *,
    task: str = DETECTION,
    val_order: Sequence[int] | None = None,
) -> None:
    """Write the evidence of one evaluation atomically (records: ``validator.ImageRecord`` in dataset order,
    timings: ``validator.BatchTiming``; ``val_order``: the records' indices in the validator's order)."""
    family_tp = {f.evidence_key: np.concatenate([r.family_tp[f.evidence_key] for r in records]
                                                or [np.zeros((0, 10), bool)]).astype(bool)
                 for f in families(task)[1:]}
    arrays = {
        "task": np.array(task),
        "image_names": np.array(image_names, dtype=object).astype(str),
        **({} if val_order is None else {"val_order": np.asarray(val_order, dtype=np.int64)}),
        "pred_offsets": _offsets([len(r.pred_conf) for r in records]),
        "tp": np.concatenate([r.tp for r in records] or [np.zeros((0, 10), bool)]).astype(bool),
        **family_tp,
        "conf": np.concatenate([r.pred_conf for r in records] or [np.zeros(0)]).astype(np.float32),
        "pred_cls": np.concatenate([r.pred_cls for r in records] or [np.zeros(0)]).astype(np.int64),
        "target_offsets": _offsets([len(r.target_cls) for r in records]),
        "target_cls": np.concatenate([r.target_cls for r in records] or [np.zeros(0)]).astype(np.int64),
        "gt_offsets": _offsets([len(b) for b in sizes.gt_bucket]),
        "gt_cls": np.concatenate([b.gt_cls for b in boxes] or [np.zeros(0)]).astype(np.int64),
        "gt_bucket": np.concatenate(sizes.gt_bucket or [np.zeros(0)]).astype(np.int8),
        "gt_found": np.concatenate(sizes.gt_found or [np.zeros(0)]).astype(bool),
        "conf_threshold": np.array(np.nan if conf_threshold is None else conf_threshold),
        "batch_ms": np.array([t.ms for t in timings], dtype=np.float64),
        "batch_images": np.array([t.images for t in timings], dtype=np.int64),
    }
    _save(path, arrays)


def write_classification_evidence(
    path: Path, image_names: list[str], true: np.ndarray, top5: np.ndarray, conf: np.ndarray, n_classes: int,
    timings: Sequence[Any] = (),
) -> None:
    """Write the evidence of one classification evaluation atomically (timings: ``validator.BatchTiming``)."""
    n = len(image_names)
    _save(path, {
        "task": np.array(CLASSIFICATION),
        "image_names": np.array(image_names, dtype=object).astype(str),
        "true": np.asarray(true, dtype=np.int64).reshape(n),
        "top5": np.asarray(top5, dtype=np.int64).reshape(n, -1),
        "conf": np.asarray(conf, dtype=np.float64).reshape(n, -1),
        "n_classes": np.array(n_classes, dtype=np.int64),
        "batch_ms": np.array([t.ms for t in timings], dtype=np.float64),
        "batch_images": np.array([t.images for t in timings], dtype=np.int64),
    })


def _save(path: Path, arrays: dict[str, np.ndarray]) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}.npz")
    np.savez_compressed(tmp, **arrays)  # type: ignore[arg-type]  # numpy's stub types **kwds as allow_pickle
    os.replace(tmp, path)


def evidence_task(evidence: Mapping[str, Any]) -> str:
    """The evidence's ``task`` entry (a ``vocab.tasks`` name; none: a detection evidence written before
    tasks)."""
    return str(evidence["task"]) if "task" in evidence else DETECTION


def load_evidence(path: Path, keys: Iterable[str] | None = None) -> dict[str, np.ndarray]:
    """Read an evidence file written by ``write_evidence``: every array, or only those named in ``keys``
    (the others are not read; KeyError for one it lacks)."""
    with np.load(path, allow_pickle=False) as data:
        return {k: data[k] for k in (data.files if keys is None else keys)}


PREDICTION_KEYS = (
    "image_names", "pred_offsets", "tp", "conf", "pred_cls", "target_offsets", "target_cls",
    "gt_offsets", "gt_cls", "gt_bucket", "gt_found", "conf_threshold",
)
CLASSIFICATION_PREDICTION_KEYS = ("image_names", "true", "top5", "conf", "n_classes")


def same_predictions(ev_a: dict[str, np.ndarray], ev_b: dict[str, np.ndarray]) -> bool:
    """True when both evidences are of one task and hold exactly the same predictions (with, for the box
    tasks, the same matches of every metric family and operating point) on the same images (every array but
    the timings and the validator's image order equal, NaN equal to NaN): two such evaluations differ only
    in speed."""
    task = evidence_task(ev_a)
    if evidence_task(ev_b) != task:
        return False
    keys = CLASSIFICATION_PREDICTION_KEYS if task == CLASSIFICATION else \
        (*PREDICTION_KEYS, *(f.evidence_key for f in families(task)[1:]))
    return all(k in ev_a and k in ev_b and np.array_equal(ev_a[k], ev_b[k], equal_nan=ev_a[k].dtype.kind == "f")
               for k in keys)
