"""Crash recovery and load, against a real daemon in a child process (nothing mocked).

(kill -9 of the daemon itself: tests/test_daemon_kill9.py.)

- kill -9 of a worker mid-evaluation: the job is retried (or fails with a
  clear error once its attempts are used up), a new worker replaces the dead
  one, and the daemon keeps serving;
- a cancel of a job mid-evaluation kills its worker (a process can be
  stopped at once, where tests.inprocess stops a thread at its next batch),
  and a fresh worker takes the next job;
- 50 concurrent polling clients while jobs run: only 200s, and SQLite never
  reports "database is locked".

Evaluations that must be interrupted run at imgsz 320 on 48 synthetic images (6 batches of 8),
96 for the one killed on each of its two attempts (the second must still be running when its new
worker has started), and are interrupted once their first batch is done; every wait polls the API
with a deadline.
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import time
from collections import Counter

import aiohttp
import psutil
import pytest

from tests.daemon_fixtures import (
    STRONG_PT,
    WEAK_PT,
    Daemon,
    make_dataset,
    place_model,
    process_gone,
    running_with_progress,
)

pytestmark = pytest.mark.ultralytics


# --------------------------------------------------------------------------- (b, c) one daemon for the rest


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("recovery")
    daemon = Daemon(root, config={"jobs": {"max_attempts": 2}})
    place_model(daemon.models_root, "strong", STRONG_PT)
    place_model(daemon.models_root, "weak", WEAK_PT)
    try:
        daemon.start()
        yield daemon
    finally:
        daemon.stop()


def kill_worker_of(daemon: Daemon) -> int:
    """SIGKILL the daemon's current worker process (its pid from /healthz) and return that pid."""
    pid = daemon.health()["worker_info"]["pid"]
    assert pid in {c.pid for c in daemon.descendants()}, "the reported worker is not a child of the daemon"
    os.kill(pid, signal.SIGKILL)
    return pid


def attempts_of(daemon: Daemon, job_id: str) -> int:
    return daemon.query("SELECT attempts FROM jobs WHERE id = ?", (job_id,))[0][0]


def test_worker_kill9_mid_evaluation_is_retried_and_completes(served: Daemon) -> None:
    d = served
    data = make_dataset(d.root / "kill_once", n_val=48, seed=21)
    job_id = d.submit_eval(model="strong", dataset=str(data))["job_id"]
    d.wait_job(job_id, ("running",), timeout=180, predicate=running_with_progress)
    killed = kill_worker_of(d)

    job = d.wait_job(job_id, timeout=300)
    assert job["status"] == "completed", job
    assert attempts_of(d, job_id) == 2
    assert d.query("SELECT COUNT(*) FROM eval_results WHERE job_id = ?", (job_id,))[0][0] == 1
    log = d.log()
    assert f"job {job_id} requeued: the worker process running this eval task died (killed by signal SIGKILL)" in log

    # A new worker replaced the dead one and the daemon goes on serving.
    health = d.wait_workers_ready(not_pid=killed, timeout=120)
    assert health["ok"] is True
    assert not psutil.pid_exists(killed) or process_gone(psutil.Process(killed))


def test_worker_killed_on_every_attempt_fails_with_a_clear_error(served: Daemon) -> None:
    d = served
    data = make_dataset(d.root / "kill_always", n_val=96, seed=22)  # killed twice: its size is only margin
    job_id = d.submit_eval(model="weak", dataset=str(data))["job_id"]
    killed = []
    for attempt in (1, 2):
        d.wait_job(job_id, ("running",), timeout=240,
                   predicate=lambda j, a=attempt: running_with_progress(j) and attempts_of(d, job_id) == a)
        killed.append(kill_worker_of(d))
    job = d.wait_job(job_id, timeout=240)
    assert job["status"] == "failed", job
    assert "worker process" in job["error"] and "died" in job["error"], job["error"]
    assert "killed by signal SIGKILL" in job["error"] and "giving up after 2 attempt(s)" in job["error"], job["error"]
    assert job["result"] is None
    assert d.query("SELECT COUNT(*) FROM eval_results WHERE job_id = ?", (job_id,))[0][0] == 0

    # Still serving: a fresh worker evaluates the next job.
    d.wait_workers_ready(not_pid=killed[-1], timeout=120)
    small = make_dataset(d.root / "after_kills", n_val=16, seed=23)
    nxt = d.submit_eval(model="weak", dataset=str(small))["job_id"]
    job = d.wait_job(nxt, timeout=240)
    assert job["status"] == "completed" and job["result"]["cached"] is False, job


