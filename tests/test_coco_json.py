"""COCO JSON datasets (evaluation/coco_json.py, coco_cache.py): each export layout evaluates exactly as the
YOLO original, problems are named at submission, and the conversion happens once.

The YOLO original is the session's synthetic dataset; tests/fixtures/exports.py
writes the same images and boxes as COCO JSON with category ids 1, 2, 5 behind
Roboflow's placeholder, one crowd annotation, one zero-area box and images
without objects. The converter is ultralytics' own; the reference numbers are
those of a plain ultralytics evaluation of the YOLO files.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from evaluation import coco_cache
from evaluation.coco_json import read_coco
from evaluation.datasets import check_dataset, check_train_split, load_dataset
from tests.conftest import EVAL_BATCH, EVAL_IMGSZ, REPO_ROOT
from tests.fixtures.exports import LAYOUTS, PROJECT, coco_dict, coco_export
from tests.fixtures.synth import NAMES
from tests.test_dataset_yaml import assert_same_metrics, ultralytics_labels
from vocab.errors import DatasetError


@pytest.fixture(scope="module")
def exports(synth_dataset: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("coco")
    return {layout: coco_export(synth_dataset, base / layout, layout) for layout in LAYOUTS}


@pytest.fixture(scope="module")
def cache_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("cache")


def test_coco_export_scores_as_the_yolo_original(ultralytics_env: Path, strong_pt: Path, strong_eval: Any,
                                                 exports: dict[str, Path], cache_root: Path, tmp_path: Path) -> None:
    """End to end through evaluate(), in COCO's own layout; the other layouts are shown below to hand
    ultralytics the same evaluation."""
    from evaluation.evaluate import evaluate
    from vocab.contract.params import EvalSpec

    spec = EvalSpec(model_path=str(strong_pt), dataset_path=str(exports["coco"]), model_name="strong",
                    imgsz=EVAL_IMGSZ, batch=EVAL_BATCH)
    result = evaluate(spec, tmp_path / "job", device="cpu", cache_root=cache_root)
    assert_same_metrics(result, strong_eval.result, tol=1e-6)
    assert result["images"] == 24  # the images without objects are evaluated as background
    [record] = result["coco_conversion"]
    assert record["category_map"] == {1: 0, 2: 1, 5: 2}
    assert record["skipped"] == {"crowd": 1, "zero_area": 1}
    assert [c["name"] for c in record["placeholder_categories"]] == [PROJECT]


IMAGE_FOLDERS = {"coco": "val2017", "coco-images": "images/val", "roboflow": "valid", "cvat": "images",
                 "label-studio": "images", "yaml-images": "pictures"}


@pytest.mark.parametrize("layout", LAYOUTS)
def test_every_layout_hands_ultralytics_the_same_evaluation(ultralytics_env: Path, exports: dict[str, Path],
                                                           cache_root: Path, tmp_path: Path, layout: str) -> None:
    """Each layout finds its own image files and gives the labels, names and image order of COCO's own
    layout (evaluated above); ultralytics' own dataset, reading the YAML evaluate() hands it, finds every
    image with exactly these boxes. Results name images by the JSON's file_name."""
    ds = load_dataset(exports[layout], cache_root=cache_root)
    reference = load_dataset(exports["coco"], cache_root=cache_root)
    out = next(p for p in exports[layout].parents if p.name == layout)
    assert [p.resolve() for p in ds.images] == [(out / IMAGE_FOLDERS[layout] / f"{i:04d}.png").resolve()
                                                for i in range(24)]
    prefix = "images/" if layout == "label-studio" else ""
    assert [ds.relative_name(p) for p in ds.images] == [f"{prefix}{i:04d}.png" for i in range(24)]
    assert ds.names == reference.names == NAMES
    assert [ds.labels[p] for p in ds.images] == [reference.labels[p] for p in reference.images]
    theirs = ultralytics_labels(ds.write_sanitised(tmp_path / "job"), "val", tmp_path)
    assert list(theirs) == [str(p) for p in ds.images]
    assert [len(theirs[str(p)]) for p in ds.images] == [len(ds.labels[p]) for p in ds.images]
    assert ds.conversion is not None and ds.conversion[0]["skipped"] == {"crowd": 1, "zero_area": 1}


def test_names_come_from_the_categories_without_the_placeholder(exports: dict[str, Path], cache_root: Path,
                                                                ultralytics_env: Path) -> None:
    ds = load_dataset(exports["roboflow"], cache_root=cache_root)
    assert ds.names == NAMES
    assert sum(not labels for labels in ds.labels.values()) == 3  # synth's empty images: background


