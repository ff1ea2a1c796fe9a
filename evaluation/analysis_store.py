"""The analysis artifacts of an evaluation: ``errors.json`` and ``curves.json`` beside its predictions.

Written by the worker right after the validation pass (``write_artifacts``),
or later, for an evaluation stored before they existed, from its stored
predictions, evidence and the dataset's label files (``analyse_stored``, a
worker task): never a second inference. ``read_artifact`` is light (the
daemon serves the files).
"""

from __future__ import annotations

import json
import os
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from evaluation.curves import CurveArrays, from_evidence, task_curves
from evaluation.error_analysis import analyse
from evaluation.families import Family, families, primary
from evaluation.metrics import f1_score
from evaluation.size_recall import FlatBoxes, ImageBoxes
from vocab.errors import Conflict, NotFound
from vocab.tasks import DEFAULT_TASK

ERRORS_FILE = "errors.json"
CURVES_FILE = "curves.json"
ARTIFACTS = {"errors": ERRORS_FILE, "curves": CURVES_FILE}


def _write_json(path: Path, value: Any) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(json.dumps(value))
    os.replace(tmp, path)


OVERLAP_NAMES = {"detection": "box IoU", "segmentation": "mask IoU", "pose": "OKS", "obb": "ProbIoU"}


def family_operating(values: Any, fam: Family) -> dict[str, Any]:
    """A family's operating point in a result (or ``reference.task_values``): its ``conf_threshold``,
    ``precision``, ``recall`` and ``f1`` (2PR/(P+R) for a family without its own)."""
    p, r = values.get(fam.metric("precision")), values.get(fam.metric("recall"))
    f1 = values.get(fam.metric("f1"), None if p is None or r is None else f1_score(p, r))
    return {"conf_threshold": values.get(fam.metric("conf_threshold")), "precision": p, "recall": r, "f1": f1}


def build_artifacts(boxes: list[ImageBoxes], image_names: list[str], names: list[str],
                    arrays: dict[str, CurveArrays], operating: dict[str, dict[str, Any]], task: str = DEFAULT_TASK,
                    overlaps: list[np.ndarray] | None = None, flat: FlatBoxes | None = None) -> dict[str, Any]:
    """Both artifacts of one evaluation, by kind (``errors``, ``curves``). ``arrays`` and ``operating``:
    by family name (``box`` first); the error analysis is at the task's primary family's operating point,
    with the task's own overlap (``overlaps``, per image; None: box IoU). ``flat``: ``flatten(boxes)``, when
    the caller has it."""
    conf = operating[primary(task).name].get("conf_threshold")
    return {"errors": analyse(boxes, image_names, names, conf, overlaps=overlaps, overlap_name=OVERLAP_NAMES[task],
                              flat=flat),
            "curves": task_curves(arrays, names, operating)}


def write_artifacts(directory: Path, artifacts: dict[str, Any]) -> None:
    """Write the artifacts into ``directory`` (atomically, file by file)."""
    for kind, value in artifacts.items():
        _write_json(directory / ARTIFACTS[kind], value)


def read_artifact(directory: Path, kind: str) -> Any:
    """A stored artifact (``errors`` or ``curves``), parsed; NotFound when it has not been written."""
    return json.loads(artifact_bytes(directory, kind))


def artifact_bytes(directory: Path, kind: str) -> bytes:
    """A stored artifact's JSON text, as written; NotFound when it has not been written."""
    try:
        return (directory / ARTIFACTS[kind]).read_bytes()
    except FileNotFoundError:
        raise NotFound(f"the {kind} artifact of this evaluation is missing") from None


def _boxes_from_predictions(rows: list[dict[str, Any]], image_names: list[str]) -> dict[str, list[dict[str, Any]]]:
    by_image: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        by_image[row["file_name"]].append(row)
    unknown = set(by_image) - set(image_names)
    if unknown:
        raise Conflict(f"the predictions name images the evaluation did not list, e.g. {min(unknown)}")
    return by_image


