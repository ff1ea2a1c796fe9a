"""Crash recovery and load, against a real daemon in a child process (nothing mocked).

- kill -9 of the daemon with one job running and one queued: after a restart
  on the same files both complete exactly once, and no worker outlives the
  daemon (PR_SET_PDEATHSIG);
- kill -9 of a worker mid-evaluation: the job is retried (or fails with a
  clear error once its attempts are used up), a new worker replaces the dead
  one, and the daemon keeps serving;
- 50 concurrent polling clients while jobs run: only 200s, and SQLite never
  reports "database is locked".

Evaluations that must be interrupted run on 48 synthetic images (6 batches of 8) at
imgsz 320, and are interrupted once their first batch is done; every wait polls the API with a
deadline.
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import time
from collections import Counter
from pathlib import Path
from typing import Any

import aiohttp
import psutil
import pytest

from tests.daemon_fixtures import STRONG_PT, WEAK_PT, Daemon, make_dataset, place_model

pytestmark = pytest.mark.ultralytics


def _gone(proc: psutil.Process) -> bool:
    """Whether a process has exited (a zombie awaiting its reaper counts as exited)."""
    try:
        return proc.status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def wait_all_gone(procs: list[psutil.Process], timeout: float) -> list[psutil.Process]:
    deadline = time.monotonic() + timeout
    alive = [p for p in procs if not _gone(p)]
    while alive and time.monotonic() < deadline:
        time.sleep(0.2)
        alive = [p for p in alive if not _gone(p)]
    return alive


def running_with_progress(job: dict[str, Any]) -> bool:
    return job["status"] == "running" and job["progress"] > 0


# --------------------------------------------------------------------------- (a) kill -9 of the daemon


def test_daemon_kill9_then_restart_completes_each_job_exactly_once(tmp_path: Path) -> None:
    big = make_dataset(tmp_path / "big", n_val=48, seed=11)
    small = make_dataset(tmp_path / "small", n_val=24, seed=12)
    daemon = Daemon(tmp_path, config={"jobs": {"max_attempts": 2}})
    place_model(daemon.models_root, "strong", STRONG_PT)
    place_model(daemon.models_root, "weak", WEAK_PT)
    try:
        daemon.start()
        first = daemon.submit_eval(model="strong", dataset=str(big))["job_id"]
        second = daemon.submit_eval(model="weak", dataset=str(small))["job_id"]
        daemon.wait_job(first, ("running",), timeout=180, predicate=running_with_progress)
        assert daemon.job(second)["status"] == "queued"
        worker_pid = daemon.health()["worker_info"]["pid"]

        children = daemon.kill9()
        assert worker_pid in {c.pid for c in children}, (worker_pid, children)
        alive = wait_all_gone(children, timeout=20)
        assert not alive, f"processes outlived the daemon's kill -9: {[(p.pid, p.cmdline()) for p in alive]}"

        # What the crash left on disk: the first job still "running", the second queued, no result yet.
        rows = {r["id"]: dict(r) for r in daemon.query("SELECT id, status, attempts FROM jobs")}
        assert rows[first]["status"] == "running" and rows[first]["attempts"] == 1
        assert rows[second]["status"] == "queued" and rows[second]["attempts"] == 0
        assert daemon.query("SELECT COUNT(*) FROM eval_results")[0][0] == 0

        daemon.start()  # same config, database, models and state dir
        assert "recovered interrupted jobs: 1 requeued, 0 failed" in daemon.log()
        done_first = daemon.wait_job(first, timeout=300)
        done_second = daemon.wait_job(second, timeout=300)
        assert done_first["status"] == "completed", done_first
        assert done_second["status"] == "completed", done_second
        assert done_first["result"]["cached"] is False and done_second["result"]["cached"] is False

        jobs = daemon.query("SELECT id, status, attempts FROM jobs ORDER BY seq")
        assert [(r["id"], r["status"]) for r in jobs] == [(first, "completed"), (second, "completed")]
        # The daemon's death charged no attempt: each job used one, and the first counts one interruption.
        assert {r["id"]: r["attempts"] for r in jobs} == {first: 1, second: 1}
        interruptions = {r["id"]: r["interruptions"] for r in daemon.query("SELECT id, interruptions FROM jobs")}
        assert interruptions == {first: 1, second: 0}
        results = daemon.query("SELECT id, job_id, model_name FROM eval_results ORDER BY id")
        assert sorted(r["job_id"] for r in results) == sorted([first, second]), [dict(r) for r in results]
        assert {r["job_id"]: r["id"] for r in results} == {
            first: done_first["result"]["eval_id"], second: done_second["result"]["eval_id"],
        }
        board = daemon.query("SELECT model_name FROM leaderboard_best ORDER BY model_name")
        assert [r["model_name"] for r in board] == ["strong", "weak"]
    finally:
        daemon.stop()


def test_repeated_daemon_kill9_costs_no_attempt_and_every_job_completes(tmp_path: Path) -> None:
    """max_attempts = 1: had any of the daemon's deaths been charged to a job, that job would fail."""
    rng = random.Random(15)
    data = make_dataset(tmp_path / "data", n_val=48, seed=31)
    daemon = Daemon(tmp_path, config={"jobs": {"max_attempts": 1}})
    place_model(daemon.models_root, "strong", STRONG_PT)
    place_model(daemon.models_root, "weak", WEAK_PT)
    try:
        daemon.start()
        ids = [daemon.submit_eval(model=m, dataset=str(data), batch_size=b)["job_id"]
               for m, b in (("strong", 8), ("weak", 8), ("strong", 16), ("weak", 16))]
        for _ in range(3):
            running = daemon.wait_for(
                lambda: [j for j in ids if running_with_progress(daemon.job(j))], 300, "a job running")
            time.sleep(rng.uniform(0.0, 1.5))  # a random moment within the running evaluation
            daemon.kill9()
            assert daemon.query("SELECT status FROM jobs WHERE id = ?", (running[0],))[0][0] in ("running", "completed")
            daemon.start()
        done = [daemon.wait_job(j, timeout=300) for j in ids]
        assert [j["status"] for j in done] == ["completed"] * 4, [(j["job_id"], j["status"], j["error"]) for j in done]
        rows = daemon.query("SELECT attempts, interruptions FROM jobs")
        assert all(r["attempts"] == 1 for r in rows), [dict(r) for r in rows]
        assert sum(r["interruptions"] for r in rows) >= 1  # at least one kill landed on a running job
        assert daemon.query("SELECT COUNT(DISTINCT job_id) AS n, COUNT(*) AS rows FROM eval_results")[0][:] == (4, 4)
    finally:
        daemon.stop()


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
    assert not psutil.pid_exists(killed) or _gone(psutil.Process(killed))


def test_worker_killed_on_every_attempt_fails_with_a_clear_error(served: Daemon) -> None:
    d = served
    data = make_dataset(d.root / "kill_always", n_val=48, seed=22)
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
    data = make_dataset(d.root / "storm", n_val=48, seed=31)
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
