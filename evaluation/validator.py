"""The ultralytics adapter: one ``DetectionValidator`` pass that also keeps every prediction.

Imports torch and ultralytics: worker processes only. ``run_pass`` returns the
validator's own ``DetMetrics`` (bit-identical to a bare ``YOLO(ckpt).val()``
with the same arguments) plus, per image, the post-NMS predictions in original
image pixels and the validator's own true-positive matrix over its ten IoU
thresholds, all collected in the same pass by overriding ``update_metrics``;
and the inference time of every batch (``preprocess`` / ``postprocess``
overrides mark the span the validator's own "inference" timer measures).
"""

from __future__ import annotations

import functools
import time
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from ultralytics import YOLO
from ultralytics.models.yolo.detect import DetectionValidator
from ultralytics.utils import ops

from evaluation.export_meta import EVALUATED_TASKS, model_format, read_export
from vocab.errors import CheckpointError

ProgressFn = Callable[[float], None]


@dataclass
class ImageRecord:
    """One image as the validator saw it."""

    im_file: str
    ori_shape: tuple[int, int]  # (height, width) in pixels
    pred_xyxy: np.ndarray  # (D, 4) float64, original pixels, clipped to the image
    pred_conf: np.ndarray  # (D,) float64, descending
    pred_cls: np.ndarray  # (D,) int64
    tp: np.ndarray  # (D, 10) bool, the validator's matches at IoU 0.50:0.05:0.95
    target_cls: np.ndarray  # (G,) int64


@dataclass
class BatchTiming:
    """The model's forward pass over one batch: from the end of preprocessing to the start of
    postprocessing (the validator's own "inference" span), device synchronised at both ends."""

    ms: float  # milliseconds for the whole batch
    images: int


@dataclass
class PassOutput:
    records: list[ImageRecord]
    metrics: Any  # ultralytics.utils.metrics.DetMetrics
    device: str
    imgsz: int  # the image size the validator ran at (ultralytics rounds the request up to its stride)
    batch: int  # the val dataloader's batch size (never more than the number of images)
    timings: list[BatchTiming]  # in the order the batches ran


