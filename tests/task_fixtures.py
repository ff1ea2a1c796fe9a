"""Segmentation, pose and obb test data shared by the task test modules, made once per test session.

The committed checkpoints (``tests/fixtures/<task>_<weak|strong>.pt``, trained by
``tests/fixtures/make_task_fixtures.py`` at imgsz 96) are evaluated through conftest's session-cached
``run_eval`` on a synthetic val split per task (``tests/fixtures/synth_tasks.py``, 16 images). The
datasets and the bare ``YOLO(ckpt).val()`` runs are cached here by path, under the session's base
temp folder, so every module that asks gets the same files and the same runs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.conftest import FIXTURES_DIR

TASK_IMGSZ = 96
TASK_BATCH = 8
N_VAL = 16
ULTRALYTICS_TASK = {"segmentation": "segment", "pose": "pose", "obb": "obb"}
TASKS = tuple(ULTRALYTICS_TASK)
_BARE: dict[tuple[str, str], Any] = {}


def checkpoint(task: str, kind: str) -> Path:
    """The committed checkpoint of a task (vocab name) and kind (``weak``, ``strong``)."""
    path = FIXTURES_DIR / f"{ULTRALYTICS_TASK[task]}_{kind}.pt"
    assert path.is_file(), f"missing {path}: run tests/fixtures/make_task_fixtures.py"
    return path


def task_dataset(factory: pytest.TempPathFactory, task: str) -> Path:
    """The YAML of the task's synthetic val split (read-only: copy it to mutate)."""
    from tests.fixtures.synth_tasks import make_task_dataset

    root = factory.getbasetemp() / "task-data" / task
    if not (root / "data.yaml").is_file():
        make_task_dataset(root, ULTRALYTICS_TASK[task], n_val=N_VAL, seed=0)
    return root / "data.yaml"


def bare_val(factory: pytest.TempPathFactory, model: Path, data_yaml: Path) -> Any:
    """A bare ``YOLO(ckpt).val()`` at the evaluations' settings, on the sanitised YAML an evaluation wrote."""
    key = (str(model), str(data_yaml))
    if key not in _BARE:
        from ultralytics import YOLO

        _BARE[key] = YOLO(str(model)).val(
            data=str(data_yaml), imgsz=TASK_IMGSZ, batch=TASK_BATCH, device="cpu", plots=False, verbose=False,
            save_dir=str(factory.mktemp("bare_val").resolve()),
        )
    return _BARE[key]
