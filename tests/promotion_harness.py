"""In-process promotion decisions: a real database, real evaluations, the daemon's own ``Promoter``.

``tests.inprocess.ThreadExecutor`` runs the worker tasks
(``daemon.jobs.worker_main.TASKS``: the same ultralytics evaluation and numpy
bootstrap code a worker process runs) in a thread of this process instead of
a spawned child: the only stand-in is the process boundary, which these
tests do not exercise (tests/test_faults.py and tests/test_isolation.py do).
Everything else is real: SQLite in ``tmp_path``, artifacts on disk, the
atomic swap of ``current.pt``.
"""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path
from typing import Any

from daemon.jobs.evaluations import EvalSpec, Evaluations
from daemon.jobs.queue import JobContext
from daemon.promote.promotion import Promoter
from store import job_table as jobq
from store.database import Database
from tests.conftest import EVAL_BATCH, EVAL_DEVICE, EVAL_IMGSZ
from tests.inprocess import ThreadExecutor
from vocab.config import PromotionConfig


def _job(job_id: str) -> jobq.Job:
    return jobq.Job(seq=1, id=job_id, kind="eval", status="running", trigger="test", params={}, progress=0.0,
                    result=None, error=None, attempts=1, max_attempts=1, cancel_requested=False,
                    created_at="2026-01-01T00:00:00Z", started_at=None, completed_at=None)


class Harness:
    """A models root with one model folder, and the daemon's evaluations and promoter over it."""

    def __init__(self, root: Path, dataset: Path, config: PromotionConfig | None = None, name: str = "m") -> None:
        self.root, self.dataset, self.name = root, dataset, name
        self.models_root = root / "models"
        (self.models_root / name).mkdir(parents=True, exist_ok=True)
        self.db = Database(root / "eval.db")
        self.executor = ThreadExecutor(EVAL_DEVICE)
        asyncio.run(self.executor.start())  # its info: device kind and ultralytics version
        self.evaluations = Evaluations(self.db, self.executor, root / "artifacts", EVAL_DEVICE, root / "converted")
        self.promoter = Promoter(self.db, self.evaluations, self.executor, self.models_root, root / "promoted",
                                 config or PromotionConfig(bootstrap_resamples=300))
        self._jobs = 0

    def place(self, source: Path, filename: str) -> Path:
        dest = self.models_root / self.name / filename
        shutil.copyfile(source, dest)
        return dest

    def context(self) -> JobContext:
        self._jobs += 1
        return JobContext(job=_job(f"job-{self._jobs}"), deadline=float("inf"), report=lambda _v: None)

    def spec(self, path: Path, *, imgsz: int = EVAL_IMGSZ, batch: int = EVAL_BATCH, version: int | None = None,
             weights: dict[str, Any] | None = None) -> EvalSpec:
        return EvalSpec(model_path=str(path), model_name=self.name, model_version=version,
                        dataset_path=str(self.dataset), imgsz=imgsz, batch=batch, weights=weights)

    def evaluate(self, spec: EvalSpec) -> dict[str, Any]:
        return asyncio.run(self.evaluations.run(spec, self.context(), "test"))

    def evaluate_and_consider(self, spec: EvalSpec, gates: dict[str, Any] | None = None) -> dict[str, Any]:
        """Evaluate ``spec`` and let the promoter decide on it, as an ``auto_promote`` eval job does."""
        async def go() -> dict[str, Any]:
            ctx = self.context()
            result = await self.evaluations.run(spec, ctx, "test")
            return await self.promoter.consider(spec, result, ctx, "test", gates)
        return asyncio.run(go())

    def ledger(self) -> list[dict[str, Any]]:
        """Promotion decisions, newest first."""
        return asyncio.run(self.promoter.history(self.name))

    def close(self) -> None:
        self.db.close()


def resave_in_process(src: Path, dest: Path) -> Path:
    """The same state_dict saved again with torch.save: identical weights, new bytes (another sha256)."""
    import torch

    ckpt = torch.load(src, map_location="cpu", weights_only=False)
    ckpt["resaved_by"] = "tests/promotion_harness.py"
    torch.save(ckpt, dest)
    return dest
