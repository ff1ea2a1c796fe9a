"""Prometheus text exposition for ``GET /metrics`` (no client library needed).

Counts that must survive restarts come from SQLite (jobs by kind and state,
promotions by decision); durations, worker restarts and watcher events are
this process's own counters since it started.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

DURATION_BUCKETS_S = (1, 5, 15, 60, 300, 900, 3600, 14400, float("inf"))


@dataclass
class Histogram:
    buckets: list[int] = field(default_factory=lambda: [0] * len(DURATION_BUCKETS_S))
    total: float = 0.0
    count: int = 0

    def observe(self, seconds: float) -> None:
        self.total += seconds
        self.count += 1
        for i, bound in enumerate(DURATION_BUCKETS_S):
            if seconds <= bound:
                self.buckets[i] += 1


class JobMetrics:
    """Per-kind, per-outcome job durations of this process."""

    def __init__(self) -> None:
        self.durations: dict[tuple[str, str], Histogram] = defaultdict(Histogram)

    def observe(self, kind: str, status: str, seconds: float) -> None:
        self.durations[(kind, status)].observe(seconds)


def _fmt(value: float) -> str:
    return "+Inf" if value == float("inf") else repr(float(value))


def render(
    *, jobs_by_state: dict[tuple[str, str], int], queue_depth: int, running: int,
    promotions_by_decision: dict[str, int], job_metrics: JobMetrics, worker_restarts: int,
    watcher_events: int, workers_ready: bool,
) -> str:
    lines = [
        "# HELP vision_evald_jobs Jobs in the store by kind and state.",
        "# TYPE vision_evald_jobs gauge",
    ]
    for (kind, state), n in sorted(jobs_by_state.items()):
        lines.append(f'vision_evald_jobs{{kind="{kind}",state="{state}"}} {n}')
    lines += [
        "# HELP vision_evald_queue_depth Jobs waiting to run.",
        "# TYPE vision_evald_queue_depth gauge",
        f"vision_evald_queue_depth {queue_depth}",
        "# HELP vision_evald_jobs_running Jobs running in this process.",
        "# TYPE vision_evald_jobs_running gauge",
        f"vision_evald_jobs_running {running}",
        "# HELP vision_evald_job_duration_seconds Wall time of finished jobs, by kind and outcome.",
        "# TYPE vision_evald_job_duration_seconds histogram",
    ]
    for (kind, status), h in sorted(job_metrics.durations.items()):
        labels = f'kind="{kind}",status="{status}"'
        for bound, n in zip(DURATION_BUCKETS_S, h.buckets):
            lines.append(f'vision_evald_job_duration_seconds_bucket{{{labels},le="{_fmt(bound)}"}} {n}')
        lines.append(f"vision_evald_job_duration_seconds_sum{{{labels}}} {h.total!r}")
        lines.append(f"vision_evald_job_duration_seconds_count{{{labels}}} {h.count}")
    lines += [
        "# HELP vision_evald_promotions Promotion decisions recorded, by decision.",
        "# TYPE vision_evald_promotions gauge",
    ]
    for decision in ("promoted", "refused", "rollback"):
        lines.append(f'vision_evald_promotions{{decision="{decision}"}} {promotions_by_decision.get(decision, 0)}')
    lines += [
        "# HELP vision_evald_worker_restarts_total Worker processes replaced after a crash, kill, timeout or cancel.",
        "# TYPE vision_evald_worker_restarts_total counter",
        f"vision_evald_worker_restarts_total {worker_restarts}",
        "# HELP vision_evald_watcher_events_total Checkpoint file events and scan hits seen by the watcher.",
        "# TYPE vision_evald_watcher_events_total counter",
        f"vision_evald_watcher_events_total {watcher_events}",
        "# HELP vision_evald_workers_ready Whether the warm workers are up.",
        "# TYPE vision_evald_workers_ready gauge",
        f"vision_evald_workers_ready {int(workers_ready)}",
    ]
    return "\n".join(lines) + "\n"