def analyse_stored(params: dict[str, Any]) -> dict[str, Any]:
    """Worker task: write the artifacts of a stored evaluation from its predictions and evidence (a
    classification evaluation's ``errors.json`` from its evidence alone).

    params: ``predictions_path``, ``evidence_path``, ``dataset_path``, ``split`` (the one evaluated),
    ``cache_root`` (where a COCO JSON dataset was converted),
    ``dataset_fingerprint`` (the evaluation's; the dataset must still have
    it), ``class_names``, ``operating`` (the box family's conf_threshold,
    precision, recall, f1). The task is the evidence's; its further
    families' operating points are recomputed from the evidence (equal to
    the evaluation's).
    """
    from PIL import Image
    from ultralytics.data.utils import (
        exif_size,  # the size ultralytics read the image at
    )

    from evaluation.classify_analysis import analyse_classification
    from evaluation.datasets import fingerprint, load_dataset
    from evaluation.evidence import CLASSIFICATION, evidence_task, load_evidence
    from evaluation.ground_truth import gt_boxes
    from evaluation.stats.reference import task_values
    from evaluation.task_analysis import oks_sigma, overlaps

    evidence = load_evidence(Path(params["evidence_path"]))
    task = evidence_task(evidence)
    if task == CLASSIFICATION:  # the evidence holds every prediction: no dataset needed
        names = [str(n) for n in params["class_names"]]  # any further output class by its index
        names += [str(i) for i in range(len(names), int(evidence["n_classes"]))]
        errors = analyse_classification([str(n) for n in evidence["image_names"]], evidence["true"],
                                        evidence["top5"], evidence["conf"], names)
        write_artifacts(Path(params["predictions_path"]).parent, {"errors": errors})
        return {"error_counts": errors["overall"]}
    dataset = load_dataset(params["dataset_path"], params.get("split") or "val", task=task,
                           cache_root=Path(params["cache_root"]) if params.get("cache_root") else None)
    if fingerprint(dataset) != params["dataset_fingerprint"]:
        raise Conflict("the dataset changed since this evaluation; its error analysis cannot be recomputed "
                       "(evaluate again)")
    names = [str(n) for n in evidence["image_names"]]
    by_name = {dataset.relative_name(p): p for p in dataset.images}
    if names != [dataset.relative_name(p) for p in dataset.images]:
        raise Conflict("the evaluation's images differ from the dataset's; evaluate again")
    preds = _boxes_from_predictions(json.loads(Path(params["predictions_path"]).read_text()), names)
    sigma = oks_sigma(dataset.label_spec) if task == "pose" else None
    boxes, task_overlaps = [], []
    for name in names:
        with Image.open(by_name[name]) as im:
            width, height = exif_size(im)
        gt_xywh, gt_cls = gt_boxes(dataset, by_name[name], (height, width))
        rows = preds.get(name, [])
        boxes.append(ImageBoxes(
            np.array([r["bbox"] for r in rows], dtype=np.float64).reshape(-1, 4),
            np.array([r["score"] for r in rows], dtype=np.float64),
            np.array([r["category_id"] for r in rows], dtype=np.int64), gt_xywh, gt_cls,
        ))
        if task != DEFAULT_TASK:
            task_overlaps.append(overlaps(task, rows, dataset.labels[by_name[name]], (height, width), sigma))
    arrays = {fam.name: from_evidence(evidence, fam.evidence_key) for fam in families(task)}
    values = task_values(evidence) if task != DEFAULT_TASK else {}
    operating = {fam.name: family_operating(values, fam) for fam in families(task)[1:]}
    artifacts = build_artifacts(boxes, names, list(params["class_names"]), arrays,
                                {"box": params["operating"], **operating}, task,
                                task_overlaps if task != DEFAULT_TASK else None)
    write_artifacts(Path(params["predictions_path"]).parent, artifacts)
    return {"error_counts": artifacts["errors"]["overall"]}
