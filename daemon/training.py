"""The ``train`` job: train in a worker, publish ``v<n>.pt``, export ONNX, write ``pipeline.json``,
then (``auto_eval``) evaluate the new version and (``auto_promote``) decide its promotion.

The new checkpoint is claimed for this job before it becomes visible as
``v<n>.pt`` (so the watcher never evaluates it again), published without
ever overwriting an existing version, and the job completes only after its
evaluation and promotion decision, which its result carries.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
from pathlib import Path
from typing import Any

from daemon.clock import Clock, iso, utcnow
from daemon.evaluations import EvalSpec, Evaluations
from daemon.files import fsync_dir, publish_new, tmp_name
from daemon.promotion import Promoter
from daemon.queue import JobContext
from daemon.workers import Executor
from evaluation.datasets import file_sha256
from evaluation.errors import InternalError, VisionEvalError
from evaluation.models import list_versions
from store import jobs as jobq
from store.database import Database

log = logging.getLogger(__name__)


def write_json_atomic(path: Path, value: dict[str, Any]) -> None:
    tmp = tmp_name(path)
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(value, f, indent=2)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    fsync_dir(path.parent)


class Trainer:
    """Runs train jobs (see module contract)."""

    def __init__(self, db: Database, executor: Executor, evaluations: Evaluations, promoter: Promoter,
                 models_root: Path, work_root: Path, eval_batch: int, clock: Clock = utcnow) -> None:
        self.db = db
        self.executor = executor
        self.evaluations = evaluations
        self.promoter = promoter
        self.models_root = models_root
        self.work_root = work_root
        self.eval_batch = eval_batch
        self.clock = clock

    async def run(self, ctx: JobContext) -> dict[str, Any]:
        p = ctx.job.params
        name = p["model"]
        work = self.work_root / ctx.job.id
        trained = await self.executor.run(
            "train",
            {"base": p["base"], "dataset_path": p["dataset_path"], "epochs": p["epochs"], "batch": p["batch"],
             "imgsz": p["imgsz"], "lr0": p["learning_rate"], "patience": p["patience"], "device": p["device"],
             "work_dir": str(work)},
            job_id=ctx.job.id, on_progress=ctx.phase(0.0, 0.8).progress, timeout=ctx.remaining(),
            cancel=ctx.cancel_event,
        )
        ctx.check_cancelled()
        version, path, sha = await self._publish(name, Path(trained["checkpoint"]), ctx)
        result: dict[str, Any] = {
            "model_name": name, "version": version, "checkpoint": str(path), "checkpoint_sha256": sha,
            "training": trained["metrics"], "epochs": trained["epochs"],
        }
        result.update(await self._export(path, int(p["imgsz"]), ctx))
        result["pipeline"] = await self._write_pipeline(name, version, p, trained["metrics"])
        if p.get("auto_eval") or p.get("auto_promote"):
            spec = EvalSpec(model_path=str(path), model_name=name, model_version=version,
                            dataset_path=p["dataset_path"], imgsz=max(320, int(p["imgsz"])),
                            batch=self.eval_batch, weights=p.get("eval_weights"), split=p.get("split", "val"))
            evaluation = await self.evaluations.run(spec, ctx.phase(0.85, 0.97), "train")
            result["evaluation"] = evaluation
            if p.get("auto_promote"):
                result["promotion"] = await self.promoter.consider(spec, evaluation, ctx.phase(0.97, 1.0),
                                                                   actor="train", gates=p.get("gates"))
        await asyncio.to_thread(_remove_tree, work)
        return result

    async def _publish(self, name: str, best: Path, ctx: JobContext) -> tuple[int, Path, str]:
        """Claim the checkpoint, then create the next free ``v<n>.pt`` (never overwriting one)."""
        sha = await asyncio.to_thread(file_sha256, best)
        model_dir = self.models_root / name
        await asyncio.to_thread(model_dir.mkdir, parents=True, exist_ok=True)
        now = iso(self.clock())
        await self.db.write(lambda c: jobq.claim_checkpoint(c, name, sha, str(best), job_id=ctx.job.id, now=now))
        for _ in range(100):
            versions = await asyncio.to_thread(list_versions, model_dir)
            n = max(versions, default=0) + 1
            dest = model_dir / f"v{n}.pt"
            if await asyncio.to_thread(publish_new, best, dest, sha):
                log.info("job %s: published %s", ctx.job.id, dest)
                return n, dest, sha
        raise InternalError(f"could not allocate a new version under {model_dir}")

    async def _export(self, path: Path, imgsz: int, ctx: JobContext) -> dict[str, Any]:
        """ONNX export beside the checkpoint; a failure is reported, not fatal."""
        try:
            out = await self.executor.run("export", {"checkpoint": str(path), "imgsz": imgsz}, job_id=ctx.job.id,
                                          on_progress=lambda _: None, timeout=ctx.remaining(),
                                          cancel=ctx.cancel_event)
            return {"onnx": out["onnx"], "onnx_error": None}
        except VisionEvalError as exc:
            if ctx.cancel_event.is_set():
                raise
            log.warning("job %s: ONNX export of %s failed: %s", ctx.job.id, path, exc.detail)
            return {"onnx": None, "onnx_error": exc.detail}

    async def _write_pipeline(self, name: str, version: int, p: dict[str, Any], metrics: dict[str, float]) -> str:
        path = self.models_root / name / "pipeline.json"
        value = {
            "model": name, "dataset": p["dataset_path"], "split": p.get("split", "val"), "task": p["task"],
            "base": p["base"], "version": version,
            "parameters": {k: p[k] for k in ("epochs", "batch", "imgsz", "learning_rate", "patience", "device")},
            "created_at": iso(self.clock()), "final_metrics": metrics,
        }
        await asyncio.to_thread(write_json_atomic, path, value)
        return str(path)


def _remove_tree(path: Path) -> None:
    import shutil

    shutil.rmtree(path, ignore_errors=True)
