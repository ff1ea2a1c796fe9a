"""The image size and batch an evaluation runs at: one rule for the API and the watcher.

First given wins:

1. the request's own ``imgsz`` / ``batch_size`` (API);
2. the model folder's ``pipeline.json`` (watcher): top-level ``imgsz`` and ``batch``, else the
   ``parameters.imgsz`` a training wrote;
3. ``[models.<name>] imgsz`` / ``batch`` in the config;
4. ``[eval] imgsz`` / ``batch``;
5. per task (``vocab.tasks``): a classification checkpoint's own training size, else the task's
   ``eval_imgsz`` (224 for classification, 640 for every other task).

A value of 0 in the config means "not set". The image size must lie within the task's bounds
(``vocab.tasks.check_imgsz``): a 400 for a request, a skip with the reason for the watcher.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from vocab.config import Config
from vocab.tasks import check_imgsz, task_default_imgsz


def _given(value: Any) -> int | None:
    """A positive integer setting, else None (absent, 0 or not a number)."""
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else None


def pipeline_shape(pipeline: Mapping[str, Any] | None) -> tuple[int | None, int | None]:
    """(imgsz, batch) a ``pipeline.json`` asks for: its own keys, else the imgsz its training used."""
    if not pipeline:
        return None, None
    parameters = pipeline.get("parameters")
    trained = _given(parameters.get("imgsz")) if isinstance(parameters, Mapping) else None
    return _given(pipeline.get("imgsz")) or trained, _given(pipeline.get("batch"))


def eval_shape(config: Config, task: str, model_name: str | None, *, imgsz: int | None = None,
               batch: int | None = None, pipeline: Mapping[str, Any] | None = None,
               trained_imgsz: int | None = None) -> tuple[int, int]:
    """(imgsz, batch) per the module contract; InvalidRequest when the image size is outside the task's
    bounds. ``trained_imgsz``: the checkpoint's training size (``checkpoint_meta``), when known."""
    model = config.models.get(model_name) if model_name else None
    piped_imgsz, piped_batch = pipeline_shape(pipeline)
    fallback = task_default_imgsz(task, trained_imgsz)
    size = (_given(imgsz) or piped_imgsz or (_given(model.imgsz) if model else None) or _given(config.eval.imgsz)
            or fallback)
    count = _given(batch) or piped_batch or (_given(model.batch) if model else None) or config.eval.batch
    return check_imgsz(size, task), count
