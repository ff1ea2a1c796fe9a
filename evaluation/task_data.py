"""A task's dataset, one way for every caller: the daemon (submissions, cache identity, the watcher) and
the worker (``evaluation.evaluate``). Torch-free.

Classification reads an ImageFolder (``evaluation.imagefolder``); every other task reads a YOLO dataset
YAML, a folder holding one, or a COCO JSON (detection only), with label files read as the task reads them
(``evaluation.datasets``). ``check`` is the fast submit-time check (a COCO JSON is checked, not
converted); ``load`` the full load, and ``fingerprint`` the identity of what was loaded. ``list_split``
lists a split's images as ``load`` does, without reading them or their label files (to find an image by
name).

``load`` (and through it ``check``, but for a COCO JSON) is cached by file identity
(``evaluation.file_cache``): while the dataset's YAML, split entries, folders, images and label files
are unchanged, every caller gets the same loaded object, which nobody changes, and its fingerprint is
computed once.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from evaluation import datasets, imagefolder
from evaluation.file_cache import FileCache
from vocab.tasks import DEFAULT_TASK, canonical_task

CLASSIFICATION = "classification"


_LOADED: FileCache[Any] = FileCache(max_entries=16)


def check(path: str | Path, split: str, task: str = DEFAULT_TASK, *, train: bool = False,
          model_kpt_shape: Any = None, since: float | None = None) -> None:
    """DatasetError unless ``path`` is a dataset a ``task`` checkpoint can be evaluated on (``split``) and,
    with ``train``, trained on. ``since``: as ``load``'s."""
    if canonical_task(task) == CLASSIFICATION:
        dataset = load(path, split, task, since=since)
        if train:
            imagefolder.check_train_split(dataset)
    elif datasets.is_coco(path, split, task):
        datasets.check_dataset(path, split, train=train, task=task, model_kpt_shape=model_kpt_shape)
    else:
        dataset = load(path, split, task, model_kpt_shape=model_kpt_shape, since=since)
        if train:
            datasets.check_train_split(dataset)


def load(path: str | Path, split: str, task: str = DEFAULT_TASK, *, cache_root: Path | None = None,
         model_kpt_shape: Any = None, since: float | None = None) -> Any:
    """The loaded dataset of ``task`` (``imagefolder.ClassificationDataset`` or ``datasets.Dataset``); a COCO
    JSON is converted into ``cache_root`` (detection only). Cached (see the module contract): treat it as
    read-only. ``since`` (a ``time.monotonic()``): a check of the files begun then or later is enough
    (``FileCache.get``)."""
    task = canonical_task(task)
    key = (str(path), split, task, str(cache_root) if cache_root else None,
           tuple(model_kpt_shape) if model_kpt_shape is not None else None)

    def read() -> tuple[Any, list[Path]]:
        if task == CLASSIFICATION:
            folder = imagefolder.load_imagefolder(path, split)
            return folder, folder.dependencies()
        dataset = datasets.load_dataset(path, split, cache_root=cache_root, task=task,
                                        model_kpt_shape=model_kpt_shape)
        return dataset, dataset.dependencies(path)

    return _LOADED.get(key, read, since)


def list_split(path: str | Path, split: str, task: str = DEFAULT_TASK, *, cache_root: Path | None = None) -> Any:
    """The images of ``task``'s dataset split, in ``load``'s order and named by the result's ``relative_name``,
    with ``load``'s checks of the dataset's files but not of every image and label file (none is opened):
    ``imagefolder.ClassificationDataset`` or ``datasets.SplitImages`` (whose ``labels_of`` reads one image's
    labels as ``load`` does). Fast, not cached: for finding an image by name, never for evaluating."""
    if canonical_task(task) == CLASSIFICATION:
        return imagefolder.list_split(path, split)
    return datasets.list_split(path, split, cache_root=cache_root, task=canonical_task(task))


def fingerprint(dataset: Any) -> str:
    """The content identity of a loaded dataset of any task."""
    if isinstance(dataset, imagefolder.ClassificationDataset):
        return imagefolder.fingerprint(dataset)
    return datasets.fingerprint(dataset)
