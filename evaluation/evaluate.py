"""Evaluate one checkpoint on one dataset: every number of the result from one validator pass.

``evaluate`` is what a worker process runs for an ``eval`` job and what
``vision-eval eval --local`` runs in-process. It imports torch (through
``evaluation.validator``) only when called. It loads the checkpoint, reads
its task from it (ultralytics' ``model.task``, or an export's metadata),
loads the dataset as that task reads one (``_dataset``: a dataset YAML whose
labels are read as the task's, ``evaluation.datasets``, for detection,
segmentation, pose and obb; an ImageFolder for classification) and runs the
task's pass: the box tasks' here (``_evaluate_boxes``: the validator of the
task, its metric families, ``evaluation.metrics``, and its geometry in the
artifacts, ``evaluation.task_analysis``), classification's in
``evaluation.classification``. The task-independent part is
``evaluation.eval_common``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from evaluation import task_data
from evaluation.analysis_store import build_artifacts, family_operating, write_artifacts
from evaluation.curves import from_metric
from evaluation.datasets import Dataset, check_class_names
from evaluation.eval_common import Prepared, common_result, scored
from evaluation.evidence import write_evidence
from evaluation.export_meta import ExportInfo, export_shape, model_format, read_export
from evaluation.families import families
from evaluation.file_cache import cached_sha256, remember_sha256
from evaluation.ground_truth import gt_boxes
from evaluation.metrics import task_metrics
from evaluation.size_recall import COCO_MAX_DETS, FlatBoxes, ImageBoxes, SizeRecall, flat_boxes, per_image, size_recall
from evaluation.task_analysis import oks_sigma, overlaps, row_geometry
from vocab.contract.params import EvalSpec
from vocab.errors import CheckpointError, DatasetError
from vocab.files import FileIdentity, identity
from vocab.scoring import resolve_weights
from vocab.tasks import DEFAULT_TASK, TASKS, task_of_ultralytics
from vocab.terms import DEFAULT_IMGSZ


def write_predictions(path: Path, names: list[str], boxes: list[ImageBoxes],
                      geometry: list[list[dict[str, Any]]] | None = None) -> None:
    """The predictions artifact: a JSON list of {file_name, category_id, bbox [x,y,w,h], score}, plus for
    segmentation, pose and obb the task's keys of each row (``geometry``, per image and row: see
    ``evaluation.task_analysis``). Written an image at a time (the bytes ``json.dumps`` of the whole list
    would give), so that no more than one image's rows are held at once: at 10,000 images the whole list
    and its text held about 200 MiB."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with open(tmp, "w", encoding="utf-8") as f:
        f.write("[")
        written = False
        for i, (name, im) in enumerate(zip(names, boxes)):
            extra = geometry[i] if geometry else [{}] * len(im.det_score)
            rows = [{"file_name": name, "category_id": int(cls), "bbox": xywh, "score": score, **keys}
                    for xywh, score, cls, keys in zip(im.det_xywh.tolist(), im.det_score.tolist(),
                                                      im.det_cls.tolist(), extra)]
            if rows:
                f.write((", " if written else "") + json.dumps(rows)[1:-1])
                written = True
        f.write("]")
    os.replace(tmp, path)


_LOAD_ATTEMPTS = 3


def _sha256_of_open_file(f: BinaryIO, expected: FileIdentity, chunk: int = 1 << 20) -> str:
    """sha256 of an open checkpoint file (closes it; cached by its identity, ``evaluation.file_cache``);
    CheckpointError if it was rewritten meanwhile."""
    with f:
        cached = cached_sha256(f.name, expected)
        if cached is not None:
            return cached
        started = time.time()
        h = hashlib.sha256()
        while block := f.read(chunk):
            h.update(block)
        if identity(os.fstat(f.fileno())) != expected:
            raise CheckpointError(f"checkpoint {f.name} was modified while it was being evaluated; evaluate it again")
    remember_sha256(f.name, expected, h.hexdigest(), started)
    return h.hexdigest()


def _load_and_hash(
    validator: Any, path: Path, pool: ThreadPoolExecutor
) -> tuple[Any, Future[str], FileIdentity]:
    """Load the checkpoint, then hash exactly the file that was loaded in ``pool``.

    The file is opened (pinning its inode) before the load and the path is
    checked to still name that inode afterwards, so a checkpoint replaced
    during the load (``os.replace`` of ``current.pt`` by a promotion) is never
    reported under the other file's sha256; the load is retried instead. The
    hash reads the pinned file after the load, so it does not compete with it.
    """
    for _ in range(_LOAD_ATTEMPTS):
        try:
            f = open(path, "rb")  # noqa: SIM115 - closed here or by _sha256_of_open_file
        except OSError:
            validator.load_model(path)  # raises CheckpointError for a missing or unreadable file
            raise
        try:
            ident = identity(os.fstat(f.fileno()))
            model = validator.load_model(path)
            same = identity(os.stat(path)) == ident
        except BaseException:
            f.close()
            raise
        if same:
            return model, pool.submit(_sha256_of_open_file, f, ident), ident
        f.close()
    raise CheckpointError(f"checkpoint {path} kept changing while it was being loaded; evaluate it again")



