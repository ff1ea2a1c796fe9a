"""The daemon as the HTTP layer sees it: ``DaemonFacade``, the implementation of ``handlers.facade.Facade``.

The composition root (``daemon.app.service``) builds it from the started parts
and hands it to the app; handlers reach nothing else. It only routes and
shapes: submissions go to ``Submissions``, reads to the store, decisions to
the ``Promoter``, analyses to ``Analyses``. The leaderboard JSON is cached
until the next database write (polling dashboards ask far more often than
results change; every write -- this process is the only writer --
invalidates it).
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from daemon.app.analyses import Analyses
from daemon.app.models_view import model_detail, model_list
from daemon.app.prometheus import Snapshot, Telemetry, promoted_from
from daemon.jobs.gpu_check import cpu_fallback_reason
from daemon.jobs.queue import JobQueue
from daemon.jobs.submissions import Submissions
from daemon.jobs.workers import Executor
from daemon.promote.promotion import Promoter
from daemon.tracking.tracker import Tracker
from daemon.watch.watcher import Watcher
from evaluation.model_resolution import expand_user
from handlers.facade import HttpSettings
from store import job_table as jobq
from store import promotions, rankings, results
from store.database import Database
from vocab.config import Config
from vocab.contract.requests import CompareRequest, EvalRequest, PromoteRequest, TrainRequest
from vocab.errors import Conflict, InvalidRequest, NotFound


@dataclasses.dataclass
class Parts:
    """The started parts the facade routes to. ``watcher`` is None when watching is off (and until it
    starts, after the HTTP server); ``closing`` says whether the daemon is shutting down."""

    db: Database
    queue: JobQueue
    submissions: Submissions
    analyses: Analyses
    promoter: Promoter
    executor: Executor
    telemetry: Telemetry
    tracker: Tracker
    workers_ready: asyncio.Event
    closing: Callable[[], bool]
    watcher: Watcher | None = None


def http_settings(config: Config) -> HttpSettings:
    """The HTTP server's settings, from ``[server]``."""
    s = config.server
    return HttpSettings(host=s.host, allowed_hosts=s.allowed_hosts, allowed_origins=s.allowed_origins,
                        max_body_bytes=s.max_body_bytes, auth_token=s.auth_token, upstream_url=s.upstream_url)


