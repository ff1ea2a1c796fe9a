"""evaluation.training for every task: train from the task's default architecture, report each epoch,
export ONNX; refuse a base or a dataset of the wrong kind before anything trains.

SLOW (heavy, ultralytics): one real 1-epoch training per task from its
default architecture (``vocab.tasks``), at imgsz 32 on 4 train and 4 val
synthetic images (``tests/task_datasets.py``), batch 4 (all of them: the
imgsz-32 final-batch-of-1 pitfall cannot arise), plus one cancelled training
of classification and an ONNX export per task. Each training runs once per
module, whichever test asks first. Results are
checked against ultralytics itself (``YOLO(checkpoint)``) and onnxruntime.
The dataset-folder checks at the end need no training.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from evaluation.checkpoint_meta import read_checkpoint_meta
from evaluation.export_meta import read_export
from evaluation.training import export_onnx, imagefolder_root, train, training_data
from tests.conftest import STRONG_PT
from tests.task_datasets import NAMES, make_task_dataset
from vocab.errors import CheckpointError, DatasetError, InvalidRequest
from vocab.tasks import TASKS

IMGSZ, IMAGES = 32, 4
# The validation metric each task's epoch report must carry (ultralytics' names).
VAL_METRIC = {"detection": "metrics/mAP50-95(B)", "classification": "metrics/accuracy_top1",
              "segmentation": "metrics/mAP50-95(M)", "pose": "metrics/mAP50-95(P)", "obb": "metrics/mAP50-95(B)"}


@dataclass(frozen=True)
class Trained:
    result: dict[str, Any]
    reports: list[tuple[float, dict[str, Any] | None]]  # every progress call: value, detail

    @property
    def checkpoint(self) -> Path:
        return Path(self.result["checkpoint"])


def run_training(root: Path, task: str, base: str, progress: Callable[..., None]) -> dict[str, Any]:
    t = TASKS[task]
    data = make_task_dataset(root / "data", t.ultralytics, n=IMAGES)
    params = {"task": task, "base": base, "dataset_path": str(data), "epochs": 1, "batch": IMAGES,
              "imgsz": IMGSZ, "lr0": 0.01, "patience": 5, "device": "cpu", "work_dir": str(root / "work")}
    return train(params, progress)


@pytest.fixture(scope="module")
def trained(ultralytics_env: Path, tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], Trained]:
    """``trained(task)``: that task trained from its default architecture, once per module."""
    cache: dict[str, Trained] = {}

    def get(task: str) -> Trained:
        if task not in cache:
            reports: list[tuple[float, dict[str, Any] | None]] = []
            result = run_training(tmp_path_factory.mktemp(task), task, TASKS[task].default_arch,
                                  lambda value, detail=None: reports.append((value, detail)))
            cache[task] = Trained(result, reports)
        return cache[task]

    return get


@pytest.mark.parametrize("task", list(TASKS))
def test_training_gives_a_checkpoint_of_the_task(trained: Callable[[str], Trained], task: str) -> None:
    from ultralytics import YOLO

    run = trained(task)
    meta = read_checkpoint_meta(run.checkpoint)
    model = YOLO(str(run.checkpoint))
    expected_names = sorted(NAMES) if task == "classification" else NAMES  # ImageFolder sorts its folders
    assert (meta.task, meta.names, meta.imgsz) == (task, expected_names, IMGSZ)
    assert (meta.ultralytics_task, meta.names, meta.imgsz) == (model.task, list(model.names.values()),
                                                                model.overrides["imgsz"])
    assert run.result["task"] == task and run.result["epochs"] == 1


@pytest.mark.parametrize("task", list(TASKS))
def test_each_epoch_is_reported_with_the_tasks_numbers(trained: Callable[[str], Trained], task: str) -> None:
    run = trained(task)
    values = [v for v, _ in run.reports]
    assert values == sorted(values) and values[-1] == 1.0
    details = [d for _, d in run.reports if d is not None]
    assert len(details) == 1  # one epoch; ultralytics' final re-validation is not a second one
    report = details[0]
    assert (report["current_epoch"], report["epoch"], report["total_epochs"]) == (1, 1, 1)
    losses = {k: v for k, v in report["metrics"].items() if k.startswith("train/")}
    assert losses and report["loss"] == pytest.approx(sum(losses.values()))
    assert VAL_METRIC[task] in report["metrics"]
    assert ("train/box_loss" in losses) == (task != "classification")


@pytest.mark.parametrize("task", list(TASKS))
def test_onnx_export_of_each_task_runs_and_says_its_task(trained: Callable[[str], Trained], task: str) -> None:
    import numpy as np
    import onnxruntime

    out = export_onnx(trained(task).checkpoint, imgsz=IMGSZ)
    session = onnxruntime.InferenceSession(out["onnx"], providers=["CPUExecutionProvider"])
    feed = np.zeros((1, 3, IMGSZ, IMGSZ), dtype=np.float32)
    assert session.run(None, {session.get_inputs()[0].name: feed})[0].shape[0] == 1
    info = read_export(out["onnx"], task=None)
    assert (out["task"], info.task, info.ultralytics_task) == (task, task, TASKS[task].ultralytics)
    assert info.names == read_checkpoint_meta(trained(task).checkpoint).names
    if task != "detection":  # read_export's default task is detection: another task is refused, named
        with pytest.raises(CheckpointError, match=f"is a {task} model"):
            read_export(out["onnx"])


def test_export_refuses_another_task(trained: Callable[[str], Trained]) -> None:
    with pytest.raises(CheckpointError, match="is a classification model, not detection"):
        export_onnx(trained("classification").checkpoint, imgsz=IMGSZ, task="detection")


class Cancelled(Exception):
    """What a worker's progress sink raises when its job is cancelled."""


