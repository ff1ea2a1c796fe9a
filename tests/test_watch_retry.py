"""Retrying what failed for outside reasons (issue 15, item 4), in one process.

Real parts: SQLite in tmp_path, the real ``JobQueue``, ``Ingest``,
``Outcomes`` and ``Watcher`` (with its observer thread) over a real models
folder and a real synthetic dataset. The job runner is a stand-in for the
worker's evaluation (a real one adds minutes and is covered by the daemon
tests): it reads the dataset with the real ``load_dataset`` and
``fingerprint``, as ``Evaluations.identify`` does before any worker runs, and
raises what the test names. Time is an injected clock: no test waits for a
backoff.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from daemon.jobs.queue import JobContext, JobQueue
from daemon.watch.ingest import Ingest
from daemon.watch.retry import RETRY_BACKOFF, Outcomes, is_outside, next_retry
from daemon.watch.watcher import Watcher, file_state
from evaluation.datasets import fingerprint, load_dataset
from store import checkpoints
from store.database import Database
from tests.daemon_fixtures import STRONG_PT, WEAK_PT, make_dataset
from tests.watch_fixtures import copy_file, write_pipeline
from vocab.config import parse_config
from vocab.errors import (
    CheckpointError,
    ClassMismatchError,
    DatasetError,
    InternalError,
    JobError,
    JobTimedOut,
    StoreBusy,
    UnsupportedTask,
    WorkerDied,
)


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


def test_the_backoff_schedule_is_1_5_30_minutes_then_hourly() -> None:
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    delays = [(next_retry(t0, n) - t0).total_seconds() / 60 for n in range(1, 8)]
    assert delays == [1, 5, 30, 60, 60, 60, 60]
    assert RETRY_BACKOFF[-1] == timedelta(hours=1)


def test_outside_failures_are_told_from_a_checkpoints_own_faults() -> None:
    outside = [DatasetError("images missing"), WorkerDied("killed"), JobTimedOut("late"), StoreBusy("locked"),
               JobError("artifacts folder"), OSError("EIO"), None]
    own = [CheckpointError("truncated"), ClassMismatchError("names differ"), UnsupportedTask("segment"),
           InternalError("load failed"), ValueError("a bug the file triggers")]
    assert [is_outside(e) for e in outside] == [True] * len(outside)
    assert [is_outside(e) for e in own] == [False] * len(own)


class Rig:
    """The watcher's side of the daemon, wired as ``daemon.app.service`` wires it."""

    def __init__(self, root: Path, clock: Clock, outcome: Callable[[dict[str, Any]], None]) -> None:
        self.root = root
        self.clock = clock
        self.outcome = outcome
        self.models = root / "models"
        self.pool = ThreadPoolExecutor(2)
        self.config = parse_config({"paths": {"models_root": str(self.models), "db_path": str(root / "eval.db")}},
                                   environ={})
        self.open()

    def open(self) -> None:
        self.db = Database(self.config.db_path)
        self.queue = JobQueue(self.db, self.run, concurrency=1, max_queued=10, timeouts={}, clock=self.clock)
        self.ingest = Ingest(self.config, self.db, self.queue, self.clock, pool=self.pool)
        self.watcher = Watcher(self.models, 0.1, self.ingest, pool=self.pool)
        self.outcomes = Outcomes(self.db, self.clock, recheck=self.watcher.forget)
        self.queue.listeners.append(self.outcomes.job_ended)

    async def run(self, ctx: JobContext) -> dict[str, Any]:
        fp = await asyncio.to_thread(lambda: fingerprint(load_dataset(ctx.job.params["dataset_path"])))
        self.outcome(ctx.job.params)
        return {"dataset_fingerprint": fp}

    async def close(self) -> None:
        await self.watcher.stop()
        await self.queue.close()
        self.db.close()

    def jobs(self) -> list[dict[str, Any]]:
        rows = self.db.read_sync(lambda c: c.execute("SELECT id, status, error FROM jobs ORDER BY seq").fetchall())
        return [dict(r) for r in rows]

    def state(self, name: str) -> list[dict[str, Any]]:
        return self.db.read_sync(lambda c: checkpoints.for_model(c, name))

    async def wait(self, predicate: Callable[[], Any], what: str, timeout: float = 60) -> Any:
        deadline = time.monotonic() + timeout
        while not (value := predicate()):
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what}: jobs {self.jobs()}")
            await asyncio.sleep(0.05)
        return value


@pytest.fixture
async def rig(tmp_path: Path):  # type: ignore[no-untyped-def]
    failures: list[BaseException] = []

    def outcome(params: dict[str, Any]) -> None:
        if failures:
            raise failures.pop(0)

    r = Rig(tmp_path, Clock(), outcome)
    r.failures = failures  # type: ignore[attr-defined]
    try:
        yield r
    finally:
        await r.close()
        r.pool.shutdown()


