"""A split listed without reading its images and label files (``task_data.list_split``), and the daemon's image
lookup built on it (``daemon.app.analyses``): the same images, names and labels as the full load
(``task_data.load``) for every task; an image is found only in the split's own list, its labels are read from
its label file when asked, and one removed after the listing is no longer served. No torch, no daemon: the
daemon's HTTP routes over the same calls are tests/test_dashboard.py's."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from daemon.app import analysis_pages as pages
from daemon.app.analyses import Analyses
from evaluation import task_data
from store import results
from store.database import Database
from tests.task_datasets import make_task_dataset
from tests.test_store import result_row
from vocab.errors import NotFound


@pytest.mark.parametrize("task", ["detect", "segment", "pose", "obb", "classify"])
def test_a_listed_split_has_the_full_load_s_images_names_and_labels(tmp_path: Path, task: str) -> None:
    path = make_task_dataset(tmp_path / task, task, n=6)
    listed, loaded = task_data.list_split(path, "val", task), task_data.load(path, "val", task)
    assert listed.images == loaded.images and len(listed.images) == 6
    assert [listed.relative_name(p) for p in listed.images] == [loaded.relative_name(p) for p in loaded.images]
    if task == "classify":
        assert listed.classes == loaded.classes
        return
    assert [listed.labels_of(p) for p in listed.images] == [loaded.labels[p] for p in loaded.images]
    assert all(loaded.labels[p] for p in loaded.images)  # every image labelled: the comparison compares labels
    label = tmp_path / task / "labels" / "val" / f"{listed.images[0].stem}.txt"
    label.write_text(label.read_text().replace("0 ", "1 ", 1))  # a label changed after the listing: read anew
    assert listed.labels_of(listed.images[0]) == task_data.load(path, "val", task).labels[listed.images[0]]
    assert listed.labels_of(listed.images[0])[0].cls == 1
    label.unlink()
    assert listed.labels_of(listed.images[0]) == []


def _stored_evaluation(tmp_path: Path, db: Database, dataset: Path, names: list[str], listed: list[str]) -> int:
    """An evaluation of ``dataset`` whose evidence lists ``listed``, with its errors and (empty) predictions."""
    out = tmp_path / "artifacts"
    out.mkdir()
    np.savez(out / "evidence.npz", task=np.array("detection"), image_names=np.array(listed))
    (out / "predictions.json").write_text("[]")
    (out / "errors.json").write_text(json.dumps({"classes": names, "images": listed, "conf_threshold": 0.25}))
    row = {**result_row("m", str(dataset), 0.5, "2026-01-01T00:00:00Z"), "task": "detection",
           "predictions_path": str(out / "predictions.json"), "evidence_path": str(out / "evidence.npz")}
    return db.write_sync(lambda c: results.insert(c, row))


def test_images_are_found_in_the_split_s_own_list_and_labelled_from_their_files(tmp_path: Path) -> None:
    path = make_task_dataset(tmp_path / "det", "detect", n=4)
    root = path.parent
    data = yaml.safe_load(path.read_text())
    (root / "val.txt").write_text("".join(f"./images/val/{i:03d}.png\n" for i in range(3)))  # the 4th is not listed
    path.write_text(yaml.safe_dump({**data, "val": "val.txt"}))
    (tmp_path / "outside.png").write_bytes((root / "images" / "val" / "000.png").read_bytes())
    names = [f"images/val/{i:03d}.png" for i in range(4)] + ["../outside.png", "images/train/000.png"]
    loaded = task_data.load(path, "val", "detect")
    db = Database(tmp_path / "db.sqlite")
    try:
        eval_id = _stored_evaluation(tmp_path, db, path, loaded.names, names)

        async def scenario() -> None:
            analyses = Analyses(db, None, tmp_path / "converted")
            for i in range(3):
                image = root / "images" / "val" / f"{i:03d}.png"
                assert await analyses.image(eval_id, names[i]) == (image, "image/png")
                notes = await analyses.annotations(eval_id, names[i])
                expected = pages.detection_annotations([], loaded.labels[image], loaded.names, None)
                assert notes["ground_truth"] == expected["ground_truth"] and notes["ground_truth"]
            for name in names[3:] + ["images/val/nope.png"]:  # listed by the evaluation, not by the split
                with pytest.raises(NotFound, match="has no image named"):
                    await analyses.image(eval_id, name)
                if name in names:
                    assert (await analyses.annotations(eval_id, name))["ground_truth"] == []
            (root / "labels" / "val" / "002.txt").write_text("0 0.5 0.5 0.25 0.25\n")  # changed after the listing
            assert (await analyses.annotations(eval_id, names[2]))["ground_truth"] == [
                {"class": "red", "box": [0.5, 0.5, 0.25, 0.25], "points": []}]
            (root / "images" / "val" / "001.png").unlink()  # removed from the dataset after the listing
            with pytest.raises(NotFound, match="no longer in the dataset"):
                await analyses.image(eval_id, names[1])

        asyncio.run(scenario())
    finally:
        db.close()
