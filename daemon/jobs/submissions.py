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

from daemon.jobs.queue import JobQueue
from evaluation.architectures import detection_architecture
from evaluation.datasets import check_train_split, load_dataset
from evaluation.export_meta import export_shape, model_format, read_export
from evaluation.model_resolution import (
    ResolvedModel,
    expand_user,
    resolve_model,
)
from store.job_table import Job
from vocab.config import Config
from vocab.contract.params import CompareJobParams, EvalJobParams, EvalSpec, Params, TrainJobParams
from vocab.contract.requests import CompareRequest, EvalRequest, TrainRequest
from vocab.errors import DatasetError, InvalidRequest, NotFound, PathNotAllowed
from vocab.files import check_model_name, is_under, looks_like_path
from vocab.scoring import resolve_weights

# An architecture bundled with ultralytics, e.g. yolov8n.yaml or yolo11s.yaml: built, never downloaded.
ARCH_RE = re.compile(r"^yolo[a-z0-9-]*\.yaml$")
DEFAULT_ARCH = "yolov8n.yaml"


def first_given(value: int | None, default: int) -> int:
    """A request's value, or the configured default when it gave none (0 is a value)."""
    return default if value is None else value


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

    def spec(self, model: ResolvedModel, dataset: Path, imgsz: int, batch: int, weights: dict[str, float] | None,
             allow_class_mismatch: bool = False, split: str = "val") -> EvalSpec:
        """The evaluation of a resolved model on a checked dataset, as it is stored and run."""
        return EvalSpec(model_path=str(model.path), model_name=model.name, model_version=model.version,
                        dataset_path=str(dataset), imgsz=imgsz, batch=batch, weights=weights or None,
                        allow_class_mismatch=allow_class_mismatch, split=split)

    async def eval(self, request: EvalRequest) -> Job:
        resolve_weights(request.weights)
        resolved = self.resolve_model(request.model, request.name, request.format)
        if request.auto_promote and model_format(resolved.path) != "pt":
            raise InvalidRequest("auto_promote needs a .pt checkpoint: an ONNX export is never made current.pt")
        split = request.split or self.config.eval.split
        ds = await self.check_dataset(request.dataset, split)
        imgsz, batch = await self.shape(resolved, request.imgsz, request.batch_size or self.config.eval.batch)
        spec = self.spec(resolved, ds, imgsz, batch, request.weights, request.allow_class_mismatch, split)
        params = EvalJobParams(**dict(spec), model=request.model, auto_promote=request.auto_promote,
                               gates=request.gates.overrides() if request.gates is not None else None)
        return await self._submit("eval", params)

    async def compare(self, request: CompareRequest) -> Job:
        resolve_weights(request.weights)
        a = self.resolve_model(request.model_a, request.name_a)
        b = self.resolve_model(request.model_b, request.name_b)
        split = request.split or self.config.eval.split
        ds = await self.check_dataset(request.dataset, split)
        batch = request.batch_size or self.config.eval.batch
        specs = [self.spec(m, ds, *await self.shape(m, request.imgsz, batch), request.weights, split=split)
                 for m in (a, b)]
        promotion = self.config.promotion
        params = CompareJobParams(
            model_a=request.model_a, model_b=request.model_b, dataset_path=str(ds), a=specs[0], b=specs[1],
            split=split, weights=request.weights or None,
            bootstrap_resamples=first_given(request.bootstrap_resamples, promotion.bootstrap_resamples),
            bootstrap_seed=first_given(request.bootstrap_seed, promotion.bootstrap_seed),
        )
        return await self._submit("compare", params)

    async def _submit(self, kind: str, params: Params, trigger: str = "api") -> Job:
        job = await self.queue.submit(kind, params.stored(), trigger=trigger,
                                      max_attempts=self.config.jobs.max_attempts)
        assert job is not None  # no claim: always inserted
        return job

    async def train(self, request: TrainRequest) -> Job:
        resolve_weights(request.eval_weights)
        split = request.split or self.config.eval.split
        auto_eval = request.auto_eval or request.auto_promote
        ds = await self.check_dataset(request.dataset, split if auto_eval else "val", train=True)
        settings = request.training()
        params = TrainJobParams(
            model=request.model, dataset_path=str(ds), task=request.task_name(), split=split,
            epochs=settings.epochs, batch=settings.batch_size, imgsz=settings.imgsz,
            learning_rate=settings.learning_rate, patience=settings.patience,
            base=self.resolve_base(request.model, request.base_model), device=self.config.workers.device,
            auto_eval=auto_eval, auto_promote=request.auto_promote, eval_weights=request.eval_weights or None,
            gates=request.gates.overrides() if request.gates is not None else None,
        )
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
