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
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
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
from vocab.errors import ClassMismatchError, DatasetError
from vocab.paths import default_state_dir
from vocab.terms import SPLITS

# Keys handed on to ultralytics; everything else (``download`` above all) is dropped.
_SANITISED_KEYS = ("path", "train", "val", "test", "names", "nc", "channels")


@dataclass(frozen=True)
class Label:
    """One ground-truth box: class index and normalised centre-x, centre-y, width, height."""

    cls: int
    cx: float
    cy: float
    w: float
    h: float


@dataclass
class Dataset:
    """A validated dataset and the split it is evaluated on (``val_roots``: that split's folders).

    ``yaml_path`` is the YAML ultralytics reads (for a COCO JSON: the converted one in the cache);
    ``source`` what the caller named; ``conversion`` what each COCO JSON of the split became
    (``coco_cache.conversion_record``), None for a YOLO dataset."""

    yaml_path: Path
    root: Path
    names: list[str]
    val_roots: list[Path]
    images: list[Path]
    labels: dict[Path, list[Label]] = field(repr=False)
    raw: dict[str, Any] = field(repr=False)
    split: str = "val"
    source: Path | None = None
    conversion: list[dict[str, Any]] | None = None

    @property
    def nc(self) -> int:
        return len(self.names)

    @property
    def described(self) -> Path:
        """How messages name the dataset: the file the user gave (a COCO JSON's source, else the YAML)."""
        return self.source or self.yaml_path

    def relative_name(self, image: str | Path) -> str:
        """``image`` relative to the val images folder that holds it (POSIX separators)."""
        p = Path(image)
        for root in self.val_roots:
            if p.is_relative_to(root):
                return p.relative_to(root).as_posix()
        return p.name

    def sanitised(self) -> dict[str, Any]:
        """The mapping ultralytics gets: absolute ``path``, known keys only, no ``download``, and the
        evaluated split as ``val`` (ultralytics validates ``val``). Its split entries are the YAML's own,
        which ultralytics resolves against the absolute ``path`` by the rules we followed."""
        out = {k: self.raw[k] for k in _SANITISED_KEYS if k in self.raw}
        out["val"] = self.raw[self.split]
        out["path"] = str(self.root)
        out["names"] = dict(enumerate(self.names))
        out.pop("nc", None)
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


def parse_label_file(path: Path, nc: int) -> list[Label]:
    """Parse one YOLO label file as ultralytics does (boxes or polygons), with exact errors.

    Raises DatasetError naming the file and line for a line that does not parse,
    a class index outside 0..nc-1, or coordinates outside [0, 1] (ultralytics'
    1% tolerance applies). Duplicate rows are removed, as ultralytics does.
    """
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise DatasetError(f"cannot read label file {path}: {exc}") from exc
    rows: list[tuple[float, float, float, float, float]] = []
    for lineno, line in enumerate(text.strip().splitlines(), start=1):
        parts = line.split()
        if not parts:
            continue
        try:
            values = [float(x) for x in parts]
        except ValueError:
            raise DatasetError(f"{path}:{lineno}: label line does not parse: {line.strip()!r}") from None
        if len(values) == 5:
            c, cx, cy, w, h = values
        elif len(values) >= 7 and len(values) % 2 == 1:
            xs, ys = values[1::2], values[2::2]
            c = values[0]
            x0, x1, y0, y1 = min(xs), max(xs), min(ys), max(ys)
            cx, cy, w, h = (x0 + x1) / 2, (y0 + y1) / 2, x1 - x0, y1 - y0
        else:
            raise DatasetError(
                f"{path}:{lineno}: label line has {len(values)} numbers; expected 'class cx cy w h' "
                f"(5 numbers) or a polygon 'class x1 y1 x2 y2 ...'"
            )
        if c != int(c):
            raise DatasetError(f"{path}:{lineno}: class index {parts[0]!r} is not an integer")
        if not 0 <= int(c) < nc:
            raise DatasetError(
                f"{path}:{lineno}: class index {int(c)} is out of range: the dataset has {nc} "
                f"classes (0..{nc - 1}); ultralytics would silently drop this image"
            )
        coords = values[1:]
        if max(coords) > 1.01 or min(coords) < -0.01 or min(w, h) < 0:
            raise DatasetError(f"{path}:{lineno}: coordinates must be normalised to [0, 1]: {line.strip()!r}")
        rows.append((float(int(c)), cx, cy, w, h))
    unique = list(dict.fromkeys(rows))  # ultralytics removes duplicate rows
    return [Label(int(r[0]), r[1], r[2], r[3], r[4]) for r in unique]


