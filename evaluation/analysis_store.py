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

from evaluation.curves import CurveArrays, build_curves, from_evidence
from evaluation.error_analysis import analyse
from evaluation.size_recall import ImageBoxes
from vocab.errors import Conflict, NotFound

ERRORS_FILE = "errors.json"
CURVES_FILE = "curves.json"
ARTIFACTS = {"errors": ERRORS_FILE, "curves": CURVES_FILE}


def _write_json(path: Path, value: Any) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(json.dumps(value))
    os.replace(tmp, path)


def build_artifacts(boxes: list[ImageBoxes], image_names: list[str], names: list[str], arrays: CurveArrays,
                    operating: dict[str, Any]) -> dict[str, Any]:
    """Both artifacts of one evaluation, by kind (``errors``, ``curves``)."""
    return {"errors": analyse(boxes, image_names, names, operating.get("conf_threshold")),
            "curves": build_curves(arrays, names, operating)}


def write_artifacts(directory: Path, artifacts: dict[str, Any]) -> None:
    """Write the artifacts into ``directory`` (atomically, file by file)."""
    for kind, value in artifacts.items():
        _write_json(directory / ARTIFACTS[kind], value)


def read_artifact(directory: Path, kind: str) -> Any:
    """A stored artifact (``errors`` or ``curves``); NotFound when it has not been written."""
    path = directory / ARTIFACTS[kind]
    try:
        return json.loads(path.read_text())
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

    params: ``predictions_path``, ``evidence_path``, ``dataset_path``,
    ``dataset_fingerprint`` (the evaluation's; the dataset must still have
    it), ``class_names``, ``operating`` (conf_threshold, precision, recall, f1).
    """
    from PIL import Image
    from ultralytics.data.utils import (
        exif_size,  # the size ultralytics read the image at
    )

    from evaluation.classify_analysis import analyse_classification
    from evaluation.datasets import fingerprint, load_dataset
    from evaluation.evidence import CLASSIFICATION, evidence_task, load_evidence
    from evaluation.ground_truth import gt_boxes

    evidence = load_evidence(Path(params["evidence_path"]))
    if evidence_task(evidence) == CLASSIFICATION:  # the evidence holds every prediction: no dataset needed
        names = [str(n) for n in params["class_names"]]  # any further output class by its index
        names += [str(i) for i in range(len(names), int(evidence["n_classes"]))]
        errors = analyse_classification([str(n) for n in evidence["image_names"]], evidence["true"],
                                        evidence["top5"], evidence["conf"], names)
        write_artifacts(Path(params["predictions_path"]).parent, {"errors": errors})
        return {"error_counts": errors["overall"]}
    dataset = load_dataset(params["dataset_path"])
    if fingerprint(dataset) != params["dataset_fingerprint"]:
        raise Conflict("the dataset changed since this evaluation; its error analysis cannot be recomputed "
                       "(evaluate again)")
    names = [str(n) for n in evidence["image_names"]]
    by_name = {dataset.relative_name(p): p for p in dataset.images}
    if names != [dataset.relative_name(p) for p in dataset.images]:
        raise Conflict("the evaluation's images differ from the dataset's; evaluate again")
    preds = _boxes_from_predictions(json.loads(Path(params["predictions_path"]).read_text()), names)
    boxes = []
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
    artifacts = build_artifacts(boxes, names, list(params["class_names"]), from_evidence(evidence),
                                params["operating"])
    write_artifacts(Path(params["predictions_path"]).parent, artifacts)
    return {"error_counts": artifacts["errors"]["overall"]}