def test_conversion_happens_once(ultralytics_env: Path, exports: dict[str, Path], tmp_path: Path) -> None:
    first = load_dataset(exports["coco"], cache_root=tmp_path)
    folder = first.yaml_path.parent
    identity = (folder.stat().st_ino, (folder / "data.yaml").stat().st_ino)
    second = load_dataset(exports["coco"], cache_root=tmp_path)
    assert second.yaml_path.parent == folder
    assert (folder.stat().st_ino, (folder / "data.yaml").stat().st_ino) == identity
    assert [p.name for p in folder.parent.iterdir()] == [folder.name]  # no other copy, no temporary left
    # A process that loses the race to rename its copy into place uses the winner's.
    coco_cache._build(read_coco(exports["coco"]), folder)
    assert (folder.stat().st_ino, (folder / "data.yaml").stat().st_ino) == identity
    assert [p.name for p in folder.parent.iterdir()] == [folder.name]


def test_a_process_without_torch_converts_in_a_child(exports: dict[str, Path], tmp_path: Path,
                                                     cache_root: Path, ultralytics_env: Path) -> None:
    """The daemon's HTTP process never imports torch: there the converter runs in a child process."""
    code = ("import sys\nfrom pathlib import Path\nfrom evaluation.datasets import load_dataset, fingerprint\n"
            f"ds = load_dataset({str(exports['cvat'])!r}, cache_root=Path({str(tmp_path)!r}))\n"
            "print(fingerprint(ds), 'torch' in sys.modules, 'ultralytics' in sys.modules)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO_ROOT)
    fp, torch_loaded, ultralytics_loaded = out.stdout.split()
    assert (torch_loaded, ultralytics_loaded) == ("False", "False")
    from evaluation.datasets import fingerprint

    assert fp == fingerprint(load_dataset(exports["cvat"], cache_root=cache_root))  # the in-process conversion


def _broken(tmp_path: Path, synth_dataset: Path, change: Any) -> Path:
    """A Roboflow-layout JSON of the synth split after ``change(coco dict, folder)``."""
    path = coco_export(synth_dataset, tmp_path / "export", "roboflow")
    data = coco_dict(synth_dataset)
    change(data, path.parent)
    path.write_text(json.dumps(data))
    return path


PROBLEMS: dict[str, tuple[Any, list[str]]] = {
    "missing image": (lambda d, f: (f / "0003.png").unlink(), ["image files not found", "0003.png"]),
    "box outside": (lambda d, f: d["annotations"][0].update(bbox=[200, 10, 90, 20]),
                    ["annotation 1", "lies outside its image"]),
    "unknown category": (lambda d, f: d["annotations"][1].update(category_id=3), ["unknown category_id 3"]),
    "unknown image": (lambda d, f: d["annotations"][1].update(image_id=7), ["image_id 7", "not in 'images'"]),
    "duplicate image id": (lambda d, f: d["images"][1].update(id=d["images"][0]["id"]), ["image id 100 is used twice"]),
    "duplicate annotation id": (lambda d, f: d["annotations"][1].update(id=1), ["annotation id 1 is used twice"]),
    "duplicate category id": (lambda d, f: d["categories"].append({"id": 5, "name": "x"}),
                              ["category id 5 is used twice"]),
    "wrong size": (lambda d, f: d["images"][2].update(width=300), ["'0002.png' is 224x224", "says 300x224"]),
    "escaping file name": (lambda d, f: d["images"][0].update(file_name="../0000.png"), ["must be a relative path"]),
}


@pytest.mark.parametrize("case", list(PROBLEMS))
def test_each_problem_is_named_at_submission(synth_dataset: Path, tmp_path: Path, case: str) -> None:
    change, fragments = PROBLEMS[case]
    path = _broken(tmp_path, synth_dataset, change)
    with pytest.raises(DatasetError) as info:
        check_dataset(path)
    for fragment in fragments:
        assert fragment in info.value.detail, (case, fragment, info.value.detail)
    assert not (tmp_path / "cache").exists()


def test_many_problems_name_the_first_few(synth_dataset: Path, tmp_path: Path) -> None:
    path = _broken(tmp_path, synth_dataset, lambda d, f: [a.update(category_id=9) for a in d["annotations"][:8]])
    with pytest.raises(DatasetError) as info:
        check_dataset(path)
    assert "has 8 problem(s)" in info.value.detail and "(and 3 more)" in info.value.detail


def test_a_yaml_naming_json_splits_is_what_training_reads(ultralytics_env: Path, synth_dataset: Path,
                                                          tmp_path: Path) -> None:
    """Training (evaluation/training.py) hands ultralytics ``write_sanitised`` of this dataset: its train
    split is the converted folder, in which ultralytics' own dataset finds every image and label."""
    export = coco_export(synth_dataset, tmp_path / "export", "yaml-images")
    check_dataset(export, train=True)
    ds = load_dataset(export, cache_root=tmp_path / "cache")
    check_train_split(ds)
    handed = ds.write_sanitised(tmp_path / "work")
    data = yaml.safe_load(handed.read_text())
    assert data["train"] == data["val"] == ds.raw["train"]
    assert Path(data["train"]).is_relative_to(tmp_path / "cache" / "coco")
    labels = ultralytics_labels(handed, "train", tmp_path)
    assert sorted(labels) == sorted(str(p) for p in ds.images)
    assert all(len(labels[str(p)]) == len(ds.labels[p]) for p in ds.images)
