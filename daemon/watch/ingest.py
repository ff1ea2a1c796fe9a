"""What happens to a stable checkpoint the watcher found: one eval job with auto-promote.

Exactly one job per checkpoint content of a model: the job is created in the
same transaction that claims ``(model name, sha256)``; a checkpoint already
claimed (evaluated before, or written by a train job) creates nothing. The
dataset of a model is ``pipeline.json``'s ``dataset`` in its folder, else
``[models.<name>] dataset`` in the config, else ``watch.default_dataset``
(evaluated on ``pipeline.json``'s ``split``, else ``[eval] split``);
with none, or one that cannot be evaluated, the checkpoint is recorded as
skipped with the reason and looked at again at the next scan.

A claimed checkpoint is looked at again only when its state says so: an
outside failure whose retry is due (``daemon.watch.retry``), or a version whose
train job ended without completing before any promotion decision read it
(its claim is released and the watcher evaluates it). Hashing and dataset checks run on the watcher's own thread
pool, so a running job's hashing never queues behind a rescan.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from daemon.clock import Clock, iso, utcnow
from daemon.jobs.eval_settings import eval_shape
from daemon.jobs.queue import JobQueue
from daemon.watch.sources import Skip, changed, dataset_source, read_pipeline, stamp
from daemon.watch.watcher import FileState
from evaluation import task_data
from evaluation.checkpoint_meta import read_checkpoint_meta
from evaluation.file_cache import sha256_if_exists
from evaluation.model_resolution import CURRENT, version_of
from store import checkpoints as states
from store import promotions
from store.database import Database
from vocab.config import Config
from vocab.contract.params import EvalJobParams
from vocab.errors import CheckpointError, InvalidRequest, QueueFull, VisionEvalError
from vocab.files import is_under
from vocab.tasks import DEFAULT_TASK

log = logging.getLogger(__name__)


def dataset_for(config: Config, model_dir: Path, pipeline: dict[str, Any], task: str = DEFAULT_TASK,
                kpt_shape: Any = None) -> tuple[Path, str]:
    """The dataset a model is evaluated on and its split (``daemon.watch.sources``); Skip if there is none,
    it lies outside the allowed roots, or it cannot be evaluated with a ``task`` checkpoint."""
    p, split = dataset_source(config, model_dir, pipeline)
    if not is_under(p, config.allowed_roots):
        raise Skip(f"dataset {p} is outside the allowed directories")
    try:
        task_data.check(p, split, task, model_kpt_shape=kpt_shape)
    except VisionEvalError as exc:
        raise Skip(f"dataset {p} cannot be evaluated: {exc.detail}") from exc
    return p, split


def held_task(model_dir: Path) -> str | None:
    """The task of the checkpoint the folder's current.pt holds; None without a readable one."""
    try:
        return read_checkpoint_meta(model_dir / CURRENT).task if (model_dir / CURRENT).is_file() else None
    except CheckpointError:
        return None


def plan(config: Config, path: Path, real: Path) -> dict[str, Any]:
    """The watcher's eval job params for a stable checkpoint (``EvalJobParams``, stored form); Skip with the
    reason when it cannot be evaluated: an unusable file, another task than the folder's current.pt, no
    usable dataset, an image size outside the task's bounds."""
    model_dir = path.parent
    try:
        meta = read_checkpoint_meta(real)
    except CheckpointError as exc:
        raise Skip(f"{path.name} cannot be evaluated: {exc.detail}") from None
    held = held_task(model_dir)
    if held is not None and held != meta.task:
        raise Skip(f"{path.name} is a {meta.task} model but current.pt holds a {held} model: a model folder serves "
                   "one task (put it in a folder of its own)")
    pipeline = read_pipeline(model_dir)
    dataset, split = dataset_for(config, model_dir, pipeline, meta.task, meta.kpt_shape)
    try:
        imgsz, batch = eval_shape(config, meta.task, model_dir.name, pipeline=pipeline, trained_imgsz=meta.imgsz)
    except InvalidRequest as exc:
        raise Skip(f"{path.name} cannot be evaluated at the configured size: {exc.detail}") from None
    return EvalJobParams(model=str(path), model_path=str(real), model_name=model_dir.name,
                         model_version=version_of(path), task=meta.task, dataset_path=str(dataset), imgsz=imgsz,
                         batch=batch, split=split, auto_promote=True).stored()


T = TypeVar("T")


