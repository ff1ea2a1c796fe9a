"""Evaluations as the daemon runs them: cache lookup, a worker task on a miss, a stored row.

An evaluation is keyed by (checkpoint sha256, dataset fingerprint, imgsz,
batch, device kind, ultralytics version, and for an ONNX export its format and
onnxruntime version): the same key is never evaluated twice; a repeat returns the stored result, rescored with the requested
weights and marked ``cached: true``.
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
from daemon.queue import JobContext
from daemon.workers import Executor
from evaluation.datasets import file_sha256, fingerprint, load_dataset
from evaluation.errors import JobError, NotFound
from evaluation.export_meta import model_format
from evaluation.scoring import composite_score, resolve_weights
from store import results
from store.database import Database

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class EvalSpec:
    """One evaluation to run: a resolved checkpoint on a checked dataset."""

    model_path: str
    model_name: str
    model_version: int | None
    dataset_path: str
    imgsz: int
    batch: int
    weights: dict[str, Any] | None = None
    allow_class_mismatch: bool = False
    split: str = "val"
    rect: bool = True  # False: the square-padded reference of a checkpoint for a static export's parity

    @classmethod
    def from_params(cls, p: dict[str, Any]) -> EvalSpec:
        return cls(
            model_path=p["model_path"], model_name=p["model_name"], model_version=p.get("model_version"),
            dataset_path=p["dataset_path"], imgsz=int(p["imgsz"]), batch=int(p["batch"]),
            weights=p.get("weights"), allow_class_mismatch=bool(p.get("allow_class_mismatch", False)),
            split=p.get("split", "val"), rect=bool(p.get("rect", True)),
        )


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


def _checkpoint_sha(path: str) -> str:
    try:
        return file_sha256(path)
    except FileNotFoundError:
        raise NotFound(f"model file not found: {path} (it was removed after the job was submitted)") from None


def _dataset_fp(path: str, split: str) -> str:
    return fingerprint(load_dataset(path, split))


class Evaluations:
    """Runs evaluations for jobs (see module contract)."""

    def __init__(self, db: Database, executor: Executor, artifacts_dir: Path, device: str, clock: Clock = utcnow):
        self.db = db
        self.executor = executor
        self.artifacts_dir = artifacts_dir
        self.device = device
        self.clock = clock

    async def identify(self, spec: EvalSpec) -> tuple[str, str, str]:
        """(checkpoint sha256, dataset fingerprint, cache key) of a spec, read from disk now."""
        sha = await asyncio.to_thread(_checkpoint_sha, spec.model_path)
        fp = await asyncio.to_thread(_dataset_fp, spec.dataset_path, spec.split)
        info = self.executor.info
        fmt = model_format(spec.model_path)
        device_kind = info.get("device_kind", "unknown")
        if fmt == "onnx" and not info.get("onnx_cuda"):
            device_kind = "cpu"  # without onnxruntime's CUDA provider an export runs on the CPU
        key = cache_key(sha, fp, spec.imgsz, spec.batch, device_kind, info.get("ultralytics_version", "unknown"),
                        fmt, info.get("onnxruntime_version") if fmt == "onnx" else None, spec.split, spec.rect)
        return sha, fp, key

    async def run(self, spec: EvalSpec, ctx: JobContext, trigger: str) -> dict[str, Any]:
        """The result of ``spec``: from the cache, or evaluated by a worker and stored."""
        applied = resolve_weights(spec.weights)
        sha, fp, key = await self.identify(spec)
        row = await self.db.read(lambda c: results.find_cached(c, key, spec.model_name))
        if row is not None:
            log.info("job %s: cache hit for %s (eval %s)", ctx.job.id, spec.model_name, row["id"])
            ctx.progress(1.0)
            return await self._from_cache(row, spec, applied, ctx, trigger)
        ctx.check_cancelled()
        art = self.artifacts_dir / key[:2] / key
        params = {
            "model_path": spec.model_path, "dataset_path": spec.dataset_path, "model_name": spec.model_name,
            "imgsz": spec.imgsz, "batch": spec.batch, "device": self.device, "weights": spec.weights,
            "allow_class_mismatch": spec.allow_class_mismatch, "split": spec.split, "rect": spec.rect,
            "work_dir": str(art / "work"),
            "checkpoint_sha256": sha, "dataset_fingerprint": fp,  # what a remote worker must find (daemon.ray_actor)
            "predictions_path": str(art / "predictions.json"), "evidence_path": str(art / "evidence.npz"),
        }
        try:
            await asyncio.to_thread(art.mkdir, parents=True, exist_ok=True)
        except OSError as exc:  # the state folder is broken (a file in the way, a full or read-only disk)
            raise JobError(f"cannot create the artifacts folder {art}: {exc.strerror or exc} "
                           f"({exc.filename}); check [paths] state_dir") from None
        result = await self.executor.run(
            "eval", params, job_id=ctx.job.id, on_progress=ctx.progress, timeout=ctx.remaining(),
            cancel=ctx.cancel_event,
        )
        # The worker hashed what it actually loaded: key the row by that.
        fmt = result.get("format", "pt")
        key = cache_key(result["checkpoint_sha256"], result["dataset_fingerprint"], result["imgsz"],
                        result["batch"], result["device_kind"], result["ultralytics_version"], fmt,
                        result.get("runtime_version") if fmt != "pt" else None, result.get("split", "val"), spec.rect)
        row = {
            **result, "job_id": ctx.job.id, "trigger": trigger, "model_version": spec.model_version,
            "cache_key": key, "predictions_path": params["predictions_path"],
            "evidence_path": params["evidence_path"], "result_json": json.dumps(result),
            "created_at": iso(self.clock()),
        }
        eval_id = await self.db.write(lambda c: results.insert(c, row))
        result.update(eval_id=eval_id, timestamp=row["created_at"], cached=False, model_version=spec.model_version)
        return result

    async def _from_cache(self, row: Any, spec: EvalSpec, applied: dict[str, float], ctx: JobContext,
                          trigger: str) -> dict[str, Any]:
        """A stored result for this request: rescored with its weights, under its model's name.

        The same content evaluated under another model name gets a row of its
        own (sharing the artifacts), so that every model lands on the
        leaderboard and in its history.
        """
        result = results.result_of(row)
        result.update(weights=applied, score=composite_score(result, applied), cached=True,
                      model_version=row["model_version"])
        if row["model_name"] == spec.model_name:
            return result
        result.update(model_name=spec.model_name, model_path=spec.model_path, model_version=spec.model_version)
        copy = {
            **dict(row), "job_id": ctx.job.id, "trigger": trigger, "model_name": spec.model_name,
            "model_version": spec.model_version, "model_path": spec.model_path,
            "per_class": json.loads(row["per_class"]), "per_class_metrics": json.loads(row["per_class_metrics"]),
            "weights": applied, "score": result["score"], "created_at": iso(self.clock()),
        }
        copy["result_json"] = json.dumps({k: v for k, v in result.items() if k not in ("eval_id", "timestamp", "cached")})
        result["eval_id"] = await self.db.write(lambda c: results.insert(c, copy))
        result["timestamp"] = copy["created_at"]
        return result

    async def evidence_path(self, eval_id: int) -> str:
        """The evidence artifact of a stored evaluation; NotFound if it is gone."""
        row = await self.db.read(lambda c: results.get(c, eval_id))
        path = row["evidence_path"] if row is not None else None
        if not path or not Path(path).is_file():
            raise NotFound(f"the evidence of evaluation {eval_id} is missing; re-run the evaluation")
        return path
