"""Observability against a real daemon in a child process (nothing mocked).

- ``GET /metrics`` is Prometheus text exposition: parsed line by line, every
  sample is ``name{label="value",...} value`` with a float value, every
  family has ``# HELP`` and ``# TYPE``, histogram buckets are cumulative and
  end in ``+Inf`` equal to ``_count``.
- It has jobs by kind and status, the queue depth (seen > 0 while jobs wait),
  job durations once a job completed, promotions by decision (a watcher
  promotion and a refusal), the promoted checkpoint's score and mAP50-95 per
  model (equal to its stored evaluation, the score recomputed here under the
  default weights), worker restarts (up by one after a worker is killed),
  watcher events, HTTP requests by route template and status, the build
  info and the library's process metrics.
- Each job transition is exactly one log line (queued, running, completed);
  every access-log line carries ``request_id=<id>``; an ``X-Request-Id`` sent
  by the client is echoed back and logged, a malformed one is replaced.
"""

from __future__ import annotations

import math
import os
import re
import shutil
import signal
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.daemon_fixtures import API_IMGSZ, STRONG_PT, WEAK_PT, Daemon, make_dataset

pytestmark = pytest.mark.ultralytics

NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
LABEL = r'[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\.)*"'
SAMPLE_RE = re.compile(rf"^(?P<name>{NAME})(?:\{{(?P<labels>{LABEL}(?:,{LABEL})*)?\}})? (?P<value>\S+)$")
LABEL_RE = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\n]|\\.)*)"')
HELP_RE = re.compile(rf"^# HELP (?P<name>{NAME}) .+$")
TYPE_RE = re.compile(rf"^# TYPE (?P<name>{NAME}) (?P<type>counter|gauge|histogram|summary|untyped)$")

Samples = dict[str, list[tuple[dict[str, str], float]]]


def parse_prometheus(text: str) -> Samples:
    """Parse the text format strictly; any malformed line fails the test."""
    assert text.endswith("\n"), "the exposition must end with a newline"
    helps, types = set(), {}
    samples: Samples = defaultdict(list)
    for n, line in enumerate(text.splitlines(), start=1):
        if not line:
            continue
        if line.startswith("#"):
            if m := HELP_RE.match(line):
                helps.add(m["name"])
            elif m := TYPE_RE.match(line):
                assert m["name"] not in types, f"line {n}: second TYPE for {m['name']}"
                types[m["name"]] = m["type"]
            else:
                raise AssertionError(f"line {n}: malformed comment: {line!r}")
            continue
        m = SAMPLE_RE.match(line)
        assert m, f"line {n}: not `name{{labels}} value`: {line!r}"
        value = float(m["value"])  # accepts +Inf, -Inf, NaN as Prometheus writes them
        labels = dict(LABEL_RE.findall(m["labels"] or ""))
        name = m["name"]
        family = re.sub(r"_(bucket|sum|count)$", "", name) if name not in types else name
        assert family in types, f"line {n}: sample {name} has no # TYPE"
        assert family in helps, f"line {n}: sample {name} has no # HELP"
        samples[name].append((labels, value))
    return samples


def value_of(samples: Samples, name: str, **labels: str) -> float | None:
    for got, value in samples.get(name, []):
        if all(got.get(k) == v for k, v in labels.items()):
            return value
    return None


class Env:
    def __init__(self, daemon: Daemon, root: Path) -> None:
        self.d = daemon
        self.root = root
        self.small = root / "small" / "data.yaml"
        self.strong = root / "ckpts" / "strong.pt"

    def metrics(self) -> Samples:
        r = self.d.http.get("/metrics", timeout=10)
        assert r.status_code == 200
        assert r.headers["Content-Type"].startswith("text/plain"), r.headers
        return parse_prometheus(r.text)


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    root = tmp_path_factory.mktemp("metrics")
    make_dataset(root / "small", n_val=12, seed=90)
    d = Daemon(root, config={
        "watch": {"enabled": True, "settle_seconds": 0.3, "rescan_interval_s": 2.0,
                  "default_dataset": str(root / "small" / "data.yaml")},
        "eval": {"imgsz": API_IMGSZ},
        "jobs": {"max_attempts": 2},
    })
    e = Env(d, root)
    e.strong.parent.mkdir()
    shutil.copyfile(STRONG_PT, e.strong)
    try:
        d.start()
        yield e
    finally:
        d.stop()


def test_metrics_is_valid_prometheus_text_from_the_start(env: Env) -> None:
    s = env.metrics()
    for name in ("vision_evald_queue_depth", "vision_evald_jobs_running", "vision_evald_worker_restarts_total",
                 "vision_evald_watcher_events_total", "vision_evald_workers_ready"):
        assert value_of(s, name) is not None, name
    for decision in ("promoted", "refused", "rollback"):
        assert value_of(s, "vision_evald_promotions_total", decision=decision) is not None, decision
    assert value_of(s, "vision_evald_workers_ready") == 1


