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

from daemon.app.models_view import ShaCache
from daemon.clock import Clock, iso, utcnow
from daemon.jobs.queue import JobQueue
from daemon.watch.watcher import FileState
from evaluation.datasets import load_dataset
from evaluation.model_resolution import version_of
from store import checkpoints as states
from store import promotions
from store.database import Database
from vocab.config import Config
from vocab.errors import QueueFull, VisionEvalError
from vocab.files import is_under
from vocab.terms import SPLITS

log = logging.getLogger(__name__)
PIPELINE_FILE = "pipeline.json"


class Skip(Exception):
    """This checkpoint cannot be evaluated as things stand; the message says why."""


def dataset_for(config: Config, model_dir: Path) -> tuple[Path, str]:
    """The dataset YAML a model is evaluated on and its split (pipeline.json's ``split``, else
    ``[eval] split``) (see module contract); Skip if there is none or it lacks the split."""
    pipeline = model_dir / PIPELINE_FILE
    raw: str = ""
    split = config.eval.split
    if pipeline.is_file():
        try:
            data = json.loads(pipeline.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise Skip(f"{pipeline} is not valid JSON: {exc}") from exc
        raw = data.get("dataset") or "" if isinstance(data, dict) else ""
        split = (data.get("split") or split) if isinstance(data, dict) else split
        if split not in SPLITS:
            raise Skip(f"{pipeline} names split {split!r}; use one of {', '.join(SPLITS)}")
    if not raw and model_dir.name in config.models:
        raw = config.models[model_dir.name].dataset
    if not raw:
        raw = config.watch.default_dataset
    if not raw:
        raise Skip(
            f"no dataset for model {model_dir.name}: add 'dataset' to {pipeline}, "
            f"[models.{model_dir.name}] dataset, or [watch] default_dataset to the config"
        )
    p = Path(raw).expanduser()
    p = (p if p.is_absolute() else model_dir / p).resolve()
    if not is_under(p, config.allowed_roots):
        raise Skip(f"dataset {p} is outside the allowed directories")
    try:
        load_dataset(p, split)
    except VisionEvalError as exc:
        raise Skip(f"dataset {p} cannot be evaluated: {exc.detail}") from exc
    return p, split


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
        self.shas = ShaCache()

    async def _io(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self.pool, fn, *args)

    async def __call__(self, path: Path, state: FileState) -> bool:
        """Handle one stable checkpoint; False to be asked again at the next scan."""
        name = path.parent.name
        root = self.config.models_root.resolve()
        real = path.resolve()
        if not real.is_relative_to(root):
            await self._skip(path, name, None, f"{path} is a link that leaves the models root")
            return True
        sha = await self._io(self.shas.sha256, real)
        if sha is None:
            return False  # gone meanwhile
        go = await self._claimed(path, name, sha)
        if go is not None:
            return go
        try:
            dataset, split = await self._io(dataset_for, self.config, path.parent)
        except Skip as exc:
            await self._skip(path, name, sha, str(exc))
            return False  # asked again at the next scan: a dataset may be configured by then
        params = {
            "model": str(path), "model_path": str(real), "model_name": name, "model_version": version_of(path),
            "dataset_path": str(dataset), "imgsz": self.config.eval.imgsz, "batch": self.config.eval.batch,
            "weights": None, "allow_class_mismatch": False, "auto_promote": True, "split": split,
        }
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
            await self.db.write(lambda c: states.set_queued(c, name, sha, str(path), job.id, now))
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
        if st is not None and st["state"] == "retry":
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
