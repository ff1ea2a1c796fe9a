"""Dataset YAMLs: strict loading, validation with clear errors, a sanitised copy, a fingerprint.

Contract of ``load_dataset``: it either returns a ``Dataset`` whose named
split (``val`` by default, or ``test`` or ``train``) ultralytics will evaluate
exactly as listed (every image kept, every label parsed), or raises
``DatasetError`` saying which file and line is wrong, or which split is
missing.
ultralytics would silently drop images whose labels it cannot use; we refuse
them instead, so that a number never silently covers fewer images.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from evaluation.labels import Label, parse_label_file
from vocab.errors import ClassMismatchError, DatasetError
from vocab.terms import SPLITS

# The image suffixes ultralytics 8.4 accepts (ultralytics.data.utils.IMG_FORMATS).
IMG_SUFFIXES = frozenset(
    {"avif", "bmp", "dng", "heic", "heif", "jp2", "jpeg", "jpg", "mpo", "png", "tif", "tiff", "webp", "pfm"}
)
# Keys handed on to ultralytics; everything else (``download`` above all) is dropped.
_SANITISED_KEYS = ("path", "train", "val", "test", "names", "nc", "channels")


@dataclass
class Dataset:
    """A validated dataset YAML and the split it is evaluated on (``val_roots``: that split's folders)."""

    yaml_path: Path
    root: Path
    names: list[str]
    val_roots: list[Path]
    images: list[Path]
    labels: dict[Path, list[Label]] = field(repr=False)
    raw: dict[str, Any] = field(repr=False)
    split: str = "val"

    @property
    def nc(self) -> int:
        return len(self.names)

    def relative_name(self, image: str | Path) -> str:
        """``image`` relative to the val images folder that holds it (POSIX separators)."""
        p = Path(image)
        for root in self.val_roots:
            if p.is_relative_to(root):
                return p.relative_to(root).as_posix()
        return p.name

    def sanitised(self) -> dict[str, Any]:
        """The mapping ultralytics gets: absolute ``path``, known keys only, no ``download``, and the
        evaluated split as ``val`` (ultralytics validates ``val``)."""
        out = {k: self.raw[k] for k in _SANITISED_KEYS if k in self.raw}
        out["val"] = self.raw[self.split]
        out["path"] = str(self.root)
        out["names"] = dict(enumerate(self.names))
        out.pop("nc", None)
        out.setdefault("train", out["val"])  # ultralytics requires a train key even for val
        return out

    def write_sanitised(self, directory: Path) -> Path:
        """Write the sanitised YAML into ``directory`` and return its absolute path."""
        directory.mkdir(parents=True, exist_ok=True)
        target = directory / "dataset.yaml"
        target.write_text(yaml.safe_dump(self.sanitised(), sort_keys=False))
        return target.resolve()


def label_path_for(image: Path) -> Path:
    """The YOLO label file of an image: the last ``/images/`` folder becomes ``/labels/``."""
    s = str(image)
    sa, sb = f"{os.sep}images{os.sep}", f"{os.sep}labels{os.sep}"
    if sa in s:
        s = sb.join(s.rsplit(sa, 1))
    return Path(s).with_suffix(".txt")


def read_yaml_mapping(yaml_path: Path) -> dict[str, Any]:
    """``yaml.safe_load`` a dataset file; DatasetError when missing, unreadable, not YAML or not a mapping."""
    if not yaml_path.exists():
        raise DatasetError(f"dataset file not found: {yaml_path}")
    if not yaml_path.is_file():
        raise DatasetError(f"dataset path is not a file: {yaml_path}")
    try:
        text = yaml_path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise DatasetError(f"cannot read dataset file {yaml_path}: {exc}") from exc
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise DatasetError(f"dataset file {yaml_path} is not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise DatasetError(
            f"dataset file {yaml_path} must be a YAML mapping with path/val/names keys, "
            f"got {type(data).__name__}"
        )
    return data


def _names(data: dict[str, Any], yaml_path: Path) -> list[str]:
    names = data.get("names")
    nc = data.get("nc")
    if names is None:
        if isinstance(nc, int) and not isinstance(nc, bool) and nc > 0:
            return [f"class_{i}" for i in range(nc)]
        raise DatasetError(f"dataset file {yaml_path} has no 'names' (or a positive integer 'nc')")
    if isinstance(names, dict):
        try:
            keys = sorted(int(k) for k in names)
        except (TypeError, ValueError) as exc:
            raise DatasetError(f"'names' keys in {yaml_path} must be class indices 0..n-1") from exc
        if keys != list(range(len(keys))):
            raise DatasetError(f"'names' keys in {yaml_path} must be 0..{len(keys) - 1} without gaps")
        out = [str(names[k] if k in names else names[str(k)]) for k in keys]
    elif isinstance(names, list):
        out = [str(n) for n in names]
    else:
        raise DatasetError(f"'names' in {yaml_path} must be a list or a mapping of index to name")
    if not out:
        raise DatasetError(f"'names' in {yaml_path} is empty")
    if nc is not None and nc != len(out):
        raise DatasetError(f"dataset file {yaml_path}: nc={nc!r} but 'names' lists {len(out)} classes")
    return out


def _root(data: dict[str, Any], yaml_path: Path) -> Path:
    raw = data.get("path")
    if raw is None or raw == "":
        return yaml_path.parent.resolve()
    if not isinstance(raw, str):
        raise DatasetError(f"'path' in {yaml_path} must be a string")
    p = Path(raw).expanduser()
    # A relative 'path' is taken relative to the YAML file (ultralytics would use the CWD).
    return (p if p.is_absolute() else yaml_path.parent / p).resolve()


def _list_images(entry: str, root: Path, yaml_path: Path, split: str = "val") -> tuple[list[Path], list[Path]]:
    """Images of one split entry and the folders they are named relative to."""
    p = Path(entry).expanduser()
    p = (p if p.is_absolute() else root / p).resolve()
    if p.is_dir():
        images = sorted(f for f in p.rglob("*") if f.suffix[1:].lower() in IMG_SUFFIXES and f.is_file())
        return images, [p]
    if p.is_file() and p.suffix == ".txt":
        images = []
        for line in p.read_text(encoding="utf-8").splitlines():
            line = line.strip()
            if line:
                q = Path(line)
                images.append((q if q.is_absolute() else p.parent / q).resolve())
        missing = [str(i) for i in images if not i.is_file()]
        if missing:
            raise DatasetError(f"{split} list {p} names {len(missing)} missing image(s), e.g. {missing[0]}")
        return images, [p.parent]
    raise DatasetError(f"{split} folder missing: {p} (from '{split}: {entry}' in {yaml_path})")


def load_dataset(yaml_path: str | Path, split: str = "val") -> Dataset:
    """Load and validate a dataset YAML and one of its splits (see the module contract)."""
    if split not in SPLITS:
        raise DatasetError(f"split must be one of {', '.join(SPLITS)}, got {split!r}")
    yaml_path = Path(yaml_path).expanduser().resolve()
    data = read_yaml_mapping(yaml_path)
    val = data.get(split, data.get("validation") if split == "val" else None)
    if val is None or val == "" or val == []:
        raise DatasetError(f"dataset file {yaml_path} has no '{split}' split")
    entries: Sequence[Any] = val if isinstance(val, list) else [val]
    if not all(isinstance(e, str) for e in entries):
        raise DatasetError(f"'{split}' in {yaml_path} must be a path or a list of paths")
    names = _names(data, yaml_path)
    root = _root(data, yaml_path)
    images: list[Path] = []
    val_roots: list[Path] = []
    for entry in entries:
        imgs, roots = _list_images(entry, root, yaml_path, split)
        images.extend(imgs)
        val_roots.extend(roots)
    if not images:
        raise DatasetError(f"{split} folder of {yaml_path} holds no images ({', '.join(map(str, val_roots))})")
    label_dirs = {label_path_for(i).parent for i in images}
    if not any(d.is_dir() for d in label_dirs):
        raise DatasetError(
            f"labels folder missing for {yaml_path}: expected YOLO labels in {sorted(label_dirs)[0]} "
            f"(the {split} images path with its last 'images' folder replaced by 'labels')"
        )
    labels: dict[Path, list[Label]] = {}
    for image in images:
        lp = label_path_for(image)
        labels[image] = parse_label_file(lp, len(names)) if lp.is_file() else []
    raw = dict(data)
    raw[split] = val
    return Dataset(yaml_path, root, names, val_roots, images, labels, raw, split)


def check_class_names(model_names: list[str], dataset: Dataset, allow_mismatch: bool) -> list[str]:
    """Compare class names index by index; raise, or return a warning when mismatch is allowed."""
    if model_names == dataset.names:
        return []
    message = (
        f"checkpoint class names differ from the dataset's ({dataset.yaml_path}) by index: "
        f"checkpoint {dict(enumerate(model_names))}, dataset {dict(enumerate(dataset.names))}"
    )
    if not allow_mismatch:
        raise ClassMismatchError(message + "; pass allow_class_mismatch to evaluate anyway")
    return [message]


def check_train_split(dataset: Dataset) -> None:
    """DatasetError unless the YAML has a ``train`` split whose every entry exists (a folder or list file)."""
    train = dataset.raw.get("train")
    if not train:
        raise DatasetError(f"dataset file {dataset.yaml_path} has no 'train' split to train on")
    entries = train if isinstance(train, list) else [train]
    if not all(isinstance(e, str) and e for e in entries):
        raise DatasetError(f"'train' in {dataset.yaml_path} must be a path or a list of paths")
    for entry in entries:
        p = Path(entry)
        p = p if p.is_absolute() else dataset.root / p
        if not p.exists():
            raise DatasetError(f"train split missing: {p} (from 'train: {entry}' in {dataset.yaml_path})")


def fingerprint(dataset: Dataset) -> str:
    """sha256 of the evaluated split's content: image names and bytes, labels, class names, and the
    split's name unless it is ``val`` (whose fingerprints predate splits).

    Moving or renaming the dataset folder keeps the fingerprint; changing one
    image, one label or one class name changes it.
    """
    h = hashlib.sha256()
    if dataset.split != "val":
        h.update(f"split={dataset.split}\n".encode())
    h.update(repr(dataset.names).encode())
    for image in sorted(dataset.images, key=lambda p: dataset.relative_name(p)):
        h.update(dataset.relative_name(image).encode())
        h.update(b"\0")
        h.update(file_sha256(image).encode())
        for lb in dataset.labels[image]:
            h.update(repr((lb.cls, lb.cx, lb.cy, lb.w, lb.h)).encode())
        h.update(b"\n")
    return h.hexdigest()


def file_sha256(path: str | Path, chunk: int = 1 << 20) -> str:
    """sha256 of a file's bytes, read in chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()
