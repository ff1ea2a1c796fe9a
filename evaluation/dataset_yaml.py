"""How ultralytics 8.4.190 reads a detection dataset YAML, rule for rule, without its side effects.

``ultralytics.data.utils.check_det_dataset`` (``data/utils.py:717-836``) and
``BaseDataset.get_img_files`` (``data/base.py:189-227``) decide which images a
bare ``yolo val`` evaluates. They cannot be called here: they download
(``download:``, zip files), run ``check_font`` (network), import torch, and
extract archives into ``DATASETS_DIR``. Each rule is therefore restated below,
citing the line it follows, so that a YAML a bare val accepts is accepted
here and one it refuses is refused with the reason (``DatasetError``).

One deliberate difference, because a daemon's working directory means
nothing to its users: where ultralytics resolves a relative ``path:``, or a
relative line of a ``.txt`` image list, against the current directory, we
resolve it against the YAML's own folder, i.e. we accept what a bare val run
from the YAML's folder accepts. Ultralytics' last resort for a relative
``path:`` that does not exist, its ``DATASETS_DIR`` setting, is a folder of
the user's own ultralytics settings that a daemon cannot know: such a YAML is
refused with a message that says to give an absolute ``path:``. For the same
reason nothing is fetched or unpacked: a ``download:`` is never run (a missing
split is refused), and a zip or tar file must be extracted first.
"""

from __future__ import annotations

import glob
import os
import re
from pathlib import Path
from typing import Any

import yaml

from vocab.errors import DatasetError

# ultralytics.data.utils.IMG_FORMATS (data/utils.py:38-52): the suffixes get_img_files keeps.
IMG_FORMATS = frozenset(
    {"avif", "bmp", "dng", "heic", "heif", "jp2", "jpeg", "jpg", "mpo", "png", "tif", "tiff", "webp", "pfm"}
)
# DATASET_KEY_TYPES (data/utils.py:55-63): the permitted types of these keys when they are not None.
KEY_TYPES: dict[str, tuple[type, ...]] = {
    "path": (str,), "train": (str, list), "val": (str, list), "test": (str, list), "names": (list, dict),
    "kpt_shape": (list,), "flip_idx": (list,),
}
SPLIT_KEYS = ("train", "val", "test")  # the keys whose entries are resolved against the root (utils.py:795)
# What YAML.load strips before its second try (utils/__init__.py:687).
_UNPRINTABLE = re.compile(r"[^\x09\x0A\x0D\x20-\x7E\x85\xA0-\uD7FF\uE000-\uFFFD\U00010000-\U0010ffff]+")


def find_dataset_yaml(folder: Path) -> Path:
    """The YAML of a dataset folder, as ``find_dataset_yaml`` (utils.py:646-664) picks it: ``*.yaml`` in the
    folder, else anywhere below it, then the same for ``*.yml``; of several, the one named like the folder."""
    files = next((f for e in ("*.yaml", "*.yml") if (f := sorted(folder.glob(e)) or sorted(folder.rglob(e)))), [])
    if not files:
        raise DatasetError(f"no dataset YAML (*.yaml or *.yml) in the folder {folder}: name a dataset YAML or "
                           "a COCO JSON file instead")
    if len(files) > 1:
        files = [f for f in files if f.stem == folder.stem]  # utils.py:662
    if len(files) != 1:
        raise DatasetError(f"expected one dataset YAML in the folder {folder} (or one named {folder.stem}.yaml), "
                           "name the YAML itself")
    return files[0]


