"""What happens to a stable checkpoint the watcher found: one eval job with auto-promote.

Exactly one job per checkpoint content of a model: the job is created in the
same transaction that claims ``(model name, sha256)``; a checkpoint already
claimed (evaluated before, or written by a train job) creates nothing. The
dataset of a model is ``pipeline.json``'s ``dataset`` in its folder, else
``[models.<name>] dataset`` in the config, else ``watch.default_dataset``
(evaluated on ``pipeline.json``'s ``split``, else ``[eval] split``);
with none, or one that cannot be evaluated, the checkpoint is recorded as
skipped with the reason.
"""

from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path

from daemon.clock import Clock, iso, utcnow
from daemon.config import Config
from daemon.queue import JobQueue
from daemon.watcher import FileState
from evaluation.datasets import SPLITS, file_sha256, load_dataset
from evaluation.errors import QueueFull, VisionEvalError
from evaluation.models import is_under, version_of
from store import jobs as jobq
from store import promotions
from store.database import Database

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


class Ingest:
    """Turns stable checkpoints into watcher eval jobs (see module contract)."""

    def __init__(self, config: Config, db: Database, queue: JobQueue, clock: Clock = utcnow) -> None:
        self.config = config
        self.db = db
        self.queue = queue
        self.clock = clock

    async def __call__(self, path: Path, state: FileState) -> bool:
        """Handle one stable checkpoint; False to be asked again at the next scan."""
        name = path.parent.name
        root = self.config.models_root.resolve()
        real = path.resolve()
        if not real.is_relative_to(root):
            await self._skip(path, name, None, f"{path} is a link that leaves the models root")
            return True
        sha = await asyncio.to_thread(file_sha256, real)
        if sha in await self.db.read(lambda c: jobq.claimed_shas(c, name)):
            # Already owned by a job (e.g. a train job publishes v<n>.pt before its pipeline.json):
            # nothing to do, and in particular nothing to record as skipped.
            await self.db.write(lambda c: promotions.clear_skip(c, str(path)))
            log.info("watcher: %s (sha256 %s...) was already handled", path, sha[:12])
            return True
        try:
            dataset, split = await asyncio.to_thread(dataset_for, self.config, path.parent)
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
        await self.db.write(lambda c: promotions.clear_skip(c, str(path)))
        if job is None:
            log.info("watcher: %s (sha256 %s...) was already handled", path, sha[:12])
        else:
            log.info("watcher: %s -> job %s", path, job.id)
        return True

    async def incomplete(self, path: Path, state: FileState) -> bool:
        """A checkpoint that stays unchanged but is not a complete zip archive: recorded as skipped."""
        await self._skip(path, path.parent.name, None,
                         f"{path.name} is not a complete checkpoint (truncated or corrupt: not a complete zip "
                         "archive); it is evaluated once it is rewritten")
        return True

    async def _skip(self, path: Path, name: str, sha: str | None, reason: str) -> None:
        log.warning("watcher: skipping %s: %s", path, reason)
        now = iso(self.clock())
        await self.db.write(lambda c: promotions.record_skip(c, str(path), name, sha, reason, now))