def _prepare(validator: Any, spec: EvalSpec, device: str, cache_root: Path | None,
             pool: ThreadPoolExecutor) -> tuple[Prepared, Any]:
    """Load the checkpoint (hashed in ``pool``) and, as its task reads one, the dataset (fingerprinted in
    ``pool``); check the class names; resolve the settings that will run."""
    model_path = Path(spec.model_path)
    fmt = model_format(model_path)
    export: ExportInfo | None = read_export(model_path, task=None) if fmt == "onnx" else None
    imgsz, batch = (spec.imgsz, spec.batch) if export is None else \
        export_shape(export, spec.imgsz, spec.batch, DEFAULT_IMGSZ)
    model, checkpoint_sha, checkpoint_id = _load_and_hash(validator, model_path, pool)
    task = task_of_ultralytics(str(model.task)).name
    weights = resolve_weights(spec.weights, task)
    kpt_shape = export.kpt_shape if export is not None else validator.model_kpt_shape(model)
    # As the task reads it (a COCO JSON converted into cache_root; a pose dataset's kpt_shape checked against
    # the checkpoint's, when known); cached by file identity, as is its fingerprint.
    dataset = task_data.load(spec.dataset_path, spec.split, task, cache_root=cache_root, model_kpt_shape=kpt_shape)
    dataset_fp = pool.submit(task_data.fingerprint, dataset)
    model_names = export.names if export is not None and export.names else validator.model_class_names(model)
    warnings = check_class_names(model_names, dataset, spec.allow_class_mismatch)
    device = validator.resolve_device(device)
    if export is not None:
        device = validator.onnx_device(device)
    return Prepared(spec, model, task, fmt, export, imgsz, batch, device, model_names, weights, checkpoint_sha,
                    checkpoint_id[2], dataset_fp, warnings), dataset


def evaluate(
    spec: EvalSpec,
    work_dir: Path,
    *,
    device: str = "auto",
    cache_root: Path | None = None,
    predictions_path: Path | None = None,
    evidence_path: Path | None = None,
    analysis_dir: Path | None = None,
    progress: Callable[[float], None] | None = None,
) -> dict[str, Any]:
    """Run the evaluation ``spec`` on ``device`` (auto: the first CUDA device, else the CPU) and return the
    result mapping (docs/metrics.md). The spec's paths must already be resolved and allowed; a COCO JSON
    dataset is converted into ``cache_root`` (None: ``evaluation.datasets.default_cache_root()``).

    The error analysis (and, for the box tasks, the curves) of the same pass (``evaluation.analysis_store``) is
    written into ``analysis_dir`` when given; its overall counts are the result's ``error_counts``.
    """
    from evaluation import validator  # heavy: torch and ultralytics

    # The checkpoint and dataset hashes run in threads, overlapping the validation pass (file reads
    # and hashlib release the GIL); their results are read at the end.
    pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="evaluate-hash")
    try:
        prepared, dataset = _prepare(validator, spec, device, cache_root, pool)
    finally:
        pool.shutdown(wait=False)  # submitted hashes run on to completion
    run: Callable[..., dict[str, Any]] = _evaluate_boxes
    if prepared.task == "classification":
        from evaluation.classification import evaluate_classification

        run = evaluate_classification
    return run(prepared, dataset, work_dir, predictions_path=predictions_path, evidence_path=evidence_path,
               analysis_dir=analysis_dir, progress=progress)


def _size_keys(sizes: SizeRecall) -> dict[str, Any]:
    """The result's size-recall keys (tasks with size recall: ``vocab.tasks``)."""
    return {
        **{f"{b}_object_recall": sizes.recall[b] for b in sizes.recall},
        **{f"{b}_object_count": sizes.total[b] for b in sizes.total},
        **{f"{b}_object_found": sizes.found[b] for b in sizes.found},
        "size_recall_max_dets": COCO_MAX_DETS,
    }


def _in_dataset_order(records: list[Any], images: list[Path]) -> tuple[list[Any], list[int]]:
    """The validator's records in dataset order, and the dataset index of each in the validator's order;
    DatasetError for an image the validator skipped."""
    by_file = {r.im_file: r for r in records}  # ultralytics' paths are our resolved ones, as strings
    if any(str(p) not in by_file for p in images):
        by_file = {str(Path(f).resolve()): r for f, r in by_file.items()}
    dropped = [str(p) for p in images if str(p) not in by_file]
    if dropped:
        raise DatasetError(
            f"ultralytics skipped {len(dropped)} image(s) as unreadable or corrupt, e.g. {dropped[0]}; "
            "fix or remove them so that every image is evaluated"
        )
    index = {id(by_file[str(p)]): i for i, p in enumerate(images)}
    return [by_file[str(p)] for p in images], [index[id(r)] for r in records]


