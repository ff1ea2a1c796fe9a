"""Evaluations as the daemon runs them: cache lookup, a worker task on a miss, a stored row.

An evaluation is keyed by (checkpoint sha256, dataset fingerprint, imgsz,
batch, device kind, ultralytics version, and for an ONNX export its format and
onnxruntime version, and a split other than val), with the imgsz and batch
that actually run (``evaluation.settings``): the same key is never evaluated
twice.

A result is what was asked: the requested model name and path, dataset path,
weights and options. A cache hit answers with a result of its own (a new
row pointing at the shared evaluation and sharing its artifacts, or the row
of an identical earlier request), marked ``cached: true``, after the same
checks a fresh evaluation makes (class names against ``allow_class_mismatch``,
read from the stored result and the dataset YAML, without torch).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from daemon.clock import Clock, iso, utcnow
from daemon.jobs.queue import JobContext
from daemon.jobs.workers import Executor
from daemon.tracking.tracker import Tracker
from evaluation import task_data
from evaluation.datasets import NamedDataset, check_class_names, file_sha256
from evaluation.export_meta import model_format
from evaluation.settings import effective_batch, effective_imgsz
from store import results
from store.database import Database
from vocab.contract.params import EvalSpec, EvalTask
from vocab.errors import ClassMismatchError, JobError, NotFound
from vocab.scoring import composite_score, resolve_weights
from vocab.tasks import DEFAULT_TASK, TASKS

log = logging.getLogger(__name__)


def cache_key(sha256: str, dataset_fp: str, imgsz: int, batch: int, device_kind: str, ul_version: str,
              fmt: str = "pt", runtime_version: str | None = None, split: str = "val", rect: bool = True) -> str:
    """The key of an evaluation. A ``.pt`` key on the val split has the parts it had before formats and
    splits existed (stored rows stay cache hits); any other format adds itself and its runtime's
    version, any other split its name, square padding (``rect`` False) itself."""
    parts: list[Any] = [sha256, dataset_fp, imgsz, batch, device_kind, ul_version]
    if fmt != "pt":
        parts += [fmt, runtime_version]
    if split != "val":
        parts += [f"split={split}"]
    if not rect:
        parts += ["rect=False"]
    return hashlib.sha256(json.dumps(parts).encode()).hexdigest()


def request_key(key: str, spec: EvalSpec, applied: dict[str, float]) -> str:
    """What was asked of evaluation ``key``: model name and path, dataset path, weights, options."""
    raw = json.dumps([key, spec.model_name, spec.model_path, spec.model_version, spec.dataset_path,
                      sorted(applied.items()), spec.allow_class_mismatch, spec.imgsz, spec.batch, spec.split,
                      spec.rect])
    return hashlib.sha256(raw.encode()).hexdigest()


@dataclass(frozen=True)
class Identity:
    """A spec as read from disk now: contents, the settings that will run, the cache key."""

    sha256: str
    fingerprint: str
    imgsz: int
    batch: int
    key: str
    dataset: Any  # evaluation.task_data.load's, of the spec's task


def _checkpoint_sha(path: str) -> str:
    try:
        return file_sha256(path)
    except FileNotFoundError:
        raise NotFound(f"model file not found: {path} (it was removed after the job was submitted)") from None


def _load(spec: EvalSpec, cache_root: Path) -> tuple[Any, str]:
    dataset = task_data.load(spec.dataset_path, spec.split, spec.task, cache_root=cache_root)
    return dataset, task_data.fingerprint(dataset)


def default_score(result: dict[str, Any]) -> float | None:
    """A result's score under its task's default weights: the leaderboard's order."""
    return composite_score(result, TASKS[result.get("task") or DEFAULT_TASK].default_weights)


def class_check(row: Any, dataset: NamedDataset, allow_mismatch: bool) -> list[str]:
    """The class-name check of a fresh evaluation, made for a stored one: its warnings, or ClassMismatchError.

    The checkpoint's names come from the stored result. A result stored before
    they were kept tells only whether they differed (by its warning).
    """
    stored = json.loads(row["result_json"])
    names = stored.get("model_class_names")
    if names is not None:
        return check_class_names(names, dataset, allow_mismatch)
    differed = [w for w in stored.get("warnings") or [] if "class names differ" in w]
    if differed and not allow_mismatch:
        raise ClassMismatchError(f"checkpoint class names differ from the dataset's ({dataset.described}) by "
                                 f"index (found by evaluation {row['id']}); pass allow_class_mismatch to evaluate "
                                 "anyway")
    return differed


