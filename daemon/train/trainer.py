"""The ``train`` job: train in a worker, publish ``v<n>.pt``, export ONNX, write ``pipeline.json``,
then (``auto_eval``) evaluate the new version and (``auto_promote``) decide its promotion.

The new checkpoint is claimed for this job before it becomes visible as
``v<n>.pt`` (so the watcher never evaluates it again), published without
ever overwriting an existing version, and the job completes only after its
evaluation and promotion decision, which its result carries.

A job finishes what it starts. The training output is kept in the job's work
folder (``trained.json`` beside the weights) until the job ends, and a job
restarted after an interruption reuses the version it already published (or
the training it already did) instead of training again. A job cancelled
after publishing removes its version when no decision has read it yet (else
the version stays, decided); a job that ends failed after publishing leaves
its claim to the watcher, which releases it and evaluates the version unless
a decision has read it (``daemon.watch.ingest``). The work folder of every job that has ended (completed,
failed or cancelled) is removed, and leftovers are pruned at start-up.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import shutil
from pathlib import Path
from typing import Any

from daemon.clock import Clock, iso, utcnow
from daemon.jobs.evaluations import Evaluations
from daemon.jobs.queue import JobContext
from daemon.jobs.workers import Executor
from daemon.promote.promotion import Promoter
from evaluation.file_cache import file_sha256
from evaluation.model_resolution import CURRENT, list_versions
from store import checkpoints as claims
from store import job_table as jobq
from store import promotions
from store.database import Database
from vocab.contract.params import EvalSpec, TrainJobParams
from vocab.errors import InternalError, JobCancelled, VisionEvalError
from vocab.files import atomic_write_json, fsync_dir, publish_new

log = logging.getLogger(__name__)
TRAINED = "trained.json"  # in the work folder: what the worker's training returned


class Trainer:
    """Runs train jobs (see module contract)."""

    def __init__(self, db: Database, executor: Executor, evaluations: Evaluations, promoter: Promoter,
                 models_root: Path, work_root: Path, eval_batch: int, cache_root: Path,
                 clock: Clock = utcnow) -> None:
        """``cache_root``: where a COCO JSON dataset is converted (the evaluations' own, so that the auto-eval
        reads the very data the training read)."""
        self.db = db
        self.executor = executor
        self.evaluations = evaluations
        self.promoter = promoter
        self.models_root = models_root
        self.work_root = work_root
        self.eval_batch = eval_batch
        self.cache_root = cache_root
        self.clock = clock

    async def run(self, ctx: JobContext) -> dict[str, Any]:
        p = TrainJobParams.model_validate(ctx.job.params)
        name = p.model
        work = self.work_root / ctx.job.id
        published = await self._published_before(name, ctx.job.id)
        trained = await asyncio.to_thread(_read_trained, work)
        if published is not None:
            version, path, sha = published
            log.info("job %s: reusing %s, published before the job was interrupted", ctx.job.id, path)
            trained = trained or {"metrics": {}, "epochs": p.epochs}
        else:
            if trained is None:
                trained = await self._train(work, p, ctx)
            else:
                log.info("job %s: reusing its training output in %s", ctx.job.id, work)
            ctx.check_cancelled()
            version, path, sha = await self._publish(name, Path(trained["checkpoint"]), ctx)
        try:
            return await self._finish(p, version, path, sha, trained, ctx)
        except JobCancelled:
            await self._withdraw(name, path, sha, ctx.job.id)
            raise

    async def _train(self, work: Path, p: TrainJobParams, ctx: JobContext) -> dict[str, Any]:
        """Train in a worker; the output is recorded in the work folder before anything is published."""
        trained = await self.executor.run(
            "train",
            {"task": p.task, "base": p.base, "dataset_path": p.dataset_path, "epochs": p.epochs,
             "batch": p.batch, "imgsz": p.imgsz, "lr0": p.learning_rate, "patience": p.patience, "device": p.device,
             "work_dir": str(work), "cache_root": str(self.cache_root)},
            job_id=ctx.job.id, on_progress=ctx.phase(0.0, 0.8).progress, timeout=ctx.remaining(),
            cancel=ctx.cancel_event, on_detail=ctx.report_detail,
        )
        await asyncio.to_thread(atomic_write_json, work / TRAINED, trained, 2)
        return trained

    async def _finish(self, p: TrainJobParams, version: int, path: Path, sha: str, trained: dict[str, Any],
                      ctx: JobContext) -> dict[str, Any]:
        """Export, pipeline.json, and (when asked) evaluation and promotion decision of the published version."""
        name = p.model
        result: dict[str, Any] = {
            "model_name": name, "version": version, "checkpoint": str(path), "checkpoint_sha256": sha,
            "training": trained["metrics"], "epochs": trained["epochs"],
        }
        result.update(await self._export(path, p.imgsz, p.task, ctx))
        result["pipeline"] = await self._write_pipeline(name, version, p, trained["metrics"])
        if p.auto_eval or p.auto_promote:
            spec = EvalSpec(model_path=str(path), model_name=name, model_version=version, task=p.task,
                            dataset_path=p.dataset_path, imgsz=p.imgsz, batch=self.eval_batch,
                            weights=p.eval_weights, split=p.split)
            evaluation = await self.evaluations.run(spec, ctx.phase(0.85, 0.97), "train")
            result["evaluation"] = evaluation
            if p.auto_promote:
                result["promotion"] = await self.promoter.consider(spec, evaluation, ctx.phase(0.97, 1.0),
                                                                   actor="train", gates=p.gates)
        return result

    async def _published_before(self, name: str, job_id: str) -> tuple[int, Path, str] | None:
        """The version this job published before it was interrupted, if it is still there."""
        for claim in await self.db.read(lambda c: claims.claims_of_job(c, job_id)):
            versions = await asyncio.to_thread(list_versions, self.models_root / name)
            recorded = [(n, p) for n, p in versions.items() if str(p) == claim["path"]]  # where it was published
            for n, path in recorded + [(n, p) for n, p in versions.items() if (n, p) not in recorded]:
                if path.is_file() and await asyncio.to_thread(file_sha256, path) == claim["sha256"]:
                    return n, path, claim["sha256"]
        return None

    async def _withdraw(self, name: str, path: Path, sha: str, job_id: str) -> None:
        """A cancelled job's published version: removed (claim released) unless a decision has read it."""
        decided = await self.db.read(lambda c: promotions.decided_on(c, name, sha))
        current = self.models_root / name / CURRENT
        serves = current.is_file() and await asyncio.to_thread(file_sha256, current) == sha
        if decided or serves:
            log.info("job %s cancelled; %s stays: a promotion decision has read it", job_id, path)
            return
        for f in (path, path.with_suffix(".onnx")):
            await asyncio.to_thread(f.unlink, missing_ok=True)
        await asyncio.to_thread(fsync_dir, path.parent)
        await self.db.write(lambda c: claims.release_claim(c, name, sha))
        log.info("job %s cancelled; removed %s, which nothing had read into a decision", job_id, path)

    async def job_ended(self, job: jobq.Job, outcome: str, error: BaseException | None) -> None:
        """Queue listener: the work folder of a train job that has ended is removed."""
        if job.kind == "train":
            await asyncio.to_thread(_remove_tree, self.work_root / job.id)

    async def prune_work_folders(self) -> list[Path]:
        """Start-up: remove work folders of train jobs that are not queued or running (or are gone)."""
        active = await self.db.read(lambda c: {j.id for s in jobq.ACTIVE
                                               for j in jobq.list_jobs(c, status=s, kind="train", limit=10**6)})
        folders = await asyncio.to_thread(lambda: [d for d in self.work_root.iterdir() if d.is_dir()]
                                          if self.work_root.is_dir() else [])
        removed = [d for d in folders if d.name not in active]
        for d in removed:
            await asyncio.to_thread(_remove_tree, d)
            log.info("removed the work folder %s of a train job that has ended", d)
        return removed

    async def _publish(self, name: str, best: Path, ctx: JobContext) -> tuple[int, Path, str]:
        """Claim the checkpoint, then create the next free ``v<n>.pt`` (never overwriting one)."""
        sha = await asyncio.to_thread(file_sha256, best)
        model_dir = self.models_root / name
        await asyncio.to_thread(model_dir.mkdir, parents=True, exist_ok=True)
        now = iso(self.clock())
        await self.db.write(lambda c: claims.claim_checkpoint(c, name, sha, str(best), job_id=ctx.job.id, now=now))
        for _ in range(100):
            versions = await asyncio.to_thread(list_versions, model_dir)
            n = max(versions, default=0) + 1
            dest = model_dir / f"v{n}.pt"
            if await asyncio.to_thread(publish_new, best, dest, sha):
                await self.db.write(functools.partial(claims.set_claim_path, job_id=ctx.job.id, sha256=sha,
                                                      path=str(dest)))
                log.info("job %s: published %s", ctx.job.id, dest)
                return n, dest, sha
        raise InternalError(f"could not allocate a new version under {model_dir}")

    async def _export(self, path: Path, imgsz: int, task: str, ctx: JobContext) -> dict[str, Any]:
        """ONNX export beside the checkpoint; a failure is reported, not fatal."""
        try:
            out = await self.executor.run("export", {"checkpoint": str(path), "imgsz": imgsz, "task": task},
                                          job_id=ctx.job.id,
                                          on_progress=lambda _: None, timeout=ctx.remaining(),
                                          cancel=ctx.cancel_event)
            return {"onnx": out["onnx"], "onnx_error": None}
        except VisionEvalError as exc:
            if ctx.cancel_event.is_set():
                raise
            log.warning("job %s: ONNX export of %s failed: %s", ctx.job.id, path, exc.detail)
            return {"onnx": None, "onnx_error": exc.detail}

    async def _write_pipeline(self, name: str, version: int, p: TrainJobParams, metrics: dict[str, float]) -> str:
        path = self.models_root / name / "pipeline.json"
        value = {
            "model": name, "dataset": p.dataset_path, "split": p.split, "task": p.task, "base": p.base,
            "version": version,
            "parameters": p.model_dump(include={"epochs", "batch", "imgsz", "learning_rate", "patience", "device"}),
            "created_at": iso(self.clock()), "final_metrics": metrics,
        }
        await asyncio.to_thread(atomic_write_json, path, value, 2)
        return str(path)


def _read_trained(work: Path) -> dict[str, Any] | None:
    """The recorded training output of a job, if its checkpoint is still there."""
    try:
        trained = json.loads((work / TRAINED).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None
    return trained if isinstance(trained, dict) and Path(trained.get("checkpoint", "")).is_file() else None


def _remove_tree(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)
