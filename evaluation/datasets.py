"""Datasets: strict loading, validation with clear errors, a sanitised copy, a fingerprint.

Contract of ``load_dataset``: it either returns a ``Dataset`` whose named
split (``val`` by default, or ``test`` or ``train``) ultralytics will evaluate
exactly as listed (every image kept, every label parsed), or raises
``DatasetError`` saying which file and line is wrong, or which split is
missing.

What it accepts: a dataset YAML, read and resolved exactly as ultralytics'
``check_det_dataset`` reads it (``evaluation.dataset_yaml``: a YAML that a bare
``yolo val`` run from the YAML's folder accepts is accepted, one it refuses
is refused with the reason); a folder holding one; a COCO JSON file, or a YAML
whose split entries name JSON files (converted once into a cache,
``evaluation.coco_cache``). Stricter than a bare val, so that a number never
silently covers fewer images: ultralytics would drop images whose labels it
cannot use, or that are missing; we refuse them instead.

The label files are read as the checkpoint's task reads them (``task``: a
``vocab.tasks`` name or ultralytics alias; ``evaluation.labels``): boxes or
polygons for detection, polygons for segmentation, four corners for obb,
boxes with keypoints for pose (whose YAML must declare the ``kpt_shape`` of
the checkpoint, ``model_kpt_shape``, when known). A dataset that does not fit
the task is a ``DatasetError`` naming both; a COCO JSON dataset (converted
with boxes only) is for detection only. The ``Dataset`` keeps how its labels
were read (``label_spec``), and its sanitised YAML hands the task's keys on
to ultralytics (pose: ``kpt_shape``, ``flip_idx``, ...).

``list_split`` is the first half of ``load_dataset``, fast: the split's
images as its YAML lists them and named as results name them, without a look
at any image or label file (``SplitImages.labels_of`` reads one image's labels
as ``load_dataset`` reads them): for finding an image by name, never for
evaluating.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Protocol

import yaml

from evaluation.coco_cache import CONVERSION_KEY, is_coco_yaml, prepare
from evaluation.coco_cache import check as coco_check
from evaluation.dataset_yaml import (
    check_entries_exist,
    check_keys,
    class_names,
    dataset_root,
    find_dataset_yaml,
    label_path_for,
    list_images,
    read_yaml,
    require_split,
    resolve_entries,
)
from evaluation.file_cache import file_sha256
from evaluation.labels import Label, LabelSpec, label_spec, parse_label_file
from vocab.errors import ClassMismatchError, DatasetError
from vocab.paths import default_state_dir
from vocab.tasks import DEFAULT_TASK, canonical_task
from vocab.terms import SPLITS

# Keys handed on to ultralytics; everything else (``download`` above all) is dropped.
_SANITISED_KEYS = ("path", "train", "val", "test", "names", "nc", "channels")


@dataclass
class SplitImages:
    """One split of a dataset as its YAML lists it (``list_split``): ``images``, in ultralytics' order, each
    named by ``relative_name`` as results name it (relative to the folder of ``val_roots`` that holds it).

    ``yaml_path`` is the YAML ultralytics reads (for a COCO JSON: the converted one in the cache);
    ``source`` what the caller named; ``entries`` the split's entries, resolved; ``conversion`` what each
    COCO JSON of the split became (``coco_cache.conversion_record``), None for a YOLO dataset;
    ``label_spec`` how its label files are read (``evaluation.labels``: the task, the keypoint shape and the
    YAML keys that go with them)."""

    yaml_path: Path
    root: Path
    names: list[str]
    val_roots: list[Path]
    entries: list[Path]
    images: list[Path]
    raw: dict[str, Any] = field(repr=False)
    split: str
    source: Path | None
    conversion: list[dict[str, Any]] | None
    label_spec: LabelSpec

    @property
    def nc(self) -> int:
        return len(self.names)

    @property
    def described(self) -> Path:
        """How messages name the dataset: the file the user gave (a COCO JSON's source, else the YAML)."""
        return self.source or self.yaml_path

    def relative_name(self, image: str | Path) -> str:
        """``image`` relative to the val images folder that holds it (POSIX separators)."""
        text = str(image)
        for root in self.val_roots:
            prefix = str(root).rstrip(os.sep) + os.sep  # Path.is_relative_to on normalised paths, faster
            if text.startswith(prefix):
                return text[len(prefix):].replace(os.sep, "/")
        return Path(image).name

    def labels_of(self, image: Path) -> list[Label]:
        """The labels of one image of the split, read from its label file now as ``load_dataset`` reads them
        (none without a label file); DatasetError for a label file it would refuse."""
        return _labels_in(label_path_for(image), self.nc, self.label_spec)


@dataclass
class Dataset(SplitImages):
    """A validated dataset and the split it is evaluated on (``load_dataset``): every image checked and its
    labels read (``labels``, from ``label_files``: each image's label file, present or not, in ``images``
    order)."""

    labels: dict[Path, list[Label]] = field(repr=False)
    label_files: list[Path] = field(repr=False)
    # Computed once per object (a loaded dataset is never changed: ``task_data.load`` shares it).
    _names: list[str] | None = field(default=None, init=False, repr=False, compare=False)
    _fingerprint: str | None = field(default=None, init=False, repr=False, compare=False)

    def relative_names(self) -> list[str]:
        """``relative_name`` of every image, in ``images`` order (computed once)."""
        if self._names is None:
            self._names = [self.relative_name(p) for p in self.images]
        return self._names

    def dependencies(self, given: str | Path) -> list[Path]:
        """Every path the loaded dataset was read from (for ``given``, the path its caller named): the file
        named and the YAML, the split's entries, the folders of its images and label files, the images and
        label files themselves. While none of them changes (``evaluation.file_cache``), neither does the
        dataset."""
        folders = sorted({p.parent for p in self.images} | {p.parent for p in self.label_files})
        return [Path(given).expanduser(), *([self.source] if self.source else []), self.yaml_path, *self.entries,
                *folders, *self.images, *self.label_files]

    def sanitised(self) -> dict[str, Any]:
        """The mapping ultralytics gets: absolute ``path``, known keys only, no ``download``, and the
        evaluated split as ``val`` (ultralytics validates ``val``), plus the YAML keys of its task's labels
        (``LabelSpec.yaml_keys``: pose's ``kpt_shape``, ``flip_idx``, ...). Its split entries are the YAML's
        own, which ultralytics resolves against the absolute ``path`` by the rules we followed."""
        out = {k: self.raw[k] for k in _SANITISED_KEYS if k in self.raw}
        out["val"] = self.raw[self.split]
        out["path"] = str(self.root)
        out["names"] = dict(enumerate(self.names))
        out.pop("nc", None)
        out.update(self.label_spec.yaml_keys)
        return out

    def write_sanitised(self, directory: Path) -> Path:
        """Write the sanitised YAML into ``directory`` and return its absolute path.

        A ``.txt`` image list with lines that ultralytics would read relative to the current directory
        (we read them relative to the YAML's folder) is handed on as an absolute copy written beside it.
        """
        directory.mkdir(parents=True, exist_ok=True)
        data = self.sanitised()
        for key in ("train", "val", "test"):
            if data.get(key):
                data[key] = _cwd_free(data, key, self.root, self.yaml_path.parent, directory)
        target = directory / "dataset.yaml"
        target.write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True))
        return target.resolve()


