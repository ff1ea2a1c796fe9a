"""evaluation.architectures: which bundled architecture or checkpoint may start a training of each task.

The head-to-task rules are checked against ultralytics' own ``guess_model_task``
over every bundled architecture YAML (the one heavy test).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from evaluation.architectures import (
    TRAINABLE_HEADS,
    _models_dir,
    architecture_problem,
    base_problem,
    checkpoint_problem,
)
from evaluation.checkpoint_meta import yaml_task
from tests.conftest import STRONG_PT
from vocab.tasks import TASKS


@pytest.mark.parametrize("arch,task", [
    *((t.default_arch, t.name) for t in TASKS.values()),
    ("yolo11s-seg.yaml", "segmentation"), ("yolo26n-pose.yaml", "pose"), ("yolo26n-obb.yaml", "obb"),
    ("yolov10n.yaml", "detect"), ("yolo11n-cls.yaml", "classify"),
])
def test_bundled_architecture_of_the_task_is_accepted(arch: str, task: str) -> None:
    assert architecture_problem(arch, task) is None


@pytest.mark.parametrize("arch,task,message", [
    ("yolov8n.yaml", "classification", "yolov8n.yaml is a detection architecture; a classification model trains "
                                       "from a -cls architecture such as yolov8n-cls.yaml"),
    ("yolov8n-cls.yaml", "detection", "yolov8n-cls.yaml is a classification architecture; a detection model "
                                      "trains from a detection architecture such as yolov8n.yaml"),
    ("yolo11n-pose.yaml", "segment", "yolo11n-pose.yaml is a pose architecture; a segmentation model trains "
                                     "from a -seg architecture such as yolov8n-seg.yaml"),
    ("yolov8-world.yaml", "detection", "yolov8-world.yaml is a WorldDetect architecture, which vision-evald "
                                       "does not train"),
    ("rtdetr-l.yaml", "detection", "RTDETRDecoder architecture, which vision-evald does not train"),
    ("yolo99z.yaml", "obb", "'yolo99z.yaml' is not an architecture bundled with this ultralytics; an obb model "
                            "trains from a -obb architecture such as yolov8n-obb.yaml"),
])
def test_architecture_of_another_task_is_refused_saying_which(arch: str, task: str, message: str) -> None:
    problem = architecture_problem(arch, task)
    assert problem is not None and message in problem, problem


def test_checkpoint_must_be_of_the_task(tmp_path: Path) -> None:
    assert checkpoint_problem(STRONG_PT, "detection") is None
    assert checkpoint_problem(STRONG_PT, "classification") == (
        f"{STRONG_PT} is a detection checkpoint; a classification model trains from a classification "
        "checkpoint or from a -cls architecture such as yolov8n-cls.yaml")
    empty = tmp_path / "empty.pt"
    empty.write_bytes(b"")
    assert "is empty (0 bytes)" in (checkpoint_problem(empty, "detection") or "")


def test_base_is_an_architecture_by_its_suffix_else_a_checkpoint(tmp_path: Path) -> None:
    assert base_problem("yolov8n-seg.yaml", "segmentation") is None
    assert base_problem(str(STRONG_PT), "detection") is None
    assert "checkpoint not found" in (base_problem(str(tmp_path / "yolov8n"), "detection") or "")


def test_head_rules_match_ultralytics_guess_model_task(ultralytics_env: Path) -> None:
    """Every bundled YAML: our reading of its head gives ultralytics' task, and each trainable head's."""
    from ultralytics.nn.tasks import guess_model_task

    directory = _models_dir()
    assert directory is not None
    files = sorted(directory.rglob("*.yaml"))
    assert len(files) > 40
    for path in files:
        cfg = yaml.safe_load(path.read_text())
        assert yaml_task(cfg) == guess_model_task(cfg), path
        head = cfg["head"][-1][2]
        if head in TRAINABLE_HEADS:
            assert TRAINABLE_HEADS[head] == guess_model_task(cfg), path
