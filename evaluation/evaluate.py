"""Evaluate one checkpoint on one dataset: every number of the result from one validator pass.

``evaluate`` is what a worker process runs for an ``eval`` job and what
``vision-eval eval --local`` runs in-process. It imports torch (through
``evaluation.validator``) only when called. It loads the checkpoint, reads
its task from it (ultralytics' ``model.task``, or an export's metadata),
loads the dataset as that task reads one (a dataset YAML for detection, an
ImageFolder for classification: ``DATASETS``) and runs the task's pass:
detection here, classification in ``evaluation.classification``. The
task-independent part is ``evaluation.eval_common``.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from evaluation.analysis_store import build_artifacts, write_artifacts
from evaluation.curves import from_metric
from evaluation.datasets import Dataset, check_class_names, fingerprint, load_dataset
from evaluation.eval_common import Prepared, common_result, scored
from evaluation.evidence import write_evidence
from evaluation.export_meta import ExportInfo, export_shape, model_format, read_export
from evaluation.ground_truth import gt_boxes
from evaluation.imagefolder import fingerprint as imagefolder_fingerprint
from evaluation.imagefolder import load_imagefolder
from evaluation.metrics import core_metrics
from evaluation.size_recall import COCO_MAX_DETS, ImageBoxes, size_recall
from vocab.contract.params import EvalSpec
from vocab.errors import CheckpointError, DatasetError
from vocab.scoring import resolve_weights
from vocab.tasks import task_of_ultralytics
from vocab.terms import DEFAULT_IMGSZ


def _xyxy_to_xywh(xyxy: np.ndarray) -> np.ndarray:
    out = xyxy.copy()
    out[:, 2] = xyxy[:, 2] - xyxy[:, 0]
    out[:, 3] = xyxy[:, 3] - xyxy[:, 1]
    return out


def write_predictions(path: Path, names: list[str], boxes: list[ImageBoxes]) -> None:
    """The predictions artifact: a JSON list of {file_name, category_id, bbox [x,y,w,h], score}."""
    rows = []
    for name, im in zip(names, boxes):
        for xywh, score, cls in zip(im.det_xywh.tolist(), im.det_score.tolist(), im.det_cls.tolist()):
            rows.append({"file_name": name, "category_id": int(cls), "bbox": xywh, "score": score})
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(json.dumps(rows))
    os.replace(tmp, path)


FileIdentity = tuple[int, int, int, int]  # (st_dev, st_ino, st_size, st_mtime_ns)
_LOAD_ATTEMPTS = 3


def _identity(st: os.stat_result) -> FileIdentity:
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)


def _sha256_of_open_file(f: BinaryIO, expected: FileIdentity, chunk: int = 1 << 20) -> str:
    """sha256 of an open checkpoint file (closes it); CheckpointError if it was rewritten meanwhile."""
    with f:
        h = hashlib.sha256()
        while block := f.read(chunk):
            h.update(block)
        if _identity(os.fstat(f.fileno())) != expected:
            raise CheckpointError(f"checkpoint {f.name} was modified while it was being evaluated; evaluate it again")
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
            ident = _identity(os.fstat(f.fileno()))
            model = validator.load_model(path)
            same = _identity(os.stat(path)) == ident
        except BaseException:
            f.close()
            raise
        if same:
            return model, pool.submit(_sha256_of_open_file, f, ident), ident
        f.close()
    raise CheckpointError(f"checkpoint {path} kept changing while it was being loaded; evaluate it again")


def _detection_dataset(spec: EvalSpec, cache_root: Path | None) -> Dataset:
    return load_dataset(spec.dataset_path, spec.split, cache_root=cache_root)


def _classification_dataset(spec: EvalSpec, cache_root: Path | None) -> Any:
    return load_imagefolder(spec.dataset_path, spec.split)


# Per task: how its dataset is loaded (a COCO JSON converted into the cache root), and its fingerprint.
DATASETS: dict[str, tuple[Callable[[EvalSpec, Path | None], Any], Callable[[Any], str]]] = {
    "detection": (_detection_dataset, fingerprint),
    "classification": (_classification_dataset, imagefolder_fingerprint),
}


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
    load, fingerprint_of = DATASETS[task]
    dataset = load(spec, cache_root)
    dataset_fp = pool.submit(fingerprint_of, dataset)
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

    The error analysis (and, for detection, the curves) of the same pass (``evaluation.analysis_store``) is
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
    run: Callable[..., dict[str, Any]] = _evaluate_detection
    if prepared.task == "classification":
        from evaluation.classification import evaluate_classification

        run = evaluate_classification
    return run(prepared, dataset, work_dir, predictions_path=predictions_path, evidence_path=evidence_path,
               analysis_dir=analysis_dir, progress=progress)


def _evaluate_detection(
    p: Prepared,
    dataset: Dataset,
    work_dir: Path,
    *,
    predictions_path: Path | None,
    evidence_path: Path | None,
    analysis_dir: Path | None,
    progress: Callable[[float], None] | None,
) -> dict[str, Any]:
    """The detection pass and result of ``evaluate``."""
    from evaluation import validator

    request = p.request
    data_yaml = dataset.write_sanitised(work_dir)
    out = validator.run_pass(
        p.model, data_yaml, imgsz=p.imgsz, batch=p.batch, device=p.device,
        save_dir=work_dir / "val", progress=progress, rect=request.rect,
    )
    by_file = {r.im_file: r for r in out.records}  # ultralytics' paths are our resolved ones, as strings
    if any(str(p) not in by_file for p in dataset.images):
        by_file = {str(Path(f).resolve()): r for f, r in by_file.items()}
    dropped = [str(p) for p in dataset.images if str(p) not in by_file]
    if dropped:
        raise DatasetError(
            f"ultralytics skipped {len(dropped)} image(s) as unreadable or corrupt, e.g. {dropped[0]}; "
            "fix or remove them so that every image is evaluated"
        )
    records = [by_file[str(p)] for p in dataset.images]
    core = core_metrics(out.metrics, dataset.names)
    boxes = []
    for image, rec in zip(dataset.images, records):
        gt_xywh, gt_cls = gt_boxes(dataset, image, rec.ori_shape)
        boxes.append(ImageBoxes(_xyxy_to_xywh(rec.pred_xyxy), rec.pred_conf, rec.pred_cls, gt_xywh, gt_cls))
    conf = core["conf_threshold"]
    sizes = size_recall(boxes, conf if conf is not None else 0.0)
    rel_names = [dataset.relative_name(p) for p in dataset.images]
    if predictions_path is not None:
        write_predictions(predictions_path, rel_names, boxes)
    if evidence_path is not None:
        write_evidence(evidence_path, rel_names, records, boxes, sizes, conf, out.timings)
    artifacts = build_artifacts(boxes, rel_names, dataset.names, from_metric(out.metrics.box), core)
    if analysis_dir is not None:
        write_artifacts(analysis_dir, artifacts)
    result: dict[str, Any] = {
        "task": p.task,
        "model_name": request.model_name,
        **core,
        **{f"{b}_object_recall": sizes.recall[b] for b in sizes.recall},
        **{f"{b}_object_count": sizes.total[b] for b in sizes.total},
        **{f"{b}_object_found": sizes.found[b] for b in sizes.found},
        "size_recall_max_dets": COCO_MAX_DETS,
        **common_result(p, images=len(records), imgsz=out.imgsz, batch=out.batch, timings=out.timings,
                        speed=out.metrics.speed, dataset_names=dataset.names, split=dataset.split),
        "rect": request.rect and (p.export is None or p.export.dynamic),  # a static export is always square
        **({"coco_conversion": dataset.conversion} if dataset.conversion else {}),
        "error_counts": artifacts["errors"]["overall"],
    }
    return scored(result, p.weights)
