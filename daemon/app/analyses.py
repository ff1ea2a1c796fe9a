"""What the daemon serves about one stored evaluation: its result, curves, errors and dataset images.

Evaluations are reached by id (``/v1/vision/evaluations/{id}``), or through
the eval job that produced them (``/v1/vision/eval/{job_id}``). The
``errors.json``/``curves.json`` artifacts are read from beside the
predictions; for an evaluation stored before they existed they are computed
once, on first request, by a worker from the stored predictions, evidence and
label files (never a second inference). Images are served only by a name the
evaluation lists (its evidence's image names), looked up in the dataset's own
image list: no part of a client's path reaches the file system.
"""

from __future__ import annotations

import asyncio
import mimetypes
from pathlib import Path
from typing import Any

from evaluation import task_data
from evaluation.analysis_store import ARTIFACTS, read_artifact
from evaluation.evidence import load_evidence
from store import job_table as jobq
from store import results
from store.database import Database
from vocab.errors import Conflict, NotFound

ON_DEMAND_TIMEOUT_S = 300.0
_HEAVY_KEYS = ("prediction_types", "missed_boxes")


class Analyses:
    """Read access to stored evaluations and their artifacts (see module contract)."""

    def __init__(self, db: Database, executor: Any, cache_root: Path) -> None:
        self.cache_root = cache_root  # where COCO JSON datasets were converted
        self.db = db
        self.executor = executor
        self._locks: dict[int, asyncio.Lock] = {}
        self._images: dict[int, dict[str, Path]] = {}

    async def eval_id_of_job(self, job_id: str) -> int:
        """The evaluation an eval job stored; NotFound / Conflict when there is none (yet)."""
        job = await self.db.read(lambda c: jobq.get(c, job_id))
        if job is None or job.kind != "eval":
            raise NotFound(f"eval job not found: {job_id}")
        if job.status != "completed" or not job.result or job.result.get("eval_id") is None:
            raise Conflict(f"job {job_id} is {job.status}; its evaluation exists once it has completed")
        return int(job.result["eval_id"])

    async def row(self, eval_id: int) -> Any:
        row = await self.db.read(lambda c: results.get(c, eval_id))
        if row is None:
            raise NotFound(f"evaluation not found: {eval_id}")
        return row

    async def result(self, eval_id: int) -> dict[str, Any]:
        """The stored result of an evaluation, with its job, trigger and model version."""
        row = await self.row(eval_id)
        out = results.result_of(row)
        out.update(job_id=row["job_id"], trigger=row["trigger"], model_version=row["model_version"])
        return out

    async def artifact(self, eval_id: int, kind: str, *, full: bool = True) -> dict[str, Any]:
        """``curves`` or ``errors`` of an evaluation (``errors`` without its per-box lists unless ``full``)."""
        directory = await self._artifacts_dir(eval_id)
        if not (directory / ARTIFACTS[kind]).is_file():
            await self._compute(eval_id, directory)
        value = await asyncio.to_thread(read_artifact, directory, kind)
        if kind == "errors" and not full:
            value = {k: v for k, v in value.items() if k not in _HEAVY_KEYS}
        value["eval_id"] = eval_id
        return value

    async def _artifacts_dir(self, eval_id: int) -> Path:
        row = await self.row(eval_id)
        if not row["predictions_path"]:
            raise NotFound(f"evaluation {eval_id} has no stored predictions; its analysis is unavailable")
        return Path(row["predictions_path"]).parent

    async def _compute(self, eval_id: int, directory: Path) -> None:
        """Write the artifacts of an older evaluation in a worker, once (concurrent requests wait)."""
        lock = self._locks.setdefault(eval_id, asyncio.Lock())
        try:
            async with lock:
                if all((directory / f).is_file() for f in ARTIFACTS.values()):
                    return
                await self._run_worker(eval_id)
        finally:
            self._locks.pop(eval_id, None)

    async def _run_worker(self, eval_id: int) -> None:
        row = await self.row(eval_id)
        evidence = row["evidence_path"]
        result = results.result_of(row)
        if not (Path(row["predictions_path"]).is_file() and evidence and Path(evidence).is_file()
                and result.get("class_names")):
            raise NotFound(f"the predictions, evidence or class names of evaluation {eval_id} are missing; its "
                           "error analysis is unavailable (evaluate again)")
        params = {
            "predictions_path": row["predictions_path"], "evidence_path": evidence,
            "dataset_path": row["dataset"], "dataset_fingerprint": row["dataset_fingerprint"],
            "class_names": result["class_names"],
            "operating": {k: result.get(k) for k in ("conf_threshold", "precision", "recall", "f1")},
        }
        await self.executor.run("analyse", params, job_id=f"analyse-{eval_id}", on_progress=lambda v: None,
                                timeout=ON_DEMAND_TIMEOUT_S, cancel=asyncio.Event())

    async def image(self, eval_id: int, name: str) -> tuple[Path, str]:
        """(file, content type) of an image the evaluation lists by ``name``; NotFound for anything else."""
        images = self._images.get(eval_id)
        if images is None:
            row = await self.row(eval_id)
            images = await asyncio.to_thread(_listed_images, row, self.cache_root)
            if len(self._images) >= 64:
                self._images.clear()
            self._images[eval_id] = images
        path = images.get(name)
        if path is None:
            raise NotFound(f"evaluation {eval_id} has no image named {name!r}")
        if not path.is_file():
            raise NotFound(f"image {name!r} is no longer in the dataset of evaluation {eval_id}")
        return path, mimetypes.guess_type(path.name)[0] or "application/octet-stream"


def _listed_images(row: Any, cache_root: Path) -> dict[str, Path]:
    """The evaluation's image names (its evidence) mapped to the dataset's own files of those names."""
    evidence_path = row["evidence_path"]
    if not evidence_path or not Path(evidence_path).is_file():
        raise NotFound("this evaluation lists no images (its evidence is missing)")
    listed = {str(n) for n in load_evidence(Path(evidence_path))["image_names"]}
    dataset = task_data.load(row["dataset"], row["split"], row["task"], cache_root=cache_root)
    return {name: p for p in dataset.images if (name := dataset.relative_name(p)) in listed}
