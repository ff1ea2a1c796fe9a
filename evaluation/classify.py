"""The ultralytics classification adapter: one ``ClassificationValidator`` pass that also keeps every image.

Imports torch and ultralytics: worker processes only. ``run_pass`` calls
``model.val()`` with the arguments a bare ``YOLO(ckpt).val(data=<root>,
imgsz=..., batch=..., split=...)`` gets, so ultralytics' own ``top1`` and
``top5`` (``ClassifyMetrics``) are bit-identical to it; a subclass keeps,
per image and in the same pass (``update_metrics``, after the stock one):
its file, its true class and its top-5 classes (the validator's own ranking)
with their probabilities; and the inference time of every batch
(``validator.BatchTimer``).

ultralytics' val dataloader shuffles and its batches carry no file names, so
the dataset handed to the dataloader is ultralytics' ``ClassificationDataset``
with the file name added to each item (``im_file``); images, classes and
transforms are ultralytics' own. The shuffle is seeded from
``torch.initial_seed()`` (random per process): the pass runs with the CPU
generator seeded ``SHUFFLE_SEED`` (restored afterwards), so that every
evaluation batches the images alike (the same batches, hence the same
arithmetic and evidence on the same hardware). top1 and top5 do not depend
on the order: they count hits.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from ultralytics import YOLO
from ultralytics.data import ClassificationDataset
from ultralytics.models.yolo.classify import ClassificationValidator

from evaluation.validator import BatchTimer, BatchTiming, ProgressFn, val_pass

SHUFFLE_SEED = 0


@dataclass
class ImagePrediction:
    """One image as the validator saw it."""

    im_file: str
    true: int  # the class index ultralytics gave the image
    top5: np.ndarray  # (k,) int64, k = min(5, classes): the validator's own ranking, most probable first
    conf: np.ndarray  # (k,) float64: the model's probabilities of those classes


@dataclass
class PassOutput:
    records: list[ImagePrediction]  # in the order the validator saw them (shuffled)
    metrics: Any  # ultralytics.utils.metrics.ClassifyMetrics
    imgsz: int
    batch: int
    timings: list[BatchTiming]


class NamedSamples(ClassificationDataset):
    """ultralytics' ClassificationDataset whose items also carry their file (``im_file``)."""

    def __getitem__(self, i: int) -> dict[str, Any]:
        item: dict[str, Any] = super().__getitem__(i)
        item["im_file"] = str(self.samples[i][0])
        return item


class CollectingClassifier(BatchTimer, ClassificationValidator):
    """A ClassificationValidator that appends an ``ImagePrediction`` per image to ``sink`` and a
    ``BatchTiming`` per batch to ``timings``."""

    def __init__(self, *args: Any, sink: list[ImagePrediction], timings: list[BatchTiming], **kwargs: Any) -> None:
        super().__init__(*args, timings=timings, **kwargs)
        self.sink = sink

    def build_dataset(self, img_path: str) -> ClassificationDataset:
        # ClassificationValidator.build_dataset's own call, with the file-naming dataset.
        return NamedSamples(img_path, self.args, augment=False,  # type: ignore[arg-type]  # ultralytics' cfg
                            prefix=self.args.split, names=self.names)

    def update_metrics(self, preds: torch.Tensor, batch: dict[str, Any]) -> None:
        super().update_metrics(preds, batch)  # stock metrics, unchanged
        top = self.pred[-1]  # type: ignore[index]  # (B, k) int32: the validator's ranking of this batch
        conf = torch.gather(preds.detach(), 1, top.to(preds.device).long()).cpu().double().numpy()
        top_np = top.numpy().astype(np.int64)
        truth = self.targets[-1].numpy().astype(np.int64)  # type: ignore[index]  # lists once init_metrics ran
        for si, im_file in enumerate(batch["im_file"]):
            self.sink.append(ImagePrediction(str(im_file), int(truth[si]), top_np[si].copy(), conf[si].copy()))


def run_pass(
    model: YOLO,
    root: Path,
    *,
    split: str,
    imgsz: int,
    batch: int,
    device: str,
    save_dir: Path,
    progress: ProgressFn | None = None,
) -> PassOutput:
    """One classification validation pass over ``root``'s ``split`` (ultralytics resolves the folder)."""
    records: list[ImagePrediction] = []
    timings: list[BatchTiming] = []
    with torch.random.fork_rng(devices=[]):
        torch.default_generator.manual_seed(SHUFFLE_SEED)  # the val loader's shuffle (see the module contract)
        metrics, ran_imgsz, ran_batch = val_pass(
            model, functools.partial(CollectingClassifier, sink=records, timings=timings), progress=progress,
            data=str(root), imgsz=imgsz, batch=batch, device=device, save_dir=str(save_dir), split=split,
        )
    return PassOutput(records=records, metrics=metrics, imgsz=ran_imgsz, batch=ran_batch, timings=timings)
