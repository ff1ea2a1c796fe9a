"""Train jobs that finish what they start (issue 15, item 5), in one process.

Real parts: SQLite in tmp_path, the real ``JobQueue``, ``Trainer``,
``Outcomes`` and ``Ingest`` over real folders. The executor is a stand-in for
the worker processes (real training takes minutes on CPU and is covered by
tests/test_train.py): its "train" copies the committed strong.pt into the
job's work folder as ultralytics would write best.pt, and its "export" waits
until the test lets it go or cancels the job, so that the job can be
cancelled or interrupted exactly after it has published v<n>.pt.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from daemon.clock import iso, utcnow
from daemon.jobs.queue import JobQueue
from daemon.train.trainer import Trainer
from daemon.watch.ingest import Ingest
from daemon.watch.retry import Outcomes
from daemon.watch.watcher import file_state
from store import promotions
from store.database import Database
from tests.daemon_fixtures import STRONG_PT
from tests.fixtures.synth import make_dataset
from tests.watch_fixtures import sha256_file
from vocab.config import parse_config
from vocab.errors import DatasetError, JobCancelled


class StandInWorkers:
    info: dict[str, Any] = {}

    def __init__(self) -> None:
        self.calls: list[str] = []
        self.exporting = asyncio.Event()
        self.release_export = asyncio.Event()

    async def run(self, kind: str, params: dict[str, Any], *, job_id: str, on_progress: Callable[[float], None],
                  timeout: float, cancel: asyncio.Event,
                  on_detail: Callable[[dict[str, Any]], None] | None = None) -> dict[str, Any]:
        self.calls.append(kind)
        if kind == "train":
            best = Path(params["work_dir"]) / "train" / "weights" / "best.pt"
            best.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(STRONG_PT, best)
            return {"checkpoint": str(best), "metrics": {"fitness": 0.5}, "epochs": params["epochs"]}
        assert kind == "export"
        self.exporting.set()
        released = asyncio.ensure_future(self.release_export.wait())
        cancelled = asyncio.ensure_future(cancel.wait())
        await asyncio.wait([released, cancelled], return_when=asyncio.FIRST_COMPLETED)
        released.cancel()
        cancelled.cancel()
        if cancel.is_set():
            raise JobCancelled("cancelled by request")
        onnx = Path(params["checkpoint"]).with_suffix(".onnx")
        onnx.write_bytes(b"onnx")
        return {"onnx": str(onnx)}


class FailingEvaluations:
    """Stands in for ``Evaluations`` (the real one needs a worker): the dataset has gone away."""

    async def run(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        raise DatasetError("dataset /data/data.yaml cannot be read: it is not mounted")


class Rig:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.models = root / "models"
        self.work = root / "state" / "train"
        self.dataset = make_dataset(root / "data", n_train=2, n_val=2, seed=2)
        self.config = parse_config({"paths": {"models_root": str(self.models), "db_path": str(root / "eval.db")}},
                                   environ={})
        self.rechecked: list[Path] = []
        self.open()

    def open(self) -> None:
        self.db = Database(self.config.db_path)
        self.workers = StandInWorkers()
        self.trainer = Trainer(self.db, self.workers, FailingEvaluations(), None, self.models,  # type: ignore[arg-type]
                               self.work, 8, self.work / "converted")
        self.queue = JobQueue(self.db, self.trainer.run, concurrency=1, max_queued=10, timeouts={})
        self.outcomes = Outcomes(self.db, recheck=self.rechecked.append)
        self.queue.listeners += [self.outcomes.job_ended, self.trainer.job_ended]

    async def submit(self, name: str = "det", auto_eval: bool = False) -> str:
        params = {"model": name, "base": "yolov8n.yaml", "dataset_path": str(self.dataset), "task": "detection",
                  "epochs": 1, "batch": 8, "imgsz": 320, "learning_rate": 0.01, "patience": 10, "device": "cpu",
                  "auto_eval": auto_eval, "auto_promote": False, "eval_weights": None, "gates": None}
        job = await self.queue.submit("train", params)
        assert job is not None
        return job.id

    def job(self, job_id: str) -> dict[str, Any]:
        row = self.db.read_sync(lambda c: c.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone())
        return dict(row)

    def claims(self) -> list[dict[str, Any]]:
        rows = self.db.read_sync(lambda c: c.execute("SELECT * FROM checkpoint_claims").fetchall())
        return [dict(r) for r in rows]

    async def wait(self, predicate: Callable[[], Any], what: str, timeout: float = 60) -> Any:
        deadline = time.monotonic() + timeout
        while not (value := predicate()):
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what}")
            await asyncio.sleep(0.05)
        return value

    async def close(self) -> None:
        await self.queue.close()
        self.db.close()


@pytest.fixture
async def rig(tmp_path: Path):  # type: ignore[no-untyped-def]
    r = Rig(tmp_path)
    try:
        yield r
    finally:
        await r.close()


async def test_a_job_cancelled_after_publishing_removes_its_undecided_version(rig: Rig) -> None:
    rig.queue.start()
    job_id = await rig.submit()
    await asyncio.wait_for(rig.workers.exporting.wait(), 60)
    v1 = rig.models / "det" / "v1.pt"
    assert v1.is_file() and [c["path"] for c in rig.claims()] == [str(v1)]
    await rig.queue.cancel(job_id)
    await rig.wait(lambda: rig.job(job_id)["status"] == "cancelled", "the cancel")
    assert not v1.exists()
    assert rig.claims() == []
    await rig.wait(lambda: not (rig.work / job_id).exists(), "the work folder to be removed")


async def test_a_job_cancelled_after_a_decision_read_its_version_keeps_it(rig: Rig) -> None:
    rig.queue.start()
    job_id = await rig.submit()
    await asyncio.wait_for(rig.workers.exporting.wait(), 60)
    v1 = rig.models / "det" / "v1.pt"
    sha = sha256_file(v1)
    rig.db.write_sync(lambda c: promotions.insert(c, {
        "model_name": "det", "timestamp": iso(utcnow()), "decision": "refused", "actor": "api",
        "reason": "a decision that read v1", "new_sha256": sha}))
    await rig.queue.cancel(job_id)
    await rig.wait(lambda: rig.job(job_id)["status"] == "cancelled", "the cancel")
    assert sha256_file(v1) == sha
    assert [(c["sha256"], c["job_id"]) for c in rig.claims()] == [(sha, job_id)]
    # Decided already: the watcher leaves it alone (no second evaluation, no second decision).
    assert await Ingest(rig.config, rig.db, rig.queue)(v1, file_state(v1)) is True
    assert [(c["sha256"], c["job_id"]) for c in rig.claims()] == [(sha, job_id)]


async def test_an_interrupted_job_reuses_the_version_it_published(rig: Rig) -> None:
    rig.queue.start()
    job_id = await rig.submit()
    await asyncio.wait_for(rig.workers.exporting.wait(), 60)
    v1 = rig.models / "det" / "v1.pt"
    sha = sha256_file(v1)
    await rig.close()  # the daemon stops (SIGTERM): the job goes back to the queue
    rig.open()
    assert rig.job(job_id)["status"] == "queued"
    assert (rig.work / job_id).is_dir()  # kept for the job's next run
    rig.workers.release_export.set()
    rig.queue.start()
    await rig.wait(lambda: rig.job(job_id)["status"] == "completed", "the restarted job")
    assert rig.workers.calls == ["export"]  # no training the second time
    assert sorted(p.name for p in (rig.models / "det").glob("v*.pt")) == ["v1.pt"]
    assert sha256_file(v1) == sha
    result = json.loads(rig.job(job_id)["result"])
    assert (result["version"], result["checkpoint_sha256"], result["training"]) == (1, sha, {"fitness": 0.5})
    await rig.wait(lambda: not (rig.work / job_id).exists(), "the work folder to be removed")


async def test_a_job_failed_after_publishing_hands_its_version_to_the_watcher(rig: Rig) -> None:
    rig.workers.release_export.set()
    rig.queue.start()
    job_id = await rig.submit(auto_eval=True)
    await rig.wait(lambda: rig.job(job_id)["status"] == "failed", "the failure")
    v1 = rig.models / "det" / "v1.pt"
    await rig.wait(lambda: rig.rechecked, "the job-end listeners")  # they run once the failure is written
    assert rig.rechecked == [v1]  # the watcher is asked to look at it again
    await rig.wait(lambda: not (rig.work / job_id).exists(), "the work folder to be removed")
    ingest = Ingest(rig.config, rig.db, rig.queue)
    assert await ingest(v1, file_state(v1)) is True
    (claim,) = rig.claims()
    watcher_job = rig.job(claim["job_id"])
    assert (watcher_job["kind"], watcher_job["trigger"]) == ("eval", "watcher")
    assert claim["sha256"] == sha256_file(v1)


async def test_work_folders_of_ended_jobs_are_pruned_at_start_up(rig: Rig) -> None:
    done_id = await rig.submit()
    queued_id = await rig.submit()
    rig.db.write_sync(lambda c: c.execute("UPDATE jobs SET status = 'failed' WHERE id = ?", (done_id,)))
    for name in (done_id, queued_id, "0123456789ab"):
        (rig.work / name / "train").mkdir(parents=True)
    removed = await rig.trainer.prune_work_folders()
    assert sorted(p.name for p in removed) == sorted([done_id, "0123456789ab"])
    assert [p.name for p in rig.work.iterdir()] == [queued_id]
