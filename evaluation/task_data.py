"""A task's dataset, one way for every caller: the daemon (submissions, cache identity, the watcher) and
the worker (``evaluation.evaluate``). Torch-free.

Classification reads an ImageFolder (``evaluation.imagefolder``); every other task reads a YOLO dataset
YAML, a folder holding one, or a COCO JSON (detection only), with label files read as the task reads them
(``evaluation.datasets``). ``check`` is the fast submit-time check (a COCO JSON is checked, not
converted); ``load`` the full load, and ``fingerprint`` the identity of what was loaded.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from evaluation import datasets, imagefolder
from vocab.tasks import DEFAULT_TASK, canonical_task

CLASSIFICATION = "classification"


def check(path: str | Path, split: str, task: str = DEFAULT_TASK, *, train: bool = False,
          model_kpt_shape: Any = None) -> None:
    """DatasetError unless ``path`` is a dataset a ``task`` checkpoint can be evaluated on (``split``) and,
    with ``train``, trained on."""
    if canonical_task(task) == CLASSIFICATION:
        dataset = imagefolder.load_imagefolder(path, split)
        if train:
            imagefolder.check_train_split(dataset)
        return
    datasets.check_dataset(path, split, train=train, task=task, model_kpt_shape=model_kpt_shape)


def load(path: str | Path, split: str, task: str = DEFAULT_TASK, *, cache_root: Path | None = None,
         model_kpt_shape: Any = None) -> Any:
    """The loaded dataset of ``task`` (``imagefolder.ClassificationDataset`` or ``datasets.Dataset``); a COCO
    JSON is converted into ``cache_root`` (detection only)."""
    if canonical_task(task) == CLASSIFICATION:
        return imagefolder.load_imagefolder(path, split)
    return datasets.load_dataset(path, split, cache_root=cache_root, task=task, model_kpt_shape=model_kpt_shape)


def fingerprint(dataset: Any) -> str:
    """The content identity of a loaded dataset of any task."""
    if isinstance(dataset, imagefolder.ClassificationDataset):
        return imagefolder.fingerprint(dataset)
    return datasets.fingerprint(dataset)
