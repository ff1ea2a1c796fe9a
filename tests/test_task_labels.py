"""Label files per task (evaluation/labels.py) and datasets loaded for a checkpoint's task
(evaluation/task_dataset.py): what each row becomes, and one DatasetError naming the file, line and
both tasks for every label that does not fit. Light: no torch (the daemon calls these at submit time)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from PIL import Image

from evaluation.datasets import load_dataset
from evaluation.labels import LabelSpec, label_spec, parse_label_file
from evaluation.task_dataset import load_task_dataset
from vocab.errors import DatasetError

POSE = LabelSpec("pose", (4, 3))
SEG = LabelSpec("segmentation")
OBB = LabelSpec("obb")
KPTS = "0.1 0.2 2 0.3 0.2 2 0.3 0.6 1 0.1 0.6 0"  # four keypoints, x y visibility


def _file(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "im.txt"
    p.write_text(text)
    return p


def _dataset(root: Path, rows: str, **yaml_keys: object) -> Path:
    """One 40x30 image with the given label rows, and its YAML (names: a, b)."""
    (root / "images" / "val").mkdir(parents=True)
    (root / "labels" / "val").mkdir(parents=True)
    Image.new("RGB", (40, 30)).save(root / "images" / "val" / "im.png")
    (root / "labels" / "val" / "im.txt").write_text(rows)
    y = root / "data.yaml"
    y.write_text(yaml.safe_dump({"path": str(root), "val": "images/val", "names": ["a", "b"], **yaml_keys}))
    return y


def test_each_task_reads_its_own_rows(tmp_path: Path) -> None:
    (seg,) = parse_label_file(_file(tmp_path, "1 0.1 0.2 0.5 0.2 0.3 0.8\n"), 2, SEG)
    assert (seg.cls, seg.points) == (1, (0.1, 0.2, 0.5, 0.2, 0.3, 0.8))
    assert (seg.cx, seg.cy, seg.w, seg.h) == pytest.approx((0.3, 0.5, 0.4, 0.6))  # the polygon's extent
    (obb,) = parse_label_file(_file(tmp_path, "0 0.2 0.1 0.6 0.3 0.5 0.5 0.1 0.3\n"), 2, OBB)
    assert obb.points == (0.2, 0.1, 0.6, 0.3, 0.5, 0.5, 0.1, 0.3)
    assert (obb.cx, obb.cy, obb.w, obb.h) == pytest.approx((0.35, 0.3, 0.5, 0.4))
    (pose,) = parse_label_file(_file(tmp_path, f"0 0.2 0.4 0.2 0.4 {KPTS}\n"), 2, POSE)
    assert (pose.cx, pose.cy, pose.w, pose.h) == (0.2, 0.4, 0.2, 0.4)
    assert pose.points == tuple(float(v) for v in KPTS.split())
    # 2-number keypoints: the validator's visibility rule, 0 where a coordinate is negative
    (two,) = parse_label_file(_file(tmp_path, "0 0.5 0.5 0.2 0.2 0.1 0.2 -0.005 0.3 0.4 0.4 0.5 0.5\n"), 2,
                              LabelSpec("pose", (4, 2)))
    assert two.points[2::3] == (1.0, 0.0, 1.0, 1.0)
    # a box task keeps the box of a pose row when the YAML declares kpt_shape (as the validator does)
    (box,) = parse_label_file(_file(tmp_path, f"1 0.2 0.4 0.2 0.4 {KPTS}\n"), 2, LabelSpec("detection", (4, 3)))
    assert (box.cls, box.cx, box.w, box.points) == (1, 0.2, 0.2, ())


def test_duplicates_are_the_rows_equal_in_float32(tmp_path: Path) -> None:
    text = "0 0.1 0.2 0.5 0.2 0.3 0.8\n0 0.1 0.2 0.5 0.2 0.30000001 0.8\n0 0.1 0.2 0.5 0.2 0.2 0.8 0.3 0.8\n"
    labels = parse_label_file(_file(tmp_path, text), 1, SEG)
    assert len(labels) == 2  # the second equals the first in float32; the third shares its box only


@pytest.mark.parametrize(("spec", "text", "fragments"), [
    (SEG, "0 0.5 0.5 0.2 0.2\n", [":1", "box row", "detection labels", "segmentation model", "polygon"]),
    (OBB, "0 0.5 0.5 0.2 0.2\n", [":1", "box row", "obb model", "four corners"]),
    (OBB, "0 0.1 0.1 0.5 0.1 0.3 0.4\n", [":1", "7 numbers", "four corners"]),
    (POSE, "0 0.5 0.5 0.2 0.2\n", [":1", "5 numbers", "pose model", "kpt_shape [4, 3]", "needs 17"]),
    (POSE, f"0 0.5 0.5 0.2 0.2 {KPTS} 0.1 0.1\n", [":1", "19 numbers", "needs 17"]),
    (POSE, f"0 0.5 0.5 0.2 0.2 {KPTS.replace('0.6', '1.6', 1)}\n", [":1", "normalised"]),
    (SEG, "0 0.1 0.2 0.5 0.2 0.3 1.8\n", [":1", "normalised"]),
    (SEG, "0 0.1 0.2 0.5 0.2 0.3 0.8\n2 0.1 0.2 0.5 0.2 0.3 0.8\n", [":2", "class index 2", "out of range"]),
    (LabelSpec(), "0 0.5 0.5 0.2 0.2\n0 0.1 0.2 0.5 0.2 0.3 0.8\n", [":2", "mixes box rows and polygon rows"]),
])
def test_a_row_that_does_not_fit_is_refused_by_file_and_line(tmp_path: Path, spec: LabelSpec, text: str,
                                                              fragments: list[str]) -> None:
    path = _file(tmp_path, text)
    with pytest.raises(DatasetError) as info:
        parse_label_file(path, 2, spec)
    assert str(path) in info.value.detail
    for fragment in fragments:
        assert fragment in info.value.detail, (fragment, info.value.detail)


@pytest.mark.parametrize(("data", "model_shape", "fragments"), [
    ({}, [4, 3], ["no valid 'kpt_shape'", "pose model with kpt_shape [4, 3]"]),
    ({"kpt_shape": [4, 4]}, None, ["no valid 'kpt_shape'", "2 or 3"]),
    ({"kpt_shape": [5, 3]}, [4, 3], ["declares kpt_shape [5, 3]", "checkpoint is a pose model with kpt_shape [4, 3]"]),
    ({"kpt_shape": [4, 3], "flip_idx": [0, 1, 2]}, [4, 3], ["'flip_idx'", "4 keypoint indices"]),
    ({"kpt_shape": [4, 3], "kpt_oks_sigmas": [0.1, 0.1, 0.1, 0]}, None, ["'kpt_oks_sigmas'", "4 positive"]),
])
def test_a_pose_yaml_that_does_not_fit_the_checkpoint_is_refused(data: dict, model_shape: list[int] | None,
                                                                 fragments: list[str]) -> None:
    with pytest.raises(DatasetError) as info:
        label_spec("pose", data, model_shape, source="dataset file d.yaml")
    for fragment in ["d.yaml", *fragments]:
        assert fragment in info.value.detail, (fragment, info.value.detail)


def test_pose_spec_hands_the_yaml_keys_on() -> None:
    spec = label_spec("pose", {"kpt_shape": [4, 3], "flip_idx": [1, 0, 3, 2], "names": ["a"]}, (4, 3))
    assert spec == LabelSpec("pose", (4, 3), (("kpt_shape", [4, 3]), ("flip_idx", [1, 0, 3, 2])))
    assert label_spec("segment", {"kpt_shape": [4, 3]}).kpt_shape == (4, 3)  # the validator's name for the task


def test_detection_labels_for_a_segmentation_checkpoint_name_both(tmp_path: Path) -> None:
    y = _dataset(tmp_path, "0 0.5 0.5 0.2 0.2\n")
    assert load_dataset(y).labels  # fine for detection
    with pytest.raises(DatasetError) as info:
        load_task_dataset(y, "val", "segmentation")
    assert "im.txt:1" in info.value.detail and "detection labels" in info.value.detail
    assert "segmentation model" in info.value.detail


def test_a_pose_dataset_loads_for_pose_and_writes_its_keys_for_the_validator(tmp_path: Path) -> None:
    y = _dataset(tmp_path / "d", f"1 0.2 0.4 0.2 0.4 {KPTS}\n", kpt_shape=[4, 3], flip_idx=[1, 0, 3, 2])
    with pytest.raises(DatasetError, match="normalised"):
        load_dataset(y)  # read as detection, the row is a polygon whose "coordinates" include visibility 2
    loaded = load_task_dataset(y, "val", "pose", [4, 3])
    (label,) = loaded.dataset.labels[loaded.dataset.images[0]]
    assert label.points[2] == 2.0
    written = yaml.safe_load(loaded.write_yaml(tmp_path / "job").read_text())
    assert written["kpt_shape"] == [4, 3] and written["flip_idx"] == [1, 0, 3, 2]
    assert written["path"] == str((tmp_path / "d").resolve())
    with pytest.raises(DatasetError):
        load_dataset(y)  # the detection reading is back after the task's block
    with pytest.raises(DatasetError, match=r"kpt_shape \[4, 3\] but the checkpoint .* kpt_shape \[17, 3\]"):
        load_task_dataset(y, "val", "pose", [17, 3])
