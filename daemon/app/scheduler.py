"""Periodic maintenance on apscheduler: the watcher's rescan, WAL checkpoints, pruning old jobs."""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

from apscheduler.schedulers.asyncio import AsyncIOScheduler

from daemon.clock import Clock, iso
from store import job_table as jobq
from store import outbox
from store.database import Database

log = logging.getLogger(__name__)


def _quiet_on_shutdown(func: Callable[[], Awaitable[Any]]) -> Callable[[], Awaitable[Any]]:
    """apscheduler's shutdown cancels the task of a job that is running and logs the CancelledError as
    'Job ... raised an exception' with a traceback: an ERROR at every stop that meets a rescan. A job
    stopped by shutdown did not fail; it ends quietly (same name, so the log lines stay the same)."""
    @functools.wraps(func)
    async def run() -> Any:
        try:
            return await func()
        except asyncio.CancelledError:
            log.debug("%s stopped by the scheduler's shutdown", getattr(func, "__qualname__", func))
            return None
    return run


def build_scheduler(
    db: Database, *, rescan: Callable[[], Awaitable[int]] | None, rescan_interval_s: float,
    wal_interval_s: float, prune_interval_s: float, retain_days: float, clock: Clock,
) -> AsyncIOScheduler:
    """A scheduler (not yet started) with the daemon's periodic jobs."""
    scheduler = AsyncIOScheduler()

    async def wal_checkpoint() -> None:
        await db.write_checkpoint()

    async def prune() -> None:
        cutoff = iso(clock() - timedelta(days=retain_days))
        n = await db.write(lambda c: jobq.prune_finished(c, cutoff))
        sent = await db.write(lambda c: outbox.prune_done(c, cutoff))
        if n or sent:
            log.info("pruned %d finished jobs and %d sent MLflow records older than %s", n, sent, cutoff)

    if rescan is not None:
        scheduler.add_job(_quiet_on_shutdown(rescan), "interval", seconds=rescan_interval_s, id="rescan",
                          coalesce=True, max_instances=1)
    scheduler.add_job(_quiet_on_shutdown(wal_checkpoint), "interval", seconds=wal_interval_s, id="wal-checkpoint",
                      coalesce=True, max_instances=1)
    scheduler.add_job(_quiet_on_shutdown(prune), "interval", seconds=prune_interval_s, id="prune-jobs",
                      coalesce=True, max_instances=1)
    return scheduler
