"""Turning a validated API request into a queued job: models resolved, datasets checked.

Everything a client can get wrong is caught here, before the job row exists:
an unknown model is a 404, a malformed one a 400, a path outside the allowed
roots a 403, a dataset that cannot be evaluated a 400 with the reason, bad
weights (including weights that leave nothing to score) a 400; for training,
a dataset without a usable ``train`` split and a base architecture that is
not a bundled detection one are a 400 too (a base model that does not exist
is a 404, like ``model``). Nothing here imports torch.
"""

from __future__ import annotations

import asyncio
import dataclasses
import re
from pathlib import Path
from typing import Any

from daemon.jobs.queue import JobQueue
from evaluation.architectures import detection_architecture
from evaluation.datasets import check_train_split, load_dataset
from evaluation.export_meta import export_shape, model_format, read_export
from evaluation.model_resolution import (
    ResolvedModel,
    expand_user,
    looks_like_path,
    resolve_model,
)
from evaluation.stats.gates import validate_gates
from store.job_table import Job
from vocab.config import Config
from vocab.errors import (
    DatasetError,
    InvalidRequest,
    NotFound,
    PathNotAllowed,
    UnsupportedTask,
)
from vocab.files import check_model_name, is_under
from vocab.scoring import resolve_weights

SUPPORTED_TASKS = ("detection", "detect")
# An architecture bundled with ultralytics, e.g. yolov8n.yaml or yolo11s.yaml: built, never downloaded.
ARCH_RE = re.compile(r"^yolo[a-z0-9-]*\.yaml$")
DEFAULT_ARCH = "yolov8n.yaml"


