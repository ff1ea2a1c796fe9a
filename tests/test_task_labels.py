"""Label files per task (evaluation/labels.py) and datasets loaded for a checkpoint's task
(``evaluation.datasets.load_dataset(..., task=)``, ``check_dataset``): what each row becomes, and one
DatasetError naming the file, line and both tasks for every label that does not fit; the fingerprint of
task geometry. Light: no torch (the daemon calls these at submit time)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from PIL import Image

from evaluation.datasets import check_dataset, fingerprint, load_dataset
from evaluation.labels import LabelSpec, label_spec, parse_label_file
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
    y.write_text(yaml.safe_dump({"path": str(root), "train": "images/val", "val": "images/val", "names": ["a", "b"],
                                 **yaml_keys}))
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
    # detection reads a polygon as its extent only
    (poly,) = parse_label_file(_file(tmp_path, "1 0.1 0.2 0.5 0.2 0.3 0.8\n"), 2)
    assert (poly.cx, poly.w, poly.points) == (pytest.approx(0.3), pytest.approx(0.4), ())


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
    ({}, [4, 3], ["has no 'kpt_shape'", "pose model with kpt_shape [4, 3]"]),
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
    for load in (load_dataset, check_dataset):  # the worker's load and the submission's light check
        with pytest.raises(DatasetError) as info:
            load(y, task="segmentation")
        assert "im.txt:1" in info.value.detail and "detection labels" in info.value.detail
        assert "segmentation model" in info.value.detail


def test_a_pose_dataset_loads_for_pose_and_writes_its_keys_for_the_validator(tmp_path: Path) -> None:
    y = _dataset(tmp_path / "d", f"1 0.2 0.4 0.2 0.4 {KPTS}\n", kpt_shape=[4, 3], flip_idx=[1, 0, 3, 2])
    dataset = load_dataset(y, task="pose", model_kpt_shape=[4, 3])
    (label,) = dataset.labels[dataset.images[0]]
    assert label.points[2] == 2.0 and dataset.label_spec.kpt_shape == (4, 3)
    written = yaml.safe_load(dataset.write_sanitised(tmp_path / "job").read_text())
    assert written["kpt_shape"] == [4, 3] and written["flip_idx"] == [1, 0, 3, 2]
    assert written["path"] == str((tmp_path / "d").resolve())
    (box,) = load_dataset(y).labels[dataset.images[0]]  # read for detection: the row's box, as the validator reads it
    assert (box.cls, box.cx, box.w, box.points) == (1, 0.2, 0.2, ())
    assert "kpt_shape" not in yaml.safe_load(load_dataset(y).write_sanitised(tmp_path / "det").read_text())
    for load in (load_dataset, check_dataset):
        with pytest.raises(DatasetError, match=r"kpt_shape \[4, 3\] but the checkpoint .* kpt_shape \[17, 3\]"):
            load(y, task="pose", model_kpt_shape=[17, 3])


def test_a_coco_json_dataset_is_for_detection_only(tmp_path: Path) -> None:
    coco = tmp_path / "instances.json"
    coco.write_text("{}")  # refused before it is read: no conversion for another task
    for load in (load_dataset, check_dataset):
        with pytest.raises(DatasetError, match="COCO JSON datasets are supported for detection"):
            load(coco, task="pose")


def test_the_fingerprint_covers_task_geometry_and_keeps_detections(tmp_path: Path) -> None:
    polygon = "0 0.1 0.2 0.5 0.2 0.3 0.8\n"
    y = _dataset(tmp_path / "a", polygon)
    # the detection fingerprint, computed as before task geometry was kept: (cls, cx, cy, w, h) per label
    detection = load_dataset(y)
    assert detection.labels[detection.images[0]][0].points == ()
    assert fingerprint(detection) == _fingerprint_before_tasks(detection)
    seg = fingerprint(load_dataset(y, task="segmentation"))
    assert seg != fingerprint(detection)
    # the same extent, another polygon: equal for detection, different for segmentation
    other = _dataset(tmp_path / "b", "0 0.1 0.2 0.5 0.2 0.3 0.8 0.2 0.5\n")
    assert fingerprint(load_dataset(other)) == fingerprint(detection)
    assert fingerprint(load_dataset(other, task="segmentation")) != seg
    # pose: keypoints differing in one visibility flag only
    pose = [_dataset(tmp_path / f"p{v}", f"1 0.2 0.4 0.2 0.4 {KPTS[:-1]}{v}\n", kpt_shape=[4, 3]) for v in (0, 1)]
    assert len({fingerprint(load_dataset(p)) for p in pose}) == 1
    assert len({fingerprint(load_dataset(p, task="pose")) for p in pose}) == 2


def _fingerprint_before_tasks(dataset: object) -> str:
    """``datasets.fingerprint`` as it was before labels kept their task geometry (a naive copy)."""
    import hashlib

    from evaluation.file_cache import file_sha256

    h = hashlib.sha256()
    h.update(repr(dataset.names).encode())  # type: ignore[attr-defined]
    for image in sorted(dataset.images, key=dataset.relative_name):  # type: ignore[attr-defined]
        h.update(dataset.relative_name(image).encode())  # type: ignore[attr-defined]
        h.update(b"\0")
        h.update(file_sha256(image).encode())
        for lb in dataset.labels[image]:  # type: ignore[attr-defined]
            h.update(repr((lb.cls, lb.cx, lb.cy, lb.w, lb.h)).encode())
        h.update(b"\n")
    return h.hexdigest()
