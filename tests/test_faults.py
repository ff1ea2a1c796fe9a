"""Fault injection against a real daemon in a child process (nothing mocked).

Every test asserts that nothing is lost (each accepted job ends exactly once,
with one stored result when it completes) and that ``current.pt`` is always a
complete file: its sha256 is one of the checkpoints that were promoted.

Already covered by tests/test_recovery.py and not repeated here: kill -9 of a
worker mid-evaluation (retried, or failed clearly once attempts run out) and
kill -9 of the daemon with one job running and one queued.

Here:
- kill -9 of the daemon mid-evaluation of an auto-promote job, then restart:
  the job completes once, its promotion is recorded once, current.pt is v1;
- kill -9 of the daemon in a loop of manual promotions of two ~30 MB
  checkpoints (so a copy takes a while), then restart, several times: after
  every kill current.pt is absent (before the first swap) or byte-identical
  to one of the two, every promotion the API acknowledged is in the ledger,
  and after the restart the ledger's latest promotion is what current.pt
  holds (reconcile records a swap whose row the kill prevented) and no temp
  file is left. Limits: where the kill lands is random (seeded); the test
  asserts that some kills interrupted a promotion request in flight and
  counts how many left a half-written temp file, but it cannot force a kill
  between ``os.replace`` and the ledger insert -- that window is tiny;
- SIGTERM during a job, then restart: the job is requeued without using up
  an attempt (max_attempts = 1) and completes;
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

import hashlib
import os
import random
import shutil
import signal
import sqlite3
import threading
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.daemon_fixtures import API_IMGSZ, STRONG_PT, WEAK_PT, Daemon, make_dataset, place_model

pytestmark = pytest.mark.ultralytics

TERMINAL = ("completed", "failed", "cancelled")


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            h.update(block)
    return h.hexdigest()


def running_with_progress(job: dict[str, Any]) -> bool:
    return job["status"] == "running" and job["progress"] > 0


def tmp_files(*folders: Path) -> list[Path]:
    return [p for folder in folders if folder.is_dir() for p in folder.iterdir() if ".tmp-" in p.name]


# --------------------------------------------------------------------------- kill -9 mid-evaluation, auto-promote


def test_daemon_kill9_mid_auto_promote_evaluation_completes_and_promotes_once(tmp_path: Path) -> None:
    big = make_dataset(tmp_path / "big", n_val=40, seed=71)
    d = Daemon(tmp_path, config={"jobs": {"max_attempts": 2}})
    v1 = place_model(d.models_root, "m", STRONG_PT)
    current = d.models_root / "m" / "current.pt"
    try:
        d.start()
        job_id = d.submit_eval(model="m", dataset=str(big), auto_promote=True)["job_id"]
        d.wait_job(job_id, ("running",), timeout=120, predicate=running_with_progress)
        d.kill9()
        assert not current.exists(), "promoted before the evaluation finished"
        assert d.query("SELECT COUNT(*) FROM promotions")[0][0] == 0

        d.start()
        job = d.wait_job(job_id, timeout=240)
        assert job["status"] == "completed", job
        assert job["result"]["promotion"]["decision"] == "promoted", job["result"]["promotion"]
        # The daemon's own death charges no attempt: it counts as an interruption.
        row = d.query("SELECT attempts, interruptions FROM jobs WHERE id = ?", (job_id,))[0]
        assert (row["attempts"], row["interruptions"]) == (1, 1)
        assert d.query("SELECT COUNT(*) FROM eval_results WHERE job_id = ?", (job_id,))[0][0] == 1
        rows = d.query("SELECT decision, new_sha256, details FROM promotions WHERE model_name = 'm'")
        assert [r["decision"] for r in rows] == ["promoted"], [dict(r) for r in rows]
        assert rows[0]["new_sha256"] == sha256(v1) == sha256(current)
    finally:
        d.stop()


# --------------------------------------------------------------------------- kill -9 mid-promotion


def padded_checkpoint(source: Path, dest: Path, mb: int, seed: int) -> Path:
    """A copy of ``source`` with an extra stored zip member of ``mb`` MiB: still a complete zip archive
    (torch reads only its own records), large enough that copying it takes a while."""
    shutil.copyfile(source, dest)
    rng = random.Random(seed)
    with zipfile.ZipFile(dest, "a", compression=zipfile.ZIP_STORED) as zf:
        zf.writestr("padding/bytes", rng.randbytes(mb << 20))
    return dest


KILLS = 4


def _promote_forever(url: str, stop: threading.Event, acked: list[int], interrupted: list[str]) -> None:
    version = 1
    with httpx.Client(base_url=url, timeout=30) as client:
        while not stop.is_set():
            try:
                r = client.post("/v1/vision/models/m/promote", json={"version": version, "reason": "fault test"})
            except httpx.TransportError as exc:  # the daemon died under this request
                interrupted.append(type(exc).__name__)
                return
            if r.status_code == 200:
                acked.append(r.json()["promotion_id"])
            elif r.status_code != 409:  # 409: that version is already current
                interrupted.append(f"unexpected {r.status_code} {r.text[:200]}")
                return
            version = 3 - version


def test_daemon_kill9_mid_promotion_leaves_a_complete_current_pt_and_a_reconciled_ledger(tmp_path: Path) -> None:
    d = Daemon(tmp_path)
    model_dir = d.models_root / "m"
    model_dir.mkdir(parents=True)
    known = {
        sha256(padded_checkpoint(STRONG_PT, model_dir / "v1.pt", 24, seed=1)),
        sha256(padded_checkpoint(WEAK_PT, model_dir / "v2.pt", 24, seed=2)),
    }
    current, store = model_dir / "current.pt", d.state_dir / "promoted"
    rng = random.Random(1234)
    acked: list[int] = []
    kills_in_flight = kills_with_tmp = 0
    try:
        for _ in range(KILLS):
            d.start(wait_workers=False)
            # After the (re)start: reconcile ran before the server bound.
            assert tmp_files(model_dir) == [], tmp_files(model_dir)
            if current.exists():
                latest = d.query("SELECT new_sha256 FROM promotions WHERE model_name = 'm' AND "
                                 "decision IN ('promoted', 'rollback') ORDER BY id DESC LIMIT 1")
                assert latest and latest[0]["new_sha256"] == sha256(current), "ledger not reconciled"
                detail = httpx.get(f"{d.url}/v1/vision/models/m", timeout=10).json()
                assert detail["current"]["sha256"] == sha256(current)
            ids = {r["id"] for r in d.query("SELECT id FROM promotions")}
            assert set(acked) <= ids, f"acknowledged promotions missing from the ledger: {set(acked) - ids}"

            stop, interrupted = threading.Event(), []
            worker = threading.Thread(target=_promote_forever, args=(d.url, stop, acked, interrupted), daemon=True)
            worker.start()
            time.sleep(rng.uniform(0.6, 2.0))
            d.kill9()
            stop.set()
            worker.join(timeout=30)
            assert not any(i.startswith("unexpected") for i in interrupted), interrupted
            kills_in_flight += bool(interrupted)
            kills_with_tmp += bool(tmp_files(model_dir, store))
            # The moment after the kill, before any recovery: complete or absent, never a mix.
            if current.exists():
                assert sha256(current) in known, "current.pt is not one of the checkpoints: torn write"
        d.start(wait_workers=False)
        assert tmp_files(model_dir) == []
        latest = d.query("SELECT new_sha256 FROM promotions WHERE model_name = 'm' AND decision = 'promoted' "
                         "ORDER BY id DESC LIMIT 1")
        assert latest[0]["new_sha256"] == sha256(current) and sha256(current) in known
        assert set(acked) <= {r["id"] for r in d.query("SELECT id FROM promotions")}
        assert len(acked) >= 5, "too few promotions ran to mean anything"
        assert kills_in_flight >= KILLS - 1, f"only {kills_in_flight} of {KILLS} kills hit a promotion in flight"
        print(f"kills during a promotion request: {kills_in_flight}/{KILLS}; "
              f"leaving a temp file: {kills_with_tmp}/{KILLS}")
    finally:
        d.stop()


# --------------------------------------------------------------------------- SIGTERM


def test_sigterm_during_a_job_requeues_it_without_using_an_attempt(tmp_path: Path) -> None:
    big = make_dataset(tmp_path / "big", n_val=40, seed=72)
    d = Daemon(tmp_path, config={"jobs": {"max_attempts": 1}})
    place_model(d.models_root, "m", WEAK_PT)
    try:
        d.start()
        job_id = d.submit_eval(model="m", dataset=str(big))["job_id"]
        d.wait_job(job_id, ("running",), timeout=120, predicate=running_with_progress)
        d.proc.send_signal(signal.SIGTERM)
        assert d.proc.wait(timeout=60) == 0, d.log_tail()
        row = dict(d.query("SELECT status, attempts, error FROM jobs WHERE id = ?", (job_id,))[0])
        assert row["status"] == "queued" and row["attempts"] == 0, row
        assert f"job {job_id} requeued: daemon stopping" in d.log()
        assert d.descendants() == []

        d.start()
        job = d.wait_job(job_id, timeout=240)
        assert job["status"] == "completed", job
        assert d.query("SELECT attempts FROM jobs WHERE id = ?", (job_id,))[0][0] == 1
        assert d.query("SELECT COUNT(*) FROM eval_results WHERE job_id = ?", (job_id,))[0][0] == 1
    finally:
        d.stop()


# --------------------------------------------------------------------------- one daemon, watcher on


class Env:
    def __init__(self, daemon: Daemon, root: Path) -> None:
        self.d = daemon
        self.root = root
        self.small = root / "small" / "data.yaml"
        self.strong = root / "ckpts" / "strong.pt"

    def post_eval(self, **body: Any) -> httpx.Response:
        body.setdefault("imgsz", API_IMGSZ)
        return httpx.post(f"{self.d.url}/v1/vision/eval", json=body, timeout=60)

    def busy_worker(self, seed: int) -> str:
        """Start a longer evaluation and wait until it runs: jobs submitted now stay queued a while."""
        data = make_dataset(self.root / f"blocker{seed}", n_val=32, seed=seed)
        job_id = self.d.submit_eval(model=str(self.strong), dataset=str(data))["job_id"]
        self.d.wait_job(job_id, ("running",), timeout=120)
        return job_id


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
    busy = env.busy_worker(seed=83)
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
        assert httpx.get(f"{d.url}/v1/vision/jobs", timeout=10).status_code == 200
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

    def call(kind: str) -> None:
        try:
            if kind == "submit":
                r = httpx.post(f"{url}/v1/vision/eval", json=body, timeout=60)
            else:
                r = httpx.get(f"{url}/v1/vision/jobs?limit=5", timeout=60)
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