class Ingest:
    """Turns stable checkpoints into watcher eval jobs (see module contract)."""

    def __init__(self, config: Config, db: Database, queue: JobQueue, clock: Clock = utcnow,
                 pool: ThreadPoolExecutor | None = None) -> None:
        self.config = config
        self.db = db
        self.queue = queue
        self.clock = clock
        self.pool = pool

    async def _io(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self.pool, fn, *args)

    async def relook(self) -> list[Path]:
        """Checkpoints that failed or were refused because of their dataset or export, and whose dataset or
        export has changed since (``daemon.watch.sources``): the watcher looks at them again."""
        rows = await self.db.read(states.waiting_on_cause)
        due = []
        for row in rows:
            path = Path(row["path"])
            if path.is_file() and changed(row["cause"], row["cause_stamp"], await self._io(stamp, self.config, path)):
                due.append(path)
        return due

    async def __call__(self, path: Path, state: FileState) -> bool:
        """Handle one stable checkpoint; False to be asked again at the next scan."""
        name = path.parent.name
        root = self.config.models_root.resolve()
        real = path.resolve()
        if not real.is_relative_to(root):
            await self._skip(path, name, None, f"{path} is a link that leaves the models root")
            return True
        sha = await self._io(sha256_if_exists, real)
        if sha is None:
            return False  # gone meanwhile
        go = await self._claimed(path, name, sha)
        if go is not None:
            return go
        try:
            params = await self._io(plan, self.config, path, real)
        except Skip as exc:
            await self._skip(path, name, sha, str(exc))
            return False  # asked again at the next scan: a dataset may be configured by then
        stamped = json.dumps(await self._io(stamp, self.config, path))
        try:
            job = await self.queue.submit("eval", params, trigger="watcher", claim=(name, sha, str(path)),
                                          max_attempts=self.config.jobs.max_attempts)
        except QueueFull:
            log.warning("watcher: queue full; %s will be retried at the next scan", path)
            return False
        await self.db.write(lambda c: states.clear_skip(c, str(path)))
        if job is None:
            log.info("watcher: %s (sha256 %s...) was already handled", path, sha[:12])
        else:
            now = iso(self.clock())
            await self.db.write(lambda c: states.set_queued(c, name, sha, str(path), job.id, now, stamped))
            log.info("watcher: %s -> job %s", path, job.id)
        return True

    async def _claimed(self, path: Path, name: str, sha: str) -> bool | None:
        """For a claimed checkpoint: True (handled), False (ask again later); None when it is to be
        queued now (an outside failure whose retry is due, a version its train job left behind), its
        claim released."""
        claim, st, decided = await self.db.read(lambda c: (states.claim(c, name, sha), states.get(c, name, sha),
                                                            promotions.decided_on(c, name, sha)))
        if claim is None:
            return None
        if st is not None and st["cause"] is not None and changed(st["cause"], st["cause_stamp"],
                                                                   await self._io(stamp, self.config, path)):
            log.info("watcher: the %s of %s changed since it %s; evaluating it again", st["cause"], path,
                     "failed" if st["state"] == "failed" else "was refused")
        elif st is not None and st["state"] == "retry":
            if st["next_retry_at"] and st["next_retry_at"] > iso(self.clock()):
                return False
            log.info("watcher: retrying %s after an outside failure (%s)", path, st["last_error"])
        elif claim["kind"] == "train" and claim["status"] in ("failed", "cancelled") and not decided:
            log.info("watcher: train job %s ended %s after publishing %s; evaluating it", claim["job_id"],
                     claim["status"], path)
        else:
            # Already owned by a job (e.g. a train job publishes v<n>.pt before its pipeline.json):
            # nothing to do, and in particular nothing to record as skipped.
            await self.db.write(lambda c: states.clear_skip(c, str(path)))
            log.info("watcher: %s (sha256 %s...) was already handled", path, sha[:12])
            return True
        await self.db.write(lambda c: states.release_claim(c, name, sha))
        return None

    async def incomplete(self, path: Path, state: FileState) -> bool:
        """A checkpoint that stays unchanged but is not a complete zip archive: recorded as skipped."""
        await self._skip(path, path.parent.name, None,
                         f"{path.name} is not a complete checkpoint (truncated or corrupt: not a complete zip "
                         "archive); it is evaluated once it is rewritten")
        return True

    async def ignored(self, path: Path, name: str, reason: str | None) -> None:
        """An entry the watcher ignores (see ``daemon.watch.watcher``): recorded as skipped (the watcher logs it);
        reason None: it is gone, and so is its record."""
        if reason is None:
            await self.db.write(lambda c: states.clear_skip(c, str(path)))
            return
        now = iso(self.clock())
        await self.db.write(lambda c: states.record_skip(c, str(path), name, None, reason, now))

    async def _skip(self, path: Path, name: str, sha: str | None, reason: str) -> None:
        """Record (and log) a skip, once while its sha256 and reason stay the same."""
        before = await self.db.read(lambda c: states.skip_of(c, str(path)))
        if before is not None and (before["sha256"], before["reason"]) == (sha, reason):
            return
        log.warning("watcher: skipping %s: %s", path, reason)
        now = iso(self.clock())
        await self.db.write(lambda c: states.record_skip(c, str(path), name, sha, reason, now))
