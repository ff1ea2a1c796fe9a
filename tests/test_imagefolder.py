"""ImageFolder classification datasets: what is listed, what is refused and why, the fingerprint (no torch).

That the listing is ultralytics' own, image by image and index by index, is checked against
ultralytics' ClassificationDataset in test_classification (it needs torchvision).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from PIL import Image

from evaluation.imagefolder import check_train_split, fingerprint, load_imagefolder
from tests.fixtures.cls_synth import NAMES, make_imagefolder
from vocab.errors import DatasetError


@pytest.fixture(scope="module")
def shapes(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """train (1 per class), val (3 per class) and test (2 per class). Read-only: copy it to change it."""
    return make_imagefolder(tmp_path_factory.mktemp("shapes") / "shapes", train=1, val=3, test=2)


@pytest.fixture
def copy(shapes: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(shapes, tmp_path / "copy"))


def test_a_split_lists_its_images_by_class_folder_with_train_s_class_indices(shapes: Path) -> None:
    ds = load_imagefolder(shapes)
    assert ds.names == sorted(NAMES) and ds.split == "val" and ds.resolved_split == "val"
    assert len(ds.images) == 3 * len(NAMES) and ds.support() == [3] * len(NAMES)
    assert [ds.relative_name(p).split("/")[0] for p in ds.images] == [ds.names[c] for c in ds.classes]
    assert ds.relative_name(ds.images[0]) == "circle/val_0_000.png"
    test = load_imagefolder(shapes, "test")
    assert test.resolved_split == "test" and len(test.images) == 2 * len(NAMES)
    check_train_split(ds)


def test_val_falls_back_like_ultralytics(copy: Path) -> None:
    (copy / "val").rename(copy / "validation")
    assert load_imagefolder(copy).split_dir == copy / "validation"
    shutil.rmtree(copy / "validation")
    ds = load_imagefolder(copy, "val")
    assert ds.resolved_split == "test" and ds.split == "val"
    shutil.rmtree(copy / "test")
    with pytest.raises(DatasetError, match="has no 'val' split"):
        load_imagefolder(copy, "val")


def test_a_yaml_names_the_root_and_may_check_the_names(shapes: Path, tmp_path: Path) -> None:
    yml = tmp_path / "cfg" / "shapes.yaml"
    yml.parent.mkdir()
    yml.write_text(f"path: {shapes}\nnames: {sorted(NAMES)}\n")
    assert load_imagefolder(yml).root == shapes
    rel = tmp_path / "rel.yaml"
    (tmp_path / "data").symlink_to(shapes)
    rel.write_text("path: data\n")  # relative to the YAML's folder
    assert load_imagefolder(rel).root == shapes.resolve()
    rel.write_text("path: data\nnames: {0: circle, 1: square}\n")
    with pytest.raises(DatasetError, match="but the class folders"):
        load_imagefolder(rel)
    rel.write_text("path: data\nval: val\ndownload: https://example.com/x.zip\n")
    with pytest.raises(DatasetError, match="download, val"):
        load_imagefolder(rel)
    rel.write_text("names: [a]\n")
    with pytest.raises(DatasetError, match="needs 'path'"):
        load_imagefolder(rel)


@pytest.mark.parametrize("split", ["validation", "VAL"])
def test_an_unknown_split_is_refused(shapes: Path, split: str) -> None:
    with pytest.raises(DatasetError, match="split must be one of val, test, train"):
        load_imagefolder(shapes, split)


def test_missing_folders_are_refused_with_what_is_missing(copy: Path, tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="not found"):
        load_imagefolder(tmp_path / "nowhere")
    for image in (copy / "train").rglob("*.*"):
        image.unlink()
    with pytest.raises(DatasetError, match="holds no images"):
        load_imagefolder(copy)
    shutil.rmtree(copy / "train")
    with pytest.raises(DatasetError, match="no 'train' folder"):
        load_imagefolder(copy)


def test_a_split_without_images_is_refused(copy: Path) -> None:
    for image in (copy / "val").rglob("*.*"):
        image.unlink()
    with pytest.raises(DatasetError, match=r"val folder .* holds no images"):
        load_imagefolder(copy)


def test_class_folders_that_differ_between_splits_are_named(copy: Path) -> None:
    shutil.rmtree(copy / "test" / "ring")
    (copy / "test" / "hexagon").mkdir()
    with pytest.raises(DatasetError, match=r"test differ .*missing ring; not in train: hexagon"):
        load_imagefolder(copy)  # the val split is asked for; the test split's folders still disagree


@pytest.mark.parametrize("problem, write", [
    ("cannot be read as an image", lambda p: p.write_text("not an image")),
    ("truncated JPEG", lambda p: p.write_bytes(p.read_bytes()[:-2])),
    ("under 10 pixels", lambda p: Image.new("RGB", (9, 40)).save(p, format="JPEG")),
])
def test_an_image_ultralytics_would_drop_or_rewrite_is_refused(copy: Path, problem: str, write) -> None:
    image = next((copy / "val" / "cross").glob("*.jpg"))
    write(image)
    with pytest.raises(DatasetError, match=f"{image.name} .*{problem}"):
        load_imagefolder(copy)


def test_the_fingerprint_follows_content_not_location(shapes: Path, copy: Path, tmp_path: Path) -> None:
    fp = fingerprint(load_imagefolder(shapes))
    assert fingerprint(load_imagefolder(copy)) == fp  # another folder, same content
    assert fingerprint(load_imagefolder(shapes, "test")) != fp
    moved = tmp_path / "moved"
    shutil.copytree(copy, moved)
    image = next((moved / "val" / "circle").glob("*.png"))
    image.rename(moved / "val" / "square" / image.name)  # same bytes, another class
    assert fingerprint(load_imagefolder(moved)) != fp
    png = next((copy / "val" / "circle").glob("*.png"))
    Image.open(png).rotate(90).save(png)
    assert fingerprint(load_imagefolder(copy)) != fp


def test_check_train_split_refuses_a_dataset_whose_training_images_went_away(copy: Path) -> None:
    ds = load_imagefolder(copy)
    for image in (copy / "train").rglob("*.*"):
        image.unlink()
    with pytest.raises(DatasetError, match="no training images"):
        check_train_split(ds)
