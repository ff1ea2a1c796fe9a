"""kill -9 of the daemon itself, against a real daemon in a child process (nothing mocked).

- with an auto-promote evaluation running and another job queued: nothing is promoted by the dying
  daemon, no worker outlives it (PR_SET_PDEATHSIG), and after a restart on the same files both jobs
  complete exactly once and the promotion is recorded once, current.pt the evaluated checkpoint;
- twice at random moments under ``max_attempts = 1``: the daemon's deaths cost no attempt and
  every job completes.

A module of its own (from tests/test_recovery.py): ``make test`` gives each pytest process whole
modules, and these two long tests need no other test's daemon. Evaluations that must be interrupted
run on 48 synthetic images (6 batches of 8) at imgsz 320, interrupted once their first batch is done.
"""

from __future__ import annotations

import random
import time
from pathlib import Path

import psutil
import pytest

from tests.daemon_fixtures import STRONG_PT, WEAK_PT, Daemon, make_dataset, place_model, process_gone, running_with_progress
from tests.watch_fixtures import sha256_file

pytestmark = pytest.mark.ultralytics


def wait_all_gone(procs: list[psutil.Process], timeout: float) -> list[psutil.Process]:
    deadline = time.monotonic() + timeout
    alive = [p for p in procs if not process_gone(p)]
    while alive and time.monotonic() < deadline:
        time.sleep(0.2)
        alive = [p for p in alive if not process_gone(p)]
    return alive


# --------------------------------------------------------------------------- (a) kill -9 of the daemon


def test_daemon_kill9_then_restart_completes_each_job_and_its_promotion_exactly_once(tmp_path: Path) -> None:
    big = make_dataset(tmp_path / "big", n_val=48, seed=11)
    small = make_dataset(tmp_path / "small", n_val=24, seed=12)
    daemon = Daemon(tmp_path, config={"jobs": {"max_attempts": 2}})
    v1 = place_model(daemon.models_root, "strong", STRONG_PT)
    place_model(daemon.models_root, "weak", WEAK_PT)
    current = daemon.models_root / "strong" / "current.pt"
    try:
        daemon.start()
        first = daemon.submit_eval(model="strong", dataset=str(big), auto_promote=True)["job_id"]
        second = daemon.submit_eval(model="weak", dataset=str(small))["job_id"]
        daemon.wait_job(first, ("running",), timeout=180, predicate=running_with_progress)
        assert daemon.job(second)["status"] == "queued"
        worker_pid = daemon.health()["worker_info"]["pid"]

        children = daemon.kill9()
        assert worker_pid in {c.pid for c in children}, (worker_pid, children)
        alive = wait_all_gone(children, timeout=20)
        assert not alive, f"processes outlived the daemon's kill -9: {[(p.pid, p.cmdline()) for p in alive]}"

        # What the crash left on disk: the first job still "running", the second queued, no result, no promotion.
        rows = {r["id"]: dict(r) for r in daemon.query("SELECT id, status, attempts FROM jobs")}
        assert rows[first]["status"] == "running" and rows[first]["attempts"] == 1
        assert rows[second]["status"] == "queued" and rows[second]["attempts"] == 0
        assert daemon.query("SELECT COUNT(*) FROM eval_results")[0][0] == 0
        assert not current.exists(), "promoted before the evaluation finished"
        assert daemon.query("SELECT COUNT(*) FROM promotions")[0][0] == 0

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

        # The promotion the kill interrupted happened once, after the restart.
        assert done_first["result"]["promotion"]["decision"] == "promoted", done_first["result"]["promotion"]
        promotions = daemon.query("SELECT decision, new_sha256 FROM promotions WHERE model_name = 'strong'")
        assert [r["decision"] for r in promotions] == ["promoted"], [dict(r) for r in promotions]
        assert promotions[0]["new_sha256"] == sha256_file(v1) == sha256_file(current)
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
        for _ in range(2):
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
