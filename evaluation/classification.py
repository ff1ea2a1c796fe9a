"""The classification pass and result of ``evaluation.evaluate.evaluate`` (docs/metrics.md, "Classification").

One ``evaluation.classify`` pass over the ImageFolder split
(``evaluation.imagefolder``) gives every number. The result carries the
task-independent fields (``evaluation.eval_common.common_result``) and:

- ``task``: ``"classification"``; ``model_name``;
- ``top1``, ``top5``: ultralytics' own (``ClassifyMetrics``, float32 means),
  bit-identical to a bare ``YOLO(ckpt).val(data=<root>, imgsz=, batch=)``;
- ``macro_f1``, ``per_class`` ({class: recall}, the classes with images),
  ``per_class_metrics`` ({class: {precision, recall, f1, support}}, every
  class), ``confusion_matrix`` ({labels, rows: "predicted", columns: "true",
  matrix}): ``evaluation.classify_metrics``, from the same pass;
- ``error_counts``: ``{images, correct, wrong}`` (the errors artifact's ``overall``).

Classification has no size recall, operating point or ``rect``: those keys
are absent. The classes of the tables are the dataset's, then any further
output class of the model (``classify_metrics.table_names``).

Artifacts: the predictions (a JSON list, per image in dataset order,
``{file_name, true, top5: [class index...], conf: [probability...]}``), the
evidence (``evidence.write_classification_evidence``) and ``errors.json``
(``classify_analysis``).

Every image of the split must come back from ultralytics with the class
index the dataset gives it; otherwise ``DatasetError`` (ultralytics drops
images of class folders the checkpoint lacks and, when the checkpoint names
some of the folders, indexes the folders by the checkpoint's class order).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from evaluation import classify
from evaluation.analysis_store import write_artifacts
from evaluation.classify_analysis import analyse_classification
from evaluation.classify_metrics import summary, table_names
from evaluation.eval_common import Prepared, common_result, scored
from evaluation.evidence import write_classification_evidence
from evaluation.imagefolder import VAL_FOLDERS, ClassificationDataset
from vocab.errors import DatasetError


def _in_dataset_order(dataset: ClassificationDataset, records: list[classify.ImagePrediction],
                      model_names: list[str]) -> list[classify.ImagePrediction]:
    """The validator's records in dataset order; DatasetError when one is missing or has another class."""
    by_file = {r.im_file: r for r in records}
    dropped = [p for p in dataset.images if str(p) not in by_file]
    if dropped:
        lacking = sorted(set(dataset.names) - set(model_names))
        why = f" of class folders the checkpoint lacks ({', '.join(lacking)})" if lacking else ""
        raise DatasetError(f"ultralytics skipped {len(dropped)} image(s){why}, e.g. {dropped[0]}; every image "
                           "of the split must be evaluated")
    ordered = [by_file[str(p)] for p in dataset.images]
    for image, rec, cls in zip(dataset.images, ordered, dataset.classes):
        if rec.true != cls:
            raise DatasetError(
                f"ultralytics gave {image} class index {rec.true} (the checkpoint's index of its folder name), "
                f"not {cls} (its folder's index among {dataset.names}): the checkpoint orders the classes "
                f"differently ({model_names}); evaluate it on a dataset with its classes"
            )
    return ordered


def write_predictions(path: Path, image_names: list[str], true: np.ndarray, top: np.ndarray,
                      conf: np.ndarray) -> None:
    """The predictions artifact (see the module contract), written atomically."""
    rows = [{"file_name": name, "true": int(t), "top5": k.tolist(), "conf": c.tolist()}
            for name, t, k, c in zip(image_names, true, top, conf)]
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(json.dumps(rows))
    os.replace(tmp, path)


def _split_warning(dataset: ClassificationDataset) -> list[str]:
    """A warning when ultralytics' fallback evaluates another split's folder than the one asked for."""
    used = dataset.resolved_split
    if used == dataset.split or (dataset.split == "val" and used in VAL_FOLDERS):
        return []
    return [f"the dataset has no '{dataset.split}' folder: its '{used}' folder was evaluated (as ultralytics does)"]


def evaluate_classification(
    p: Prepared,
    dataset: ClassificationDataset,
    work_dir: Path,
    *,
    predictions_path: Path | None,
    evidence_path: Path | None,
    analysis_dir: Path | None,
    progress: Callable[[float], None] | None,
) -> dict[str, Any]:
    """The classification pass and result of ``evaluate`` (see the module contract)."""
    out = classify.run_pass(p.model, dataset.root, split=dataset.split, imgsz=p.imgsz, batch=p.batch,
                            device=p.device, save_dir=work_dir / "val", progress=progress)
    records = _in_dataset_order(dataset, out.records, p.model_names)
    names = table_names(dataset.names, p.model_names)
    true = np.array([r.true for r in records], dtype=np.int64)
    top = np.stack([r.top5 for r in records])
    conf = np.stack([r.conf for r in records])
    image_names = [dataset.relative_name(i) for i in dataset.images]
    metrics = summary(true, top, names)
    errors = analyse_classification(image_names, true, top, conf, names)
    if predictions_path is not None:
        write_predictions(predictions_path, image_names, true, top, conf)
    if evidence_path is not None:
        write_classification_evidence(evidence_path, image_names, true, top, conf, len(names), out.timings)
    if analysis_dir is not None:
        write_artifacts(analysis_dir, {"errors": errors})
    p.warnings.extend(_split_warning(dataset))
    result: dict[str, Any] = {
        "task": p.task,
        "model_name": p.request.model_name,
        "top1": float(out.metrics.top1),
        "top5": float(out.metrics.top5),
        **{k: metrics[k] for k in ("macro_f1", "per_class", "per_class_metrics", "confusion_matrix")},
        **common_result(p, images=len(records), imgsz=out.imgsz, batch=out.batch, timings=out.timings,
                        speed=out.metrics.speed, dataset_names=dataset.names, split=dataset.split),
        "error_counts": errors["overall"],
    }
    return scored(result, p.weights)
