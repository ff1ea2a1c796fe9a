"""Turning a validated API request into a queued job: models resolved and read, datasets checked.

Everything a client can get wrong is caught here, before the job row exists:
an unknown model is a 404, a malformed one a 400, a path outside the allowed
roots a 403, a checkpoint that cannot be used (empty, truncated, not a zip
archive, sparse, not an ultralytics checkpoint: ``evaluation.checkpoint_meta``)
a 400, a dataset the checkpoint's task cannot be evaluated on a 400 with the
reason, an image size outside the task's bounds or weights that are not the
task's a 400; for training, a dataset without a usable ``train`` split and a
base of another task a 400 too (a base model that does not exist is a 404,
like ``model``). The task of an evaluation is its checkpoint's, read here
without torch. Checks that read files run off the event loop.
"""

from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path

from daemon.app.models_view import ShaCache
from daemon.jobs.eval_settings import eval_shape
from daemon.jobs.queue import JobQueue
from evaluation import task_data
from evaluation.architectures import base_problem
from evaluation.export_meta import export_shape, model_format, read_export
from evaluation.model_facts import Facts, model_facts
from evaluation.model_resolution import CURRENT, ResolvedModel, expand_user, list_versions, resolve_model
from store.job_table import Job
from vocab.config import Config
from vocab.contract.params import CompareJobParams, EvalJobParams, EvalSpec, Params, TrainJobParams
from vocab.contract.requests import CompareRequest, EvalRequest, TrainRequest
from vocab.errors import DatasetError, InvalidRequest, NotFound, PathNotAllowed
from vocab.files import check_model_name, is_under, looks_like_path
from vocab.scoring import resolve_weights
from vocab.tasks import TASKS, check_imgsz


def first_given(value: int | None, default: int) -> int:
    """A request's value, or the configured default when it gave none (0 is a value)."""
    return default if value is None else value


