"""ImageFolder classification datasets: strict loading, the image list ultralytics evaluates, a fingerprint.

A classification dataset is a root folder in ultralytics' layout,
``<root>/train/<class>/<image>``, ``<root>/val/<class>/<image>`` (or
``validation`` / ``valid``) and an optional ``<root>/test/<class>/<image>``:
exactly what ``YOLO(cls_ckpt).val(data=<root>)`` accepts (ultralytics 8.4's
``check_cls_dataset``; the evaluation hands it the root folder).

It may also be named by a YAML file of ours (ultralytics itself refuses a YAML
for classification: ``check_cls_dataset`` wants a folder)::

    path: /data/shapes        # the root folder; a relative path is relative to the YAML's folder
    names: [circle, square]   # optional: a check, never a relabelling (list, or {index: name})

No other key is accepted (a ``download`` or split entries would be silently
ignored by ultralytics, so they are refused).

Contract of ``load_imagefolder``: it returns the split ultralytics will
evaluate, image by image, in ultralytics' order and with its class indices,
or raises ``DatasetError`` saying what is wrong:

- class names are the sorted sub-folder names of ``<root>/train`` (ultralytics
  takes them from there, whatever split is evaluated; ``train`` must hold
  images, or ultralytics refuses the dataset, or, without a ``train`` folder,
  splits the dataset into a new folder on disk);
- split ``val`` is the first of ``val``, ``validation``, ``valid`` that
  exists, else ``test``; split ``test`` is ``test``, else the val folder
  (ultralytics' fallbacks; ``resolved_split`` says which folder was used);
- images are torchvision ``ImageFolder``'s: per class folder in sorted order,
  ``os.walk`` (links followed) in sorted order, file names sorted, a file kept
  when the text after its last ``.`` is an ultralytics image suffix; the class
  index of an image is its class folder's index among the train folders;
- refused: a missing root or split, a split without images, class folders
  that differ between train and any other split (named), and any image that
  ultralytics' ``verify_image`` would drop (unreadable, not an image, under 10
  pixels a side) or rewrite in place (a JPEG without its end marker):
  ultralytics would silently evaluate fewer images.

``list_split`` is ``load_imagefolder`` without that last check (no image is
opened): fast, for finding an image of the split by name.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from evaluation.dataset_yaml import IMG_FORMATS as IMG_SUFFIXES
from evaluation.dataset_yaml import read_yaml as read_yaml_mapping
from evaluation.file_cache import file_sha256
from vocab.errors import DatasetError
from vocab.terms import SPLITS

VAL_FOLDERS = ("val", "validation", "valid")  # check_cls_dataset's order
YAML_KEYS = frozenset({"path", "names"})
MIN_SIDE = 10  # ultralytics' check_image refuses smaller images


@dataclass(frozen=True)
class ClassificationDataset:
    """One split of an ImageFolder dataset, as ultralytics evaluates it.

    ``path``: the folder or YAML as given (resolved); ``root``: the dataset
    folder handed to ultralytics; ``split``: the split asked for;
    ``split_dir``: the folder evaluated (ultralytics' fallbacks applied);
    ``images`` and ``classes``: every image and its class index, in
    ultralytics' order.
    """

    path: Path
    root: Path
    names: list[str]
    split: str
    split_dir: Path
    images: list[Path]
    classes: list[int]
    _fingerprint: str | None = field(default=None, init=False, repr=False, compare=False)  # computed once

    @property
    def nc(self) -> int:
        return len(self.names)

    @property
    def described(self) -> Path:
        """How messages name the dataset: the folder or YAML as given."""
        return self.path

    @property
    def resolved_split(self) -> str:
        """The split folder's name (``val`` may resolve to ``validation``, ``valid`` or ``test``)."""
        return self.split_dir.name

    def relative_name(self, image: str | Path) -> str:
        """``image`` relative to the split folder, i.e. ``<class>/<file>`` (POSIX separators)."""
        text, prefix = str(image), str(self.split_dir).rstrip(os.sep) + os.sep  # Path.is_relative_to, faster
        return text[len(prefix):].replace(os.sep, "/") if text.startswith(prefix) else Path(image).name

    def dependencies(self) -> list[Path]:
        """Every path the loaded split was read from: the folder or YAML named, the root, its split folders,
        the class folders of train and of the split, the folders holding its images, and the images. While
        none of them changes (``evaluation.file_cache``), neither does the dataset."""
        splits = [self.root / f for f in ("train", *VAL_FOLDERS, "test")]
        classes = [folder / name for folder in (self.root / "train", self.split_dir) for name in self.names]
        folders = sorted({p.parent for p in self.images})
        return [self.path, self.root, *splits, *classes, *folders, *self.images]

    def support(self) -> list[int]:
        """Images per class index."""
        counts = [0] * self.nc
        for c in self.classes:
            counts[c] += 1
        return counts


def _class_folders(folder: Path) -> list[str]:
    """The class folders of a split, sorted (torchvision's ``find_classes``; ultralytics' names)."""
    return sorted(entry.name for entry in os.scandir(folder) if entry.is_dir())


def _is_image_name(path: str) -> bool:
    return path.rpartition(".")[-1].lower() in IMG_SUFFIXES  # ultralytics' is_valid_file


def _samples(split_dir: Path, names: list[str]) -> Iterator[tuple[Path, int]]:
    """ImageFolder's samples of a split: (path, index of its class folder), in its order."""
    for index, name in enumerate(names):
        for root, _, files in sorted(os.walk(split_dir / name, followlinks=True)):
            for file in sorted(files):
                path = os.path.join(root, file)
                if _is_image_name(path):
                    yield Path(path), index


def _list_images(split_dir: Path, names: list[str]) -> tuple[list[Path], list[int]]:
    """ImageFolder's samples of a split as (images, class indices)."""
    samples = list(_samples(split_dir, names))
    return [p for p, _ in samples], [c for _, c in samples]


def _has_images(split_dir: Path, names: list[str]) -> bool:
    """Whether the class folders of a split hold an image (stops at the first)."""
    return next(_samples(split_dir, names), None) is not None


def image_problem(path: Path) -> str | None:
    """Why ultralytics' ``verify_image`` would drop or rewrite an image; None when it keeps it as is."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            im.verify()
            fmt = (im.format or "").lower()
            width, height = im.size
    except Exception as exc:  # PIL raises many types for bytes that are not an image
        return f"cannot be read as an image ({type(exc).__name__}: {exc})"
    if fmt not in IMG_SUFFIXES | {"jpeg2000"}:
        return f"is a {fmt or 'unknown'} image, which ultralytics does not read"
    if min(width, height) < MIN_SIDE:
        return f"is {width}x{height} pixels; ultralytics drops images under {MIN_SIDE} pixels a side"
    if fmt in ("jpg", "jpeg"):
        with open(path, "rb") as f:
            f.seek(-2, os.SEEK_END)
            if f.read() != b"\xff\xd9":
                return "is a truncated JPEG (no end marker), which ultralytics would rewrite in place"
    return None


def _root_of(path: Path) -> Path:
    """The dataset folder of a folder or of a YAML naming it (see the module contract)."""
    if path.is_dir():
        return path
    if not path.exists():
        raise DatasetError(f"classification dataset not found: {path}")
    if path.suffix.lower() not in (".yaml", ".yml"):
        raise DatasetError(f"a classification dataset is a folder or a YAML naming one, not {path}")
    data = read_yaml_mapping(path)
    unknown = sorted(set(map(str, data)) - YAML_KEYS)
    if unknown:
        raise DatasetError(
            f"classification dataset file {path} has key(s) {', '.join(unknown)}: it may only name its root "
            "folder ('path') and, as a check, its class 'names'; the splits are always the folders "
            "<path>/train, <path>/val and <path>/test"
        )
    raw = data.get("path")
    if not isinstance(raw, str) or not raw:
        raise DatasetError(f"classification dataset file {path} needs 'path': the dataset's root folder")
    root = Path(raw).expanduser()
    root = (root if root.is_absolute() else path.parent / root).resolve()
    if not root.is_dir():
        raise DatasetError(f"classification dataset folder not found: {root} (from 'path: {raw}' in {path})")
    return root


def _yaml_names(path: Path) -> list[str] | None:
    """The ``names`` a classification YAML gives (None when it gives none, or for a folder)."""
    if path.is_dir():
        return None
    names = read_yaml_mapping(path).get("names")
    if names is None:
        return None
    if isinstance(names, dict):
        try:
            return [str(names[k]) for k in sorted(names, key=int)]
        except (TypeError, ValueError):
            raise DatasetError(f"'names' in {path} must map class indices 0..n-1 to names") from None
    if isinstance(names, list):
        return [str(n) for n in names]
    raise DatasetError(f"'names' in {path} must be a list or a mapping of index to name")


def _split_dir(root: Path, split: str) -> Path:
    """The folder ultralytics evaluates for ``split`` (its fallbacks); DatasetError when there is none."""
    val = next((root / f for f in VAL_FOLDERS if (root / f).exists()), None)
    test = root / "test" if (root / "test").exists() else None
    found = {"train": root / "train", "val": val or test, "test": test or val}[split]
    if found is None or not found.is_dir():
        wanted = ", ".join(VAL_FOLDERS + ("test",)) if split != "train" else "train"
        raise DatasetError(f"classification dataset {root} has no '{split}' split: none of the folders {wanted}")
    return found


def _check_split_classes(root: Path, names: list[str]) -> None:
    """DatasetError unless every split folder present has exactly train's class folders."""
    for folder in (*VAL_FOLDERS, "test"):
        split_dir = root / folder
        if not split_dir.is_dir():
            continue
        have = _class_folders(split_dir)
        if have != names:
            missing = sorted(set(names) - set(have))
            extra = sorted(set(have) - set(names))
            detail = "; ".join(part for part in (
                f"missing {', '.join(missing)}" if missing else "",
                f"not in train: {', '.join(extra)}" if extra else "",
            ) if part)
            raise DatasetError(
                f"class folders of {split_dir} differ from {root / 'train'}'s ({detail}); ultralytics takes the "
                "classes from train, so every split must have the same class folders"
            )


def load_imagefolder(path: str | Path, split: str = "val") -> ClassificationDataset:
    """Load and check one split of a classification dataset (see the module contract)."""
    dataset = list_split(path, split)
    for image in dataset.images:
        problem = image_problem(image)
        if problem is not None:
            raise DatasetError(f"image {image} {problem}; fix or remove it so that every image is evaluated")
    return dataset


def list_split(path: str | Path, split: str = "val") -> ClassificationDataset:
    """The split ``load_imagefolder`` loads, with all of its checks but the last: its images are listed, never
    opened (those ultralytics' ``verify_image`` would refuse are not found). Fast: for finding an image by
    name, never for evaluating."""
    if split not in SPLITS:
        raise DatasetError(f"split must be one of {', '.join(SPLITS)}, got {split!r}")
    given = Path(path).expanduser().resolve()
    root = _root_of(given)
    train = root / "train"
    if not train.is_dir():
        raise DatasetError(
            f"classification dataset {root} has no 'train' folder: ultralytics takes the class names from "
            f"{train}/<class>/ (and would otherwise split the dataset into a new folder)"
        )
    names = _class_folders(train)
    if not names or not _has_images(train, names):
        raise DatasetError(f"{train} holds no images in class folders ({train}/<class>/<image>)")
    expected = _yaml_names(given)
    if expected is not None and expected != names:
        raise DatasetError(f"'names' in {given} are {expected}, but the class folders of {train} are {names}")
    _check_split_classes(root, names)
    split_dir = _split_dir(root, split)
    images, classes = _list_images(split_dir, names)
    if not images:
        raise DatasetError(f"{split} folder {split_dir} holds no images in class folders ({split_dir}/<class>/)")
    return ClassificationDataset(given, root, names, split, split_dir, images, classes)


def check_train_split(dataset: ClassificationDataset) -> None:
    """DatasetError unless the dataset has training images (``load_imagefolder`` has checked the rest)."""
    train = dataset.root / "train"
    if not train.is_dir() or not _has_images(train, dataset.names):
        raise DatasetError(f"classification dataset {dataset.root} has no training images in {train}/<class>/")


def fingerprint(dataset: ClassificationDataset) -> str:
    """sha256 of the evaluated split's content: the split and its folder, the class names, and per image
    its name (``<class>/<file>``), its bytes and its class index.

    Moving or renaming the dataset folder keeps it; changing one image, its
    class or one class name changes it. Computed once per loaded dataset.
    """
    if dataset._fingerprint is None:
        object.__setattr__(dataset, "_fingerprint", _fingerprint(dataset))  # a memo on a frozen dataclass
    assert dataset._fingerprint is not None
    return dataset._fingerprint


def _fingerprint(dataset: ClassificationDataset) -> str:
    h = hashlib.sha256()
    h.update(f"classification split={dataset.split} folder={dataset.resolved_split}\n".encode())
    h.update(repr(dataset.names).encode())
    rows: list[tuple[str, Any]] = sorted(
        (dataset.relative_name(p), c) for p, c in zip(dataset.images, dataset.classes)
    )
    by_name = {dataset.relative_name(p): p for p in dataset.images}
    for name, cls in rows:
        h.update(f"\n{name}\0{file_sha256(by_name[name])}\0{cls}".encode())
    return h.hexdigest()
