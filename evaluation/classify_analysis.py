"""The error analysis of a classification evaluation: its ``errors.json`` artifact (pure numpy).

Built from the per-image predictions of the validation pass (or of the
evidence, which holds the same), by ``analyse_classification``:

- ``task``: ``"classification"``; ``classes``: the class names (table order);
- ``overall``: ``{images, correct, wrong}`` at top-1 (the result's ``error_counts``);
- ``per_class``: per class ``{precision, recall, f1, support, predicted,
  correct}`` (``evaluation.classify_metrics``; None where undefined);
- ``confusion_matrix``: ``{labels, rows: "predicted", columns: "true", matrix}``
  (top-1; column j sums to the support of class j);
- ``cells``: ``cells[i][j]`` = the indices (into ``images``, ascending) of the
  images predicted i whose true class is j: the images behind each matrix cell;
- ``mistakes``: the ``MAX_MISTAKES`` most confident wrong top-1 predictions,
  most confident first (ties by image order), each ``{image, index, true,
  predicted, confidence}`` (class names; confidence = the predicted class's
  probability);
- ``images``: the image names (``<class>/<file>``), in dataset order.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from evaluation.classify_metrics import confusion, per_class_table

MAX_MISTAKES = 100


def analyse_classification(image_names: Sequence[str], true: np.ndarray, top: np.ndarray, conf: np.ndarray,
                           names: Sequence[str]) -> dict[str, Any]:
    """The ``errors.json`` artifact of one classification evaluation (see the module contract)."""
    true = np.asarray(true, dtype=np.int64)
    predicted = np.asarray(top, dtype=np.int64).reshape(len(true), -1)[:, 0]
    top_conf = np.asarray(conf, dtype=np.float64).reshape(len(true), -1)[:, 0]
    nc = len(names)
    matrix = confusion(true, predicted, nc)
    cells: list[list[list[int]]] = [[[] for _ in range(nc)] for _ in range(nc)]
    for i, (p, t) in enumerate(zip(predicted.tolist(), true.tolist())):
        cells[p][t].append(i)
    wrong = np.flatnonzero(predicted != true)
    order = wrong[np.lexsort((wrong, -top_conf[wrong]))][:MAX_MISTAKES]
    correct = int(len(true) - len(wrong))
    return {
        "task": "classification",
        "classes": list(map(str, names)),
        "overall": {"images": int(len(true)), "correct": correct, "wrong": int(len(wrong))},
        "per_class": per_class_table(matrix, names),
        "confusion_matrix": {"labels": list(map(str, names)), "rows": "predicted", "columns": "true",
                             "matrix": matrix.tolist()},
        "cells": cells,
        "mistakes": [
            {"image": str(image_names[i]), "index": int(i), "true": str(names[true[i]]),
             "predicted": str(names[predicted[i]]), "confidence": float(top_conf[i])}
            for i in order
        ],
        "images": list(map(str, image_names)),
    }
