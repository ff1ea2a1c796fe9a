"""kill -9 of the daemon itself, twice, against a real daemon in a child process (nothing mocked).

With an auto-promote evaluation running and another job queued, under ``max_attempts = 1`` (had a
death of the daemon been charged to a job, that job would fail): nothing is promoted by the dying
daemon and no worker outlives it (PR_SET_PDEATHSIG); after a restart on the same files, a second
kill -9 at a random moment of the evaluation that runs then, and a last restart, both jobs complete
exactly once, each charged one attempt, and the promotion is recorded once, current.pt the evaluated
checkpoint.

A module of its own (from tests/test_recovery.py): ``make test`` gives each pytest process whole
modules, and this long test needs no other test's daemon. The evaluation that must be interrupted
runs on 48 synthetic images (6 batches of 8) at imgsz 320, interrupted once its first batch is done.
"""

from __future__ import annotations

import os
import random
import time
from pathlib import Path

import psutil
import pytest

from tests.daemon_fixtures import STRONG_PT, WEAK_PT, Daemon, make_dataset, place_model, process_gone, running_with_progress
from tests.watch_fixtures import sha256_file

pytestmark = pytest.mark.ultralytics

NICE = 3  # the workers' steps below the daemon: a few, as 10 would starve them among make test's processes


def wait_all_gone(procs: list[psutil.Process], timeout: float) -> list[psutil.Process]:
    deadline = time.monotonic() + timeout
    alive = [p for p in procs if not process_gone(p)]
    while alive and time.monotonic() < deadline:
        time.sleep(0.2)
        alive = [p for p in alive if not process_gone(p)]
    return alive


def test_daemon_kill9_twice_costs_no_attempt_and_each_job_and_promotion_happen_once(tmp_path: Path) -> None:
    rng = random.Random(15)
    big = make_dataset(tmp_path / "big", n_val=48, seed=11)
    small = make_dataset(tmp_path / "small", n_val=24, seed=12)
    daemon = Daemon(tmp_path, config={"jobs": {"max_attempts": 1}, "workers": {"nice": NICE}})
    v1 = place_model(daemon.models_root, "strong", STRONG_PT)
    place_model(daemon.models_root, "weak", WEAK_PT)
    current = daemon.models_root / "strong" / "current.pt"
    try:
        daemon.start()
        first = daemon.submit_eval(model="strong", dataset=str(big), auto_promote=True)["job_id"]
        second = daemon.submit_eval(model="weak", dataset=str(small))["job_id"]
        daemon.wait_job(first, ("running",), timeout=180, predicate=running_with_progress)
        assert daemon.job(second)["status"] == "queued"
        worker = daemon.health()["worker_info"]
        worker_pid = worker["pid"]
        # The evaluating worker gives way to the daemon's event loop: [workers] nice below the daemon, which
        # has this process's priority.
        assert os.getpriority(os.PRIO_PROCESS, worker_pid) == worker["nice"] == min(
            19, os.getpriority(os.PRIO_PROCESS, 0) + NICE)

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
        # The second kill, at a random moment of whichever evaluation runs now (its first batch done).
        daemon.wait_for(lambda: [j for j in (first, second) if running_with_progress(daemon.job(j))], 300,
                        "a job running")
        time.sleep(rng.uniform(0.0, 0.3))
        daemon.kill9()
        daemon.start()

        done_first = daemon.wait_job(first, timeout=300)
        done_second = daemon.wait_job(second, timeout=300)
        assert done_first["status"] == "completed", done_first
        assert done_second["status"] == "completed", done_second
        jobs = daemon.query("SELECT id, status, attempts, interruptions FROM jobs ORDER BY seq")
        assert [(r["id"], r["status"]) for r in jobs] == [(first, "completed"), (second, "completed")]
        # The daemon's deaths charged no attempt: each job used one; the first was interrupted at least once.
        assert {r["id"]: r["attempts"] for r in jobs} == {first: 1, second: 1}
        assert jobs[0]["interruptions"] >= 1 and jobs[0]["interruptions"] + jobs[1]["interruptions"] <= 2
        results = daemon.query("SELECT id, job_id FROM eval_results ORDER BY id")
        assert sorted(r["job_id"] for r in results) == sorted([first, second]), [dict(r) for r in results]
        assert {r["job_id"]: r["id"] for r in results} == {
            first: done_first["result"]["eval_id"], second: done_second["result"]["eval_id"],
        }
        board = daemon.query("SELECT model_name FROM leaderboard_best ORDER BY model_name")
        assert [r["model_name"] for r in board] == ["strong", "weak"]

        # The promotion the first kill interrupted happened once, after a restart.
        assert done_first["result"]["promotion"]["decision"] == "promoted", done_first["result"]["promotion"]
        promotions = daemon.query("SELECT decision, new_sha256 FROM promotions WHERE model_name = 'strong'")
        assert [r["decision"] for r in promotions] == ["promoted"], [dict(r) for r in promotions]
        assert promotions[0]["new_sha256"] == sha256_file(v1) == sha256_file(current)
    finally:
        daemon.stop()
