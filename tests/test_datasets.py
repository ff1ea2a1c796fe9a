"""Dataset YAMLs (evaluation/datasets.py): one clear DatasetError per defect, the sanitised copy, the
fingerprint, and the class-name check of evaluate()."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml
from PIL import Image

from evaluation.datasets import fingerprint, load_dataset
from vocab.errors import ClassMismatchError, DatasetError

NAMES = ["red", "green", "blue"]


def _make(root: Path, *, n: int = 3, yaml_text: str | None = None) -> Path:
    """A small valid dataset: n PNGs (one non-square), labels, and a YAML with a relative path."""
    (root / "images" / "val").mkdir(parents=True)
    (root / "labels" / "val").mkdir(parents=True)
    for i in range(n):
        size = (40, 30) if i % 2 else (32, 32)
        Image.new("RGB", size, (i * 40, 100, 100)).save(root / "images" / "val" / f"im{i}.png")
        (root / "labels" / "val" / f"im{i}.txt").write_text(f"{i % 3} 0.5 0.5 0.25 0.5\n1 0.2 0.3 0.1 0.1\n")
    y = root / "data.yaml"
    y.write_text(yaml_text if yaml_text is not None else "path: .\ntrain: images/val\nval: images/val\nnames: [red, green, blue]\n")
    return y


def _label(root: Path, text: str, i: int = 1) -> Path:
    p = root / "labels" / "val" / f"im{i}.txt"
    p.write_text(text)
    return p


# Each case: a mutation of a valid dataset, and fragments its message must contain. "{root}" is the
# dataset folder; "{label}" the label file that was broken.
Mutation = Callable[[Path, Path], str]

CASES: dict[str, tuple[Mutation, list[str]]] = {
    "file missing": (lambda root, y: (y.unlink(), "")[1], ["dataset file not found", "data.yaml"]),
    "not YAML": (lambda root, y: (y.write_text("val: [images/val\nnames: {0: a"), "")[1], ["not valid YAML"]),
    "not a mapping": (lambda root, y: (y.write_text("- images/val\n- names\n"), "")[1],
                      ["must be a YAML mapping", "got list"]),
    "missing val": (lambda root, y: (y.write_text("path: .\ntrain: images/val\nnames: [red, green, blue]\n"), "")[1],
                    ["has no 'val' split"]),
    "val folder missing": (lambda root, y: (shutil.rmtree(root / "images" / "val"), "")[1],
                           ["val folder missing", "images/val"]),
    "val folder empty": (
        lambda root, y: ([p.unlink() for p in (root / "images" / "val").iterdir()], "")[1],
        ["holds no images"],
    ),
    "labels folder missing": (lambda root, y: (shutil.rmtree(root / "labels"), "")[1],
                              ["labels folder missing", "labels/val"]),
    "label line does not parse": (
        lambda root, y: str(_label(root, "0 0.5 0.5 0.2 0.2\n1 0.5 abc 0.2 0.2\n")),
        ["{label}:2", "does not parse", "abc"],
    ),
    "class index out of range": (
        lambda root, y: str(_label(root, "3 0.5 0.5 0.2 0.2\n")),
        ["{label}:1", "class index 3 is out of range", "3 classes"],
    ),
    "negative class index": (
        lambda root, y: str(_label(root, "-1 0.5 0.5 0.2 0.2\n")),
        ["{label}:1", "class index -1 is out of range"],
    ),
    "non-integer class index": (
        lambda root, y: str(_label(root, "1.5 0.5 0.5 0.2 0.2\n")),
        ["{label}:1", "not an integer"],
    ),
    "wrong column count (4)": (
        lambda root, y: str(_label(root, "0 0.5 0.5 0.2\n")),
        ["{label}:1", "has 4 numbers", "5 numbers"],
    ),
    "wrong column count (6)": (
        lambda root, y: str(_label(root, "0 0.1 0.1 0.5 0.5 0.9\n", i=2)),
        ["{label}:1", "has 6 numbers"],
    ),
    "coordinates not normalised": (
        lambda root, y: str(_label(root, "0 12 16 4 4\n")),
        ["{label}:1", "normalised"],
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_each_bad_dataset_gives_its_own_clear_error(tmp_path, case):
    root = tmp_path / "ds"
    y = _make(root)
    load_dataset(y)  # valid before the mutation
    mutate, fragments = CASES[case]
    label = mutate(root, y)
    with pytest.raises(DatasetError) as info:
        load_dataset(y)
    message = info.value.detail
    for fragment in fragments:
        assert fragment.format(label=label) in message, (case, fragment, message)


def test_error_messages_differ_between_cases(tmp_path):
    messages = {}
    for i, (case, (mutate, _)) in enumerate(CASES.items()):
        root = tmp_path / f"ds{i}"
        y = _make(root)
        mutate(root, y)
        with pytest.raises(DatasetError) as info:
            load_dataset(y)
        messages[case] = info.value.detail.replace(str(root), "<root>")
    assert len(set(messages.values())) == len(messages), messages


def test_val_folder_with_only_non_images_is_empty(tmp_path):
    root = tmp_path / "ds"
    y = _make(root)
    for p in (root / "images" / "val").iterdir():
        p.rename(p.with_suffix(".txt"))
    with pytest.raises(DatasetError, match="holds no images"):
        load_dataset(y)


def test_valid_dataset_loads_every_image_and_label(tmp_path):
    root = tmp_path / "ds"
    y = _make(root, n=4)
    _label(root, "", i=3)  # an empty image: no boxes, still evaluated
    ds = load_dataset(y)
    assert ds.names == NAMES
    assert ds.root == root.resolve()
    assert [p.name for p in ds.images] == ["im0.png", "im1.png", "im2.png", "im3.png"]
    assert [len(ds.labels[p]) for p in ds.images] == [2, 2, 2, 0]
    first = ds.labels[ds.images[0]][0]
    assert (first.cls, first.cx, first.cy, first.w, first.h) == (0, 0.5, 0.5, 0.25, 0.5)
    assert ds.relative_name(ds.images[2]) == "im2.png"


# --------------------------------------------------------------------------- sanitised copy


def test_download_key_is_dropped_from_the_sanitised_copy(tmp_path):
    root = tmp_path / "ds"
    y = _make(
        root,
        yaml_text=(
            "path: .\ntrain: images/val\nval: images/val\nnames: {0: red, 1: green, 2: blue}\nnc: 3\n"
            "download: |\n  import os; os.system('touch /tmp/pwned-by-dataset')\n"
            "extra_key: whatever\n"
        ),
    )
    ds = load_dataset(y)
    assert "download" in ds.raw  # it was there ...
    clean = ds.sanitised()
    assert "download" not in clean and "extra_key" not in clean  # ... and is gone
    written = ds.write_sanitised(tmp_path / "job")
    assert written.is_absolute() and written.parent == (tmp_path / "job").resolve()
    text = written.read_text()
    assert "download:" not in text and "pwned" not in text and "os.system" not in text
    data = yaml.safe_load(text)
    assert "download" not in data
    assert Path(data["path"]).is_absolute() and Path(data["path"]) == root.resolve()
    assert data["names"] == {0: "red", 1: "green", 2: "blue"}
    assert data["val"] == "images/val"
    assert "train" in data  # ultralytics requires one


# --------------------------------------------------------------------------- fingerprint


def test_fingerprint_stable_when_the_folder_moves(tmp_path):
    root = tmp_path / "a" / "ds"
    y = _make(root, n=4)
    before = fingerprint(load_dataset(y))
    assert before == fingerprint(load_dataset(y))  # deterministic
    moved = tmp_path / "b" / "renamed"
    moved.parent.mkdir()
    shutil.move(str(root), str(moved))
    after = fingerprint(load_dataset(moved / "data.yaml"))
    assert after == before


@pytest.mark.parametrize(
    "change",
    ["label value", "label added", "label line removed", "image bytes", "class name", "image renamed"],
)
def test_fingerprint_changes_with_content(tmp_path, change):
    root = tmp_path / "ds"
    y = _make(root, n=4)
    before = fingerprint(load_dataset(y))
    label = root / "labels" / "val" / "im1.txt"
    if change == "label value":
        label.write_text(label.read_text().replace("0.25", "0.26"))
    elif change == "label added":
        label.write_text(label.read_text() + "2 0.7 0.7 0.1 0.1\n")
    elif change == "label line removed":
        label.write_text(label.read_text().splitlines()[0] + "\n")
    elif change == "image bytes":
        Image.new("RGB", (40, 30), (1, 2, 3)).save(root / "images" / "val" / "im1.png")
    elif change == "class name":
        y.write_text(y.read_text().replace("blue", "azure"))
    elif change == "image renamed":
        (root / "images" / "val" / "im1.png").rename(root / "images" / "val" / "im9.png")
        label.rename(label.with_name("im9.txt"))
    assert fingerprint(load_dataset(y)) != before


# --------------------------------------------------------------------------- class names vs the checkpoint


@pytest.fixture(scope="module")
def renamed_dataset(tmp_path_factory) -> Path:
    """A small synthetic dataset whose class names differ from the checkpoints' (red, green, blue)."""
    from tests.fixtures.synth import make_dataset

    y = make_dataset(tmp_path_factory.mktemp("renamed") / "data", n_val=6, seed=3)
    data = yaml.safe_load(y.read_text())
    data["names"] = {0: "red", 1: "lime", 2: "navy"}
    y.write_text(yaml.safe_dump(data))
    return y


def test_class_name_mismatch_is_refused(ultralytics_env, strong_pt, renamed_dataset, tmp_path):
    from evaluation.evaluate import evaluate
    from vocab.contract.params import EvalSpec

    spec = EvalSpec(model_path=str(strong_pt), dataset_path=str(renamed_dataset), model_name="strong", imgsz=192,
                    batch=8)
    with pytest.raises(ClassMismatchError) as info:
        evaluate(spec, tmp_path / "job", device="cpu")
    message = info.value.detail
    for name in ("red", "green", "blue", "lime", "navy"):
        assert name in message, message
    assert "allow_class_mismatch" in message


def test_class_name_mismatch_allowed_runs_with_a_warning(run_eval, strong_pt, renamed_dataset):
    run = run_eval(strong_pt, renamed_dataset, allow_class_mismatch=True)
    result = run.result
    assert result["warnings"], result["warnings"]
    assert any("lime" in w and "green" in w for w in result["warnings"])
    assert result["images"] == 6
    assert 0.0 <= result["mAP50"] <= 1.0
    assert set(result["per_class"]) <= {"red", "lime", "navy"}  # reported under the dataset's names
