"""The task-independent part of an evaluation: the request, what is known before the validation pass,
and the result fields every task carries.

``evaluation.evaluate.evaluate`` prepares (``Prepared``: the checkpoint
loaded and hashed, its task, the settings that will run) and hands over to
the task's own pass; each task's result is ``common_result`` plus its own
metrics, scored by ``scored``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

from evaluation.export_meta import ExportInfo
from evaluation.speed import speed_summary
from vocab.contract.params import EvalSpec
from vocab.scoring import composite_score


@dataclass
class Prepared:
    """One evaluation before its validation pass: the loaded checkpoint and the settings that will run."""

    request: EvalSpec  # as asked (vocab.contract.params)
    model: Any  # ultralytics.YOLO
    task: str  # vocab.tasks name: detection, classification, segmentation, pose, obb
    fmt: str  # pt or onnx
    export: ExportInfo | None
    imgsz: int  # as asked for (ultralytics may round it up: the pass reports what ran)
    batch: int
    device: str
    model_names: list[str]
    weights: dict[str, float]  # the task's applied weights
    checkpoint_sha256: Future[str]  # of exactly the file that was loaded
    checkpoint_bytes: int
    dataset_fingerprint: Future[str]
    warnings: list[str]


def speed_ms(speed: Any, key: str) -> float | None:
    """The validator's ms per image for one stage; None when it reported none (never 0 ms, which would
    score as the fastest possible model)."""
    value = speed.get(key) if isinstance(speed, dict) else None
    if value is None or isinstance(value, bool):
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def common_result(p: Prepared, *, images: int, imgsz: int, batch: int, timings: Sequence[Any], speed: Any,
                  dataset_names: list[str], split: str) -> dict[str, Any]:
    """The fields every task's result carries (``timings``: ``validator.BatchTiming``; ``speed``: the
    validator's ms per image and stage; ``imgsz``/``batch``: as the pass ran)."""
    from evaluation import validator  # heavy: torch

    request = p.request
    return {
        **speed_summary([t.ms for t in timings], [t.images for t in timings]),
        "preprocess_ms": speed_ms(speed, "preprocess"),
        "postprocess_ms": speed_ms(speed, "postprocess"),
        "model_size_mb": p.checkpoint_bytes / (1024 * 1024),  # the size of the file that was loaded
        "images": images,
        "device": p.device,
        "device_kind": validator.device_kind(p.device),
        "imgsz": imgsz,
        "batch": batch,
        **({"imgsz_requested": request.imgsz} if imgsz != request.imgsz else {}),
        **({"batch_requested": request.batch} if batch != request.batch else {}),
        "format": p.fmt,
        **validator.runtime_info(p.fmt, p.device),
        "export": None if p.export is None else p.export.as_dict(),
        "ultralytics_version": validator.ultralytics_version(),
        "torch_version": validator.torch_version(),
        "weights": p.weights,
        "checkpoint_sha256": p.checkpoint_sha256.result(),
        "dataset_fingerprint": p.dataset_fingerprint.result(),
        "class_names": dataset_names,
        "model_class_names": p.model_names,
        "model_path": str(request.model_path),
        "dataset": str(request.dataset_path),
        "split": split,
        "warnings": p.warnings,
    }


def scored(result: dict[str, Any], weights: Mapping[str, float]) -> dict[str, Any]:
    """``result`` with its composite ``score`` (vocab.scoring) added."""
    result["score"] = composite_score(result, weights)
    return result