def default_cache_root() -> Path:
    """Where converted COCO datasets are cached when no cache root is given (``eval --local``):
    ``$XDG_CACHE_HOME/vision-evald/converted``. The daemon passes ``<state_dir>/converted``."""
    return default_state_dir() / "converted"


def _dataset_file(path: str | Path, split: str) -> tuple[Path, Path, bool]:
    """(what the caller named, the YAML or JSON file it stands for, whether that is COCO JSON)."""
    if split not in SPLITS:
        raise DatasetError(f"split must be one of {', '.join(SPLITS)}, got {split!r}")
    source = Path(path).expanduser().resolve()
    file = find_dataset_yaml(source) if source.is_dir() else source
    coco = file.suffix.lower() == ".json" or (
        file.suffix.lower() in (".yaml", ".yml") and file.is_file() and is_coco_yaml(read_yaml(file)))
    return source, file, coco


def check_dataset(path: str | Path, split: str = "val", *, train: bool = False) -> None:
    """What a submission checks, fast and without torch: ``load_dataset``'s checks (and, with ``train``,
    ``check_train_split``'s), except that COCO JSON is only checked (``coco_cache.check``), not converted:
    the job converts it. DatasetError says what is wrong."""
    _, file, coco = _dataset_file(path, split)
    if coco:
        for name in (split, "train") if train and file.suffix.lower() != ".json" else (split,):
            coco_check(file, name)
        return
    dataset = load_dataset(file, split)
    if train:
        check_train_split(dataset)


def load_dataset(path: str | Path, split: str = "val", *, cache_root: Path | None = None) -> Dataset:
    """Load and validate a dataset and one of its splits (see the module contract).

    ``path``: a dataset YAML, a folder holding one (found as ultralytics finds it), a COCO JSON file,
    or a YAML naming JSON files; JSON is converted into ``cache_root`` (default: ``default_cache_root()``).
    """
    source, yaml_path, converted = _dataset_file(path, split)
    if converted:
        yaml_path = prepare(yaml_path, cache_root if cache_root is not None else default_cache_root())
    data = read_yaml(yaml_path)
    check_keys(data, yaml_path)
    require_split(data, split, yaml_path)
    names = class_names(data, yaml_path)
    root = dataset_root(data, yaml_path)
    entries = resolve_entries(data, split, root)
    check_entries_exist(entries, split, data, yaml_path)
    images = [Path(x) for x in list_images(entries, yaml_path.parent)]
    val_roots = _roots(entries)
    _check_images(images, entries, split, yaml_path)
    labels = _read_labels(images, names, split, yaml_path)
    raw = {k: v for k, v in data.items() if k != CONVERSION_KEY}
    conversion = (data.get(CONVERSION_KEY) or {}).get(split) if converted else None
    dataset = Dataset(yaml_path, root, names, val_roots, images, labels, raw, split, source, conversion)
    _check_unique_names(dataset)
    return dataset


def _roots(entries: list[Path]) -> list[Path]:
    """The folder images are named relative to: the folder entry, or the list file's folder; for several
    entries, the folder that holds them all (so that equal file names in two folders stay apart)."""
    roots = list(dict.fromkeys(p if p.is_dir() else p.parent for p in entries))
    return roots if len(roots) == 1 else [Path(os.path.commonpath(roots))]


def _check_images(images: list[Path], entries: list[Path], split: str, yaml_path: Path) -> None:
    """Every listed image is a file, listed once (ultralytics would drop a missing one, count a
    repeated one twice)."""
    if not images:
        raise DatasetError(f"{split} folder of {yaml_path} holds no images ({', '.join(map(str, entries))})")
    missing = [str(i) for i in images if not i.is_file()]
    if missing:
        raise DatasetError(f"{split} split of {yaml_path} names {len(missing)} missing image(s), e.g. {missing[0]}")
    seen: set[Path] = set()
    for image in images:
        if image in seen:
            raise DatasetError(f"{split} split of {yaml_path} lists {image} twice; ultralytics would "
                               "evaluate it twice")
        seen.add(image)


def _read_labels(images: list[Path], names: list[str], split: str, yaml_path: Path) -> dict[Path, list[Label]]:
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
    return labels


def _check_unique_names(dataset: Dataset) -> None:
    """Results and the fingerprint name images relative to their folder: two may not share a name."""
    by_name: dict[str, Path] = {}
    for image in dataset.images:
        name = dataset.relative_name(image)
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
