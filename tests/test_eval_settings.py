"""The image size and batch an evaluation runs at, one rule for the API and the watcher (daemon.jobs.eval_settings):
request, pipeline.json, [models.<name>], [eval], then per task."""

from __future__ import annotations

import pytest

from daemon.jobs.eval_settings import eval_shape
from vocab.config import parse_config
from vocab.errors import InvalidRequest


def config(**sections: dict[str, object]) -> object:
    return parse_config(dict(sections), environ={})


def test_defaults_per_task_are_the_specs_640_and_a_classifiers_own_size() -> None:
    cfg = config()
    assert eval_shape(cfg, "detection", "m") == (640, 16)  # type: ignore[arg-type]
    assert eval_shape(cfg, "segmentation", "m", trained_imgsz=96) == (640, 16)  # type: ignore[arg-type]
    assert eval_shape(cfg, "classification", "m", trained_imgsz=128) == (128, 16)  # type: ignore[arg-type]
    assert eval_shape(cfg, "classification", "m") == (224, 16)  # type: ignore[arg-type]


def test_the_first_given_wins() -> None:
    cfg = config(eval={"imgsz": 512, "batch": 4}, models={"m": {"imgsz": 448, "batch": 2}})
    pipeline = {"parameters": {"imgsz": 384}}
    assert eval_shape(cfg, "detection", "other") == (512, 4)  # type: ignore[arg-type]
    assert eval_shape(cfg, "detection", "m") == (448, 2)  # type: ignore[arg-type]
    assert eval_shape(cfg, "detection", "m", pipeline=pipeline) == (384, 2)  # type: ignore[arg-type]
    assert eval_shape(cfg, "detection", "m", pipeline={**pipeline, "imgsz": 352, "batch": 8}) == (352, 8)  # type: ignore[arg-type]
    assert eval_shape(cfg, "detection", "m", imgsz=320, batch=1, pipeline=pipeline) == (320, 1)  # type: ignore[arg-type]


def test_a_size_outside_the_tasks_bounds_is_refused_naming_them() -> None:
    cfg = config(eval={"imgsz": 64})
    assert eval_shape(cfg, "classification", "m") == (64, 16)  # type: ignore[arg-type]
    with pytest.raises(InvalidRequest, match="between 320 and 2560 for detection"):
        eval_shape(cfg, "detection", "m")  # type: ignore[arg-type]
    with pytest.raises(InvalidRequest, match="a multiple of 32 for classification"):
        eval_shape(cfg, "classification", "m", imgsz=100)  # type: ignore[arg-type]
