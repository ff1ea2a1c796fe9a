"""The ultralytics adapter: one validator pass of the checkpoint's own task that also keeps every prediction.

Imports torch and ultralytics: worker processes only. ``run_pass`` runs the
validator of the model's task (``DetectionValidator``, ``SegmentationValidator``,
``PoseValidator``, ``OBBValidator``) and returns its own metrics object
(bit-identical to a bare ``YOLO(ckpt).val()`` with the same arguments) plus,
per image, the post-NMS predictions in original image pixels and the
validator's own true-positive matrices over its ten thresholds (box IoU, and
mask IoU / keypoint OKS for segmentation / pose; rotated IoU for obb), all
collected in the same pass by overriding ``update_metrics`` (calling the
validator's own first); and the inference time of every batch
(``preprocess`` / ``postprocess`` overrides mark the span the validator's own
"inference" timer measures). Each task's predictions keep its geometry
(``ImageRecord.geometry``, see ``evaluation.geometry``): the masks
(``MaskCrops``), the keypoints, or the rotated boxes.
"""

from __future__ import annotations

import functools
import time
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from ultralytics import YOLO
from ultralytics.models.yolo.detect import DetectionValidator
from ultralytics.models.yolo.obb import OBBValidator
from ultralytics.models.yolo.pose import PoseValidator
from ultralytics.models.yolo.segment import SegmentationValidator
from ultralytics.utils import ops

from evaluation.export_meta import model_format, read_export
from evaluation.families import Family, families
from evaluation.geometry import MaskCrops, corners, enclosing_xyxy
from vocab.errors import CheckpointError
from vocab.tasks import BY_ULTRALYTICS

ProgressFn = Callable[[float], None]


@dataclass
class ImageRecord:
    """One image as the validator saw it."""

    im_file: str
    ori_shape: tuple[int, int]  # (height, width) in pixels
    pred_xyxy: np.ndarray  # (D, 4) float64, original pixels, clipped to the image
    pred_conf: np.ndarray  # (D,) float64, descending
    pred_cls: np.ndarray  # (D,) int64
    tp: np.ndarray  # (D, 10) bool, the validator's matches at IoU 0.50:0.05:0.95 (obb: rotated IoU)
    target_cls: np.ndarray  # (G,) int64
    family_tp: dict[str, np.ndarray] = field(default_factory=dict)  # mask / pose matches, by evidence key
    geometry: Any = None  # MaskCrops, (D, K, 3) keypoints or (D, 5) rotated boxes; None for detection


@dataclass
class BatchTiming:
    """The model's forward pass over one batch: from the end of preprocessing to the start of
    postprocessing (the validator's own "inference" span), device synchronised at both ends."""

    ms: float  # milliseconds for the whole batch
    images: int


@dataclass
class PassOutput:
    records: list[ImageRecord]
    metrics: Any  # the validator's DetMetrics, SegmentMetrics, PoseMetrics or OBBMetrics
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
        device = getattr(self, "device", None)
        if device is not None and device.type == "cuda":  # as ultralytics' Profile: wait for queued kernels
            torch.cuda.synchronize(device)
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



class _Collecting(BatchTimer):
    """The collecting hooks, mixed into each box task's validator (``COLLECTORS``): an ``ImageRecord`` per
    image to ``sink``, and (``BatchTimer``) a ``BatchTiming`` per batch to ``timings``."""

    extra_families: tuple[Family, ...] = ()  # the matchings beside the box one whose matrices are kept

    def __init__(self, *args: Any, sink: list[ImageRecord], timings: list[BatchTiming], **kwargs: Any) -> None:
        super().__init__(*args, timings=timings, **kwargs)
        self.sink = sink

    def update_metrics(self, preds: list[dict[str, torch.Tensor]], batch: dict[str, Any]) -> None:
        stats = self.metrics.stats  # type: ignore[attr-defined]
        first = len(stats["tp"])
        super().update_metrics(preds, batch)  # type: ignore[misc]  # stock metrics, unchanged
        shape = (int(batch["img"].shape[2]), int(batch["img"].shape[3]))
        for si, pred in enumerate(preds):
            ori = (int(batch["ori_shape"][si][0]), int(batch["ori_shape"][si][1]))
            xyxy, geometry = self.original_pixels(pred, shape, ori, batch["ratio_pad"][si])
            self.sink.append(
                ImageRecord(
                    im_file=batch["im_file"][si],
                    ori_shape=(ori[0], ori[1]),
                    pred_xyxy=xyxy,
                    pred_conf=pred["conf"].cpu().double().numpy().reshape(-1),
                    pred_cls=pred["cls"].cpu().numpy().astype(np.int64).reshape(-1),
                    tp=np.asarray(stats["tp"][first + si], dtype=bool).reshape(-1, 10),
                    target_cls=np.asarray(stats["target_cls"][first + si]).astype(np.int64).reshape(-1),
                    family_tp={f.evidence_key: np.asarray(stats[f.stats_key][first + si], dtype=bool).reshape(-1, 10)
                               for f in self.extra_families},
                    geometry=geometry,
                )
            )

    def original_pixels(self, pred: dict[str, torch.Tensor], shape: tuple[int, int], ori: tuple[int, int],
                        ratio_pad: Any) -> tuple[np.ndarray, Any]:
        """The predictions' boxes (D, 4) xyxy in original pixels, clipped, and the task's geometry there."""
        boxes = torch.as_tensor(ops.scale_boxes(shape, pred["bboxes"].clone(), ori, ratio_pad=ratio_pad))
        return boxes.cpu().double().numpy().reshape(-1, 4), None