def test_a_raising_progress_call_stops_the_training(ultralytics_env: Path, tmp_path: Path) -> None:
    calls: list[float] = []

    def cancel(value: float, detail: dict[str, Any] | None = None) -> None:
        calls.append(value)
        raise Cancelled

    with pytest.raises(Cancelled):
        run_training(tmp_path, "classification", TASKS["classification"].default_arch, cancel)
    assert len(calls) == 1 and 0 < calls[0] <= 1  # stopped at the first batch's report


@pytest.mark.parametrize("task,base,message", [
    ("classification", str(STRONG_PT), "is a detection checkpoint; a classification model trains from"),
    ("segmentation", "yolov8n-pose.yaml", "yolov8n-pose.yaml is a pose architecture; a segmentation model"),
])
def test_base_of_another_task_is_refused_before_training(tmp_path: Path, task: str, base: str,
                                                         message: str) -> None:
    with pytest.raises(InvalidRequest, match=message):
        run_training(tmp_path, task, base, lambda value, detail=None: pytest.fail("it trained"))


# --------------------------------------------------------------------------- datasets, no training


def test_classification_dataset_is_an_imagefolder(tmp_path: Path) -> None:
    root = make_task_dataset(tmp_path / "cls", "classify", n=4)
    assert imagefolder_root(root) == root.resolve()
    yaml_dataset = make_task_dataset(tmp_path / "det", "detect", n=2)
    with pytest.raises(DatasetError, match="a classification dataset is a folder with train/<class>/"):
        training_data(TASKS["classification"], str(yaml_dataset), tmp_path / "work")


def _no_val(root: Path) -> None:
    (root / "val").rename(root / "holdout")


def _test_split_of_other_classes(root: Path) -> None:
    (root / "val").rename(root / "test")
    (root / "test" / "red").rename(root / "test" / "green")


def _empty_class(root: Path) -> None:
    for image in (root / "train" / "red").iterdir():
        image.unlink()


@pytest.mark.parametrize("damage,message", [
    (_no_val, r"needs a train/ and a val/ \(or test/\) folder"),
    (_test_split_of_other_classes, "differ: ultralytics numbers classes by their sorted folder names"),
    (_empty_class, "holds no images"),
])
def test_unusable_imagefolder_says_why(tmp_path: Path, damage: Callable[[Path], Any], message: str) -> None:
    root = make_task_dataset(tmp_path / "cls", "classify", n=4)
    damage(root)
    with pytest.raises(DatasetError, match=message):
        imagefolder_root(root)


def test_pose_dataset_needs_its_keypoint_shape(tmp_path: Path) -> None:
    data = make_task_dataset(tmp_path / "pose", "pose", n=2)
    written = Path(training_data(TASKS["pose"], str(data), tmp_path / "work"))
    assert "kpt_shape" in written.read_text()
    data.write_text(data.read_text().replace("kpt_shape", "keypoints"))
    with pytest.raises(DatasetError, match="has no 'kpt_shape'"):
        training_data(TASKS["pose"], str(data), tmp_path / "work")
