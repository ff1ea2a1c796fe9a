"""The durable job queue: rows in SQLite, dispatched FIFO to at most N concurrent runs.

Contract:
- ``submit`` writes the job row before returning (the HTTP reply follows), or
  raises ``QueueFull`` when ``max_queued`` jobs are already waiting.
- Jobs start in creation order; at most ``concurrency`` run at once.
- A job ends ``completed``, ``failed`` (with a clear ``error``) or
  ``cancelled``; a job whose worker died is retried while attempts remain.
- ``close`` stops dispatching and puts running jobs back in the queue
  without using up an attempt: shutdown is not the job's fault.
- One log line per state transition.
- ``listeners`` are awaited once a job has ended for good (completed, failed
  or cancelled; not when it is requeued), after its final state is written,
  with the exception it failed with (None otherwise).
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import logging
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from daemon.app.prometheus import JobMetrics
from daemon.clock import Clock, iso, utcnow
from store import checkpoints
from store import job_table as jobq
from store.database import Database
from vocab import log_context
from vocab.errors import (
    JobCancelled,
    NotFound,
    QueueFull,
    ServiceClosed,
    StoreBusy,
    VisionEvalError,
    WorkerDied,
)

log = logging.getLogger(__name__)
PROGRESS_WRITE_INTERVAL_S = 0.5
STATE_WRITE_PATIENCE_S = 120.0  # how long a job's final state write is retried while the database is locked


@dataclass
class JobContext:
    """What a running job's code sees: its row, a progress sink, its deadline, its cancel flag,
    and a sink for the job's progress detail (a train job's latest epoch report)."""

    job: jobq.Job
    deadline: float  # time.monotonic() value
    report: Callable[[float], None]
    cancel_event: asyncio.Event = field(default_factory=asyncio.Event)  # shared by phases
    progress_span: tuple[float, float] = (0.0, 1.0)
    report_detail: Callable[[dict[str, Any]], None] = lambda detail: None

    def remaining(self) -> float:
        return max(0.0, self.deadline - time.monotonic())

    def check_cancelled(self) -> None:
        if self.cancel_event.is_set():
            raise JobCancelled("cancelled by request")

    def progress(self, fraction: float) -> None:
        lo, hi = self.progress_span
        self.report(lo + (hi - lo) * min(1.0, max(0.0, fraction)))

    def phase(self, lo: float, hi: float) -> JobContext:
        """A view of this context whose 0..1 progress maps onto [lo, hi] of the job's."""
        a, b = self.progress_span
        return dataclasses.replace(self, progress_span=(a + (b - a) * lo, a + (b - a) * hi))


Runner = Callable[[JobContext], Awaitable[dict[str, Any]]]
# (job, outcome "completed" | "failed" | "cancelled", the exception it failed with)
Listener = Callable[[jobq.Job, str, BaseException | None], Awaitable[None]]


@dataclass
class _Submission:
    """A job waiting to be written (``JobQueue.submit``); ``outcome`` gets its job, None or its refusal."""

    kind: str
    params: dict[str, Any]
    trigger: str
    max_attempts: int
    claim: tuple[str, str, str] | None
    outcome: asyncio.Future[jobq.Job | None]


@dataclass
class _Running:
    ctx: JobContext
    task: asyncio.Task[None]
    last_write: float = 0.0
    pending: float | None = None
    writer: asyncio.Task[None] | None = field(default=None)
    detail_writes: list[asyncio.Task[None]] = field(default_factory=list)