def test_cancelling_a_running_job_kills_its_worker_and_a_fresh_one_goes_on(served: Daemon) -> None:
    d = served
    data = make_dataset(d.root / "cancel", n_val=64, seed=24)  # 4 batches: the cancel lands after the first
    job_id = d.submit_eval(model="strong", dataset=str(data))["job_id"]
    d.wait_job(job_id, ("running",), timeout=180, predicate=running_with_progress)
    with d.paused() as pid:  # its worker frozen mid-evaluation: it cannot finish before the cancel lands
        worker = psutil.Process(pid)
        r = d.http.delete(f"/v1/vision/jobs/{job_id}")
        assert r.status_code == 200, r.text
        d.wait_for(lambda: process_gone(worker), 30, f"the cancelled job's worker {pid} to be killed")
    job = d.wait_job(job_id, timeout=60)
    assert job["status"] == "cancelled" and job["result"] is None, job
    assert d.query("SELECT COUNT(*) FROM eval_results WHERE job_id = ?", (job_id,))[0][0] == 0

    d.wait_workers_ready(not_pid=pid, timeout=120)
    small = make_dataset(d.root / "after_cancel", n_val=8, seed=25)
    nxt = d.submit_eval(model="strong", dataset=str(small))["job_id"]
    job = d.wait_job(nxt, timeout=240)
    assert job["status"] == "completed" and job["result"]["cached"] is False, job


# --------------------------------------------------------------------------- (c) 50 concurrent clients


async def _poll_client(url: str, job_ids: list[str], stop: asyncio.Event, statuses: Counter,
                       errors: list[str]) -> None:
    paths = ["/v1/vision/eval/leaderboard", "/v1/vision/jobs?limit=20", "/v1/vision/jobs?status=running",
             "/healthz"] + [f"/v1/vision/eval/{j}" for j in job_ids] + [f"/v1/vision/jobs/{j}" for j in job_ids]
    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(base_url=url, timeout=timeout) as session:
        while not stop.is_set():
            path = random.choice(paths)
            try:
                async with session.get(path) as r:
                    await r.read()
                    statuses[r.status] += 1
                    if r.status != 200:
                        errors.append(f"{path}: {r.status} {await r.text()}")
            except (TimeoutError, aiohttp.ClientError) as exc:
                errors.append(f"{path}: {type(exc).__name__}: {exc}")
            await asyncio.sleep(random.uniform(0.0, 0.05))


async def _storm(d: Daemon, job_ids: list[str], clients: int, max_s: float) -> tuple[Counter, list[str]]:
    statuses: Counter = Counter()
    errors: list[str] = []
    stop = asyncio.Event()
    tasks = [asyncio.create_task(_poll_client(d.url, job_ids, stop, statuses, errors)) for _ in range(clients)]
    deadline = time.monotonic() + max_s
    try:
        async with aiohttp.ClientSession(base_url=d.url) as s:
            while time.monotonic() < deadline:
                states = []
                for j in job_ids:
                    async with s.get(f"/v1/vision/jobs/{j}") as r:
                        states.append((await r.json())["status"])
                if all(st in ("completed", "failed", "cancelled") for st in states):
                    break
                await asyncio.sleep(0.5)
    finally:
        stop.set()
        await asyncio.gather(*tasks)
    return statuses, errors


def test_fifty_concurrent_clients_while_jobs_run(served: Daemon) -> None:
    d = served
    data = make_dataset(d.root / "storm", n_val=16, seed=31)
    job_ids = [d.submit_eval(model=m, dataset=str(data))["job_id"] for m in ("strong", "weak")]
    statuses, errors = asyncio.run(_storm(d, job_ids, clients=50, max_s=300))

    assert not errors, errors[:20]
    assert set(statuses) == {200}, statuses
    assert statuses[200] >= 200, statuses  # the clients really ran while the jobs did
    for j in job_ids:
        job = d.job(j)
        assert job["status"] == "completed", job
    log = d.log()
    assert "database is locked" not in log.lower()
    assert '" 500 ' not in log and "Traceback" not in log, d.log_tail(80)
    d.assert_alive()