def _flat_boxes(dataset: Dataset, records: list[Any]) -> FlatBoxes:
    """Every image's predictions (xywh in original pixels, float64) and label-file ground truth, concatenated
    in dataset order (``records``: ``validator.ImageRecord``)."""
    xywh = np.concatenate([r.pred_xyxy for r in records] or [np.zeros((0, 4))]).astype(np.float64)
    xywh[:, 2:] -= xywh[:, :2]
    gts = [gt_boxes(dataset, image, r.ori_shape) for image, r in zip(dataset.images, records)]
    return flat_boxes(xywh, [r.pred_conf for r in records], [r.pred_cls for r in records], [g[0] for g in gts],
                      [g[1] for g in gts])


def _task_geometry(task: str, dataset: Dataset, records: list[Any], conf: float | None
                   ) -> tuple[list[list[dict[str, Any]]] | None, list[np.ndarray] | None]:
    """Segmentation, pose, obb: each prediction row's geometry and each image's task overlap (see
    ``evaluation.task_analysis``) at the primary family's operating point; (None, None) for detection."""
    if task == DEFAULT_TASK:
        return None, None
    sigma = oks_sigma(dataset.label_spec) if task == "pose" else None
    rows = [row_geometry(task, r.geometry, r.pred_conf >= (conf or 0.0)) for r in records]
    ious = [overlaps(task, rw, dataset.labels[image], r.ori_shape, sigma)
            for rw, r, image in zip(rows, records, dataset.images)]
    return rows, ious


def _found_by_analysis(sizes: SizeRecall, missed: list[list[int]]) -> SizeRecall:
    """Size recall's records with the error analysis' found flags (obb: its own matching)."""
    found = [np.ones(len(b), dtype=bool) for b in sizes.gt_bucket]
    for image, label in missed:
        found[image][label] = False
    return dataclasses.replace(sizes, gt_found=found)


def _evaluate_boxes(
    p: Prepared,
    dataset: Dataset,
    work_dir: Path,
    *,
    predictions_path: Path | None,
    evidence_path: Path | None,
    analysis_dir: Path | None,
    progress: Callable[[float], None] | None,
) -> dict[str, Any]:
    """The pass and result of ``evaluate`` for detection, segmentation, pose and obb: the task's validator,
    every metric family of the task, size recall where the task defines it (``vocab.tasks``)."""
    from evaluation import validator

    request, task = p.request, p.task
    data_yaml = dataset.write_sanitised(work_dir)
    out = validator.run_pass(
        p.model, data_yaml, imgsz=p.imgsz, batch=p.batch, device=p.device,
        save_dir=work_dir / "val", progress=progress, rect=request.rect,
    )
    records, val_order = _in_dataset_order(out.records, dataset.images)
    core = task_metrics(out.metrics, dataset.names, task)
    flat = _flat_boxes(dataset, records)
    boxes = per_image(flat)
    conf = core["conf_threshold"]
    sizes = size_recall(boxes, conf if conf is not None else 0.0, flat=flat)
    rel_names = dataset.relative_names()
    fams = families(task)
    geometry, task_overlaps = _task_geometry(task, dataset, records, core[fams[-1].metric("conf_threshold")])
    artifacts = build_artifacts(boxes, rel_names, dataset.names, {f.name: from_metric(getattr(out.metrics, f.attr))
                                                                  for f in fams},
                                {f.name: family_operating(core, f) for f in fams}, task, task_overlaps, flat)
    has_sizes = TASKS[task].size_recall
    if not has_sizes:
        sizes = _found_by_analysis(sizes, artifacts["errors"]["missed_boxes"])
    if predictions_path is not None:
        write_predictions(predictions_path, rel_names, boxes, geometry)
    if evidence_path is not None:
        write_evidence(evidence_path, rel_names, records, boxes, sizes, conf, out.timings, task=task,
                       val_order=val_order)
    if analysis_dir is not None:
        write_artifacts(analysis_dir, artifacts)
    result: dict[str, Any] = {
        "task": task,
        "model_name": request.model_name,
        **core,
        **(_size_keys(sizes) if has_sizes else {}),
        **common_result(p, images=len(records), imgsz=out.imgsz, batch=out.batch, timings=out.timings,
                        speed=out.metrics.speed, dataset_names=dataset.names, split=dataset.split),
        "rect": request.rect and (p.export is None or p.export.dynamic),  # a static export is always square
        **({"coco_conversion": dataset.conversion} if dataset.conversion else {}),
        "error_counts": artifacts["errors"]["overall"],
    }
    return scored(result, p.weights)