class Submissions:
    """Checks requests (see module contract) and submits their jobs."""

    def __init__(self, config: Config, queue: JobQueue) -> None:
        self.config = config
        self.queue = queue
        self.shas = ShaCache()

    async def resolve_model(self, model: str, name: str | None = None, fmt: str | None = None) -> ResolvedModel:
        """The checkpoint (or export, ``fmt``) of ``model``, with the version ``current.pt`` holds when a name
        resolved to it; ``name`` (validated like a model name) names a checkpoint path."""
        resolved = await asyncio.to_thread(resolve_model, model, self.config.models_root, self.config.allowed_roots,
                                           fmt)
        if resolved.version is None and resolved.path.name == CURRENT:
            resolved = dataclasses.replace(resolved, version=await asyncio.to_thread(self._version_held, resolved))
        if name is None:
            return resolved
        check_model_name(name)
        if not looks_like_path(model.strip()) and name != resolved.name:
            raise InvalidRequest(f"name {name!r} can only name a checkpoint path; the model {model!r} is "
                                 "already a model name")
        return dataclasses.replace(resolved, name=name)

    def _version_held(self, resolved: ResolvedModel) -> int | None:
        """The v<n>.pt whose bytes ``current.pt`` holds (sha256 by file identity, cached), else None."""
        current = self.shas.sha256(resolved.path)
        for n, path in reversed(list_versions(resolved.path.parent).items()):
            if current is not None and self.shas.sha256(path) == current:
                return n
        return None

    async def facts(self, model: ResolvedModel) -> Facts:
        """The checkpoint's task, training size and keypoint shape (an export's task and size); CheckpointError
        (400) for a file that cannot be used."""
        return await asyncio.to_thread(model_facts, model.path)

    async def shape(self, model: ResolvedModel, facts: Facts, imgsz: int | None, batch: int | None) -> tuple[int, int]:
        """The (imgsz, batch) a model is evaluated at (``daemon.jobs.eval_settings``); a static ONNX export at
        its own size (another imgsz asked for is an InvalidRequest saying why)."""
        size, count = eval_shape(self.config, facts.task, model.name, imgsz=imgsz, batch=batch,
                                 trained_imgsz=facts.trained_imgsz)
        if model_format(model.path) != "onnx":
            return size, count
        export = await asyncio.to_thread(read_export, model.path, None)
        size, count = export_shape(export, imgsz, count, size)
        return check_imgsz(size, facts.task), count

    async def check_dataset(self, raw: str, split: str, facts: Facts, train: bool = False) -> Path:
        """An absolute, allowed dataset the task can use (``evaluation.task_data.check``, off the event loop);
        with ``train``, one whose train split exists too."""
        p = expand_user(raw, "dataset path")
        if not p.is_absolute():
            raise InvalidRequest(f"dataset must be an absolute path (a dataset YAML, a folder holding one, a COCO "
                                 f"JSON file, or a classification dataset's folder), got {raw!r}")
        try:
            real = p.resolve()
            if not is_under(real, self.config.allowed_roots):
                raise PathNotAllowed(f"dataset path outside the allowed directories: {raw}")
            await asyncio.to_thread(task_data.check, real, split, facts.task, train=train,
                                    model_kpt_shape=facts.kpt_shape)
        except OSError as exc:  # e.g. a name longer than the filesystem allows
            raise DatasetError(f"dataset path cannot be used: {exc.strerror or exc}") from None
        return real

    @staticmethod
    def spec(model: ResolvedModel, task: str, dataset: Path, imgsz: int, batch: int,
             weights: dict[str, float] | None, allow_class_mismatch: bool = False, split: str = "val") -> EvalSpec:
        """The evaluation of a resolved model on a checked dataset, as it is stored and run."""
        return EvalSpec(model_path=str(model.path), model_name=model.name, model_version=model.version, task=task,
                        dataset_path=str(dataset), imgsz=imgsz, batch=batch, weights=weights or None,
                        allow_class_mismatch=allow_class_mismatch, split=split)

    async def eval(self, request: EvalRequest) -> Job:
        resolved = await self.resolve_model(request.model, request.name, request.format)
        if request.auto_promote and model_format(resolved.path) != "pt":
            raise InvalidRequest("auto_promote needs a .pt checkpoint: an ONNX export is never made current.pt")
        facts = await self.facts(resolved)
        resolve_weights(request.weights, facts.task)
        split = request.split or self.config.eval.split
        ds = await self.check_dataset(request.dataset, split, facts)
        imgsz, batch = await self.shape(resolved, facts, request.imgsz, request.batch_size)
        spec = self.spec(resolved, facts.task, ds, imgsz, batch, request.weights, request.allow_class_mismatch, split)
        params = EvalJobParams(**dict(spec), model=request.model, auto_promote=request.auto_promote,
                               gates=request.gates.overrides() if request.gates is not None else None)
        return await self._submit("eval", params)

    async def compare(self, request: CompareRequest) -> Job:
        a = await self.resolve_model(request.model_a, request.name_a)
        b = await self.resolve_model(request.model_b, request.name_b)
        facts_a, facts_b = await self.facts(a), await self.facts(b)
        if facts_a.task != facts_b.task:
            raise InvalidRequest(f"model_a is a {facts_a.task} model and model_b a {facts_b.task} model: only models "
                                 "of one task can be compared")
        resolve_weights(request.weights, facts_a.task)
        split = request.split or self.config.eval.split
        ds = await self.check_dataset(request.dataset, split, facts_a)
        specs = [self.spec(m, f.task, ds, *await self.shape(m, f, request.imgsz, request.batch_size),
                           request.weights, split=split) for m, f in ((a, facts_a), (b, facts_b))]
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
        task = request.task_name()
        resolve_weights(request.eval_weights, task)
        split = request.split or self.config.eval.split
        auto_eval = request.auto_eval or request.auto_promote
        base = await self.resolve_base(request.model, request.base_model, task)
        facts = Facts(task, None, None)
        ds = await self.check_dataset(request.dataset, split if auto_eval else "val", facts, train=True)
        settings = request.training()
        params = TrainJobParams(
            model=request.model, dataset_path=str(ds), task=task, split=split,
            epochs=settings.epochs, batch=settings.batch_size, imgsz=settings.imgsz,
            learning_rate=settings.learning_rate, patience=settings.patience,
            base=base, device=self.config.workers.device,
            auto_eval=auto_eval, auto_promote=request.auto_promote, eval_weights=request.eval_weights or None,
            gates=request.gates.overrides() if request.gates is not None else None,
        )
        return await self._submit("train", params)

    async def resolve_base(self, model: str, base_model: str | None, task: str) -> str:
        """What to train from: an explicit base (a bundled architecture of the task, or a model or checkpoint of
        it), else the model's current checkpoint, else the task's default architecture. A base of another
        task is InvalidRequest; a model that does not exist is NotFound."""
        if base_model and base_model.endswith((".yaml", ".yml")):
            base = base_model
        elif base_model:
            base = str((await self.resolve_model(base_model)).path)  # a missing model: NotFound, as for `model`
        else:
            try:
                base = str((await self.resolve_model(model)).path)
            except NotFound:
                return TASKS[task].default_arch
        problem = await asyncio.to_thread(base_problem, base, task)
        if problem:
            raise InvalidRequest(f"base_model: {problem}" if base_model else
                                 f"model {model} cannot be trained further as {task}: {problem}")
        return base
