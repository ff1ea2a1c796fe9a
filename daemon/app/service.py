"""The composition root: builds every part, starts them in order, stops them in reverse.

Start order: database -> the checkpoint reader (``meta_reader``) ->
recovery of interrupted jobs and of current.pt files (before anything can
run or be observed) -> workers (starting in the background) -> HTTP server
-> READY -> watcher, scheduler and systemd watchdog pings. The queue dispatches only once the workers are warm; the
watcher's first full scan catches up on versions never evaluated. ``close``
stops in reverse and is idempotent: running jobs go back to the queue.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import platform
import sqlite3
from typing import Any

from aiohttp import web

from daemon.app import sdnotify
from daemon.app.analyses import Analyses
from daemon.app.home_lock import HomeLock
from daemon.app.meta_reader import MetaReader
from daemon.app.prometheus import Telemetry
from daemon.app.scheduler import build_scheduler
from daemon.app.service_facade import DaemonFacade, Parts
from daemon.clock import Clock, iso, utcnow
from daemon.jobs.evaluations import Evaluations
from daemon.jobs.queue import JobQueue
from daemon.jobs.runner import JobRunner
from daemon.jobs.submissions import Submissions
from daemon.jobs.workers import Executor, WorkerPool
from daemon.promote.promotion import Promoter
from daemon.tracking.tracker import Tracker
from daemon.train.trainer import Trainer
from daemon.watch.ingest import Ingest
from daemon.watch.retry import Outcomes
from daemon.watch.watcher import Watcher
from evaluation import checkpoint_meta
from handlers.app import JsonErrorAppRunner, make_app
from store import job_table as jobq
from store.adopt_llamafarm import refuse_unusable
from store.database import Database
from vocab.config import Config

log = logging.getLogger(__name__)
# Connections the kernel holds for the event loop to accept (capped by net.core.somaxconn). aiohttp's 128
# dropped part of a burst of 200 connections: each dropped SYN is resent by the client after 1 s.
LISTEN_BACKLOG = 1024


def build_executor(config: Config) -> Executor:
    """The configured backend: local worker processes, or actors on a Ray cluster (imports ray only then)."""
    w = config.workers
    if w.backend == "ray":
        from daemon.jobs.ray_backend import RayExecutor

        return RayExecutor.from_config(w)
    return WorkerPool(w.count, str(config.state_dir), w.device, w.torch_threads, w.nice)


class Service:
    """The running daemon (see module contract). Handlers reach it through ``facade`` only."""

    def __init__(self, config: Config, *, executor: Executor | None = None, clock: Clock = utcnow) -> None:
        self.config = config
        self.clock = clock
        self.db: Database | None = None
        self.executor: Executor = executor or build_executor(config)
        self.queue: JobQueue | None = None
        self.submissions: Submissions | None = None
        self.evaluations: Evaluations | None = None
        self.promoter: Promoter | None = None
        self.tracker: Tracker | None = None
        self.watcher: Watcher | None = None
        # The watcher's own threads (listing, zip checks, catch-up hashing): never behind a job's I/O.
        self.watch_pool: concurrent.futures.ThreadPoolExecutor | None = None
        self.scheduler: Any = None
        self.meta_reader = MetaReader()  # checkpoints' metadata, read off the event loop's GIL
        self.telemetry = Telemetry()
        self.facade: DaemonFacade | None = None
        self._runner: web.AppRunner | None = None
        self._background: list[asyncio.Task[Any]] = []
        self.workers_ready = asyncio.Event()
        self.home_lock = HomeLock(config.db_path, config.models_root)
        self.bound_port: int | None = None
        self._closed = False

    # -- start ---------------------------------------------------------------------------------
    async def start(self) -> None:
        cfg = self.config
        # First: a database file that is not ours stops the start before anything is written or logged.
        refuse_unusable(cfg.db_path)
        self.home_lock.acquire()  # before anything reads the database: HomeInUse if another daemon has it
        self.db = Database(cfg.db_path)  # adopts a LlamaFarm eval.db, under the lock
        log.info("vision-evald starting: python %s, sqlite %s, models root %s, database %s",
                 platform.python_version(), sqlite3.sqlite_version, cfg.models_root, cfg.db_path)
        cfg.models_root.mkdir(parents=True, exist_ok=True)
        cfg.state_dir.mkdir(parents=True, exist_ok=True)
        self.meta_reader.start()
        checkpoint_meta.use_reader(self.meta_reader.read)
        requeued, failed = self.db.write_sync(lambda c: jobq.recover_interrupted(
            c, iso(self.clock()), cfg.jobs.max_interruptions))
        if requeued or failed:
            log.warning("recovered interrupted jobs: %d requeued, %d failed", len(requeued), len(failed))
        self.tracker = Tracker(cfg.mlflow, self.db, cfg.state_dir / "promoted", self.clock)
        self.evaluations = Evaluations(self.db, self.executor, cfg.state_dir / "artifacts", cfg.workers.device,
                                       cfg.converted_dir, self.clock, self.tracker)
        analyses = Analyses(self.db, self.executor, cfg.converted_dir)
        self.promoter = Promoter(self.db, self.evaluations, self.executor, cfg.models_root, cfg.state_dir / "promoted",
                                 cfg.promotion, self.clock, self.tracker)
        await self.promoter.reconcile()
        trainer = Trainer(self.db, self.executor, self.evaluations, self.promoter, cfg.models_root,
                          cfg.state_dir / "train", cfg.eval.batch, cfg.converted_dir, self.clock)
        await trainer.prune_work_folders()
        runner = JobRunner(self.evaluations, self.executor, self.promoter, trainer, analyses)
        self.queue = JobQueue(
            self.db, runner, concurrency=cfg.workers.count, max_queued=cfg.jobs.max_queued,
            timeouts={"eval": cfg.jobs.eval_timeout_s, "compare": cfg.jobs.compare_timeout_s,
                      "train": cfg.jobs.train_timeout_s},
            clock=self.clock, metrics=self.telemetry.jobs,
        )
        self.submissions = Submissions(cfg, self.queue)
        self.facade = DaemonFacade(cfg, Parts(
            db=self.db, queue=self.queue, submissions=self.submissions, analyses=analyses,
            promoter=self.promoter, executor=self.executor, telemetry=self.telemetry, tracker=self.tracker,
            workers_ready=self.workers_ready, closing=lambda: self._closed))
        outcomes = Outcomes(self.db, self.clock)
        self.queue.listeners += [outcomes.job_ended, trainer.job_ended]
        await outcomes.reconcile()
        self._background.append(asyncio.create_task(self._start_workers(), name="start-workers"))
        await self._start_http()
        self.tracker.start()
        if cfg.watch.enabled:
            self.watch_pool = concurrent.futures.ThreadPoolExecutor(2, thread_name_prefix="watch-io")
            ingest = Ingest(cfg, self.db, self.queue, self.clock, pool=self.watch_pool)
            self.watcher = Watcher(cfg.models_root, cfg.watch.settle_seconds, ingest,
                                   on_incomplete=ingest.incomplete, on_ignored=ingest.ignored, pool=self.watch_pool,
                                   relook=ingest.relook)
            outcomes.recheck = self.watcher.forget
            self.facade.parts.watcher = self.watcher
            self.watcher.start()
            self._background.append(asyncio.create_task(self.watcher.scan(), name="initial-scan"))
        self.scheduler = build_scheduler(
            self.db, rescan=self.watcher.scan if self.watcher else None,
            rescan_interval_s=cfg.watch.rescan_interval_s,
            wal_interval_s=cfg.scheduler.wal_checkpoint_interval_s,
            prune_interval_s=cfg.scheduler.prune_interval_s, retain_days=cfg.jobs.retain_finished_days,
            clock=self.clock,
        )
        self.scheduler.start()
        sdnotify.notify(f"READY=1\nSTATUS=serving on {cfg.server.host}:{self.bound_port}")
        interval = sdnotify.watchdog_interval_s()
        if interval:
            self._background.append(asyncio.create_task(self._watchdog_pings(interval), name="watchdog"))
        log.info("vision-evald ready on http://%s:%s", cfg.server.host, self.bound_port)

    async def _watchdog_pings(self, interval: float) -> None:
        """Tell systemd we are alive, only while healthy: a wedged daemon gets restarted."""
        while True:
            if self.facade is not None and self.facade.health()["ok"]:
                sdnotify.notify("WATCHDOG=1")
            await asyncio.sleep(interval)

    async def _start_workers(self) -> None:
        await self.executor.start()
        log.info("workers ready: %s", self.executor.info)
        self.workers_ready.set()
        assert self.queue is not None
        self.queue.start()

    async def _start_http(self) -> None:
        cfg = self.config.server
        assert self.facade is not None
        self._runner = JsonErrorAppRunner(
            make_app(self.facade), access_log=logging.getLogger("vision_evald.access"),
            access_log_format='%a "%r" %s %b %Tfs request_id=%{X-Request-Id}o',
        )
        await self._runner.setup()
        site = web.TCPSite(self._runner, cfg.host, cfg.port, shutdown_timeout=10, backlog=LISTEN_BACKLOG)
        await site.start()
        server = site._server  # the asyncio server: the real port when 0 was asked for
        sockets = getattr(server, "sockets", None) or []
        self.bound_port = sockets[0].getsockname()[1] if sockets else cfg.port

    # -- stop ----------------------------------------------------------------------------------
    async def close(self) -> None:
        """Stop in reverse order; running jobs are requeued. Idempotent."""
        if self._closed:
            return
        self._closed = True
        sdnotify.notify("STOPPING=1")
        if self.scheduler is not None:
            self.scheduler.shutdown(wait=False)
        if self.watcher is not None:
            await self.watcher.stop()
        if self.watch_pool is not None:
            self.watch_pool.shutdown(wait=False, cancel_futures=True)
        if self._runner is not None:
            await self._runner.cleanup()
        if self.queue is not None:
            await self.queue.close()
        if self.tracker is not None:
            await self.tracker.close()
        for task in self._background:
            task.cancel()
        await asyncio.gather(*self._background, return_exceptions=True)
        await self.executor.close()
        checkpoint_meta.use_reader(None)
        await asyncio.to_thread(self.meta_reader.close)
        if self.db is not None:
            self.db.close()
            log.info("vision-evald stopped")
        self.home_lock.release()
