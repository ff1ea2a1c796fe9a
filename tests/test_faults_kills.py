"""kill -9 and SIGTERM of the daemon mid-work, against a real daemon in a child process (nothing mocked).

A module of its own (from tests/test_faults.py, whose other fault tests share one daemon): ``make
test`` gives each pytest process whole modules, and these long tests each start their own daemon.
Every test asserts that nothing is lost (each accepted job ends exactly once, with one stored
result when it completes) and that ``current.pt`` is always a complete file: its sha256 is one of
the checkpoints that were promoted. (kill -9 mid-evaluation of an auto-promote job:
tests/test_daemon_kill9.py.)

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
  an attempt (max_attempts = 1) and completes.
"""

from __future__ import annotations

import random
import shutil
import signal
import threading
import time
import zipfile
from pathlib import Path

import httpx
import pytest

from tests.daemon_fixtures import STRONG_PT, WEAK_PT, Daemon, make_dataset, place_model, running_with_progress
from tests.watch_fixtures import sha256_file

pytestmark = pytest.mark.ultralytics


def tmp_files(*folders: Path) -> list[Path]:
    return [p for folder in folders if folder.is_dir() for p in folder.iterdir() if ".tmp-" in p.name]


# --------------------------------------------------------------------------- kill -9 mid-promotion


def padded_checkpoint(source: Path, dest: Path, mb: int, seed: int) -> Path:
    """A copy of ``source`` with an extra stored zip member of ``mb`` MiB: still a complete zip archive
    (torch reads only its own records), large enough that copying it takes a while."""
    shutil.copyfile(source, dest)
    rng = random.Random(seed)
    with zipfile.ZipFile(dest, "a", compression=zipfile.ZIP_STORED) as zf:
        zf.writestr("padding/bytes", rng.randbytes(mb << 20))
    return dest


KILLS = 3


def _promote_forever(url: str, stop: threading.Event, acked: list[int], interrupted: list[str]) -> None:
    version = 1
    with httpx.Client(base_url=url, timeout=30) as client:
        while not stop.is_set():
            try:
                r = client.post("/v1/vision/models/m/promote",
                                json={"version": version, "reason": "fault test", "force": True})
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
        sha256_file(padded_checkpoint(STRONG_PT, model_dir / "v1.pt", 24, seed=1)),
        sha256_file(padded_checkpoint(WEAK_PT, model_dir / "v2.pt", 24, seed=2)),
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
                assert latest and latest[0]["new_sha256"] == sha256_file(current), "ledger not reconciled"
                detail = d.http.get("/v1/vision/models/m").json()
                assert detail["current"]["sha256"] == sha256_file(current)
            ids = {r["id"] for r in d.query("SELECT id FROM promotions")}
            assert set(acked) <= ids, f"acknowledged promotions missing from the ledger: {set(acked) - ids}"

            stop, interrupted = threading.Event(), []
            worker = threading.Thread(target=_promote_forever, args=(d.url, stop, acked, interrupted), daemon=True)
            worker.start()
            # At least one promotion acknowledged by this daemon, then the kill at a random moment of the loop.
            acked_before = len(acked)
            d.wait_for(lambda n=acked_before, i=interrupted: len(acked) > n or i, 60, "a promotion acknowledged")
            time.sleep(rng.uniform(0.0, 1.0))
            d.kill9()
            stop.set()
            worker.join(timeout=30)
            assert not any(i.startswith("unexpected") for i in interrupted), interrupted
            kills_in_flight += bool(interrupted)
            kills_with_tmp += bool(tmp_files(model_dir, store))
            # The moment after the kill, before any recovery: complete or absent, never a mix.
            if current.exists():
                assert sha256_file(current) in known, "current.pt is not one of the checkpoints: torn write"
        d.start(wait_workers=False)
        assert tmp_files(model_dir) == []
        latest = d.query("SELECT new_sha256 FROM promotions WHERE model_name = 'm' AND decision = 'promoted' "
                         "ORDER BY id DESC LIMIT 1")
        assert latest[0]["new_sha256"] == sha256_file(current) and sha256_file(current) in known
        assert set(acked) <= {r["id"] for r in d.query("SELECT id FROM promotions")}
        assert len(acked) >= KILLS, "a daemon was killed before it acknowledged any promotion"
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