class CollectingValidator(_Collecting, DetectionValidator):
    """Detection."""


class CollectingSegmentationValidator(_Collecting, SegmentationValidator):
    """Segmentation: the box and mask matrices, and the masks on the validator's mask grid."""

    extra_families = tuple(f for f in families("segmentation") if f.name == "mask")

    def original_pixels(self, pred: dict[str, torch.Tensor], shape: tuple[int, int], ori: tuple[int, int],
                        ratio_pad: Any) -> tuple[np.ndarray, Any]:
        boxes, _ = super().original_pixels(pred, shape, ori, ratio_pad)
        masks = pred["masks"].bool().cpu().numpy().reshape(len(boxes), *pred["masks"].shape[1:])
        return boxes, MaskCrops.from_masks(masks, _ratio_pad(ratio_pad), ori)


class CollectingPoseValidator(_Collecting, PoseValidator):
    """Pose: the box and OKS matrices, and the keypoints (x, y, confidence) in original pixels."""

    extra_families = tuple(f for f in families("pose") if f.name == "pose")

    def original_pixels(self, pred: dict[str, torch.Tensor], shape: tuple[int, int], ori: tuple[int, int],
                        ratio_pad: Any) -> tuple[np.ndarray, Any]:
        boxes, _ = super().original_pixels(pred, shape, ori, ratio_pad)
        kpts = ops.scale_coords(shape, pred["keypoints"].clone(), ori, ratio_pad=ratio_pad)
        return boxes, kpts.cpu().double().numpy().reshape(len(boxes), *pred["keypoints"].shape[1:])


class CollectingOBBValidator(_Collecting, OBBValidator):
    """Obb: the rotated-IoU matrix, the rotated boxes (xywhr) in original pixels and their enclosing boxes."""

    def original_pixels(self, pred: dict[str, torch.Tensor], shape: tuple[int, int], ori: tuple[int, int],
                        ratio_pad: Any) -> tuple[np.ndarray, Any]:
        scaled = torch.as_tensor(ops.scale_boxes(shape, pred["bboxes"].clone(), ori, ratio_pad=ratio_pad, xywh=True))
        rboxes = scaled.cpu().double().numpy().reshape(-1, 5)
        return enclosing_xyxy(corners(rboxes), ori), rboxes


COLLECTORS: dict[str, type[_Collecting]] = {
    "detect": CollectingValidator, "segment": CollectingSegmentationValidator, "pose": CollectingPoseValidator,
    "obb": CollectingOBBValidator,
}


def _ratio_pad(raw: Any) -> tuple[tuple[float, float], tuple[float, float]]:
    (gain_y, gain_x), (pad_x, pad_y) = raw
    return (float(gain_y), float(gain_x)), (float(pad_x), float(pad_y))


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
    """Load a checkpoint or ONNX export of any task (``vocab.tasks``: read from the checkpoint or the export's
    metadata); CheckpointError for a truncated, corrupt or unsupported file. An export is checked through its
    metadata here and opened by the validator's AutoBackend."""
    if model_format(path) == "onnx":
        return YOLO(str(path), task=read_export(path, task=None).ultralytics_task or "detect")
    if not zipfile.is_zipfile(path):
        raise CheckpointError(f"checkpoint {path} is truncated or corrupt: not a complete zip archive")
    try:
        model = YOLO(str(path))
    except Exception as exc:  # torch/pickle raise many types for a bad file
        raise CheckpointError(f"cannot load checkpoint {path}: {type(exc).__name__}: {exc}") from exc
    if model.task not in BY_ULTRALYTICS:
        raise CheckpointError(f"checkpoint {path} is a {model.task!r} model; supported: {', '.join(BY_ULTRALYTICS)}")
    return model


def model_kpt_shape(model: YOLO) -> list[int] | None:
    """A pose model's ``[keypoints, dims]`` (its head's), else None."""
    shape = getattr(model.model, "kpt_shape", None) if model.task == "pose" else None
    return [int(v) for v in shape] if shape is not None else None


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
    """One validation pass of the model's task's validator with the same arguments a bare ``model.val()``
    would get (``rect=False``: every image letterboxed to the full square, as a static export sees it)."""
    records: list[ImageRecord] = []
    timings: list[BatchTiming] = []
    metrics, ran_imgsz, ran_batch = val_pass(
        model, functools.partial(COLLECTORS[str(model.task)], sink=records, timings=timings), progress=progress,
        data=str(data_yaml), imgsz=imgsz, batch=batch, device=device, save_dir=str(save_dir), rect=rect,
    )
    return PassOutput(records=records, metrics=metrics, device=device, imgsz=ran_imgsz, batch=ran_batch,
                      timings=timings)


def ultralytics_version() -> str:
    import ultralytics

    return str(ultralytics.__version__)


def torch_version() -> str:
    return str(torch.__version__)
