"""What the daemon serves about one stored evaluation: its result, curves, errors and dataset images.

Evaluations are reached by id (``/v1/vision/evaluations/{id}``), or through
the eval job that produced them (``/v1/vision/eval/{job_id}``). The
``errors.json``/``curves.json`` artifacts are read from beside the
predictions; for an evaluation stored before they existed (or before
``errors.json`` listed the images of each confusion-matrix cell) they are
computed once, on first request, by a worker from the stored predictions,
evidence and label files (never a second inference). Images are served only
by a name the evaluation lists (its evidence's image names), looked up in the
dataset's own image list: no part of a client's path reaches the file system.

The dashboard's pages read the errors in parts that do not grow with the
number of images (``daemon.app.analysis_pages``): the parsed artifact of the
last few evaluations asked about is kept (until its file changes), one
image's predictions are read from the predictions artifact without parsing
it whole (``daemon.app.prediction_rows``), and its labels from its label file
when asked. The dataset's split is listed once per evaluation (its image list,
without reading its images or label files: ``task_data.list_split``).
"""

from __future__ import annotations

import asyncio
import mimetypes
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from daemon.app import analysis_pages as pages
from daemon.app.prediction_rows import image_rows
from evaluation import task_data
from evaluation.analysis_store import ARTIFACTS, CURVES_FILE, ERRORS_FILE, artifact_bytes, read_artifact
from evaluation.evidence import load_evidence
from evaluation.file_cache import FileCache
from store import job_table as jobq
from store import results
from store.database import Database
from vocab.errors import Conflict, NotFound
from vocab.files import identity_of
from vocab.tasks import DEFAULT_TASK

ON_DEMAND_TIMEOUT_S = 300.0
KEPT_EVALUATIONS = 8  # parsed errors artifacts and listed datasets kept, the most recently asked first
KEPT_IMAGES = 64  # images whose prediction rows are kept (a page's, and the pages around it)


@dataclass
class _Errors:
    """A parsed errors artifact, and its images' positions."""

    value: dict[str, Any]
    order: dict[str, int] = field(init=False)

    def __post_init__(self) -> None:
        self.order = {name: i for i, name in enumerate(self.value["images"])}


@dataclass(frozen=True)
class _Listed:
    """The images an evaluation lists, mapped to the dataset's files, and how to read an image's label objects
    from its label file (None for classification: it has none)."""

    images: dict[str, Path]
    labels_of: Callable[[Path], list[Any]] | None


def _remember(cache: OrderedDict[Any, Any], key: Any, value: Any, kept: int = KEPT_EVALUATIONS) -> Any:
    cache[key] = value
    cache.move_to_end(key)
    while len(cache) > kept:
        cache.popitem(last=False)
    return value


