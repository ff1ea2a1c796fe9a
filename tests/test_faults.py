"""Fault injection against a real daemon in a child process (nothing mocked).

Every test asserts that nothing is lost (each accepted job ends exactly once,
with one stored result when it completes) and that ``current.pt`` is always a
complete file: its sha256 is one of the checkpoints that were promoted.

Covered elsewhere and not repeated here: kill -9 of a worker mid-evaluation
(tests/test_recovery.py), kill -9 of the daemon with jobs in flight
(tests/test_daemon_kill9.py), kill -9 mid-promotion and SIGTERM
(tests/test_faults_kills.py).

Here, on one daemon for the module:
- a corrupt and a truncated .pt, submitted to POST /v1/vision/eval and dropped
  into the watched folder: failed jobs whose error says so, no promotion, the
  worker and the daemon alive;
- the dataset deleted between submit and run: a failed job that says so;
- the artifacts folder unusable (a regular file where the folder should be;
  chmod does not stop root): a failed job that says so, a live daemon, and
  the next job completes once the folder is back;
- the SQLite file locked by another process (BEGIN EXCLUSIVE) for 2 s, and for
  7 s (past the 5 s busy timeout) while requests arrive: every request gets
  its normal answer or a 503 JSON, never a 500; every acknowledged job
  completes, none is lost or duplicated; the queue goes on afterwards.
"""

from __future__ import annotations

import os
import random
import shutil
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.daemon_fixtures import API_IMGSZ, STRONG_PT, Daemon, make_dataset

pytestmark = pytest.mark.ultralytics

TERMINAL = ("completed", "failed", "cancelled")


# --------------------------------------------------------------------------- one daemon, watcher on


class Env:
    def __init__(self, daemon: Daemon, root: Path) -> None:
        self.d = daemon
        self.root = root
        self.small = root / "small" / "data.yaml"
        self.strong = root / "ckpts" / "strong.pt"

    def post_eval(self, **body: Any) -> httpx.Response:
        body.setdefault("imgsz", API_IMGSZ)
        return self.d.http.post("/v1/vision/eval", json=body, timeout=60)


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    root = tmp_path_factory.mktemp("faults")
    make_dataset(root / "small", n_val=12, seed=80)
    d = Daemon(root, config={
        "watch": {"enabled": True, "settle_seconds": 0.3, "rescan_interval_s": 2.0,
                  "default_dataset": str(root / "small" / "data.yaml")},
        "eval": {"imgsz": API_IMGSZ},
    })
    e = Env(d, root)
    e.strong.parent.mkdir()
    shutil.copyfile(STRONG_PT, e.strong)  # outside the models root: the watcher leaves it alone
    try:
        d.start()
        yield e
    finally:
        d.stop()