class DaemonFacade:
    """``handlers.facade.Facade`` over the daemon's parts (see module contract)."""

    def __init__(self, config: Config, parts: Parts) -> None:
        self._models_root = config.models_root
        self._http = http_settings(config)
        self._require_gpu = config.workers.require_gpu
        self.parts = parts
        self._leaderboards: dict[tuple[Any, ...], tuple[int, bytes]] = {}

    @property
    def http(self) -> HttpSettings:
        return self._http

    # -- jobs ----------------------------------------------------------------------------------
    async def submit_eval(self, request: EvalRequest) -> jobq.Job:
        return await self.parts.submissions.eval(request)

    async def submit_compare(self, request: CompareRequest) -> jobq.Job:
        return await self.parts.submissions.compare(request)

    async def submit_train(self, request: TrainRequest) -> jobq.Job:
        return await self.parts.submissions.train(request)

    async def job(self, job_id: str, kinds: tuple[str, ...] = jobq.KINDS) -> jobq.Job:
        """A job by id; NotFound when there is none of one of ``kinds``."""
        job = await self.parts.db.read(lambda c: jobq.get(c, job_id))
        if job is None or job.kind not in kinds:
            what = "job" if kinds == jobq.KINDS else f"{' or '.join(kinds)} job"
            raise NotFound(f"{what} not found: {job_id}")
        return job

    async def list_jobs(self, status: str | None, kind: str | None, limit: int) -> tuple[list[jobq.Job], int]:
        """The newest ``limit`` matching jobs and how many match in all."""
        return await self.parts.db.read(
            lambda c: (jobq.list_jobs(c, status=status, kind=kind, limit=limit),
                       jobq.count_jobs(c, status=status, kind=kind)))

    async def cancel(self, job_id: str, kinds: tuple[str, ...] = jobq.KINDS) -> jobq.Job:
        job = await self.job(job_id, kinds)
        if job.status not in jobq.ACTIVE:
            raise Conflict(f"job {job_id} is already {job.status} and cannot be cancelled")
        return await self.parts.queue.cancel(job_id)

    async def predictions_path(self, job_id: str) -> Path:
        job = await self.job(job_id)
        if job.kind != "eval":
            raise NotFound(f"job {job_id} is a {job.kind} job; predictions belong to eval jobs")
        if job.status != "completed" or not job.result:
            raise Conflict(f"job {job_id} is {job.status}; its predictions exist once it has completed")
        eval_id = job.result.get("eval_id")
        if not isinstance(eval_id, int):
            raise NotFound(f"job {job_id} has no stored evaluation")
        row = await self.parts.db.read(lambda c: results.get(c, eval_id))
        path = Path(row["predictions_path"]) if row is not None and row["predictions_path"] else None
        if path is None or not path.is_file():
            raise NotFound(f"the predictions artifact of job {job_id} is missing")
        return path

    # -- rankings and models -------------------------------------------------------------------
    async def leaderboard_json(self, dataset: str | None, limit: int, weights: dict[str, float] | None = None,
                               all_content: bool = False, split: str = "val", task: str | None = None) -> bytes:
        """The leaderboard under ``weights`` (default: the default weights) as JSON bytes (``store.rankings``),
        cached until the next database write."""
        try:
            key = str(expand_user(dataset, "dataset").resolve()) if dataset else None
        except OSError as exc:  # e.g. a name longer than the filesystem allows
            raise InvalidRequest(f"dataset cannot be used as a filter: {exc.strerror or exc}") from None
        db = self.parts.db
        generation = db.generation
        cache_key = (key, limit, json.dumps(weights, sort_keys=True), all_content, split, task)
        cached = self._leaderboards.get(cache_key)
        if cached is not None and cached[0] == generation:
            return cached[1]
        rows = await db.read(lambda c: rankings.leaderboard(c, key, limit, weights, all_content, split, task))
        body = json.dumps(rows).encode()
        if len(self._leaderboards) >= 256:
            self._leaderboards.clear()
        self._leaderboards[cache_key] = (generation, body)
        return body

    async def history(self, model_name: str, limit: int, weights: dict[str, float] | None = None,
                      split: str | None = None, task: str | None = None) -> list[dict[str, Any]]:
        rows = await self.parts.db.read(lambda c: rankings.history(c, model_name, limit, weights, split, task))
        if not rows:
            raise NotFound(f"No evaluations found for: {model_name}")
        return rows

    async def list_models(self) -> dict[str, Any]:
        return await model_list(self.parts.db, self._models_root)

    async def model_detail(self, name: str) -> dict[str, Any]:
        watcher = self.parts.watcher
        return await model_detail(self.parts.db, self._models_root, name,
                                  watcher.waiting(name) if watcher is not None else [])

    async def promote(self, name: str, request: PromoteRequest) -> dict[str, Any]:
        return await self.parts.promoter.promote_version(name, request.version, "api", request.reason, request.force)

    async def rollback(self, name: str, reason: str | None) -> dict[str, Any]:
        return await self.parts.promoter.rollback(name, "api", reason)

    # -- an evaluation's analysis --------------------------------------------------------------
    async def eval_id_of_job(self, job_id: str) -> int:
        return await self.parts.analyses.eval_id_of_job(job_id)

    async def evaluation(self, eval_id: int) -> dict[str, Any]:
        return await self.parts.analyses.result(eval_id)

    async def errors(self, eval_id: int, *, full: bool = True, images: bool = True) -> dict[str, Any]:
        return await self.parts.analyses.errors(eval_id, full=full, images=images)

    async def curves_json(self, eval_id: int) -> bytes:
        return await self.parts.analyses.curves_json(eval_id)

    async def image(self, eval_id: int, name: str) -> tuple[Path, str]:
        return await self.parts.analyses.image(eval_id, name)

    async def gallery(self, eval_id: int, kind: str, cls: str | None, offset: int, limit: int) -> dict[str, Any]:
        return await self.parts.analyses.gallery(eval_id, kind, cls, offset, limit)

    async def cell(self, eval_id: int, predicted: int, true: int, offset: int, limit: int) -> dict[str, Any]:
        return await self.parts.analyses.cell(eval_id, predicted, true, offset, limit)

    async def annotations(self, eval_id: int, image: str, cls: str | None = None) -> dict[str, Any]:
        return await self.parts.analyses.annotations(eval_id, image, cls)

    # -- health and telemetry ------------------------------------------------------------------
    def health(self) -> dict[str, Any]:
        """``ok`` and each part's state; when not ok, ``reason`` says why in words (every cause, joined)."""
        p = self.parts
        db_ok = not p.db.closed and p.db.writer_alive()
        ready = p.workers_ready.is_set()
        workers = "restarting" if ready and not p.executor.healthy() else ("ready" if ready else "starting")
        watcher = "off" if p.watcher is None else ("ok" if p.watcher.healthy() else "down")
        info = p.executor.info
        reasons = [text for failed, text in (
            (not db_ok, "the database writer is down"),
            (p.closing(), "the daemon is shutting down"),
            (watcher == "down", "the models-folder watcher is down"),
            (not p.executor.available(), info.get("problem") or "the workers cannot take tasks"),
        ) if failed]
        if self._require_gpu and ready and not str(info.get("device_kind", "")).startswith("cuda"):
            # Worded only when it applies: the fallback reason lists /dev (a glob), too dear for every poll.
            reasons.append(f"[workers] require_gpu = true but the workers run on {info.get('device') or 'the CPU'}: "
                           f"{info.get('cuda_problem') or cpu_fallback_reason()}")
        report = {"ok": not reasons, "database": "ok" if db_ok else "down", "workers": workers, "watcher": watcher,
                  "worker_info": info, "mlflow": p.tracker.health()}
        if reasons:
            report["reason"] = "; ".join(reasons)
        return report

    async def metrics_exposition(self) -> bytes:
        """The Prometheus text exposition of ``GET /metrics`` (daemon/app/prometheus.py)."""
        p = self.parts
        snapshot = Snapshot(
            jobs_by_status=await p.db.read(jobq.counts), promotions_by_decision=await p.db.read(promotions.counts),
            promoted=promoted_from(await p.db.read(promotions.current_evaluations)),
            running=len(p.queue.running_ids()), worker_restarts=getattr(p.executor, "restarts", 0),
            watcher_events=p.watcher.events if p.watcher else 0,
            watcher_scans=p.watcher.scans if p.watcher else 0, workers_ready=p.workers_ready.is_set(),
            worker_info=p.executor.info, tracking=p.tracker.status(),
        )
        return p.telemetry.render(snapshot)

    def observe_request(self, route: str, method: str, status: int, seconds: float) -> None:
        """Count one answered HTTP request (``route``: the matched path template)."""
        self.parts.telemetry.http.observe(route, method, status, seconds)
