"""Every dataset YAML a bare ``yolo val`` accepts is accepted, and one it refuses is refused naming why
(evaluation/dataset_yaml.py, evaluation/datasets.py).

The independent implementation is ultralytics itself: its ``check_det_dataset``
and the dataset it builds list the images a bare val evaluates, run from the
YAML's folder (the daemon's documented stand-in for the current directory).
Roboflow's YOLOv8 export (no ``path:``, ``../valid/images``, a ``roboflow:``
block) is the case that used to be refused.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import pytest
import yaml

from evaluation.datasets import load_dataset
from tests.conftest import EvalFn
from tests.fixtures.exports import roboflow_yolo
from tests.fixtures.synth import NAMES, make_split
from vocab.errors import DatasetError

# Result keys that are the evaluation's numbers (timings, paths and hashes are not compared).
METRIC_KEYS = ("mAP50", "mAP50_95", "precision", "recall", "f1", "conf_threshold", "per_class_metrics",
               "small_object_recall", "medium_object_recall", "large_object_recall", "small_object_count",
               "medium_object_count", "large_object_count", "images", "error_counts", "class_names")


def assert_same_metrics(a: dict[str, Any], b: dict[str, Any], tol: float = 1e-6) -> None:
    """Every metric of two results equal within ``tol`` (nested mappings compared key by key)."""
    def same(x: Any, y: Any, where: str) -> None:
        if isinstance(x, dict):
            assert isinstance(y, dict) and x.keys() == y.keys(), where
            for k in x:
                same(x[k], y[k], f"{where}.{k}")
        elif isinstance(x, float) or isinstance(y, float):
            assert x is not None and y is not None and math.isclose(x, y, rel_tol=0, abs_tol=tol), (where, x, y)
        else:
            assert x == y, (where, x, y)

    for key in METRIC_KEYS:
        same(a[key], b[key], key)


def ultralytics_labels(yaml_path: Path, split: str, cwd: Path) -> dict[str, Any]:
    """{image: its boxes} as ultralytics' own check_det_dataset + YOLODataset read ``split``, from ``cwd``."""
    from ultralytics.cfg import get_cfg
    from ultralytics.data.build import build_yolo_dataset
    from ultralytics.data.utils import check_det_dataset

    here = Path.cwd()
    os.chdir(cwd)
    try:
        data = check_det_dataset(str(yaml_path), split=split)
        dataset = build_yolo_dataset(get_cfg(overrides={"imgsz": 64}), data[split], 8, data, mode="val")
        return {str(Path(lb["im_file"]).absolute()): lb["bboxes"] for lb in dataset.labels}
    finally:
        os.chdir(here)


def ultralytics_images(yaml_path: Path, split: str, cwd: Path) -> list[str]:
    """The images ultralytics lists for ``split``, in its order."""
    return list(ultralytics_labels(yaml_path, split, cwd))