def test_corrupt_and_truncated_checkpoints_fail_clearly(env: Env) -> None:
    d = env.d
    pid = d.health()["worker_info"]["pid"]
    ckpts = env.root / "ckpts"
    raw = STRONG_PT.read_bytes()
    (ckpts / "corrupt.pt").write_bytes(random.Random(5).randbytes(len(raw)))
    (ckpts / "truncated.pt").write_bytes(raw[: len(raw) * 2 // 5])
    api_jobs = {}
    for name in ("corrupt", "truncated"):
        r = env.post_eval(model=str(ckpts / f"{name}.pt"), dataset=str(env.small))
        if r.status_code == 400:  # refused at submit time: fine, if it says why
            assert "corrupt" in r.json()["detail"] or "truncated" in r.json()["detail"], r.text
        else:
            assert r.status_code == 202, r.text
            api_jobs[name] = r.json()["job_id"]
    for name, job_id in api_jobs.items():
        job = d.wait_job(job_id, timeout=120)
        assert job["status"] == "failed", (name, job)
        assert "checkpoint" in job["error"] and ("corrupt" in job["error"] or "truncated" in job["error"]
                                                 or "cannot load" in job["error"]), (name, job["error"])

    # Dropped into the watched folder (written elsewhere, then renamed in: the watcher sees whole files).
    for name, payload in (("wcorrupt", (ckpts / "corrupt.pt").read_bytes()),
                          ("wtruncated", (ckpts / "truncated.pt").read_bytes())):
        folder = d.models_root / name
        folder.mkdir()
        staging = env.root / f"{name}.staging"
        staging.write_bytes(payload)
        os.replace(staging, folder / "v1.pt")

    def settled() -> bool:
        out = []
        for name in ("wcorrupt", "wtruncated"):
            jobs = d.query("SELECT j.status, j.error FROM jobs j JOIN checkpoint_claims c ON c.job_id = j.id "
                           "WHERE c.model_name = ?", (name,))
            skips = d.query("SELECT reason FROM skipped_checkpoints WHERE model_name = ?", (name,))
            out.append(bool(skips) or (bool(jobs) and jobs[0]["status"] in TERMINAL))
        return all(out)

    d.wait_for(settled, 120, "the watcher to handle the bad checkpoints")
    for name in ("wcorrupt", "wtruncated"):
        jobs = d.query("SELECT j.status, j.error FROM jobs j JOIN checkpoint_claims c ON c.job_id = j.id "
                       "WHERE c.model_name = ?", (name,))
        skips = d.query("SELECT reason FROM skipped_checkpoints WHERE model_name = ?", (name,))
        if jobs:
            assert len(jobs) == 1 and jobs[0]["status"] == "failed", [dict(j) for j in jobs]
            assert "corrupt" in jobs[0]["error"] or "truncated" in jobs[0]["error"], jobs[0]["error"]
        else:
            assert skips and skips[0]["reason"], name
        assert not (d.models_root / name / "current.pt").exists(), "a bad checkpoint was promoted"
        assert d.query("SELECT COUNT(*) FROM promotions WHERE model_name = ? AND decision = 'promoted'",
                       (name,))[0][0] == 0

    health = d.health()
    assert health["ok"] is True and health["worker_info"]["pid"] == pid, "the worker died on a bad checkpoint"
    ok = d.submit_eval(model=str(env.strong), dataset=str(env.small))["job_id"]
    assert d.wait_job(ok, timeout=120)["status"] == "completed"


def test_dataset_deleted_between_submit_and_run_fails_clearly(env: Env) -> None:
    d = env.d
    doomed = make_dataset(env.root / "doomed", n_val=8, seed=81)
    doomed_images = make_dataset(env.root / "doomed_images", n_val=8, seed=82)
    blocker = make_dataset(env.root / "blocker", n_val=8, seed=83)
    with d.paused():  # the one worker frozen on the blocker: the jobs behind it cannot start
        busy = d.submit_eval(model=str(env.strong), dataset=str(blocker))["job_id"]
        d.wait_job(busy, ("running",), timeout=60)
        gone_yaml = d.submit_eval(model=str(env.strong), dataset=str(doomed))["job_id"]
        gone_images = d.submit_eval(model=str(env.strong), dataset=str(doomed_images))["job_id"]
        shutil.rmtree(doomed.parent)
        shutil.rmtree(doomed_images.parent / "images")
        assert d.job(gone_yaml)["status"] == "queued" and d.job(gone_images)["status"] == "queued"
    job = d.wait_job(gone_yaml, timeout=180)
    assert job["status"] == "failed" and "not found" in job["error"] and str(doomed) in job["error"], job
    job = d.wait_job(gone_images, timeout=180)
    assert job["status"] == "failed" and ("not found" in job["error"] or "missing" in job["error"]), job
    assert d.wait_job(busy, timeout=180)["status"] == "completed"
    assert d.health()["ok"] is True


def test_unusable_artifacts_folder_fails_the_job_clearly_and_the_daemon_lives(env: Env) -> None:
    d = env.d
    artifacts = d.state_dir / "artifacts"
    aside = d.state_dir / "artifacts.aside"
    data = make_dataset(env.root / "fresh_for_artifacts", n_val=8, seed=84)  # not cached: must write artifacts
    if artifacts.exists():
        artifacts.rename(aside)
    artifacts.write_text("a regular file where the artifacts folder should be\n")
    try:
        job_id = d.submit_eval(model=str(env.strong), dataset=str(data))["job_id"]
        job = d.wait_job(job_id, timeout=120)
        assert job["status"] == "failed", job
        assert "artifacts" in job["error"] and "Not a directory" in job["error"], job["error"]
        assert d.health()["ok"] is True
        assert d.http.get("/v1/vision/jobs", timeout=10).status_code == 200
    finally:
        artifacts.unlink()
        if aside.exists():
            aside.rename(artifacts)
    again = d.submit_eval(model=str(env.strong), dataset=str(data))["job_id"]
    job = d.wait_job(again, timeout=120)
    assert job["status"] == "completed" and job["result"]["cached"] is False, job


def _burst(url: str, body: dict[str, Any], n_submit: int, n_poll: int) -> list[tuple[str, int, str]]:
    """Submits and polls from threads, all at once; returns (kind, status, body) per request."""
    out: list[tuple[str, int, str]] = []
    lock = threading.Lock()
    client = httpx.Client(base_url=url, timeout=60)  # shared by the threads: one SSL context, not one each

    def call(kind: str) -> None:
        try:
            if kind == "submit":
                r = client.post("/v1/vision/eval", json=body)
            else:
                r = client.get("/v1/vision/jobs?limit=5")
            with lock:
                out.append((kind, r.status_code, r.text))
        except httpx.HTTPError as exc:
            with lock:
                out.append((kind, -1, repr(exc)))

    threads = [threading.Thread(target=call, args=("submit",)) for _ in range(n_submit)]
    threads += [threading.Thread(target=call, args=("poll",)) for _ in range(n_poll)]
    for t in threads:
        t.start()
        time.sleep(0.05)
    for t in threads:
        t.join(timeout=90)
    client.close()
    return out


@pytest.mark.parametrize("hold_s", [2.0, 7.0], ids=["2s", "7s-past-busy-timeout"])
def test_sqlite_locked_by_another_process(env: Env, hold_s: float) -> None:
    d = env.d
    body = {"model": str(env.strong), "dataset": str(env.small), "imgsz": API_IMGSZ}
    warm = d.submit_eval(**body)["job_id"]  # afterwards every such job is a quick cache hit
    assert d.wait_job(warm, timeout=120)["status"] == "completed"
    before = d.query("SELECT COUNT(*) FROM jobs")[0][0]

    conn = sqlite3.connect(d.db_path, timeout=10, isolation_level=None)
    try:
        conn.execute("BEGIN EXCLUSIVE")
        results: list[tuple[str, int, str]] = []
        burst = threading.Thread(target=lambda: results.extend(_burst(d.url, body, n_submit=6, n_poll=10)))
        burst.start()
        time.sleep(hold_s)
        conn.execute("COMMIT")
    finally:
        conn.close()
    burst.join(timeout=120)

    bad = [(k, s, t[:200]) for k, s, t in results if s not in ((202, 503) if k == "submit" else (200, 503))]
    assert not bad, bad
    for _, status, text in results:
        if status == 503:
            assert "detail" in text and "locked" in text, text
    accepted = [httpx.Response(202, content=t.encode()).json()["job_id"] for k, s, t in results
                if k == "submit" and s == 202]
    assert len(results) == 16
    for job_id in accepted:
        assert d.wait_job(job_id, timeout=120)["status"] == "completed"
    assert d.query("SELECT COUNT(*) FROM jobs")[0][0] == before + len(accepted), "a job was lost or duplicated"
    if hold_s < 5:
        assert len(accepted) == 6, results  # within the busy timeout nothing is refused
    # The queue goes on: a new job after the lock.
    after = d.submit_eval(**body)["job_id"]
    assert d.wait_job(after, timeout=120)["status"] == "completed"
    assert d.health()["ok"] is True
    log = d.log()
    assert '" 500 ' not in log and "Traceback" not in log, d.log_tail(60)
