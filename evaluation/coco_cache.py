"""COCO JSON datasets converted once, with ultralytics' own converter, into a cached YOLO layout.

``prepare(source, cache_root)`` takes a COCO JSON file, or a dataset YAML
whose split entries name JSON files, checks each JSON
(``evaluation.coco_json.read_coco``: a ``DatasetError`` names the first
problems) and returns the path of a YAML that ``evaluation.datasets`` loads
like any other and that ultralytics evaluates and trains on. Train and
evaluation therefore read the same converted data.

Cache: ``<cache_root>/coco/<sha256 of the JSON>/<variant>/``, where the variant
names the images folder the JSON's ``file_name``s were found in, the
ultralytics version and ``LAYOUT_VERSION`` (the same JSON beside other images
is another dataset). It holds ``data.yaml`` (splits ``train``/``val``/``test``
all ``images/data``, ``names``, and ``coco_conversion``: the JSON, its
``category_map`` {COCO id: class index}, the placeholder categories left out
and the ``skipped`` counts), ``images/data/<file_name>``: a symbolic link to
each original image, and the converter's label files where ultralytics looks
for them (``/images/`` -> ``/labels/``). Links, not a ``.txt`` list of the
originals: ultralytics finds labels from an image's path, so the paths must
lie in the cache; a link keeps the JSON's ``file_name`` as the image's
relative name (results, analysis and fingerprints name images as the JSON
does) and its bytes are the original's (the fingerprint hashes those).

A cache folder is built in a temporary sibling and renamed into place, so a
half-written one is never used; when two processes race, the first rename
wins and the other process uses it. The converter imports torch: a process
that has already imported ultralytics (a worker) runs it in-process; any
other (the daemon's HTTP process) runs it in a child process
(``evaluation.coco_convert``), offline and unable to install anything.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from importlib import metadata
from pathlib import Path
from typing import Any

import yaml

from evaluation.coco_json import CocoFile, read_coco
from evaluation.dataset_yaml import (
    SPLIT_KEYS,
    check_keys,
    class_names,
    dataset_root,
    label_path_for,
    read_yaml,
    require_split,
    resolve_entries,
)
from vocab.errors import DatasetError

LAYOUT_VERSION = 1  # change when the layout written here changes: older cache folders are then not used
IMAGES = Path("images") / "data"  # every split of a converted JSON, relative to its cache folder
CONVERSION_KEY = "coco_conversion"  # the data.yaml key that records the conversion (ignored by ultralytics)
_PACKAGE_PARENT = Path(__file__).resolve().parents[1]


class _Dumper(yaml.SafeDumper):
    """Writes a record repeated under several splits in full, not as a YAML alias."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def _dump(data: dict[str, Any]) -> str:
    return yaml.dump(data, Dumper=_Dumper, sort_keys=False, allow_unicode=True)


def is_coco_yaml(data: dict[str, Any]) -> bool:
    """Whether a dataset YAML mapping names a ``.json`` file in one of its splits."""
    for key in SPLIT_KEYS + ("validation",):
        value = data.get(key)
        if any(isinstance(e, str) and e.lower().endswith(".json") for e in (value if isinstance(value, list)
                                                                             else [value])):
            return True
    return False


def prepare(source: Path, cache_root: Path) -> Path:
    """The YAML of the converted dataset (see the module contract)."""
    if source.suffix.lower() == ".json":
        return convert(read_coco(source), cache_root)
    return _prepare_yaml(source, cache_root)


def check(source: Path, split: str) -> None:
    """The checks of ``prepare`` for one split, without converting (fast, no torch): DatasetError if the
    JSON, or a JSON the YAML's ``split`` names, has problems."""
    if source.suffix.lower() == ".json":
        read_coco(source)
        return
    data, root = _read_yaml(source)
    require_split(data, split, source)
    for entry in resolve_entries(data, split, root):
        if entry.suffix.lower() == ".json":
            read_coco(entry, _images_root(data, split, root, source))


def cache_folder(coco: CocoFile, cache_root: Path) -> Path:
    """Where ``coco`` is converted to: keyed by the JSON's sha256, then by its images and converter."""
    try:
        version = metadata.version("ultralytics")
    except metadata.PackageNotFoundError:
        version = "unknown"
    variant = hashlib.sha256(f"{coco.images_root}\n{version}\n{LAYOUT_VERSION}".encode()).hexdigest()[:16]
    return cache_root / "coco" / coco.sha256 / variant


def conversion_record(coco: CocoFile) -> dict[str, Any]:
    """What the conversion did, as recorded in data.yaml and reported with results."""
    return {"json": str(coco.json_path), "json_sha256": coco.sha256, "images_root": str(coco.images_root),
            "category_map": dict(coco.category_map), "placeholder_categories": coco.placeholders,
            "skipped": dict(coco.skipped)}


def convert(coco: CocoFile, cache_root: Path) -> Path:
    """The data.yaml of ``coco``'s cache folder, converted now unless it already is."""
    final = cache_folder(coco, cache_root)
    if not (final / "data.yaml").is_file():
        _build(coco, final)
    return final / "data.yaml"