class JobQueue:
    """See module contract. ``run_job`` executes one job and returns its result."""

    def __init__(
        self, db: Database, run_job: Runner, *, concurrency: int, max_queued: int,
        timeouts: dict[str, float], clock: Clock = utcnow,
        metrics: JobMetrics | None = None,
    ) -> None:
        self.db = db
        self.run_job = run_job
        self.concurrency = concurrency
        self.max_queued = max_queued
        self.timeouts = timeouts
        self.clock = clock
        self.metrics = metrics or JobMetrics()
        self._wake = asyncio.Event()
        self._running: dict[str, _Running] = {}
        self._dispatcher: asyncio.Task[None] | None = None
        self._closed = False
        self._submissions: list[_Submission] = []
        self._writer: asyncio.Task[None] | None = None
        self.listeners: list[Listener] = []

    def now(self) -> str:
        return iso(self.clock())

    # -- submitting ----------------------------------------------------------------------------
    async def submit(
        self, kind: str, params: dict[str, Any], *, trigger: str = "api", max_attempts: int = 2,
        claim: tuple[str, str, str] | None = None,
    ) -> jobq.Job | None:
        """Persist a queued job and wake the dispatcher.

        With ``claim = (model_name, sha256, path)`` the job is created only if
        no job has claimed that checkpoint content yet (None otherwise), in the
        same transaction as the claim. Submissions that arrive while one is
        being written are written together, in one transaction (one commit,
        one sync to disk), each as if alone.
        """
        if self._closed:
            raise ServiceClosed("the daemon is shutting down and accepts no new jobs")
        pending = _Submission(kind, params, trigger, max_attempts, claim, asyncio.get_running_loop().create_future())
        self._submissions.append(pending)
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._write_submissions(), name="job-submissions")
        job = await pending.outcome
        if job is not None:
            log.info("job %s %s queued (trigger %s)", job.id, kind, trigger)
            self._wake.set()
        return job

    async def _write_submissions(self) -> None:
        """Write every waiting submission, in batches of those that arrived during the previous write."""
        while self._submissions:
            batch, self._submissions = self._submissions, []
            try:
                outcomes = await self.db.write(functools.partial(self._insert_all, batch))
            except BaseException as exc:  # noqa: BLE001 - every submission of the batch gets it
                for s in batch:
                    if not s.outcome.done():
                        s.outcome.set_exception(exc)
                if isinstance(exc, asyncio.CancelledError):
                    raise
                continue
            for s, outcome in zip(batch, outcomes):
                if s.outcome.done():
                    continue
                if isinstance(outcome, BaseException):
                    s.outcome.set_exception(outcome)
                else:
                    s.outcome.set_result(outcome)

    def _insert_all(self, batch: list[_Submission], conn: Any) -> list[jobq.Job | None | BaseException]:
        return [self._insert(conn, s) for s in batch]

    def _insert(self, conn: Any, s: _Submission) -> jobq.Job | None | BaseException:
        """One submission in its own savepoint of the batch's transaction: its job (None when its claim was
        taken), or the exception that refused it (QueueFull), its writes undone."""
        conn.execute("SAVEPOINT submission")
        try:
            if jobq.count_queued(conn) >= self.max_queued:
                raise QueueFull(f"the job queue is full ({self.max_queued} jobs waiting); retry later")
            for _ in range(5):
                job_id = secrets.token_hex(6)
                if jobq.get(conn, job_id) is None:
                    break
            if s.claim is not None and not checkpoints.claim_checkpoint(conn, *s.claim, job_id=job_id,
                                                                        now=self.now()):
                conn.execute("RELEASE submission")
                return None
            job = jobq.insert(conn, job_id=job_id, kind=s.kind, trigger=s.trigger, params=s.params,
                              created_at=self.now(), max_attempts=s.max_attempts)
        except Exception as exc:  # noqa: BLE001 - this submission's answer; the others go on
            conn.execute("ROLLBACK TO submission")
            conn.execute("RELEASE submission")
            return exc
        conn.execute("RELEASE submission")
        return job

    async def cancel(self, job_id: str) -> jobq.Job:
        """Cancel a queued job now, or stop a running one; NotFound for an unknown id."""
        job = await self.db.write(lambda c: jobq.request_cancel(c, job_id, self.now()))
        if job is None:
            raise NotFound(f"job not found: {job_id}")
        running = self._running.get(job_id)
        if running is not None and job.status == "running":
            running.ctx.cancel_event.set()  # the job's worker task (if any) is stopped by the executor
            log.info("job %s cancel requested while running", job_id)
        elif job.status == "cancelled":
            log.info("job %s cancelled", job_id)
            await self._notify(job, "cancelled", None)
        return job

    async def _notify(self, job: jobq.Job, outcome: str, error: BaseException | None) -> None:
        for listener in self.listeners:
            try:
                await listener(job, outcome, error)
            except Exception:  # noqa: BLE001 - a listener must not break the queue
                log.exception("job %s: a listener of its end failed", job.id)

    # -- dispatching ---------------------------------------------------------------------------
    def start(self) -> None:
        self._dispatcher = asyncio.create_task(self._dispatch_loop(), name="job-dispatcher")

    def running_ids(self) -> list[str]:
        return list(self._running)

    async def _dispatch_loop(self) -> None:
        while not self._closed:
            if len(self._running) < self.concurrency:
                try:
                    job = await self.db.write(lambda c: jobq.claim_next(c, self.now()))
                except StoreBusy as exc:  # another process holds the lock: try again, never die
                    log.warning("dispatcher: %s", exc.detail)
                    await asyncio.sleep(1.0)
                    continue
                if job is not None:
                    self._launch(job)
                    continue
            self._wake.clear()
            try:
                await asyncio.wait_for(self._wake.wait(), timeout=1.0)
            except TimeoutError:
                pass

    def _launch(self, job: jobq.Job) -> None:
        log.info("job %s %s running (attempt %d of %d)", job.id, job.kind, job.attempts, job.max_attempts)
        deadline = time.monotonic() + self.timeouts.get(job.kind, 3600.0)
        ctx = JobContext(job=job, deadline=deadline, report=functools.partial(self._progress, job.id),
                         report_detail=functools.partial(self._detail, job.id))
        task = asyncio.create_task(self._execute(ctx), name=f"job-{job.id}")
        self._running[job.id] = _Running(ctx, task)

    def _progress(self, job_id: str, value: float) -> None:
        running = self._running.get(job_id)
        if running is None:
            return
        running.pending = value
        if running.writer is None or running.writer.done():
            running.writer = asyncio.create_task(self._flush_progress(job_id, running))

    def _detail(self, job_id: str, detail: dict[str, Any]) -> None:
        """Store a job's progress detail now (rare: once per epoch); writes are FIFO, so the last
        one lands before the job's final state."""
        running = self._running.get(job_id)
        if running is not None:
            pending = [t for t in running.detail_writes if not t.done()]
            running.detail_writes = [*pending, asyncio.create_task(self._write_detail(job_id, detail))]

    async def _write_detail(self, job_id: str, detail: dict[str, Any]) -> None:
        try:
            await self.db.write(lambda c: jobq.set_progress_detail(c, job_id, detail))
        except StoreBusy:
            pass  # advisory, like progress; the next epoch writes it

    async def _flush_progress(self, job_id: str, running: _Running) -> None:
        wait = running.last_write + PROGRESS_WRITE_INTERVAL_S - time.monotonic()
        if wait > 0:
            await asyncio.sleep(wait)
        value, running.pending = running.pending, None
        if value is not None and job_id in self._running:
            running.last_write = time.monotonic()
            try:
                await self.db.write(lambda c: jobq.set_progress(c, job_id, value))
            except StoreBusy:
                pass  # progress is advisory; the next report writes it

    async def _write_state(self, fn: Callable[[Any], Any]) -> Any:
        """A job state write that must not be lost: retried while the database is locked by another
        process (up to STATE_WRITE_PATIENCE_S; after that the row stays running and start-up recovery
        requeues it)."""
        deadline = time.monotonic() + STATE_WRITE_PATIENCE_S
        delay = 0.25
        while True:
            try:
                return await self.db.write(fn)
            except StoreBusy as exc:
                if time.monotonic() + delay > deadline:
                    raise
                log.warning("database busy writing a job state (%s); retrying in %.2g s", exc.detail, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)

    async def _execute(self, ctx: JobContext) -> None:
        job = ctx.job
        model = job.params.get("model_name") or job.params.get("model")
        with log_context.bind(job_id=job.id, model=model if isinstance(model, str) else None):
            await self._execute_bound(ctx)

    async def _execute_bound(self, ctx: JobContext) -> None:
        job = ctx.job
        started = time.monotonic()
        outcome = "failed"
        error: BaseException | None = None
        try:
            result = await self.run_job(ctx)
        except asyncio.CancelledError:
            await self._write_state(lambda c: jobq.requeue(c, job.id, "requeued: the daemon was stopping",
                                                           refund_attempt=True))
            log.info("job %s requeued: daemon stopping", job.id)
            raise
        except JobCancelled:
            await self._write_state(lambda c: jobq.mark_cancelled(c, job.id, self.now()))
            outcome = "cancelled"
            log.info("job %s cancelled", job.id)
        except WorkerDied as exc:
            outcome, error = await self._worker_died(job, exc), exc
        except VisionEvalError as exc:
            error, reason = exc, exc.detail
            await self._write_state(lambda c: jobq.fail(c, job.id, reason, self.now()))
            log.info("job %s failed: %s", job.id, reason)
        except Exception as exc:  # noqa: BLE001 - a bug must fail the job, never the daemon
            log.exception("job %s crashed", job.id)
            error = exc
            detail = f"internal error: {type(exc).__name__}: {exc}"
            await self._write_state(lambda c: jobq.fail(c, job.id, detail, self.now()))
        else:
            await self._write_state(lambda c: jobq.complete(c, job.id, result, self.now()))
            outcome = "completed"
            log.info("job %s completed", job.id)
        finally:
            ended = self._running.pop(job.id, None)
            if ended is not None and ended.writer is not None:
                ended.writer.cancel()  # a progress write still waiting would only be dropped (status != running)
            self._wake.set()
        self.metrics.observe(job.kind, outcome, time.monotonic() - started)
        if outcome != "retried":
            await self._notify(job, outcome, error)

    async def _worker_died(self, job: jobq.Job, exc: WorkerDied) -> str:
        """Retry while attempts remain, else fail; returns the outcome."""
        if job.attempts < job.max_attempts:
            note = f"{exc.detail}; retrying (attempt {job.attempts} of {job.max_attempts} used)"
            await self._write_state(lambda c: jobq.requeue(c, job.id, note, refund_attempt=False))
            log.warning("job %s requeued: %s", job.id, exc.detail)
            return "retried"
        detail = f"{exc.detail}; giving up after {job.attempts} attempt(s)"
        await self._write_state(lambda c: jobq.fail(c, job.id, detail, self.now()))
        log.warning("job %s failed: %s", job.id, detail)
        return "failed"

    async def close(self) -> None:
        """Stop dispatching; requeue running jobs without using up an attempt. Idempotent."""
        if self._closed:
            return
        self._closed = True
        if self._dispatcher is not None:
            self._dispatcher.cancel()
            await asyncio.gather(self._dispatcher, return_exceptions=True)
        tasks = [r.task for r in self._running.values()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
