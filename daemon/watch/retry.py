"""Which failures of a watcher job are the checkpoint's own, and when an outside one is retried.

A checkpoint's own faults (corrupt or truncated file, wrong task, class
mismatch, load error, a bug the file triggers) fail again on the same bytes:
they wait until the file's bytes change. Outside failures (dataset missing or
unreadable, worker died, timeout, database busy, a broken state folder) say
nothing about the bytes: they are retried on ``RETRY_BACKOFF`` until they
succeed.

``Outcomes`` listens to the job queue and keeps ``checkpoint_states`` (in the
database, so a restart keeps it) in step with the watcher's jobs; it asks the
watcher to look again at a checkpoint whose retry is scheduled, or whose
train job ended without completing.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from daemon.clock import Clock, iso, utcnow
from store import checkpoints as states
from store import promotions
from store.database import Database
from store.job_table import Job
from vocab.errors import (
    ClassMismatchError,
    DatasetError,
    JobError,
    JobTimedOut,
    QueueFull,
    ServiceClosed,
    StoreBusy,
    WorkerDied,
)

log = logging.getLogger(__name__)

# Delay before retry n (1-based) of an outside failure; the last one repeats (hourly) for ever.
RETRY_BACKOFF: tuple[timedelta, ...] = (
    timedelta(minutes=1), timedelta(minutes=5), timedelta(minutes=30), timedelta(hours=1),
)
_OUTSIDE = (DatasetError, WorkerDied, JobTimedOut, StoreBusy, ServiceClosed, QueueFull, OSError)


def is_outside(exc: BaseException | None) -> bool:
    """Whether ``exc`` (why a job failed; None: unknown) is an outside failure worth retrying."""
    if exc is None:
        return True  # unknown (e.g. found after a crash): retrying is safe, an own fault fails again
    if isinstance(exc, ClassMismatchError):
        return False
    return isinstance(exc, _OUTSIDE) or type(exc) is JobError


def next_retry(now: datetime, failures: int) -> datetime:
    """When to retry after ``failures`` (>= 1) outside failures in a row."""
    return now + RETRY_BACKOFF[min(failures, len(RETRY_BACKOFF)) - 1]


class Outcomes:
    """Job-end listener and start-up reconciliation for the watcher's checkpoints (see module contract)."""

    def __init__(self, db: Database, clock: Clock = utcnow, recheck: Callable[[Path], None] | None = None) -> None:
        self.db = db
        self.clock = clock
        self.recheck = recheck  # the watcher's ``forget``: look at this path again at the next scan

    async def job_ended(self, job: Job, outcome: str, error: BaseException | None) -> None:
        if job.kind == "eval" and job.trigger == "watcher":
            detail = getattr(error, "detail", None) or (str(error) if error is not None else job.error)
            await self._settle(job.id, outcome, error, detail)
        elif job.kind == "train" and outcome != "completed":
            for c in await self.db.read(lambda conn: states.claims_of_job(conn, job.id)):
                self._recheck(c["path"])

    async def reconcile(self) -> None:
        """Start-up: states left 'queued' by a crash between a job's end and its listener."""
        for row in await self.db.read(states.unsettled):
            outcome = {"completed": "completed", "cancelled": "cancelled"}.get(row["status"] or "", "failed")
            await self._write(row, outcome, None, row["error"] or "the job of this checkpoint is gone")

    async def _settle(self, job_id: str, outcome: str, error: BaseException | None, detail: str | None) -> None:
        claims = await self.db.read(lambda c: states.claims_of_job(c, job_id))
        for claim in claims:
            stored = await self.db.read(functools.partial(states.get, model_name=claim["model_name"],
                                                          sha256=claim["sha256"]))
            await self._write({**claim, "attempts": 0, **(stored or {}), "job_id": job_id}, outcome, error, detail)

    async def _write(self, row: dict[str, Any], outcome: str, error: BaseException | None,
                     detail: str | None) -> None:
        """Record how a job of this checkpoint ended; schedule a retry for an outside failure."""
        now = self.clock()
        name, sha, path = row["model_name"], row["sha256"], row["path"]
        fields: dict[str, Any] = {"state": "evaluated" if outcome == "completed" else outcome, "last_error": None,
                                  "attempts": row["attempts"], "next_retry_at": None}
        if outcome == "completed":
            decision = await self.db.read(lambda c: promotions.latest_on(c, name, sha))
            if decision is not None and decision["decision"] == "refused":
                fields["cause"] = decision["details"].get("cause")
        elif outcome == "cancelled":
            fields["last_error"] = "cancelled by request; evaluated again once its bytes change"
        elif outcome == "failed" and is_outside(error):
            failures = int(row["attempts"]) + 1
            when = next_retry(now, failures)
            fields.update(state="retry", last_error=detail, attempts=failures, next_retry_at=iso(when),
                          cause="dataset" if isinstance(error, DatasetError) else None)
            log.warning("watcher: %s failed for an outside reason (%s); retry %d at %s", path, detail, failures,
                        iso(when))
            self._recheck(path)
        elif outcome == "failed" and isinstance(error, ClassMismatchError):
            fields.update(last_error=f"{detail}; evaluated again once its dataset or pipeline.json changes",
                          attempts=int(row["attempts"]) + 1, cause="dataset")
        elif outcome == "failed":
            fields.update(last_error=f"{detail}; evaluated again once its bytes change",
                          attempts=int(row["attempts"]) + 1)
            log.warning("watcher: %s failed: %s; it waits until its bytes change", path, detail)
        await self.db.write(lambda c: states.put(c, name, sha, path, job_id=row.get("job_id"), now=iso(now),
                                                 **fields))

    def _recheck(self, path: str) -> None:
        if self.recheck is not None:
            self.recheck(Path(path))