def _cwd_free(data: dict[str, Any], key: str, root: Path, yaml_dir: Path, directory: Path) -> str | list[str]:
    """The entries of one split, each ``.txt`` list with current-directory-relative lines replaced by an
    absolute copy (``<directory>/<key>-<n>.txt``); other entries unchanged."""
    value = data[key]
    out = []
    for n, (entry, path) in enumerate(zip(value if isinstance(value, list) else [value],
                                          resolve_entries(data, key, root))):
        if path.is_file():
            lines = path.read_text(encoding="utf-8-sig").strip().splitlines()
            if any(x and not x.startswith("./") and not os.path.isabs(x) for x in lines):
                copy = directory / f"{key}-{n}.txt"
                copy.write_text("".join(f"{x}\n" for x in list_images([path], yaml_dir)))
                entry = str(copy.resolve())
        out.append(entry)
    return out if isinstance(value, list) else out[0]


def default_cache_root() -> Path:
    """Where converted COCO datasets are cached when no cache root is given (``eval --local``):
    ``$XDG_CACHE_HOME/vision-evald/converted``. The daemon passes ``<state_dir>/converted``."""
    return default_state_dir() / "converted"


def _dataset_file(path: str | Path, split: str, task: str) -> tuple[Path, Path, bool]:
    """(what the caller named, the YAML or JSON file it stands for, whether that is COCO JSON); a COCO
    JSON dataset for a task other than detection is a DatasetError."""
    if split not in SPLITS:
        raise DatasetError(f"split must be one of {', '.join(SPLITS)}, got {split!r}")
    source = Path(path).expanduser().resolve()
    file = find_dataset_yaml(source) if source.is_dir() else source
    coco = file.suffix.lower() == ".json" or (
        file.suffix.lower() in (".yaml", ".yml") and file.is_file() and is_coco_yaml(read_yaml(file)))
    if coco and canonical_task(task) != DEFAULT_TASK:
        raise DatasetError(f"{source}: COCO JSON datasets are supported for detection (they are converted with "
                           f"boxes only), not for a {canonical_task(task)} model")
    return source, file, coco