@pytest.fixture(scope="module")
def roboflow(synth_dataset: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return roboflow_yolo(synth_dataset, tmp_path_factory.mktemp("roboflow") / "export")


@pytest.mark.parametrize("split", ["val", "train", "test"])
def test_roboflow_export_lists_what_ultralytics_lists(ultralytics_env: Path, roboflow: Path, tmp_path: Path,
                                                      split: str) -> None:
    ds = load_dataset(roboflow, split)
    ours = [str(p) for p in ds.images]
    assert ours == ultralytics_images(roboflow, split, roboflow.parent)
    assert len(ours) == (24 if split == "val" else 4) and ds.names == NAMES
    folder = {"val": "valid", "train": "train", "test": "test"}[split]
    assert ds.val_roots == [roboflow.parent / folder / "images"]
    # The sanitised YAML, read from anywhere, makes ultralytics list exactly these strings.
    assert ultralytics_images(ds.write_sanitised(tmp_path / "job"), "val", tmp_path) == ours


def _mixed_dataset(root: Path) -> Path:
    """Two val folders, a test split as a .txt list (./, absolute and YAML-folder-relative lines)."""
    for split, seed in (("a", 1), ("b", 2), ("t", 3)):
        make_split(root, split, 3, seed, empty_every=0)
    (root / "images" / "a" / "notes.md").write_text("not an image")
    lists = root / "lists"
    lists.mkdir()
    t = sorted((root / "images" / "t").glob("*.png"))
    (lists / "test.txt").write_text(f"images/t/{t[0].name}\n{t[1]}\n./../images/t/{t[2].name}\n")
    data = {"train": "images/a", "val": ["images/a", "images/b"], "test": "lists/test.txt", "names": NAMES}
    (root / "data.yaml").write_text(yaml.safe_dump(data))
    return root / "data.yaml"


@pytest.mark.parametrize("split", ["val", "test"])
def test_folder_lists_and_txt_lists_match_ultralytics(ultralytics_env: Path, tmp_path: Path, split: str) -> None:
    y = _mixed_dataset(tmp_path / "ds")
    ds = load_dataset(y, split)
    ours = [str(p) for p in ds.images]
    theirs = ultralytics_images(y, split, y.parent)  # a bare val run from the YAML's folder
    # The same files; a list line relative to the current folder sorts apart from absolute ones in
    # ultralytics' string order, so the order is compared for the folders only.
    if split == "val":
        assert ours == theirs
    assert sorted(str(Path(p).resolve()) for p in ours) == sorted(str(Path(p).resolve()) for p in theirs)
    assert len(ours) == (6 if split == "val" else 3)
    assert ultralytics_images(ds.write_sanitised(tmp_path / "job"), "val", tmp_path) == ours
    names = [ds.relative_name(p) for p in ds.images]
    assert len(set(names)) == len(names)  # equal file names in images/a and images/b stay apart
    if split == "val":
        assert names[0] == "a/0000.png" and names[3] == "b/0000.png"


# Each case: a YAML text (in a folder holding images/val with labels), and what our error must say.
# "accept" cases must load; ultralytics is asked about every case too.
YAML_CASES: dict[str, tuple[str, list[str] | None]] = {
    "validation key": ("train: images/val\nvalidation: images/val\nnames: [a, b, c]\n", None),
    "nc as a string": ("train: images/val\nval: images/val\nnc: '3'\nnames: [a, b, c]\n", None),
    "nc only": ("train: images/val\nval: images/val\nnc: 3\n", None),
    "unknown keys": ("train: images/val\nval: images/val\nnames: [a, b, c]\nroboflow: {project: x}\n", None),
    "relative path": ("path: ../ds\ntrain: images/val\nval: images/val\nnames: [a, b, c]\n", None),
    "no train": ("val: images/val\nnames: [a, b, c]\n", ["no 'train' split", "requires 'train' and 'val'"]),
    "no val": ("train: images/val\nnames: [a, b, c]\n", ["no 'val' split"]),
    "names and nc disagree": ("train: images/val\nval: images/val\nnc: 2\nnames: [a, b, c]\n",
                              ["lists 3 classes but nc is 2"]),
    "nc not an integer": ("train: images/val\nval: images/val\nnc: 2.5\n", ["'nc: 2.5'", "must be an integer"]),
    "no names": ("train: images/val\nval: images/val\n", ["no 'names'"]),
    "names with a gap": ("train: images/val\nval: images/val\nnames: {0: a, 2: c}\n", ["0..1 without gaps"]),
    "val not a path": ("train: images/val\nval: 3\nnames: [a, b, c]\n", ["'val'", "must be a str or list"]),
    "val folder missing": ("train: images/val\nval: images/nope\nnames: [a, b, c]\n",
                           ["val folder missing", "images/nope"]),
    "no fallback in lists": ("train: images/val\nval: [../images/val]\nnames: [a, b, c]\n", ["val folder missing"]),
    "path missing": ("path: elsewhere\ntrain: images/val\nval: images/val\nnames: [a, b, c]\n",
                     ["dataset root missing", "elsewhere", "absolute 'path:'"]),
}


@pytest.mark.parametrize("case", list(YAML_CASES))
def test_a_yaml_is_refused_exactly_when_a_bare_val_refuses_it(ultralytics_env: Path, tmp_path: Path,
                                                              case: str) -> None:
    from ultralytics.data.utils import check_det_dataset

    text, fragments = YAML_CASES[case]
    root = tmp_path / "ds"
    make_split(root, "val", 2, seed=4)
    (root / "data.yaml").write_text(text)
    here = Path.cwd()
    os.chdir(root)  # a bare val run from the YAML's folder
    try:
        check_det_dataset(str(root / "data.yaml"), split="val")
        ultralytics_refused = False
    except Exception:  # noqa: BLE001 - ultralytics raises SyntaxError, TypeError, FileNotFoundError, KeyError
        ultralytics_refused = True
    finally:
        os.chdir(here)
    assert ultralytics_refused == (fragments is not None), case
    if fragments is None:
        assert len(load_dataset(root / "data.yaml").images) == 2
        return
    with pytest.raises(DatasetError) as info:
        load_dataset(root / "data.yaml")
    for fragment in fragments:
        assert fragment in info.value.detail, (case, fragment, info.value.detail)


def test_a_folder_stands_for_its_yaml(roboflow: Path) -> None:
    assert load_dataset(roboflow.parent).images == load_dataset(roboflow).images


def test_roboflow_export_scores_as_the_plain_layout(run_eval: EvalFn, strong_pt: Path, strong_eval: Any,
                                                   roboflow: Path) -> None:
    """End to end: the same images and labels in Roboflow's layout give exactly the same numbers."""
    result = run_eval(strong_pt, roboflow).result
    assert_same_metrics(result, strong_eval.result, tol=0.0)
    assert result["dataset_fingerprint"] == strong_eval.result["dataset_fingerprint"]  # same names, bytes, labels