# YAML's own loader (:624-627): libyaml's CSafeLoader where PyYAML was built with it, else the pure-Python one.
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def read_yaml(yaml_path: Path) -> dict[str, Any]:
    """The mapping ``YAML.load`` (utils/__init__.py:661-708) reads: undecodable bytes ignored, unprintable
    characters stripped on a second try, the string ``None`` read as null; DatasetError if not a mapping."""
    if not yaml_path.exists():
        raise DatasetError(f"dataset file not found: {yaml_path}")
    if not yaml_path.is_file():
        raise DatasetError(f"dataset path is not a file: {yaml_path}")
    if yaml_path.suffix.lower() in (".zip", ".tar", ".gz", ".tgz"):  # check_det_dataset extracts them (:742-745)
        raise DatasetError(f"{yaml_path} is an archive: extract it and name its YAML (ultralytics would extract "
                           "it into its own datasets folder, which a daemon does not write to)")
    if yaml_path.suffix.lower() not in (".yaml", ".yml"):  # YAML.load asserts the suffix (:676)
        raise DatasetError(f"a dataset must be a .yaml/.yml file, a folder holding one, or a COCO .json file, "
                           f"got {yaml_path}")
    try:
        text = yaml_path.read_text(encoding="utf-8", errors="ignore")  # :679
    except OSError as exc:
        raise DatasetError(f"cannot read dataset file {yaml_path}: {exc}") from exc
    try:
        data = yaml.load(text, Loader=_LOADER)
    except yaml.YAMLError:
        try:
            data = yaml.load(_UNPRINTABLE.sub("", text), Loader=_LOADER)  # :686-689
        except yaml.YAMLError as exc:
            raise DatasetError(f"dataset file {yaml_path} is not valid YAML: {exc}") from exc
    if data is None:
        data = {}  # an empty file reads as {} (:693); the missing keys are then named below
    if not isinstance(data, dict):
        raise DatasetError(f"dataset file {yaml_path} must be a YAML mapping with train/val/names keys, "
                           f"got {type(data).__name__}")
    return {k: None if v == "None" else v for k, v in data.items()}  # :703-704


def label_path_for(image: Path) -> Path:
    """The YOLO label file of an image (``img2label_paths``, utils.py:134-146): the last ``/images/``
    folder becomes ``/labels/`` and the suffix ``.txt``."""
    s = str(image)
    sa, sb = f"{os.sep}images{os.sep}", f"{os.sep}labels{os.sep}"
    if sa in s:
        s = sb.join(s.rsplit(sa, 1))
    return Path(s).with_suffix(".txt")


def check_keys(data: dict[str, Any], yaml_path: Path) -> None:
    """The key checks of check_det_dataset, in its order; renames ``validation`` to ``val`` in ``data``."""
    for key, types in KEY_TYPES.items():  # utils.py:751-754
        if data.get(key) is not None and not isinstance(data[key], types):
            expected = " or ".join(t.__name__ for t in types)
            raise DatasetError(f"'{key}' in {yaml_path} must be a {expected}, not {type(data[key]).__name__}")
    for key in "train", "val":  # utils.py:756-763: both are required, even to evaluate
        if key not in data:
            if key != "val" or "validation" not in data:
                raise DatasetError(f"dataset file {yaml_path} has no '{key}' split: ultralytics requires 'train' "
                                   "and 'val' keys in every data YAML, even to evaluate")
            data["val"] = data.pop("validation")
    for key in SPLIT_KEYS:  # a non-string entry makes ultralytics' `path / x` (utils.py:803) raise
        entries = data.get(key)
        if isinstance(entries, list) and not all(isinstance(e, str) and e for e in entries):
            raise DatasetError(f"'{key}' in {yaml_path} must be a path or a list of paths")


def require_split(data: dict[str, Any], split: str, yaml_path: Path) -> None:
    """The evaluated split is named and not empty (utils.py:764-765)."""
    if not data.get(split):
        raise DatasetError(f"dataset file {yaml_path} has no '{split}' split (it is missing or empty)")


def _nc(data: dict[str, Any], yaml_path: Path) -> int | None:
    """``nc`` as an int (utils.py:770-777: integer-like values such as '10' or 10.0 pass), None if absent."""
    if "nc" not in data:
        return None
    try:
        as_float = float(data["nc"])
        if as_float != int(as_float):
            raise ValueError
    except (TypeError, ValueError):
        raise DatasetError(f"'nc: {data['nc']}' in {yaml_path} must be an integer") from None
    return int(as_float)