def is_coco(path: str | Path, split: str = "val", task: str = DEFAULT_TASK) -> bool:
    """Whether ``path`` names a COCO JSON dataset (a JSON file, or a YAML naming JSON files); DatasetError
    for one of a task other than detection, or a split that does not exist."""
    return _dataset_file(path, split, task)[2]


def check_dataset(path: str | Path, split: str = "val", *, train: bool = False, task: str = DEFAULT_TASK,
                  model_kpt_shape: Any = None) -> None:
    """What a submission checks, fast and without torch: ``load_dataset``'s checks for ``task`` (and, with
    ``train``, ``check_train_split``'s), except that COCO JSON is only checked (``coco_cache.check``), not
    converted: the job converts it. DatasetError says what is wrong."""
    _, file, coco = _dataset_file(path, split, task)
    if coco:
        for name in (split, "train") if train and file.suffix.lower() != ".json" else (split,):
            coco_check(file, name)
        return
    dataset = load_dataset(file, split, task=task, model_kpt_shape=model_kpt_shape)
    if train:
        check_train_split(dataset)


def load_dataset(path: str | Path, split: str = "val", *, cache_root: Path | None = None,
                 task: str = DEFAULT_TASK, model_kpt_shape: Any = None) -> Dataset:
    """Load and validate a dataset and one of its splits for a checkpoint of ``task`` (see the module
    contract).

    ``path``: a dataset YAML, a folder holding one (found as ultralytics finds it), a COCO JSON file,
    or a YAML naming JSON files; JSON is converted into ``cache_root`` (default: ``default_cache_root()``).
    ``model_kpt_shape``: a pose checkpoint's ``[keypoints, dims]``, when known (the YAML's must equal it).
    """
    listed = list_split(path, split, cache_root=cache_root, task=task, model_kpt_shape=model_kpt_shape)
    _check_images(listed)
    label_files = [label_path_for(i) for i in listed.images]
    labels = _read_labels(listed, label_files)
    dataset = Dataset(**{f.name: getattr(listed, f.name) for f in fields(SplitImages)}, labels=labels,
                      label_files=label_files)
    _check_unique_names(dataset)
    return dataset


def list_split(path: str | Path, split: str = "val", *, cache_root: Path | None = None,
               task: str = DEFAULT_TASK, model_kpt_shape: Any = None) -> SplitImages:
    """The split of a dataset as ``load_dataset`` lists it, with its checks of the YAML and the split's
    entries (a COCO JSON converted, or found converted, as there) but none of the images and label files
    (see the module contract). Arguments as ``load_dataset``'s."""
    source, yaml_path, converted = _dataset_file(path, split, task)
    if converted:
        yaml_path = prepare(yaml_path, cache_root if cache_root is not None else default_cache_root())
    data = read_yaml(yaml_path)
    check_keys(data, yaml_path)
    require_split(data, split, yaml_path)
    names = class_names(data, yaml_path)
    spec = label_spec(task, data, model_kpt_shape, source=f"dataset file {yaml_path}")
    root = dataset_root(data, yaml_path)
    entries = resolve_entries(data, split, root)
    check_entries_exist(entries, split, data, yaml_path)
    images = [Path(x) for x in list_images(entries, yaml_path.parent)]
    raw = {k: v for k, v in data.items() if k != CONVERSION_KEY}
    conversion = (data.get(CONVERSION_KEY) or {}).get(split) if converted else None
    return SplitImages(yaml_path, root, names, _roots(entries), entries, images, raw, split, source, conversion, spec)


def _roots(entries: list[Path]) -> list[Path]:
    """The folder images are named relative to: the folder entry, or the list file's folder; for several
    entries, the folder that holds them all (so that equal file names in two folders stay apart)."""
    roots = list(dict.fromkeys(p if p.is_dir() else p.parent for p in entries))
    return roots if len(roots) == 1 else [Path(os.path.commonpath(roots))]


