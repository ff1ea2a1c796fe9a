"""A dataset loaded for a checkpoint's task: its labels read per task, its YAML written for ultralytics.

Light (no torch). ``load_task_dataset`` is what the daemon calls at submit
time (given the task and, for pose, the checkpoint's ``kpt_shape``) and what
``evaluate`` calls: ``evaluation.datasets.load_dataset``'s contract (every
image kept, every label parsed, or ``DatasetError`` naming the file and
line), with the label files read as the task's (``evaluation.labels``). A
dataset that does not fit the task is a ``DatasetError`` naming both (box
labels for a segmentation or obb checkpoint, keypoint rows of another
length, a ``kpt_shape`` other than the checkpoint's).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from evaluation.datasets import Dataset, load_dataset, read_yaml_mapping
from evaluation.labels import LabelSpec, label_spec, reading_labels_as


@dataclass(frozen=True)
class TaskDataset:
    """A validated dataset and how its labels were read."""

    dataset: Dataset
    spec: LabelSpec

    def write_yaml(self, directory: Path) -> Path:
        """The sanitised YAML (``Dataset.sanitised``) plus the task's keys ultralytics reads (pose:
        ``kpt_shape``, ``flip_idx``, ``kpt_oks_sigmas``), written into ``directory``; its absolute path."""
        directory.mkdir(parents=True, exist_ok=True)
        target = directory / "dataset.yaml"
        data: dict[str, Any] = {**self.dataset.sanitised(), **dict(self.spec.yaml_keys)}
        target.write_text(yaml.safe_dump(data, sort_keys=False))
        return target.resolve()


def load_task_dataset(yaml_path: str | Path, split: str, task: str, model_kpt_shape: Any = None) -> TaskDataset:
    """Load and validate a dataset YAML's split for a checkpoint of ``task`` (a vocab task name or an
    ultralytics alias); ``model_kpt_shape``: a pose checkpoint's ``[keypoints, dims]``, when known."""
    path = Path(yaml_path).expanduser().resolve()
    spec = label_spec(task, read_yaml_mapping(path), model_kpt_shape, source=f"dataset file {path}")
    with reading_labels_as(spec):
        return TaskDataset(load_dataset(path, split), spec)