def test_jobs_queue_depth_and_durations(env: Env) -> None:
    d = env.d
    blocker = make_dataset(env.root / "blocker", n_val=8, seed=91)
    with d.paused():  # the one worker frozen on the first job: the others stay queued
        first = d.submit_eval(model=str(env.strong), dataset=str(blocker))["job_id"]
        d.wait_job(first, ("running",), timeout=60)
        waiting = [d.submit_eval(model=str(env.strong), dataset=str(env.small), batch_size=b)["job_id"]
                   for b in (4, 8)]
        s = env.metrics()
    assert value_of(s, "vision_evald_queue_depth") >= 2, s.get("vision_evald_queue_depth")
    assert value_of(s, "vision_evald_jobs", kind="eval", status="queued") >= 2
    assert value_of(s, "vision_evald_jobs", kind="eval", status="running") == 1
    assert value_of(s, "vision_evald_jobs_running") == 1
    for job_id in (first, *waiting):
        assert d.wait_job(job_id, timeout=180)["status"] == "completed"

    s = env.metrics()
    assert value_of(s, "vision_evald_queue_depth") == 0
    assert value_of(s, "vision_evald_jobs", kind="eval", status="completed") >= 3
    count = value_of(s, "vision_evald_job_duration_seconds_count", kind="eval", status="completed")
    total = value_of(s, "vision_evald_job_duration_seconds_sum", kind="eval", status="completed")
    assert count is not None and count >= 3 and total is not None and total > 0, (count, total)
    buckets = [(float(labels["le"]), v) for labels, v in s["vision_evald_job_duration_seconds_bucket"]
               if labels.get("kind") == "eval" and labels.get("status") == "completed"]
    assert buckets == sorted(buckets), "buckets out of order"
    assert all(a[1] <= b[1] for a, b in zip(buckets, buckets[1:])), f"buckets not cumulative: {buckets}"
    assert math.isinf(buckets[-1][0]) and buckets[-1][1] == count

    # Exactly one log line per transition of each job.
    log = d.log()
    for job_id in (first, *waiting):
        assert len(re.findall(rf"job {job_id} eval queued \(trigger api\)", log)) == 1, job_id
        assert len(re.findall(rf"job {job_id} eval running \(attempt 1 of 2\)", log)) == 1, job_id
        assert len(re.findall(rf"job {job_id} completed$", log, re.M)) == 1, job_id
        assert len(re.findall(rf"job {job_id} (failed|requeued|cancelled|crashed)", log)) == 0, job_id


def test_watcher_events_and_promotions_by_decision(env: Env) -> None:
    d = env.d
    before = env.metrics()
    events_before = value_of(before, "vision_evald_watcher_events_total")
    promoted_before = value_of(before, "vision_evald_promotions_total", decision="promoted")
    refused_before = value_of(before, "vision_evald_promotions_total", decision="refused")

    folder = d.models_root / "watched"
    folder.mkdir()
    for version, source in ((1, STRONG_PT), (2, WEAK_PT)):  # strong first: promoted; weak then: refused
        staging = env.root / f"v{version}.staging"
        shutil.copyfile(source, staging)
        os.replace(staging, folder / f"v{version}.pt")

        def decided(expected: int = version) -> bool:
            return d.query("SELECT COUNT(*) FROM promotions WHERE model_name = 'watched'")[0][0] >= expected
        d.wait_for(decided, 180, f"the watcher's decision on v{version}")

    s = env.metrics()
    assert value_of(s, "vision_evald_watcher_events_total") > events_before
    assert value_of(s, "vision_evald_promotions_total", decision="promoted") == promoted_before + 1
    assert value_of(s, "vision_evald_promotions_total", decision="refused") == refused_before + 1
    assert value_of(s, "vision_evald_jobs", kind="eval", status="completed") >= 2

    # current.pt holds v1 (strong): the per-model gauges are its stored evaluation's numbers.
    row = d.query("SELECT r.* FROM promotions p JOIN eval_results r ON r.id = p.eval_id "
                  "WHERE p.model_name = 'watched' AND p.decision = 'promoted'")
    assert len(row) == 1
    assert value_of(s, "vision_evald_promoted_version", model="watched") == 1
    assert value_of(s, "vision_evald_promoted_map50_95", model="watched") == pytest.approx(row[0]["mAP50_95"])
    assert value_of(s, "vision_evald_promoted_score", model="watched") == pytest.approx(default_score(row[0]))


def default_score(r: Any) -> float:
    """The composite score under the default weights (docs/metrics.md), recomputed here from the stored metrics."""
    speed = None if r["inference_ms"] is None else min(1.0, max(0.0, (500 - r["inference_ms"]) / 450))
    terms = [(0.35, r["mAP50_95"]), (0.20, r["mAP50"]), (0.20, r["small_object_recall"]), (0.15, r["f1"]),
             (0.10, speed)]
    used = [(w, m) for w, m in terms if m is not None]
    return sum(w * m for w, m in used) / sum(w for w, _ in used)


