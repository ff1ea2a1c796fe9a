"""Where the watcher's evaluation of a model comes from, and the stamp that says when that changed.

A model folder's ``pipeline.json`` (optional) names its dataset, split, and the image size and batch it is
evaluated at (``daemon.jobs.eval_settings``); without a dataset there, ``[models.<name>] dataset``, else
``[watch] default_dataset``, applies. A relative dataset path is read from the model folder.

A *stamp* (``stamp``) records what a checkpoint's evaluation depended on when its job was queued:

- ``dataset``: the identity of ``pipeline.json``, the dataset path and split it resolves to, and the
  identity of that file or folder (renaming classes in the YAML changes it; pointing ``pipeline.json`` at
  another dataset changes it);
- ``export``: the identity of ``v<n>.onnx`` beside the checkpoint (None without one).

A checkpoint that failed or was refused because of its dataset (cause ``dataset``) is looked at again when
the dataset part of its stamp changes; one refused for its export (cause ``export``) when the export
part changes (``changed``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from vocab.config import Config
from vocab.files import identity_of
from vocab.terms import SPLITS

PIPELINE_FILE = "pipeline.json"


class Skip(Exception):
    """This checkpoint cannot be evaluated as things stand; the message says why."""


def read_pipeline(model_dir: Path) -> dict[str, Any]:
    """The model folder's ``pipeline.json`` ({} when it has none); Skip when it is not a JSON object."""
    pipeline = model_dir / PIPELINE_FILE
    if not pipeline.is_file():
        return {}
    try:
        data = json.loads(pipeline.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise Skip(f"{pipeline} is not valid JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise Skip(f"{pipeline} must be a JSON object")
    return data


def dataset_source(config: Config, model_dir: Path, pipeline: dict[str, Any]) -> tuple[Path, str]:
    """The dataset path a model is evaluated on and its split, as configured (see module contract); Skip
    when none is configured or the split is not one."""
    pipeline_file = model_dir / PIPELINE_FILE
    raw: str = pipeline.get("dataset") or ""
    split = pipeline.get("split") or config.eval.split
    if split not in SPLITS:
        raise Skip(f"{pipeline_file} names split {split!r}; use one of {', '.join(SPLITS)}")
    if not raw and model_dir.name in config.models:
        raw = config.models[model_dir.name].dataset
    raw = raw or config.watch.default_dataset
    if not raw:
        raise Skip(
            f"no dataset for model {model_dir.name}: add 'dataset' to {pipeline_file}, "
            f"[models.{model_dir.name}] dataset, or [watch] default_dataset to the config"
        )
    p = Path(raw).expanduser()
    return (p if p.is_absolute() else model_dir / p).resolve(), split


def stamp(config: Config, checkpoint: Path) -> dict[str, Any]:
    """What the checkpoint's evaluation depends on now (see module contract)."""
    model_dir = checkpoint.parent
    dataset: dict[str, Any] = {"pipeline": identity_of(model_dir / PIPELINE_FILE)}
    try:
        path, split = dataset_source(config, model_dir, read_pipeline(model_dir))
        dataset.update(path=str(path), split=split, file=identity_of(path))
    except Skip as exc:
        dataset.update(problem=str(exc))
    return {"dataset": dataset, "export": identity_of(checkpoint.with_suffix(".onnx"))}


def changed(cause: str, before: str | None, now: dict[str, Any]) -> bool:
    """Whether the part of the stamp a ``cause`` depends on differs from the stamp stored ``before`` (JSON);
    a checkpoint with no stored stamp is looked at again."""
    if before is None:
        return True
    old = json.loads(before)
    return json.dumps(old.get(cause), sort_keys=True) != json.dumps(json.loads(json.dumps(now)).get(cause),
                                                                    sort_keys=True)