class Analyses:
    """Read access to stored evaluations and their artifacts (see module contract)."""

    def __init__(self, db: Database, executor: Any, cache_root: Path) -> None:
        self.cache_root = cache_root  # where COCO JSON datasets were converted
        self.db = db
        self.executor = executor
        self._locks: dict[int, asyncio.Lock] = {}
        self._listed: OrderedDict[int, _Listed] = OrderedDict()
        self._errors: FileCache[_Errors] = FileCache(max_entries=KEPT_EVALUATIONS)  # by the file's identity
        self._image_rows: OrderedDict[tuple[int, str], list[dict[str, Any]]] = OrderedDict()
        self._listing: dict[int, asyncio.Task[_Listed]] = {}  # the one listing under way per evaluation

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
        """The stored result of an evaluation, with its job, trigger and model version. Its images are listed
        meanwhile (a page showing the result asks for them next)."""
        row = await self.row(eval_id)
        if eval_id not in self._listed and eval_id not in self._listing:
            self._listing_task(eval_id, row)
        out = results.result_of(row)
        out.update(job_id=row["job_id"], trigger=row["trigger"], model_version=row["model_version"])
        return out

    async def errors(self, eval_id: int, *, full: bool = True, images: bool = True) -> dict[str, Any]:
        """The errors artifact of an evaluation, without its per-box lists unless ``full``, without its
        per-image lists unless ``images``."""
        value = pages.errors_view(await self._errors_of(eval_id), boxes=full, images=images)
        value["eval_id"] = eval_id
        return value

    async def curves_json(self, eval_id: int) -> bytes:
        """The curves artifact of an evaluation as stored: JSON text, served as it is (at 80 classes it is
        650 kB, which parsing and dumping again would cost some 80 ms of the event loop's time per view)."""
        directory = await self._artifacts_dir(eval_id)
        if not (directory / CURVES_FILE).is_file():
            await self._compute(eval_id, directory)
        return await asyncio.to_thread(artifact_bytes, directory, "curves")

    async def gallery(self, eval_id: int, kind: str, cls: str | None, offset: int, limit: int) -> dict[str, Any]:
        """A page of failure examples (``analysis_pages.gallery_page``); for a task that predicts more than boxes,
        each with the ``geometry`` of its prediction and the image's ``ground_truth`` (what the task draws)."""
        parsed = await self._parsed(eval_id)
        page = pages.gallery_page(parsed.value, kind, cls, offset, limit)
        if not pages.is_classification(parsed.value):
            task = (await self.row(eval_id))["task"] or DEFAULT_TASK
            page["items"] = [await self._with_geometry(eval_id, parsed, item, task) for item in page["items"]]
        return {"eval_id": eval_id, **page}

    async def cell(self, eval_id: int, predicted: int, true: int, offset: int, limit: int) -> dict[str, Any]:
        """A page of the images behind a confusion-matrix cell, each with its ``annotations`` (detection and its
        kin: the predictions of the cell's predicted class, the labels of its true class)."""
        parsed = await self._parsed(eval_id, need_cells=True)
        page = pages.cell_page(parsed.value, predicted, true, offset, limit)
        for item in page["items"]:
            notes = await self._annotations(eval_id, parsed, item["image"])
            if not pages.is_classification(parsed.value):
                notes["predictions"] = [p for p in notes["predictions"] if p["class"] == page["predicted"]]
                notes["ground_truth"] = [g for g in notes["ground_truth"] if g["class"] == page["true"]]
            item["annotations"] = notes
        return {"eval_id": eval_id, **page}

    async def annotations(self, eval_id: int, image: str, cls: str | None = None) -> dict[str, Any]:
        """What was predicted and labelled on one image the evaluation lists (``analysis_pages``); beyond
        classification, of class ``cls`` only when given."""
        parsed = await self._parsed(eval_id)
        if image not in parsed.order:
            raise NotFound(f"evaluation {eval_id} has no image named {image!r}")
        row = await self.row(eval_id)
        notes = await self._annotations(eval_id, parsed, image)
        if cls is not None and not pages.is_classification(parsed.value):
            notes = {k: [v for v in vs if v["class"] == cls] for k, vs in notes.items()}
        return {"eval_id": eval_id, "image": image, "index": parsed.order[image], "task": row["task"] or DEFAULT_TASK,
                "conf_threshold": parsed.value.get("conf_threshold"), **notes}

    async def _annotations(self, eval_id: int, parsed: _Errors, image: str) -> dict[str, Any]:
        rows = await self._rows(eval_id, parsed, image)
        names = parsed.value["classes"]
        if pages.is_classification(parsed.value):
            return pages.classification_annotations(rows, names)
        labels = await self._labels(eval_id, image)
        return pages.detection_annotations(rows, labels, names, parsed.value.get("conf_threshold"))

    async def _with_geometry(self, eval_id: int, parsed: _Errors, example: dict[str, Any], task: str) -> dict[str, Any]:
        if task == DEFAULT_TASK:
            return example  # a detection example's boxes are all there is to draw
        names = parsed.value["classes"]
        drawn = example.get("prediction") if example.get("type") == "missed" else example
        geometry = pages.matching_row(await self._rows(eval_id, parsed, example["image"]), names, drawn) if drawn else None
        labels = await self._labels(eval_id, example["image"])
        return {**example, "geometry": geometry,
                "ground_truth": pages.detection_annotations([], labels, names, None)["ground_truth"]}

    async def _labels(self, eval_id: int, image: str) -> list[Any]:
        """The label objects of an image the evaluation lists, read from its label file now (none for
        classification, or for an image its dataset no longer lists)."""
        listed = await self._listed_of(eval_id)
        path = listed.images.get(image)
        if path is None or listed.labels_of is None:
            return []
        return await asyncio.to_thread(listed.labels_of, path)

    async def _rows(self, eval_id: int, parsed: _Errors, image: str) -> list[dict[str, Any]]:
        rows = self._image_rows.get((eval_id, image))
        if rows is None:
            path = Path((await self.row(eval_id))["predictions_path"])
            rows = await asyncio.to_thread(image_rows, path, image, parsed.order)
        return _remember(self._image_rows, (eval_id, image), rows, KEPT_IMAGES)

    async def _errors_of(self, eval_id: int) -> dict[str, Any]:
        return (await self._parsed(eval_id)).value

    async def _parsed(self, eval_id: int, *, need_cells: bool = False) -> _Errors:
        """The parsed errors artifact (computed first where missing, or where ``need_cells`` and it predates
        the cells' image lists), from the cache while its file is unchanged."""
        directory = await self._artifacts_dir(eval_id)
        path = directory / ERRORS_FILE
        if not path.is_file() or (need_cells and "cells" not in (await self._load(path)).value):
            await self._compute(eval_id, directory, stale_errors=path.is_file())
        return await self._load(path)

    async def _load(self, path: Path) -> _Errors:
        """The parsed errors artifact at ``path`` (NotFound when missing), parsed again only when the file
        changes."""
        def read() -> tuple[_Errors, list[Path]]:
            return _Errors(read_artifact(path.parent, "errors")), [path]

        return await asyncio.to_thread(self._errors.get, str(path), read)

    async def _artifacts_dir(self, eval_id: int) -> Path:
        row = await self.row(eval_id)
        if not row["predictions_path"]:
            raise NotFound(f"evaluation {eval_id} has no stored predictions; its analysis is unavailable")
        return Path(row["predictions_path"]).parent

    async def _compute(self, eval_id: int, directory: Path, *, stale_errors: bool = False) -> None:
        """Write the artifacts of an older evaluation in a worker, once (concurrent requests wait)."""
        lock = self._locks.setdefault(eval_id, asyncio.Lock())
        stamp = identity_of(directory / ERRORS_FILE) if stale_errors else None
        try:
            async with lock:
                if stale_errors and identity_of(directory / ERRORS_FILE) != stamp:
                    return  # rewritten while this request waited
                if not stale_errors and all((directory / f).is_file() for f in ARTIFACTS.values()):
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
            "split": row["split"] or "val", "cache_root": str(self.cache_root), "class_names": result["class_names"],
            "operating": {k: result.get(k) for k in ("conf_threshold", "precision", "recall", "f1")},
        }
        await self.executor.run("analyse", params, job_id=f"analyse-{eval_id}", on_progress=lambda v: None,
                                timeout=ON_DEMAND_TIMEOUT_S, cancel=asyncio.Event())

    async def image(self, eval_id: int, name: str) -> tuple[Path, str]:
        """(file, content type) of an image the evaluation lists by ``name``; NotFound for anything else."""
        path = (await self._listed_of(eval_id)).images.get(name)
        if path is None:
            raise NotFound(f"evaluation {eval_id} has no image named {name!r}")
        if not path.is_file():
            raise NotFound(f"image {name!r} is no longer in the dataset of evaluation {eval_id}")
        return path, mimetypes.guess_type(path.name)[0] or "application/octet-stream"

    async def _listed_of(self, eval_id: int) -> _Listed:
        listed = self._listed.get(eval_id)
        if listed is None:
            task = self._listing.get(eval_id) or self._listing_task(eval_id, await self.row(eval_id))
            listed = await asyncio.shield(task)
        return _remember(self._listed, eval_id, listed)

    def _listing_task(self, eval_id: int, row: Any) -> asyncio.Task[_Listed]:
        """Start listing an evaluation's images, once however many requests wait for it; kept when done (a
        failure is answered to whoever waits, and tried again by the next request)."""
        task = asyncio.ensure_future(asyncio.to_thread(_list_images, row, self.cache_root))
        self._listing[eval_id] = task

        def done(t: asyncio.Task[_Listed]) -> None:
            self._listing.pop(eval_id, None)
            if not t.cancelled() and t.exception() is None:
                _remember(self._listed, eval_id, t.result())

        task.add_done_callback(done)
        return task


def _list_images(row: Any, cache_root: Path) -> _Listed:
    """The evaluation's image names (its evidence) mapped to the dataset's own files of those names (the
    split it evaluated, as ``task_data.list_split`` lists it: no label file is read here)."""
    evidence_path = row["evidence_path"]
    if not evidence_path or not Path(evidence_path).is_file():
        raise NotFound("this evaluation lists no images (its evidence is missing)")
    listed = {str(n) for n in load_evidence(Path(evidence_path), ["image_names"])["image_names"]}
    split = task_data.list_split(row["dataset"], row["split"], row["task"] or DEFAULT_TASK, cache_root=cache_root)
    images = {name: p for p in split.images if (name := split.relative_name(p)) in listed}
    return _Listed(images, getattr(split, "labels_of", None))  # an ImageFolder has no labels