def class_names(data: dict[str, Any], yaml_path: Path) -> list[str]:
    """The class names of utils.py:768-785 and ``check_class_names`` (nn/autobackend.py:44-74)."""
    names = data.get("names")
    if names is None and "nc" not in data:  # :768-769
        raise DatasetError(f"dataset file {yaml_path} has no 'names' (or 'nc')")
    nc = _nc(data, yaml_path)
    if names is not None and nc is not None and len(names) != nc:  # :778-779
        raise DatasetError(f"dataset file {yaml_path}: 'names' lists {len(names)} classes but nc is {nc}")
    if names is None:
        names = [f"class_{i}" for i in range(nc or 0)]  # :780-781
    try:  # check_class_names: a list becomes {index: name}, keys become int and names str
        by_index = {int(k): str(v) for k, v in (enumerate(names) if isinstance(names, list) else names.items())}
    except (TypeError, ValueError):
        raise DatasetError(f"'names' keys in {yaml_path} must be class indices 0..n-1") from None
    if not by_index:
        raise DatasetError(f"'names' in {yaml_path} is empty: a dataset needs at least one class")
    if sorted(by_index) != list(range(len(by_index))):  # autobackend.py:64-68 (and no negative keys)
        raise DatasetError(f"'names' keys in {yaml_path} must be 0..{len(by_index) - 1} without gaps")
    # check_class_names' ImageNet synset renaming ('n01440764' names, :69-73) is for classification only.
    return [by_index[i] for i in range(len(by_index))]


def dataset_root(data: dict[str, Any], yaml_path: Path) -> Path:
    """The folder the split entries are relative to (utils.py:789-791): ``path:``, else the YAML's folder.

    A relative ``path:`` is taken relative to the YAML's folder (see the module docstring) and, as in
    ultralytics, not expanded (``~``)."""
    raw = data.get("path") or ""
    root = yaml_path.parent / raw  # an absolute path: replaces the YAML's folder
    if not root.exists():
        hint = " (ultralytics does not expand '~')" if raw.startswith("~") else ""
        where = "" if Path(raw).is_absolute() else (
            f", relative to the YAML's folder; ultralytics would also look under its own datasets_dir setting, "
            f"which a daemon cannot know: give an absolute 'path:'{hint}")
        raise DatasetError(f"dataset root missing: {root} (from 'path: {raw}' in {yaml_path}{where})")
    return root.resolve()


def resolve_entries(data: dict[str, Any], key: str, root: Path) -> list[Path]:
    """The entries of one split as absolute paths (utils.py:796-803): joined to the root and resolved; a
    single entry that does not exist and starts with ``../`` is tried once more without it (the fallback
    that makes Roboflow's ``val: ../valid/images`` work); list entries get no fallback."""
    value = data.get(key)
    if not value:
        return []
    if isinstance(value, str):
        x = (root / value).resolve()
        if not x.exists() and value.startswith("../"):
            x = (root / value[3:]).resolve()
        return [x]
    return [(root / x).resolve() for x in value]


def check_entries_exist(entries: list[Path], split: str, data: dict[str, Any], yaml_path: Path) -> None:
    """Every entry of the evaluated split exists (utils.py:806-817; its ``download:`` is never run)."""
    for x in entries:
        if not x.exists():
            raise DatasetError(f"{split} folder missing: {x} (from '{split}: {data[split]}' in {yaml_path})")


def list_images(entries: list[Path], yaml_dir: Path) -> list[str]:
    """The image files ultralytics' ``get_img_files`` (data/base.py:204-223) lists for these entries.

    A folder is globbed recursively for ``*.*`` (hidden files skipped, as glob does); any other file is a
    UTF-8 list of images, one a line, where ``./`` starts a path relative to the list file. A line that is
    relative otherwise is, for ultralytics, relative to the current directory: here, to the YAML's folder
    (see the module docstring). Only image suffixes are kept; the result is sorted as strings.
    """
    found: list[str] = []
    for p in entries:
        if p.is_dir():
            found += glob.glob(str(Path(glob.escape(str(p))) / "**" / "*.*"), recursive=True)  # base.py:209
        elif p.is_file():
            try:
                lines = p.read_text(encoding="utf-8-sig").strip().splitlines()  # base.py:212-213
            except (OSError, UnicodeDecodeError) as exc:
                raise DatasetError(f"cannot read the image list {p}: {exc}") from exc
            parent = str(p.parent) + os.sep
            for x in lines:
                x = x.replace("./", parent, 1) if x.startswith("./") else x  # base.py:215
                found.append(x if os.path.isabs(x) or not x else str(yaml_dir / x))
    return sorted(x.replace("/", os.sep) for x in found if x.rpartition(".")[-1].lower() in IMG_FORMATS)