async def test_a_dataset_that_appears_after_the_failure_is_evaluated_without_a_resubmission(rig: Rig) -> None:
    dataset = make_dataset(rig.root / "data", n_val=4, seed=1)
    model_dir = rig.models / "det"
    write_pipeline(model_dir, dataset)
    target = copy_file(STRONG_PT, model_dir / "v1.pt")
    rig.watcher.start()
    assert await rig.watcher.scan() == 1
    await rig.wait(lambda: len(rig.jobs()) == 1, "the watcher's job")
    # The dataset goes away (an unmounted disk) before the job runs: an outside failure.
    offline = rig.root / "data-offline"
    (rig.root / "data").rename(offline)
    rig.queue.start()
    await rig.wait(lambda: rig.jobs()[0]["status"] == "failed", "the job to fail")
    await rig.wait(lambda: rig.state("det")[0]["state"] == "retry", "its state")  # written once the job ended
    (st,) = rig.state("det")
    assert (st["state"], st["attempts"], st["path"]) == ("retry", 1, str(target)), st
    assert st["next_retry_at"] == "2026-03-01T12:01:00Z"
    assert "dataset" in st["last_error"].lower(), st

    # Before the retry is due nothing is queued, however often the watcher looks.
    assert await rig.ingest(target, file_state(target)) is False
    rig.clock.now += timedelta(seconds=59)
    assert await rig.ingest(target, file_state(target)) is False
    assert len(rig.jobs()) == 1

    # The state survives a restart of the daemon's parts (it is in the database).
    await rig.close()
    rig.open()
    rig.queue.start()
    (st2,) = rig.state("det")
    assert st2 == st

    offline.rename(rig.root / "data")  # the dataset is back
    rig.clock.now += timedelta(seconds=2)
    rig.watcher.start()
    await rig.watcher.scan()  # the periodic rescan, nobody resubmits anything
    await rig.wait(lambda: len(rig.jobs()) == 2 and rig.jobs()[1]["status"] == "completed", "the retry to complete")
    await rig.wait(lambda: rig.state("det")[0]["state"] == "evaluated", "its state")
    (st,) = rig.state("det")
    assert (st["state"], st["last_error"], st["next_retry_at"]) == ("evaluated", None, None), st
    assert st["attempts"] == 1


async def test_repeated_outside_failures_back_off_and_own_faults_wait_for_new_bytes(rig: Rig) -> None:
    dataset = make_dataset(rig.root / "data", n_val=4, seed=1)
    model_dir = rig.models / "det"
    write_pipeline(model_dir, dataset)
    target = copy_file(STRONG_PT, model_dir / "v1.pt")
    rig.failures.extend([JobTimedOut("ran past 3600 s"), StoreBusy("the database is locked by another process")])
    rig.queue.start()
    assert await rig.ingest(target, file_state(target)) is True
    await rig.wait(lambda: rig.state("det")[0]["state"] == "retry", "the first failure")
    rig.clock.now += RETRY_BACKOFF[0]
    assert await rig.ingest(target, file_state(target)) is True
    await rig.wait(lambda: rig.state("det")[0]["attempts"] == 2, "the second failure")  # written with 'retry'
    (st,) = rig.state("det")
    assert st["state"] == "retry" and "locked" in st["last_error"], st
    assert st["next_retry_at"] == "2026-03-01T12:06:00Z"  # 1 minute, then 5 minutes later

    # An own fault: no retry however long one waits; other bytes in the same file are evaluated.
    rig.clock.now += RETRY_BACKOFF[1]
    rig.failures.append(CheckpointError("checkpoint v1.pt is truncated"))
    assert await rig.ingest(target, file_state(target)) is True
    await rig.wait(lambda: rig.state("det")[0]["state"] == "failed", "the own fault")
    rig.clock.now += timedelta(days=2)
    assert await rig.ingest(target, file_state(target)) is True
    assert len(rig.jobs()) == 3
    copy_file(WEAK_PT, target)
    assert await rig.ingest(target, file_state(target)) is True
    await rig.wait(lambda: len(rig.jobs()) == 4 and rig.jobs()[3]["status"] == "completed", "the new bytes")
    await rig.wait(lambda: len(rig.state("det")) == 2 and "queued" not in {s["state"] for s in rig.state("det")},
                   "the new bytes' state")
    states = {s["sha256"][:8]: s["state"] for s in rig.state("det")}
    assert sorted(states.values()) == ["evaluated", "failed"], states
