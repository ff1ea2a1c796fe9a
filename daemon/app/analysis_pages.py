"""What a page shows of an evaluation's ``errors.json``, in pages, whatever the number of images.

Pure functions over a parsed errors artifact (``evaluation.error_analysis``
for detection and its kin, ``evaluation.classify_analysis`` for
classification) and prediction rows (``daemon.app.prediction_rows``):

- ``errors_view``: the artifact without its per-box lists (``boxes``) and
  per-image lists (``images``), the parts that grow with the image count;
- ``gallery_page``: failure examples of one kind (and class), with the true
  count of such failures next to the number the analysis kept as examples;
- ``cell_page``: the images behind one confusion-matrix cell;
- ``detection_annotations`` / ``classification_annotations``: what was
  predicted and labelled on one image;
- ``matching_row``: the prediction row an example was made from (for its
  geometry: masks, keypoints, rotated boxes).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from vocab.errors import InvalidRequest

BOX_KEYS = ("prediction_types", "missed_boxes")
IMAGE_KEYS = ("images", "cells")
CLASSIFICATION = "classification"
MISTAKES = "mistakes"
_ROW_KEYS = ("file_name", "category_id")  # what annotations do not repeat of a row


def errors_view(errors: dict[str, Any], *, boxes: bool, images: bool) -> dict[str, Any]:
    """A shallow copy of the artifact without the per-box and/or per-image lists."""
    drop = (() if boxes else BOX_KEYS) + (() if images else IMAGE_KEYS)
    return {k: v for k, v in errors.items() if k not in drop}


def is_classification(errors: dict[str, Any]) -> bool:
    return errors.get("task") == CLASSIFICATION


def gallery_kinds(errors: dict[str, Any]) -> tuple[str, ...]:
    """The kinds of failure the gallery pages: classification's mistakes, or the error types with examples."""
    return (MISTAKES,) if is_classification(errors) else tuple(errors["examples"])


def _class_row(errors: dict[str, Any], cls: str) -> dict[str, Any]:
    per_class = errors["per_class"]
    if cls not in per_class:
        raise InvalidRequest(f"no class named {cls!r} in this evaluation (its classes: {', '.join(per_class)})")
    return dict(per_class[cls])


def gallery_page(errors: dict[str, Any], kind: str, cls: str | None, offset: int, limit: int) -> dict[str, Any]:
    """Examples of failures of ``kind`` (of class ``cls``: a false positive's predicted class, a miss's or a
    mistake's true class), from ``offset``: ``count`` such failures in all, ``stored`` kept as examples."""
    kinds = gallery_kinds(errors)
    if kind not in kinds:
        raise InvalidRequest(f"no failure kind {kind!r} in this evaluation (its kinds: {', '.join(kinds)})")
    if is_classification(errors):
        stored = [m for m in errors["mistakes"] if cls is None or m["true"] == cls]
        if cls is None:
            count = errors["overall"]["wrong"]
        else:
            row = _class_row(errors, cls)
            count = row["support"] - row["correct"]
    else:
        stored = [e for e in errors["examples"][kind] if cls is None or e["class"] == cls]
        count = errors["overall"][kind] if cls is None else _class_row(errors, cls)[kind]
    return {"kind": kind, "cls": cls, "count": int(count), "stored": len(stored), "offset": offset, "limit": limit,
            "items": stored[offset:offset + limit]}


def cell_page(errors: dict[str, Any], predicted: int, true: int, offset: int, limit: int) -> dict[str, Any]:
    """The images (``{image, index}``) behind confusion-matrix cell (``predicted``, ``true``), from ``offset``."""
    labels = errors["confusion_matrix"]["labels"]
    if predicted >= len(labels) or true >= len(labels):
        raise InvalidRequest(f"the confusion matrix has {len(labels)} rows and columns (0 to {len(labels) - 1})")
    indices = errors["cells"][predicted][true]
    names = errors["images"]
    return {"predicted": labels[predicted], "true": labels[true], "count": len(indices), "offset": offset,
            "limit": limit, "items": [{"image": names[i], "index": i} for i in indices[offset:offset + limit]]}


def _name(names: Sequence[str], c: int) -> str:
    return str(names[c]) if 0 <= c < len(names) else str(c)


def detection_annotations(rows: list[dict[str, Any]], labels: Sequence[Any], names: Sequence[str],
                          conf_threshold: float | None) -> dict[str, Any]:
    """The rows at or above the operating point (``bbox`` and the task's geometry in pixels, ``class``,
    ``score``) and the label objects (``class``, ``box`` [cx, cy, w, h] and ``points``, normalised)."""
    floor = 0.0 if conf_threshold is None else conf_threshold
    return {
        "predictions": [{"class": _name(names, int(r["category_id"])),
                         **{k: v for k, v in r.items() if k not in _ROW_KEYS}}
                        for r in rows if r["score"] >= floor],
        "ground_truth": [{"class": _name(names, lb.cls), "box": [lb.cx, lb.cy, lb.w, lb.h],
                          "points": list(getattr(lb, "points", ()))} for lb in labels],
    }


def classification_annotations(rows: list[dict[str, Any]], names: Sequence[str]) -> dict[str, Any]:
    """The true class, the five best classes and their probabilities of one image's row."""
    if not rows:
        return {"true": None, "top5": [], "conf": []}
    row = rows[0]
    return {"true": _name(names, int(row["true"])), "top5": [_name(names, int(c)) for c in row["top5"]],
            "conf": [float(v) for v in row["conf"]]}


def matching_row(rows: list[dict[str, Any]], names: Sequence[str], example: dict[str, Any]) -> dict[str, Any] | None:
    """The row an example (``class``, ``score``, ``box``, rounded as ``error_analysis`` rounds them) was
    made from; None when no row matches."""
    for r in rows:
        if (_name(names, int(r["category_id"])) == example["class"]
                and round(float(r["score"]), 5) == example["score"]
                and [round(float(v), 2) for v in r["bbox"]] == example["box"]):
            return {k: v for k, v in r.items() if k not in (*_ROW_KEYS, "bbox", "score")}
    return None
