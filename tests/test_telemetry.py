"""``/metrics`` through prometheus_client, in-process and without torch (tests/inprocess.py: the real
Service, SQLite and HTTP server; the executor is never released, so jobs stay queued and nothing
depends on timing). The exposition is parsed strictly (tests/test_metrics.py's parser) and compared
with the store; the real-daemon checks with evaluations are in tests/test_metrics.py.
"""

from __future__ import annotations

from pathlib import Path

import aiohttp
import pytest

from tests.daemon_fixtures import STRONG_PT, WEAK_PT, place_model
from tests.inprocess import running_service, url
from tests.test_metrics import Samples, parse_prometheus, value_of
from vocab.version import version

JOB_ROUTE = "/v1/vision/jobs/{job_id}"


async def scrape(session: aiohttp.ClientSession, base: str) -> Samples:
    async with session.get(f"{base}/metrics") as r:
        assert r.status == 200
        assert r.headers["Content-Type"].startswith("text/plain; version=0.0.4"), r.headers
        return parse_prometheus(await r.text())


async def test_each_service_has_its_own_registry_and_counts_requests_by_route(tmp_path: Path) -> None:
    async with running_service(tmp_path / "a") as a, running_service(tmp_path / "b") as b, \
            aiohttp.ClientSession() as http:
        for job_id in ("one", "two", "three"):
            async with http.get(f"{url(a)}/v1/vision/jobs/{job_id}") as r:
                assert r.status == 404
        async with http.get(f"{url(a)}/no/such/path/123") as r:
            assert r.status == 404
        async with http.get(f"{url(a)}/healthz") as r:
            health_status = str(r.status)
        sa, sb = await scrape(http, url(a)), await scrape(http, url(b))

    job_404 = {"route": JOB_ROUTE, "method": "GET", "status": "404"}
    assert value_of(sa, "vision_evald_http_requests_total", **job_404) == 3
    assert value_of(sa, "vision_evald_http_request_duration_seconds_count", **job_404) == 3
    assert value_of(sa, "vision_evald_http_requests_total", route="unmatched", status="404") == 1
    assert value_of(sa, "vision_evald_http_requests_total", route="/healthz", status=health_status) == 1
    routes = {labels["route"] for labels, _ in sa["vision_evald_http_requests_total"]}
    assert routes == {JOB_ROUTE, "unmatched", "/healthz"}, routes  # never a raw path
    # The other service saw none of those requests (only its own scrape, counted after it answered).
    assert value_of(sb, "vision_evald_http_requests_total", **job_404) is None

    build = sa["vision_evald_build_info"]
    assert len(build) == 1 and build[0][0]["version"] == version() and build[0][1] == 1
    for family in ("process_cpu_seconds_total", "process_resident_memory_bytes", "python_gc_collections_total",
                   "python_info"):
        assert family in sa, family
    assert not [n for n in sa if n.endswith("_created")]


async def test_job_gauges_use_the_status_label_and_match_the_store(tmp_path: Path, synth_dataset: Path) -> None:
    async with running_service(tmp_path) as svc, aiohttp.ClientSession() as http:
        ids = []
        for _ in range(3):
            async with http.post(f"{url(svc)}/v1/vision/train",
                                 json={"model": "det", "dataset": str(synth_dataset)}) as r:
                assert r.status == 202, await r.text()
                ids.append((await r.json())["job_id"])
        async with http.delete(f"{url(svc)}/v1/vision/jobs/{ids[0]}") as r:
            assert r.status == 200
        s = await scrape(http, url(svc))
        stored = await svc.db.read(lambda c: c.execute(
            "SELECT kind, status, COUNT(*) FROM jobs GROUP BY kind, status").fetchall())

    assert {(labels["kind"], labels["status"]): v for labels, v in s["vision_evald_jobs"]} == \
        {(kind, status): n for kind, status, n in stored} == {("train", "queued"): 2, ("train", "cancelled"): 1}
    assert value_of(s, "vision_evald_queue_depth") == 2
    assert value_of(s, "vision_evald_jobs_running") == 0
    assert value_of(s, "vision_evald_workers_ready") == 0
    # One label name for job states in every family.
    for family in ("vision_evald_jobs", "vision_evald_job_duration_seconds_bucket"):
        assert all("state" not in labels for labels, _ in s.get(family, [])), family


async def test_promotions_count_and_the_promoted_version_follows_current(tmp_path: Path) -> None:
    place_model(tmp_path / "models", "det", STRONG_PT, "v1.pt")
    place_model(tmp_path / "models", "det", WEAK_PT, "v2.pt")
    async with running_service(tmp_path) as svc, aiohttp.ClientSession() as http:
        for path, body in (("promote", {"version": 1, "force": True, "reason": "never evaluated"}),
                           ("promote", {"version": 2, "force": True, "reason": "never evaluated"}), ("rollback", {})):
            async with http.post(f"{url(svc)}/v1/vision/models/det/{path}", json=body) as r:
                assert r.status == 200, await r.text()
        s = await scrape(http, url(svc))
        stored = dict(await svc.db.read(lambda c: c.execute(
            "SELECT decision, COUNT(*) FROM promotions GROUP BY decision").fetchall()))

    assert stored == {"promoted": 2, "rollback": 1}
    for decision in ("promoted", "refused", "rollback"):
        assert value_of(s, "vision_evald_promotions_total", decision=decision) == stored.get(decision, 0)
    assert value_of(s, "vision_evald_promoted_version", model="det") == 1  # rolled back to v1
    # v1 was promoted by hand and never evaluated: no score to chart rather than a made-up one.
    assert value_of(s, "vision_evald_promoted_score", model="det") is None
    assert value_of(s, "vision_evald_promoted_map50_95", model="det") is None


def test_a_promoted_classifier_is_scored_under_its_own_tasks_weights() -> None:
    """Detection's weights name no classification metric: under them a classifier would score its speed only."""
    from daemon.app.prometheus import Snapshot, Telemetry, promoted_from

    cls = {"task": "classification", "top1": 0.8, "top5": 1.0, "macro_f1": 0.6, "inference_ms": 50.0}
    det = {"mAP50_95": 0.4, "mAP50": 0.6, "small_object_recall": None, "f1": 0.5, "inference_ms": 500.0}
    rows = [{"model_name": "cls", "version": 3, "evaluation": cls}, {"model_name": "det", "version": 1,
                                                                       "evaluation": det}]
    s = parse_prometheus(Telemetry().render(Snapshot(promoted=promoted_from(rows))).decode())
    # By hand: 0.60 * top1 + 0.20 * macro_f1 + 0.10 * top5 + 0.10 * speed(50 ms = 1.0).
    assert value_of(s, "vision_evald_promoted_score", model="cls") == pytest.approx(0.6 * 0.8 + 0.2 * 0.6 + 0.1 + 0.1)
    assert value_of(s, "vision_evald_promoted_primary", model="cls", task="classification", metric="top1") == 0.8
    assert value_of(s, "vision_evald_promoted_map50_95", model="cls") is None
    # Detection: small-object recall null, renormalised over the rest (speed 0 at 500 ms).
    assert value_of(s, "vision_evald_promoted_score", model="det") == pytest.approx((0.35 * 0.4 + 0.2 * 0.6 + 0.15 * 0.5) / 0.8)
    assert value_of(s, "vision_evald_promoted_primary", model="det", task="detection", metric="mAP50_95") == 0.4
