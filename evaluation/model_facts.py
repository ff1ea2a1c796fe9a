"""What a checkpoint or an ONNX export says about itself before anything is evaluated, read without torch.

``model_facts(path)``: its task, the image size it was trained at (an export: its largest input side)
and a pose model's keypoint shape. The daemon checks requests with them; ``eval --local`` picks the same
default image size from them (``vocab.tasks.task_default_imgsz``).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from evaluation.checkpoint_meta import read_checkpoint_meta
from evaluation.export_meta import model_format, read_export
from vocab.tasks import DEFAULT_TASK


@dataclasses.dataclass(frozen=True)
class Facts:
    """What a checkpoint or export says about itself, as far as a submission needs it."""

    task: str
    trained_imgsz: int | None
    kpt_shape: list[int] | None


def model_facts(path: Path) -> Facts:
    """The facts of the .pt or .onnx file at ``path``; CheckpointError (or the export's error) for a file
    that cannot be used. An export that names no task is a detection export (what every earlier release
    wrote)."""
    if model_format(path) == "onnx":
        export = read_export(path, None)
        return Facts(export.task or DEFAULT_TASK, max(export.imgsz), None)
    meta = read_checkpoint_meta(path)
    return Facts(meta.task, meta.imgsz, meta.kpt_shape)
