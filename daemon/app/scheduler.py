"""Periodic maintenance on apscheduler: the watcher's rescan, WAL checkpoints, pruning old jobs."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import timedelta

from apscheduler.schedulers.asyncio import AsyncIOScheduler

from daemon.clock import Clock, iso
from store import job_table as jobq
from store import outbox
from store.database import Database

log = logging.getLogger(__name__)


class _CancelledAtShutdown(logging.Filter):
    """apscheduler's shutdown cancels the task of every job still due or running, and its executor logs each
    CancelledError as "Error running job" with a traceback: an ERROR at a stop that meets a rescan, whether
    the job had started or was only about to. Such a job did not fail: its record becomes one DEBUG line
    without the traceback. On the executors' logger itself, so every handler sees the same."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and isinstance(record.exc_info[1], asyncio.CancelledError):
            record.levelno, record.levelname = logging.DEBUG, "DEBUG"
            record.msg = "job %s stopped by the scheduler's shutdown"  # its args: the job id
            record.exc_info = record.exc_text = None
        return True


CANCELLED_AT_SHUTDOWN = _CancelledAtShutdown()


def build_scheduler(
    db: Database, *, rescan: Callable[[], Awaitable[int]] | None, rescan_interval_s: float,
    wal_interval_s: float, prune_interval_s: float, retain_days: float, clock: Clock,
) -> AsyncIOScheduler:
    """A scheduler (not yet started) with the daemon's periodic jobs."""
    scheduler = AsyncIOScheduler()
    logging.getLogger("apscheduler.executors.default").addFilter(CANCELLED_AT_SHUTDOWN)  # added once

    async def wal_checkpoint() -> None:
        await db.write_checkpoint()

    async def prune() -> None:
        cutoff = iso(clock() - timedelta(days=retain_days))
        n = await db.write(lambda c: jobq.prune_finished(c, cutoff))
        sent = await db.write(lambda c: outbox.prune_done(c, cutoff))
        if n or sent:
            log.info("pruned %d finished jobs and %d sent MLflow records older than %s", n, sent, cutoff)

    if rescan is not None:
        scheduler.add_job(rescan, "interval", seconds=rescan_interval_s, id="rescan",
                          coalesce=True, max_instances=1)
    scheduler.add_job(wal_checkpoint, "interval", seconds=wal_interval_s, id="wal-checkpoint",
                      coalesce=True, max_instances=1)
    scheduler.add_job(prune, "interval", seconds=prune_interval_s, id="prune-jobs",
                      coalesce=True, max_instances=1)
    return scheduler
