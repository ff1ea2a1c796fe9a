"""Telemetry for ``GET /metrics``, through ``prometheus_client``, in one registry per ``Service``.

What is exposed (the README's "Metrics" section lists every family):

- the library's process, GC and platform collectors, and ``vision_evald_build_info``;
- HTTP requests and their latency by route (the route's path template, never
  the raw path), method and status: ``HttpMetrics``;
- wall time of finished jobs by kind and status: ``JobMetrics``;
- at scrape time, a ``Snapshot`` the service takes just before rendering:
  jobs by kind and status and promotion decisions (from SQLite, so they
  survive restarts), per model the promoted checkpoint's score and
  mAP50-95, queue depth, running jobs, worker restarts, watcher events.

Job states carry the label ``status`` in every family, as in the API.
A registry per service (not the library's global one) keeps several
services in one process (tests) apart.
"""

from __future__ import annotations

import platform
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import prometheus_client
from prometheus_client import (
    CollectorRegistry,
    Counter,
    GCCollector,
    Histogram,
    Info,
    PlatformCollector,
    ProcessCollector,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from daemon.tracking.mlflow_metrics import tracking_families
from daemon.tracking.sender import TrackingStatus
from vocab.scoring import composite_score
from vocab.tasks import DEFAULT_TASK, task
from vocab.version import version

prometheus_client.disable_created_metrics()  # no ``*_created`` series beside every counter and histogram
DURATION_BUCKETS_S = (1, 5, 15, 60, 300, 900, 3600, 14400, float("inf"))
DECISIONS = ("promoted", "refused", "rollback")
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


class JobMetrics:
    """Wall time of finished jobs, by kind and status (``completed``, ``failed``, ``cancelled``)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.durations = Histogram(
            "vision_evald_job_duration_seconds", "Wall time of finished jobs in this process, by kind and status.",
            ["kind", "status"], buckets=DURATION_BUCKETS_S, registry=registry or CollectorRegistry())

    def observe(self, kind: str, status: str, seconds: float) -> None:
        self.durations.labels(kind, status).observe(seconds)


class HttpMetrics:
    """Requests served and their latency, by route template, method and HTTP status."""

    def __init__(self, registry: CollectorRegistry) -> None:
        labels = ["route", "method", "status"]
        self.requests = Counter("vision_evald_http_requests", "HTTP requests answered, by route, method and status.",
                                labels, registry=registry)
        self.latency = Histogram("vision_evald_http_request_duration_seconds",
                                 "Time to answer HTTP requests, by route, method and status.", labels,
                                 registry=registry)

    def observe(self, route: str, method: str, status: int, seconds: float) -> None:
        """Count one answered request; an unknown method is counted as ``other`` (labels stay bounded)."""
        labels = (route, method if method in METHODS else "other", str(status))
        self.requests.labels(*labels).inc()
        self.latency.labels(*labels).observe(seconds)


@dataclass(frozen=True)
class Promoted:
    """What a model's current.pt holds, as its evaluation scored it (score under its task's default weights;
    ``primary``: the value of the task's primary metric, ``primary_metric`` its name)."""

    model: str
    version: int | None
    task: str
    score: float | None
    map50_95: float | None
    primary_metric: str
    primary: float | None


@dataclass(frozen=True)
class Snapshot:
    """The daemon's state at scrape time (see module contract)."""

    jobs_by_status: dict[tuple[str, str], int] = field(default_factory=dict)
    promotions_by_decision: dict[str, int] = field(default_factory=dict)
    promoted: tuple[Promoted, ...] = ()
    running: int = 0
    worker_restarts: int = 0
    watcher_events: int = 0
    watcher_scans: int = 0
    tracking: TrackingStatus | None = None  # MLflow's outbox, when tracking is on
    workers_ready: bool = False
    worker_info: dict[str, Any] = field(default_factory=dict)  # the executor's info (backend, Ray actors)


def promoted_from(rows: list[dict[str, Any]]) -> tuple[Promoted, ...]:
    """``Promoted`` entries from ``store.promotions.current_evaluations`` rows, each scored under its task's
    default weights (one weighting per task across models, whatever weights each evaluation was requested with)."""
    out = []
    for row in rows:
        evaluation = row["evaluation"] or {}
        t = task(evaluation.get("task") or DEFAULT_TASK)
        out.append(Promoted(row["model_name"], row["version"], t.name,
                            composite_score(evaluation, t.default_weights) if evaluation else None,
                            evaluation.get("mAP50_95"), t.primary, evaluation.get(t.primary)))
    return tuple(out)


class _SnapshotCollector(Collector):
    """Families drawn from the latest ``Snapshot`` (set by ``Telemetry.render`` just before collecting)."""

    def __init__(self) -> None:
        self.snapshot = Snapshot()

    def collect(self) -> Iterator[Metric]:
        s = self.snapshot
        jobs = GaugeMetricFamily("vision_evald_jobs", "Jobs in the store, by kind and status.",
                                 labels=["kind", "status"])
        for (kind, status), n in sorted(s.jobs_by_status.items()):
            jobs.add_metric([kind, status], n)
        yield jobs
        queued = sum(n for (_, status), n in s.jobs_by_status.items() if status == "queued")
        yield GaugeMetricFamily("vision_evald_queue_depth", "Jobs waiting to run.", value=queued)
        yield GaugeMetricFamily("vision_evald_jobs_running", "Jobs running in this process.", value=s.running)
        decisions = CounterMetricFamily("vision_evald_promotions", "Promotion decisions recorded, by decision.",
                                        labels=["decision"])
        for decision in DECISIONS:
            decisions.add_metric([decision], s.promotions_by_decision.get(decision, 0))
        yield decisions
        yield from _promoted_families(s.promoted)
        yield CounterMetricFamily("vision_evald_worker_restarts",
                                  "Worker processes replaced after a crash, kill, timeout or cancel.",
                                  value=s.worker_restarts)
        yield CounterMetricFamily("vision_evald_watcher_events",
                                  "Checkpoint file events and scan hits seen by the watcher.", value=s.watcher_events)
        yield CounterMetricFamily("vision_evald_watcher_scans",
                                  "Full scans of the models folder the watcher has completed.", value=s.watcher_scans)
        if s.tracking is not None:
            yield from tracking_families(s.tracking)
        yield GaugeMetricFamily("vision_evald_workers_ready", "Whether the warm workers are up.",
                                value=int(s.workers_ready))
        yield _actor_jobs(s.worker_info)


def _actor_jobs(info: dict[str, Any]) -> Metric:
    """Jobs run per Ray actor, labelled with its node, pid and GPU ids (empty with local workers)."""
    family = CounterMetricFamily("vision_evald_actor_jobs", "Tasks run by each worker actor (Ray backend), by node.",
                                 labels=["backend", "node", "pid", "gpu_ids"])
    for actor in info.get("actors", []):
        family.add_metric([str(info.get("backend", "")), actor["node"], str(actor["pid"]),
                           ",".join(actor["gpu_ids"])], actor["jobs"])
    return family


def _promoted_families(promoted: tuple[Promoted, ...]) -> Iterator[Metric]:
    score = GaugeMetricFamily("vision_evald_promoted_score",
                              "Composite score (its task's default weights) of the checkpoint current.pt holds, "
                              "by model.", labels=["model"])
    map50_95 = GaugeMetricFamily("vision_evald_promoted_map50_95",
                                 "Box mAP50-95 of the checkpoint current.pt holds, by model (absent for "
                                 "classification).", labels=["model"])
    primary = GaugeMetricFamily("vision_evald_promoted_primary",
                                "The task's primary metric (mAP50_95, top1, mask_mAP50_95, pose_mAP50_95) of the "
                                "checkpoint current.pt holds, by model.", labels=["model", "task", "metric"])
    version_ = GaugeMetricFamily("vision_evald_promoted_version",
                                 "The version number v<n> whose bytes current.pt holds, by model.", labels=["model"])
    for p in promoted:
        if p.score is not None:
            score.add_metric([p.model], p.score)
        if p.map50_95 is not None:
            map50_95.add_metric([p.model], p.map50_95)
        if p.primary is not None:
            primary.add_metric([p.model, p.task, p.primary_metric], p.primary)
        if p.version is not None:
            version_.add_metric([p.model], p.version)
    yield from (score, map50_95, primary, version_)


class Telemetry:
    """Every metric of one service, in its own registry; ``render(snapshot)`` is the ``/metrics`` body."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        ProcessCollector(registry=self.registry)
        GCCollector(registry=self.registry)
        PlatformCollector(registry=self.registry)
        Info("vision_evald_build", "The running vision-evald: version, Python and SQLite.",
             registry=self.registry).info({"version": version(), "python": platform.python_version(),
                                           "sqlite": sqlite3.sqlite_version})
        self.jobs = JobMetrics(self.registry)
        self.http = HttpMetrics(self.registry)
        self._snapshot = _SnapshotCollector()
        self.registry.register(self._snapshot)

    def render(self, snapshot: Snapshot) -> bytes:
        """The exposition with ``snapshot``'s values (synchronous: no other scrape interleaves on the loop)."""
        self._snapshot.snapshot = snapshot
        return generate_latest(self.registry)