def test_metrics_match_the_store_and_count_requests_by_route(env: Env) -> None:
    d = env.d
    job_id = d.query("SELECT id FROM jobs ORDER BY seq LIMIT 1")[0][0]
    before = env.metrics()
    route = {"route": "/v1/vision/jobs/{job_id}", "method": "GET", "status": "200"}
    seen = value_of(before, "vision_evald_http_requests_total", **route) or 0
    for _ in range(2):
        assert d.http.get(f"/v1/vision/jobs/{job_id}", timeout=10).status_code == 200
    s = env.metrics()
    assert value_of(s, "vision_evald_http_requests_total", **route) == seen + 2
    assert value_of(s, "vision_evald_http_request_duration_seconds_count", **route) == seen + 2
    routes = {labels["route"] for labels, _ in s["vision_evald_http_requests_total"]}
    assert all(job_id not in r for r in routes), routes  # templates, never raw paths

    # Jobs and promotions are exactly the store's counts (idle daemon: nothing moves between the reads).
    jobs = {(r["kind"], r["status"]): r["n"] for r in d.query(
        "SELECT kind, status, COUNT(*) AS n FROM jobs GROUP BY kind, status")}
    assert {(lb["kind"], lb["status"]): v for lb, v in s["vision_evald_jobs"]} == jobs
    decisions = dict(d.query("SELECT decision, COUNT(*) FROM promotions GROUP BY decision"))
    for decision in ("promoted", "refused", "rollback"):
        assert value_of(s, "vision_evald_promotions_total", decision=decision) == decisions.get(decision, 0)

    # The library's own families and the build info come for free.
    build = s["vision_evald_build_info"]
    assert len(build) == 1 and build[0][1] == 1 and build[0][0]["version"]
    for family in ("process_cpu_seconds_total", "process_resident_memory_bytes", "python_gc_collections_total"):
        assert family in s, family


def test_worker_restarts_count_a_killed_worker(env: Env) -> None:
    d = env.d
    restarts = value_of(env.metrics(), "vision_evald_worker_restarts_total")
    pid = d.health()["worker_info"]["pid"]
    assert pid in {c.pid for c in d.descendants()}
    os.kill(pid, signal.SIGKILL)
    # An idle worker's death is noticed when the next task takes it (and never charged to that job).
    fresh = make_dataset(env.root / "after_kill", n_val=8, seed=92)
    job_id = d.submit_eval(model=str(env.strong), dataset=str(fresh))["job_id"]
    job = d.wait_job(job_id, timeout=180)
    assert job["status"] == "completed" and job["result"]["cached"] is False, job
    assert d.query("SELECT attempts FROM jobs WHERE id = ?", (job_id,))[0][0] == 1

    def counted() -> bool:
        return value_of(env.metrics(), "vision_evald_worker_restarts_total") == restarts + 1
    d.wait_for(counted, 60, "worker_restarts_total to count the killed worker")
    d.wait_workers_ready(not_pid=pid, timeout=120)
    s = env.metrics()
    assert value_of(s, "vision_evald_workers_ready") == 1
    assert value_of(s, "vision_evald_worker_restarts_total") == restarts + 1


def test_request_ids_are_echoed_and_logged(env: Env) -> None:
    d = env.d
    rid = "client-req-1234-abcd"
    r = d.http.get("/v1/vision/jobs?limit=1", headers={"X-Request-Id": rid}, timeout=10)
    assert r.status_code == 200 and r.headers["X-Request-Id"] == rid
    r = d.http.post("/v1/vision/eval", json={"model": "nope"}, headers={"X-Request-Id": rid + "-e"}, timeout=10)
    assert r.status_code == 400 and r.headers["X-Request-Id"] == rid + "-e"  # errors carry it too
    for bad in ("has spaces in it", "x" * 65, "semi;colon", ""):
        r = d.http.get("/healthz", headers={"X-Request-Id": bad}, timeout=10)
        got = r.headers["X-Request-Id"]
        assert got != bad and re.fullmatch(r"[0-9a-f]{16}", got), (bad, got)
    r = d.http.get("/healthz", timeout=10)
    generated = r.headers["X-Request-Id"]
    assert re.fullmatch(r"[0-9a-f]{16}", generated)

    # The access log line is written after the response: wait for the last request's line.
    def logged() -> str | None:
        text = d.log()
        return text if f"request_id={generated}" in text else None

    log = d.wait_for(logged, 30, "the access log line of the last request")
    assert re.search(rf'"GET /v1/vision/jobs\?limit=1 HTTP/1.1" 200 .* request_id={rid}$', log, re.M), d.log_tail()
    assert re.search(rf'"POST /v1/vision/eval HTTP/1.1" 400 .* request_id={rid}-e$', log, re.M)
    assert f"request_id={generated}" in log
    access = [line for line in log.splitlines() if " vision_evald.access: " in line]
    assert len(access) > 20
    bad_lines = [line for line in access if not re.search(r" request_id=[0-9A-Za-z-]{1,64}$", line)]
    assert not bad_lines, bad_lines[:5]