class Evaluations:
    """Runs evaluations for jobs (see module contract)."""

    def __init__(self, db: Database, executor: Executor, artifacts_dir: Path, device: str, cache_root: Path,
                 clock: Clock = utcnow, tracker: Tracker | None = None):
        """``cache_root``: where COCO JSON datasets are converted (the daemon's, shared by its workers);
        ``tracker``: MLflow, told of every stored result in the same write (None: off)."""
        self.db = db
        self.executor = executor
        self.artifacts_dir = artifacts_dir
        self.device = device
        self.cache_root = cache_root
        self.clock = clock
        self.tracker = tracker

    async def identify(self, spec: EvalSpec) -> Identity:
        """The contents, effective settings and cache key of a spec, read from disk now."""
        sha = await asyncio.to_thread(_checkpoint_sha, spec.model_path)
        dataset, fp = await asyncio.to_thread(_load, spec, self.cache_root)
        imgsz, batch = effective_imgsz(spec.imgsz), effective_batch(spec.batch, len(dataset.images))
        info = self.executor.info
        fmt = model_format(spec.model_path)
        device_kind = info.get("device_kind", "unknown")
        if fmt == "onnx" and not info.get("onnx_cuda"):
            device_kind = "cpu"  # without onnxruntime's CUDA provider an export runs on the CPU
        key = cache_key(sha, fp, imgsz, batch, device_kind, info.get("ultralytics_version", "unknown"),
                        fmt, info.get("onnxruntime_version") if fmt == "onnx" else None, spec.split, spec.rect)
        return Identity(sha, fp, imgsz, batch, key, dataset)

    async def run(self, spec: EvalSpec, ctx: JobContext, trigger: str) -> dict[str, Any]:
        """The result of ``spec``: from the cache, or evaluated by a worker and stored."""
        applied = resolve_weights(spec.weights, spec.task)
        seen_at = iso(self.clock())  # when the dataset's content was read
        ident = await self.identify(spec)
        asked = request_key(ident.key, spec, applied)
        row = await self.db.read(lambda c: results.find_request(c, asked) or results.find_cached(c, ident.key))
        if row is not None:
            warnings = class_check(row, ident.dataset, spec.allow_class_mismatch)
            log.info("job %s: cache hit for %s (eval %s)", ctx.job.id, spec.model_name, row["id"])
            ctx.progress(1.0)
            return await self._from_cache(row, spec, applied, asked, warnings, ctx, trigger, seen_at)
        ctx.check_cancelled()
        art = self.artifacts_dir / ident.key[:2] / ident.key
        task = EvalTask(
            spec=spec, device=self.device, work_dir=str(art / "work"),
            predictions_path=str(art / "predictions.json"), evidence_path=str(art / "evidence.npz"),
            checkpoint_sha256=ident.sha256, dataset_fingerprint=ident.fingerprint, cache_root=str(self.cache_root),
        )
        try:
            await asyncio.to_thread(art.mkdir, parents=True, exist_ok=True)
        except OSError as exc:  # the state folder is broken (a file in the way, a full or read-only disk)
            raise JobError(f"cannot create the artifacts folder {art}: {exc.strerror or exc} "
                           f"({exc.filename}); check [paths] state_dir") from None
        result = await self.executor.run(
            "eval", task.stored(), job_id=ctx.job.id, on_progress=ctx.progress, timeout=ctx.remaining(),
            cancel=ctx.cancel_event,
        )
        # The worker hashed what it actually loaded and reports the settings that ran: key the row by those.
        fmt = result.get("format", "pt")
        key = cache_key(result["checkpoint_sha256"], result["dataset_fingerprint"], result["imgsz"],
                        result["batch"], result["device_kind"], result["ultralytics_version"], fmt,
                        result.get("runtime_version") if fmt != "pt" else None, result.get("split", "val"), spec.rect)
        fresh = {
            **result, "job_id": ctx.job.id, "trigger": trigger, "model_version": spec.model_version,
            "cache_key": key, "request_key": request_key(key, spec, applied),
            "default_score": default_score(result),
            "predictions_path": task.predictions_path, "evidence_path": task.evidence_path,
            "result_json": json.dumps(result), "created_at": iso(self.clock()),
        }
        eval_id = await self._store(fresh, seen_at)
        result.update(eval_id=eval_id, timestamp=fresh["created_at"], cached=False, model_version=spec.model_version)
        return result

    async def _from_cache(self, row: Any, spec: EvalSpec, applied: dict[str, float], asked: str,
                          warnings: list[str], ctx: JobContext, trigger: str, seen_at: str) -> dict[str, Any]:
        """The stored answer to this request: its own earlier row, or a new row as asked.

        A new row carries the requested model name and path, dataset path,
        weights (and the score under them) and options, with the shared
        evaluation's metrics and artifacts (``source_eval_id``).
        """
        result = results.result_of(row)
        if row["request_key"] == asked:
            await self.db.write(lambda c: results.note_content(c, row["dataset"], row["dataset_fingerprint"], seen_at))
            return {**result, "model_version": row["model_version"], "warnings": warnings, "cached": True}
        for key in ("eval_id", "timestamp", "imgsz_requested", "batch_requested"):
            result.pop(key, None)
        result.update(
            model_name=spec.model_name, model_path=spec.model_path, model_version=spec.model_version,
            dataset=spec.dataset_path, weights=applied, score=composite_score(result, applied), warnings=warnings,
            **({"imgsz_requested": spec.imgsz} if spec.imgsz != row["imgsz"] else {}),
            **({"batch_requested": spec.batch} if spec.batch != row["batch"] else {}),
        )
        copy = {
            **dict(row), "job_id": ctx.job.id, "trigger": trigger, "model_name": spec.model_name,
            "model_version": spec.model_version, "model_path": spec.model_path, "dataset": spec.dataset_path,
            "per_class": json.loads(row["per_class"]), "per_class_metrics": json.loads(row["per_class_metrics"]),
            "weights": applied, "score": result["score"], "request_key": asked,
            "source_eval_id": row["source_eval_id"] or row["id"], "imgsz_requested": result.get("imgsz_requested"),
            "batch_requested": result.get("batch_requested"), "result_json": json.dumps(result),
            "created_at": iso(self.clock()),
        }
        if copy["default_score"] is None:  # a row stored before default scores were kept
            copy["default_score"] = default_score(result)
        eval_id = await self._store(copy, seen_at)
        return {**result, "eval_id": eval_id, "source_eval_id": copy["source_eval_id"], "timestamp": copy["created_at"],
                "cached": True}

    async def _store(self, row: dict[str, Any], seen_at: str) -> int:
        """Insert a result row (and its MLflow outbox record, in the same transaction); its id."""
        def write(conn: Any) -> int:
            eval_id = results.insert(conn, row, seen_at)
            if self.tracker is not None:
                self.tracker.record_evaluation(conn, eval_id, row)
            return eval_id

        eval_id = await self.db.write(write)
        if self.tracker is not None:
            self.tracker.wake()
        return eval_id

    async def record_comparison(self, job_id: str, comparison: dict[str, Any]) -> None:
        """Tell MLflow of a compare job's result (an outbox row; nothing when tracking is off)."""
        tracker = self.tracker
        if tracker is None or not tracker.enabled:
            return
        now = iso(self.clock())
        await self.db.write(lambda c: tracker.record_comparison(c, job_id, comparison, now))
        tracker.wake()

    async def evidence_path(self, eval_id: int) -> str:
        """The evidence artifact of a stored evaluation; NotFound if it is gone."""
        row = await self.db.read(lambda c: results.get(c, eval_id))
        path = row["evidence_path"] if row is not None else None
        if not path or not Path(path).is_file():
            raise NotFound(f"the evidence of evaluation {eval_id} is missing; re-run the evaluation")
        return path
