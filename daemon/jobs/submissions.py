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
without torch. Checks that read files run off the event loop, cached by file
identity (``evaluation.file_cache``): a burst of submissions reads each file once.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Any

from daemon.jobs.coalesce import Coalescer
from daemon.jobs.eval_settings import eval_shape
from daemon.jobs.queue import JobQueue
from evaluation import task_data
from evaluation.architectures import base_problem
from evaluation.export_meta import export_shape, model_format, read_export
from evaluation.file_cache import sha256_if_exists
from evaluation.model_facts import Facts, model_facts
from evaluation.model_resolution import CURRENT, ResolvedModel, expand_user, list_versions, resolve_model
from store.job_table import Job
from vocab.config import Config
from vocab.contract.fields import Request
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
        self._builds = Coalescer()

    async def resolve_model(self, model: str, name: str | None = None, fmt: str | None = None) -> ResolvedModel:
        """The checkpoint (or export, ``fmt``) of ``model``, with the version ``current.pt`` holds when a name
        resolved to it; ``name`` (validated like a model name) names a checkpoint path."""
        return await asyncio.to_thread(self._resolve, model, name, fmt)

    def _resolve(self, model: str, name: str | None = None, fmt: str | None = None) -> ResolvedModel:
        resolved = resolve_model(model, self.config.models_root, self.config.allowed_roots, fmt)
        if resolved.version is None and resolved.path.name == CURRENT:
            resolved = dataclasses.replace(resolved, version=self._version_held(resolved))
        if name is None:
            return resolved
        check_model_name(name)
        if not looks_like_path(model.strip()) and name != resolved.name:
            raise InvalidRequest(f"name {name!r} can only name a checkpoint path; the model {model!r} is "
                                 "already a model name")
        return dataclasses.replace(resolved, name=name)

    def _version_held(self, resolved: ResolvedModel) -> int | None:
        """The v<n>.pt whose bytes ``current.pt`` holds (sha256 by file identity, cached), else None."""
        current = sha256_if_exists(resolved.path)
        for n, path in reversed(list_versions(resolved.path.parent).items()):
            if current is not None and sha256_if_exists(path) == current:
                return n
        return None

    @staticmethod
    def _facts(model: ResolvedModel) -> Facts:
        """The checkpoint's task, training size and keypoint shape (an export's task and size); CheckpointError
        (400) for a file that cannot be used."""
        return model_facts(model.path)

    def _shape(self, model: ResolvedModel, facts: Facts, imgsz: int | None, batch: int | None) -> tuple[int, int]:
        """The (imgsz, batch) a model is evaluated at (``daemon.jobs.eval_settings``); a static ONNX export at
        its own size (another imgsz asked for is an InvalidRequest saying why)."""
        size, count = eval_shape(self.config, facts.task, model.name, imgsz=imgsz, batch=batch,
                                 trained_imgsz=facts.trained_imgsz)
        if model_format(model.path) != "onnx":
            return size, count
        size, count = export_shape(read_export(model.path, None), imgsz, count, size)
        return check_imgsz(size, facts.task), count

    async def check_dataset(self, raw: str, split: str, facts: Facts, train: bool = False) -> Path:
        """An absolute, allowed dataset the task can use (``evaluation.task_data.check``, off the event loop);
        with ``train``, one whose train split exists too."""
        return await asyncio.to_thread(self._checked_dataset, raw, split, facts, train)

    def _checked_dataset(self, raw: str, split: str, facts: Facts, train: bool = False,
                         since: float | None = None) -> Path:
        """``check_dataset``'s work; ``since`` (a ``time.monotonic()``): a check of the dataset's files begun then
        or later answers for this one too (``evaluation.task_data.load``)."""
        p = expand_user(raw, "dataset path")
        if not p.is_absolute():
            raise InvalidRequest(f"dataset must be an absolute path (a dataset YAML, a folder holding one, a COCO "
                                 f"JSON file, or a classification dataset's folder), got {raw!r}")
        try:
            real = p.resolve()
            if not is_under(real, self.config.allowed_roots):
                raise PathNotAllowed(f"dataset path outside the allowed directories: {raw}")
            task_data.check(real, split, facts.task, train=train, model_kpt_shape=facts.kpt_shape, since=since)
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

    async def _params(self, kind: str, request: Request, build: Callable[[Any, float], Params]) -> Params:
        """``build(request, since)`` in one trip off the event loop. Identical requests of a burst share one
        build begun after they arrived (``daemon.jobs.coalesce``; ``since``: when the last of them arrived), and
        builds share the checks of one dataset's files begun after their ``since``."""
        key = (kind, request.model_dump_json())
        return await self._builds.run(key, lambda since: asyncio.to_thread(build, request, since))

    async def eval(self, request: EvalRequest) -> Job:
        return await self._submit("eval", await self._params("eval", request, self._eval_params))

    def _eval_params(self, request: EvalRequest, since: float) -> EvalJobParams:
        resolved = self._resolve(request.model, request.name, request.format)
        if request.auto_promote and model_format(resolved.path) != "pt":
            raise InvalidRequest("auto_promote needs a .pt checkpoint: an ONNX export is never made current.pt")
        facts = self._facts(resolved)
        resolve_weights(request.weights, facts.task)
        split = request.split or self.config.eval.split
        ds = self._checked_dataset(request.dataset, split, facts, since=since)
        imgsz, batch = self._shape(resolved, facts, request.imgsz, request.batch_size)
        spec = self.spec(resolved, facts.task, ds, imgsz, batch, request.weights, request.allow_class_mismatch, split)
        return EvalJobParams(**dict(spec), model=request.model, auto_promote=request.auto_promote,
                             gates=request.gates.overrides() if request.gates is not None else None)

    async def compare(self, request: CompareRequest) -> Job:
        return await self._submit("compare", await self._params("compare", request, self._compare_params))

    def _compare_params(self, request: CompareRequest, since: float) -> CompareJobParams:
        a = self._resolve(request.model_a, request.name_a)
        b = self._resolve(request.model_b, request.name_b)
        facts_a, facts_b = self._facts(a), self._facts(b)
        if facts_a.task != facts_b.task:
            raise InvalidRequest(f"model_a is a {facts_a.task} model and model_b a {facts_b.task} model: only models "
                                 "of one task can be compared")
        resolve_weights(request.weights, facts_a.task)
        split = request.split or self.config.eval.split
        ds = self._checked_dataset(request.dataset, split, facts_a, since=since)
        specs = [self.spec(m, f.task, ds, *self._shape(m, f, request.imgsz, request.batch_size),
                           request.weights, split=split) for m, f in ((a, facts_a), (b, facts_b))]
        promotion = self.config.promotion
        return CompareJobParams(
            model_a=request.model_a, model_b=request.model_b, dataset_path=str(ds), a=specs[0], b=specs[1],
            split=split, weights=request.weights or None,
            bootstrap_resamples=first_given(request.bootstrap_resamples, promotion.bootstrap_resamples),
            bootstrap_seed=first_given(request.bootstrap_seed, promotion.bootstrap_seed),
        )

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