def _check_images(listed: SplitImages) -> None:
    """Every listed image is a file, listed once (ultralytics would drop a missing one, count a
    repeated one twice)."""
    images, split, yaml_path = listed.images, listed.split, listed.yaml_path
    if not images:
        raise DatasetError(f"{split} folder of {yaml_path} holds no images ({', '.join(map(str, listed.entries))})")
    missing = [str(i) for i in images if not i.is_file()]
    if missing:
        raise DatasetError(f"{split} split of {yaml_path} names {len(missing)} missing image(s), e.g. {missing[0]}")
    seen: set[Path] = set()
    for image in images:
        if image in seen:
            raise DatasetError(f"{split} split of {yaml_path} lists {image} twice; ultralytics would "
                               "evaluate it twice")
        seen.add(image)


def _read_labels(listed: SplitImages, label_files: list[Path]) -> dict[Path, list[Label]]:
    """The labels of every image (``label_files``: each one's label file, in order); DatasetError when no
    labels folder exists, or for a label file ultralytics would refuse or drop."""
    label_dirs = {lp.parent for lp in label_files}
    if not any(d.is_dir() for d in label_dirs):
        raise DatasetError(
            f"labels folder missing for {listed.yaml_path}: expected YOLO labels in {sorted(label_dirs)[0]} "
            f"(the {listed.split} images path with its last 'images' folder replaced by 'labels')"
        )
    return {image: _labels_in(lp, listed.nc, listed.label_spec) for image, lp in zip(listed.images, label_files)}


def _labels_in(label_file: Path, nc: int, spec: LabelSpec) -> list[Label]:
    """The labels of one image, from its label file (none when it has none)."""
    return parse_label_file(label_file, nc, spec) if label_file.is_file() else []


def _check_unique_names(dataset: Dataset) -> None:
    """Results and the fingerprint name images relative to their folder: two may not share a name."""
    by_name: dict[str, Path] = {}
    for image, name in zip(dataset.images, dataset.relative_names()):
        if name in by_name:
            raise DatasetError(f"{by_name[name]} and {image} of {dataset.yaml_path} share the name {name!r}, "
                               "by which results name images: put them in one folder, or rename one")
        by_name[name] = image


class NamedDataset(Protocol):
    """What the class-name check reads of a dataset of any task: its class names and how to name it."""

    names: list[str]

    @property
    def described(self) -> Path: ...


def check_class_names(model_names: list[str], dataset: NamedDataset, allow_mismatch: bool) -> list[str]:
    """Compare class names index by index; raise, or return a warning when mismatch is allowed."""
    if model_names == dataset.names:
        return []
    message = (
        f"checkpoint class names differ from the dataset's ({dataset.described}) by index: "
        f"checkpoint {dict(enumerate(model_names))}, dataset {dict(enumerate(dataset.names))}"
    )
    if not allow_mismatch:
        raise ClassMismatchError(message + "; pass allow_class_mismatch to evaluate anyway")
    return [message]


def check_train_split(dataset: Dataset) -> None:
    """DatasetError unless the YAML's ``train`` split exists: every entry, resolved as ultralytics
    resolves it, is a folder or list file."""
    train = dataset.raw.get("train")
    if not train:
        raise DatasetError(f"dataset file {dataset.yaml_path} has no 'train' split to train on")
    for path in resolve_entries(dataset.raw, "train", dataset.root):
        if not path.exists():
            raise DatasetError(f"train split missing: {path} (from 'train: {train}' in {dataset.yaml_path})")


def fingerprint(dataset: Dataset) -> str:
    """sha256 of the evaluated split's content: image names and bytes, labels (with their task geometry:
    polygons, corners, keypoints), class names, and the split's name unless it is ``val`` (whose
    fingerprints predate splits).

    Moving or renaming the dataset folder keeps the fingerprint; changing one
    image, one label or one class name changes it. A label without ``points``
    (every label read for detection) is hashed as before task geometry was
    kept, so a detection dataset keeps its fingerprint. Computed once per loaded dataset.
    """
    if dataset._fingerprint is None:
        dataset._fingerprint = _fingerprint(dataset)
    return dataset._fingerprint


def _fingerprint(dataset: Dataset) -> str:
    h = hashlib.sha256()
    if dataset.split != "val":
        h.update(f"split={dataset.split}\n".encode())
    h.update(repr(dataset.names).encode())
    for name, image in sorted(zip(dataset.relative_names(), dataset.images)):
        h.update(name.encode())
        h.update(b"\0")
        h.update(file_sha256(image).encode())
        for lb in dataset.labels[image]:
            h.update(repr((lb.cls, lb.cx, lb.cy, lb.w, lb.h, *((lb.points,) if lb.points else ()))).encode())
        h.update(b"\n")
    return h.hexdigest()