def _build(coco: CocoFile, final: Path) -> None:
    final.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=".tmp-", dir=final.parent))
    try:
        json_dir, labels = scratch / "json", scratch / "converted"
        json_dir.mkdir()
        (json_dir / "instances_data.json").write_text(json.dumps(_converter_input(coco)))
        _run_converter(json_dir, labels, scratch, coco.json_path)
        layout = scratch / "layout"
        _lay_out(coco, labels / "labels" / "data", layout)
        record = conversion_record(coco)
        data = {**{k: IMAGES.as_posix() for k in SPLIT_KEYS}, "names": dict(enumerate(coco.names)),
                CONVERSION_KEY: {k: [record] for k in SPLIT_KEYS}}
        (layout / "data.yaml").write_text(_dump(data))
        try:
            os.rename(layout, final)  # atomic; fails when another process renamed its copy first
        except OSError:
            if not (final / "data.yaml").is_file():
                raise
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _converter_input(coco: CocoFile) -> dict[str, Any]:
    """The JSON handed to ``convert_coco``: image ids and file names by index (its label files are then
    ``<index>.txt``, whatever the original names), category ids 1..n in class order (it writes
    ``category_id - 1`` with ``cls91to80=False``), and no segmentation (boxes only: no RLE decoding)."""
    return {
        "images": [{"id": i, "file_name": f"{i}.img", "width": im.width, "height": im.height}
                   for i, im in enumerate(coco.images)],
        "annotations": [{"id": k, "image_id": i, "category_id": cls + 1, "bbox": box, "iscrowd": int(crowd)}
                        for k, (i, cls, box, crowd) in enumerate(coco.annotations)],
        "categories": [{"id": c + 1, "name": name} for c, name in enumerate(coco.names)],
    }


def _run_converter(json_dir: Path, save_dir: Path, scratch: Path, source: Path) -> None:
    """``convert_coco`` on ``json_dir``: in-process where ultralytics is already imported, else in a child
    process that is offline, may not install anything and keeps its ultralytics settings in ``scratch``."""
    if "ultralytics" in sys.modules:
        from evaluation.coco_convert import convert_labels

        convert_labels(json_dir, save_dir)
        return
    env = {**os.environ, "YOLO_OFFLINE": "1", "YOLO_AUTOINSTALL": "False", "YOLO_VERBOSE": "False",
           "YOLO_CONFIG_DIR": str(scratch / "ultralytics"), "MPLCONFIGDIR": str(scratch / "matplotlib"),
           "OMP_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join(filter(None, [str(_PACKAGE_PARENT), os.environ.get("PYTHONPATH")]))}
    proc = subprocess.run([sys.executable, "-m", "evaluation.coco_convert", str(json_dir), str(save_dir)],
                          env=env, cwd=scratch, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise DatasetError(f"converting {source} with ultralytics' convert_coco failed: "
                           f"{(proc.stderr or proc.stdout).strip()[-2000:]}")


def _lay_out(coco: CocoFile, converted: Path, layout: Path) -> None:
    """Link every image under ``layout/images/data`` by its file_name and move its label beside it."""
    for i, im in enumerate(coco.images):
        link = layout / IMAGES / im.file_name
        link.parent.mkdir(parents=True, exist_ok=True)
        os.symlink(coco.images_root / im.file_name, link)
        label = label_path_for(link)
        label.parent.mkdir(parents=True, exist_ok=True)  # also for background images: labels/ must exist
        produced = converted / f"{i}.txt"
        if produced.is_file():  # no file: the image has no annotation (background)
            os.replace(produced, label)


def _images_root(data: dict[str, Any], split: str, root: Path, yaml_path: Path) -> Path | None:
    """The YAML's explicit ``images:`` folder for a split (one folder, or a mapping of split to folder)."""
    value = data.get("images")
    if isinstance(value, dict):
        value = value.get(split)
    if value is None:
        return None
    if not isinstance(value, str):
        raise DatasetError(f"'images' in {yaml_path} must be a folder or a mapping of split to folder")
    folder = (root / value).resolve()
    if not folder.is_dir():
        raise DatasetError(f"images folder missing: {folder} (from 'images: {value}' in {yaml_path})")
    return folder


def _read_yaml(yaml_path: Path) -> tuple[dict[str, Any], Path]:
    data = read_yaml(yaml_path)
    check_keys(data, yaml_path)
    return data, dataset_root(data, yaml_path)


def _prepare_yaml(yaml_path: Path, cache_root: Path) -> Path:
    """A YAML whose ``.json`` entries are replaced by their converted images folders (absolute), written
    under ``<cache_root>/coco/yaml/`` by the sha256 of its content."""
    data, root = _read_yaml(yaml_path)
    out: dict[str, Any] = {}
    records: dict[str, list[dict[str, Any]]] = {}
    names: list[str] | None = None
    for key in SPLIT_KEYS:
        entries = []
        for entry in resolve_entries(data, key, root):
            if entry.suffix.lower() == ".json" and entry.is_file():
                coco = read_coco(entry, _images_root(data, key, root, yaml_path))
                if names is not None and coco.names != names:
                    raise DatasetError(f"the COCO files of {yaml_path} disagree on the classes: {names} and "
                                       f"{coco.names} ({entry})")
                names = coco.names
                entry = convert(coco, cache_root).parent / IMAGES
                records.setdefault(key, []).append(conversion_record(coco))
            entries.append(str(entry))
        if entries:
            out[key] = entries[0] if isinstance(data[key], str) else entries
    if names is None:
        raise DatasetError(f"the COCO files named in {yaml_path} are missing")
    if data.get("names") is not None or "nc" in data:
        declared = class_names(data, yaml_path)
        if declared != names:
            raise DatasetError(f"'names' in {yaml_path} ({declared}) differ from the COCO categories ({names})")
    text = _dump({**out, "names": dict(enumerate(names)), CONVERSION_KEY: records})
    target = cache_root / "coco" / "yaml" / f"{hashlib.sha256(text.encode()).hexdigest()}.yaml"
    if not target.is_file():
        target.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile("w", dir=target.parent, prefix=".tmp-", delete=False) as tmp:
            tmp.write(text)
        os.replace(tmp.name, target)
    return target