class BatchTimer:
    """A validator mixin that appends a ``BatchTiming`` per batch to ``timings``: the span from the end of
    ``preprocess`` to the start of ``postprocess``, the validator's own "inference" span."""

    device: Any  # set by ultralytics' BaseValidator

    def __init__(self, *args: Any, timings: list[BatchTiming], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.timings = timings
        self._started: tuple[float, int] | None = None

    def _now(self) -> float:
        if self.device is not None and self.device.type == "cuda":  # as ultralytics' Profile: wait for queued kernels
            torch.cuda.synchronize(self.device)
        return time.perf_counter()

    def preprocess(self, batch: dict[str, Any]) -> dict[str, Any]:
        batch = super().preprocess(batch)  # type: ignore[misc]  # the validator's, next in the MRO
        self._started = (self._now(), len(batch["img"]))
        return batch

    def postprocess(self, preds: Any) -> Any:
        if self._started is not None:
            start, images = self._started
            self.timings.append(BatchTiming(ms=(self._now() - start) * 1e3, images=images))
            self._started = None
        return super().postprocess(preds)  # type: ignore[misc]


class CollectingValidator(BatchTimer, DetectionValidator):
    """A DetectionValidator that appends an ``ImageRecord`` per image to ``sink`` and a ``BatchTiming``
    per batch to ``timings``."""

    def __init__(self, *args: Any, sink: list[ImageRecord], timings: list[BatchTiming], **kwargs: Any) -> None:
        super().__init__(*args, timings=timings, **kwargs)
        self.sink = sink

    def update_metrics(self, preds: list[dict[str, torch.Tensor]], batch: dict[str, Any]) -> None:
        first = len(self.metrics.stats["tp"])
        super().update_metrics(preds, batch)  # stock metrics, unchanged
        stats = self.metrics.stats
        h, w = batch["img"].shape[2:]
        for si, pred in enumerate(preds):
            ori = (int(batch["ori_shape"][si][0]), int(batch["ori_shape"][si][1]))
            boxes = torch.as_tensor(ops.scale_boxes((h, w), pred["bboxes"].clone(), ori, ratio_pad=batch["ratio_pad"][si]))
            self.sink.append(
                ImageRecord(
                    im_file=batch["im_file"][si],
                    ori_shape=(ori[0], ori[1]),
                    pred_xyxy=boxes.cpu().double().numpy().reshape(-1, 4),
                    pred_conf=pred["conf"].cpu().double().numpy().reshape(-1),
                    pred_cls=pred["cls"].cpu().numpy().astype(np.int64).reshape(-1),
                    tp=np.asarray(stats["tp"][first + si], dtype=bool).reshape(-1, 10),
                    target_cls=np.asarray(stats["target_cls"][first + si]).astype(np.int64).reshape(-1),
                )
            )


def resolve_device(device: str) -> str:
    """``auto`` is the first CUDA device, else the CPU; anything else is passed through."""
    if device == "auto":
        return "cuda:0" if torch.cuda.is_available() else "cpu"
    return device


def device_kind(device: str) -> str:
    """The hardware a timing belongs to: ``cpu`` or the CUDA device's name."""
    if device.startswith("cuda") and torch.cuda.is_available():
        index = int(device.split(":")[1]) if ":" in device else 0
        return f"cuda:{torch.cuda.get_device_name(index)}"
    return device.split(":")[0]


def load_model(path: Path) -> YOLO:
    """Load a checkpoint or ONNX export of a task ``evaluate`` supports (``EVALUATED_TASKS``, read from the
    checkpoint or the export's metadata); CheckpointError for a truncated, corrupt or other-task file. An
    export is checked through its metadata here and opened by the validator's AutoBackend."""
    if model_format(path) == "onnx":
        return YOLO(str(path), task=read_export(path, task=None).ultralytics_task or "detect")
    if not zipfile.is_zipfile(path):
        raise CheckpointError(f"checkpoint {path} is truncated or corrupt: not a complete zip archive")
    try:
        model = YOLO(str(path))
    except Exception as exc:  # torch/pickle raise many types for a bad file
        raise CheckpointError(f"cannot load checkpoint {path}: {type(exc).__name__}: {exc}") from exc
    if model.task not in EVALUATED_TASKS:
        raise CheckpointError(f"checkpoint {path} is a {model.task!r} model; only {' and '.join(EVALUATED_TASKS)} "
                              "models are supported")
    return model


def onnx_device(device: str) -> str:
    """The device an ONNX export runs on: CUDA only when onnxruntime has its CUDA provider, else the CPU."""
    import onnxruntime

    if device.startswith("cuda") and "CUDAExecutionProvider" in onnxruntime.get_available_providers():
        return device
    return "cpu"


def runtime_info(fmt: str, device: str) -> dict[str, Any]:
    """What ran the model: ``runtime``, ``runtime_version`` and, for ONNX, the execution ``provider``."""
    if fmt != "onnx":
        return {"runtime": "torch", "runtime_version": torch_version(), "provider": None}
    import onnxruntime

    provider = "CUDAExecutionProvider" if device.startswith("cuda") else "CPUExecutionProvider"
    return {"runtime": "onnxruntime", "runtime_version": str(onnxruntime.__version__), "provider": provider}


def model_class_names(model: YOLO) -> list[str]:
    names = model.names
    return [str(names[i]) for i in sorted(names)] if isinstance(names, dict) else [str(n) for n in names]


def val_pass(model: YOLO, validator: Callable[..., Any], *, progress: ProgressFn | None = None,
             **val_args: Any) -> tuple[Any, int, int]:
    """``model.val(validator=validator, plots=False, verbose=False, **val_args)``, reporting progress per
    batch; returns ultralytics' metrics, the image size it ran at (ultralytics rounds the request up to its
    stride) and the val dataloader's batch size (never more than the number of images)."""
    ran: dict[str, int] = {}

    def settings(v: Any) -> None:
        size = v.args.imgsz
        ran.update(imgsz=int(max(size) if isinstance(size, (list, tuple)) else size),
                   batch=int(v.dataloader.batch_size))

    model.add_callback("on_val_end", settings)
    if progress is not None:
        model.add_callback("on_val_start", lambda v: progress(0.0))
        model.add_callback(
            "on_val_batch_end", lambda v: progress(min(1.0, (v.batch_i + 1) / max(1, len(v.dataloader))))
        )
    metrics = model.val(validator=validator, plots=False, verbose=False, **val_args)
    return metrics, ran["imgsz"], ran["batch"]


def run_pass(
    model: YOLO,
    data_yaml: Path,
    *,
    imgsz: int,
    batch: int,
    device: str,
    save_dir: Path,
    progress: ProgressFn | None = None,
    rect: bool = True,
) -> PassOutput:
    """One validation pass with the same arguments a bare ``model.val()`` would get (``rect=False``:
    every image letterboxed to the full square, as a static export sees it)."""
    records: list[ImageRecord] = []
    timings: list[BatchTiming] = []
    metrics, ran_imgsz, ran_batch = val_pass(
        model, functools.partial(CollectingValidator, sink=records, timings=timings), progress=progress,
        data=str(data_yaml), imgsz=imgsz, batch=batch, device=device, save_dir=str(save_dir), rect=rect,
    )
    return PassOutput(records=records, metrics=metrics, device=device, imgsz=ran_imgsz, batch=ran_batch,
                      timings=timings)


def ultralytics_version() -> str:
    import ultralytics

    return str(ultralytics.__version__)


def torch_version() -> str:
    return str(torch.__version__)