class Submissions:
    """Checks requests (see module contract) and submits their jobs."""

    def __init__(self, config: Config, queue: JobQueue) -> None:
        self.config = config
        self.queue = queue

    def resolve_model(self, model: str, name: str | None = None, fmt: str | None = None) -> ResolvedModel:
        """The checkpoint (or export, ``fmt``) of ``model``; ``name`` (validated like a model name) names a
        checkpoint path."""
        resolved = resolve_model(model, self.config.models_root, self.config.allowed_roots, fmt)
        if name is None:
            return resolved
        check_model_name(name)
        if not looks_like_path(model.strip()) and name != resolved.name:
            raise InvalidRequest(f"name {name!r} can only name a checkpoint path; the model {model!r} is "
                                 "already a model name")
        return dataclasses.replace(resolved, name=name)

    async def shape(self, model: ResolvedModel, imgsz: int | None, batch: int) -> tuple[int, int]:
        """The (imgsz, batch) a model is evaluated at: the request's (imgsz None: ``[eval] imgsz``), or
        for a static ONNX export its own (another imgsz asked for is an InvalidRequest saying why)."""
        if model_format(model.path) != "onnx":
            return (self.config.eval.imgsz if imgsz is None else imgsz), batch
        export = await asyncio.to_thread(read_export, model.path)
        return export_shape(export, imgsz, batch, self.config.eval.imgsz)

    async def check_dataset(self, raw: str, split: str = "val", train: bool = False) -> Path:
        """An absolute, allowed dataset YAML whose ``split`` loads (off the event loop); a YAML without that
        split is a DatasetError naming it. With ``train``, one whose train split exists too."""
        p = expand_user(raw, "dataset path")
        if not p.is_absolute():
            raise InvalidRequest(f"dataset must be an absolute path to a dataset YAML, got {raw!r}")
        try:
            real = p.resolve()
            if not is_under(real, self.config.allowed_roots):
                raise PathNotAllowed(f"dataset path outside the allowed directories: {raw}")
            if real.suffix not in (".yaml", ".yml"):
                raise DatasetError(f"dataset must be a .yaml or .yml file, got {raw!r}")
            dataset = await asyncio.to_thread(load_dataset, real, split)
            if train:
                await asyncio.to_thread(check_train_split, dataset)
        except OSError as exc:  # e.g. a name longer than the filesystem allows
            raise DatasetError(f"dataset path cannot be used: {exc.strerror or exc}") from None
        return real

    def eval_params(self, model: ResolvedModel, dataset: Path, imgsz: int, batch: int,
                    weights: dict[str, Any] | None, allow_class_mismatch: bool, split: str = "val") -> dict[str, Any]:
        return {
            "model_path": str(model.path), "model_name": model.name, "model_version": model.version,
            "dataset_path": str(dataset), "imgsz": imgsz, "batch": batch, "weights": weights,
            "allow_class_mismatch": allow_class_mismatch, "split": split,
        }

    async def eval(self, *, model: str, dataset: str, imgsz: int | None, batch: int,
                   weights: dict[str, Any] | None, allow_class_mismatch: bool = False, auto_promote: bool = False,
                   gates: dict[str, Any] | None = None, name: str | None = None, fmt: str | None = None,
                   split: str = "val") -> Job:
        resolve_weights(weights)
        gates = validate_gates(gates)
        resolved = self.resolve_model(model, name, fmt)
        if auto_promote and model_format(resolved.path) != "pt":
            raise InvalidRequest("auto_promote needs a .pt checkpoint: an ONNX export is never made current.pt")
        ds = await self.check_dataset(dataset, split)
        imgsz, batch = await self.shape(resolved, imgsz, batch)
        params = self.eval_params(resolved, ds, imgsz, batch, weights or None, allow_class_mismatch, split)
        params["model"] = model
        params["auto_promote"] = auto_promote
        params["gates"] = gates
        return await self._submit("eval", params)

    async def compare(self, *, model_a: str, model_b: str, dataset: str, imgsz: int | None, batch: int,
                      weights: dict[str, Any] | None, bootstrap_resamples: int, bootstrap_seed: int,
                      name_a: str | None = None, name_b: str | None = None, split: str = "val") -> Job:
        resolve_weights(weights)
        a = self.resolve_model(model_a, name_a)
        b = self.resolve_model(model_b, name_b)
        ds = await self.check_dataset(dataset, split)
        imgsz_a, batch_a = await self.shape(a, imgsz, batch)
        imgsz_b, batch_b = await self.shape(b, imgsz, batch)
        params = {
            "model_a": model_a, "model_b": model_b, "dataset_path": str(ds),
            "a": self.eval_params(a, ds, imgsz_a, batch_a, weights or None, False, split),
            "b": self.eval_params(b, ds, imgsz_b, batch_b, weights or None, False, split), "split": split,
            "weights": weights or None,
            "bootstrap_resamples": bootstrap_resamples, "bootstrap_seed": bootstrap_seed,
        }
        return await self._submit("compare", params)

    async def _submit(self, kind: str, params: dict[str, Any], trigger: str = "api") -> Job:
        job = await self.queue.submit(kind, params, trigger=trigger, max_attempts=self.config.jobs.max_attempts)
        assert job is not None  # no claim: always inserted
        return job

    async def train(self, *, model: str, dataset: str, task: str, epochs: int, batch: int, imgsz: int,
                    learning_rate: float, patience: int, base_model: str | None, auto_eval: bool,
                    auto_promote: bool, eval_weights: dict[str, Any] | None,
                    gates: dict[str, Any] | None = None, split: str = "val") -> Job:
        if task not in SUPPORTED_TASKS:
            raise UnsupportedTask(f"task {task!r} is not supported: only 'detection' can be trained and evaluated")
        check_model_name(model)
        resolve_weights(eval_weights)
        gates = validate_gates(gates)
        ds = await self.check_dataset(dataset, split if auto_eval or auto_promote else "val", train=True)
        params = {
            "model": model, "dataset_path": str(ds), "task": "detection", "split": split, "epochs": epochs, "batch": batch,
            "imgsz": imgsz, "learning_rate": learning_rate, "patience": patience,
            "base": self.resolve_base(model, base_model), "device": self.config.workers.device,
            "auto_eval": auto_eval or auto_promote, "auto_promote": auto_promote,
            "eval_weights": eval_weights or None, "gates": gates,
        }
        return await self._submit("train", params)

    def resolve_base(self, model: str, base_model: str | None) -> str:
        """The checkpoint or architecture to train from: an explicit base, else the model's current
        checkpoint, else ``yolov8n.yaml``. An architecture that is not a bundled detection one is
        InvalidRequest; a model that does not exist is NotFound."""
        if base_model:
            if ARCH_RE.match(base_model):
                problem = detection_architecture(base_model)
                if problem:
                    raise InvalidRequest(f"base_model: {problem}")
                return base_model
            return str(self.resolve_model(base_model).path)  # a missing model: NotFound, as for `model`
        try:
            return str(self.resolve_model(model).path)
        except NotFound:
            return DEFAULT_ARCH
