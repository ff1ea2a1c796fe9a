"""Classification metrics from per-image predictions (pure numpy; docs/metrics.md, "Classification").

Inputs: per image its true class index and the model's top-k class indices
(most probable first). Classes are indexed 0..nc-1 (``table_names``).

- ``top1``/``top5``: the share of images whose true class is the first / any
  of the top-k (k = min(5, classes)). The evaluation's result reports
  ultralytics' own values, computed in float32; these float64 ones equal them
  to float32 rounding.
- confusion matrix: **rows predicted (top-1), columns true**; column j sums to
  the support of class j.
- per class c, with TP = images of c predicted c, support = images of c,
  predicted = images predicted c:
  ``recall`` = TP / support (None without support), ``precision`` = TP /
  predicted (None when never predicted), ``f1`` = 2 TP / (support +
  predicted) (= 2PR / (P + R), and 0 when TP = 0; None without support).
- ``macro_f1``: the mean F1 over the classes with support (classes without
  images in the split are left out, whether or not they were predicted;
  a class with support that is never predicted counts with F1 0); None when
  no class has support.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

TOP_K = 5


def table_names(dataset_names: Sequence[str], model_names: Sequence[str]) -> list[str]:
    """The classes of the tables: the dataset's, then any further output class of the model (a model with
    more classes than the dataset, evaluated with allow_class_mismatch)."""
    return [*dataset_names, *model_names[len(dataset_names):]]


def correct_at(true: np.ndarray, top: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per image: (true class ranked first, true class among the top-k), as bool arrays."""
    hits = top == np.asarray(true)[:, None]
    return hits[:, 0], hits.any(axis=1)


def confusion(true: np.ndarray, predicted: np.ndarray, nc: int) -> np.ndarray:
    """(nc, nc) int64 counts, rows predicted, columns true."""
    m = np.zeros((nc, nc), dtype=np.int64)
    np.add.at(m, (np.asarray(predicted, dtype=np.int64), np.asarray(true, dtype=np.int64)), 1)
    return m


def f1_rows(tp: np.ndarray, support: np.ndarray, predicted: np.ndarray) -> np.ndarray:
    """F1 per class (element-wise, any shape): 2 TP / (support + predicted); NaN without support."""
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(support > 0, 2.0 * tp / (support + predicted), np.nan)


def macro_rows(f1: np.ndarray) -> np.ndarray:
    """Mean F1 over the classes with support (the last axis; NaN entries are classes without support)."""
    valid = ~np.isnan(f1)
    n = valid.sum(axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n > 0, np.nansum(f1, axis=-1) / np.maximum(n, 1), np.nan)


def _ratio(num: int, den: int) -> float | None:
    return num / den if den > 0 else None


def per_class_table(matrix: np.ndarray, names: Sequence[str]) -> dict[str, dict[str, Any]]:
    """Per class (every class of the table): precision, recall, f1 (None where undefined), support,
    predicted and correct counts."""
    tp = np.diag(matrix)
    support = matrix.sum(axis=0)
    predicted = matrix.sum(axis=1)
    f1 = f1_rows(tp, support, predicted)
    return {
        str(name): {
            "precision": _ratio(int(tp[c]), int(predicted[c])),
            "recall": _ratio(int(tp[c]), int(support[c])),
            "f1": None if np.isnan(f1[c]) else float(f1[c]),
            "support": int(support[c]),
            "predicted": int(predicted[c]),
            "correct": int(tp[c]),
        }
        for c, name in enumerate(names)
    }


def summary(true: np.ndarray, top: np.ndarray, names: Sequence[str]) -> dict[str, Any]:
    """``top1``, ``top5``, ``macro_f1``, ``per_class`` (recall of the classes with support),
    ``per_class_metrics`` and the ``confusion_matrix`` of one evaluation (see the module contract)."""
    true = np.asarray(true, dtype=np.int64)
    top = np.asarray(top, dtype=np.int64).reshape(len(true), -1)
    matrix = confusion(true, top[:, 0], len(names))
    table = per_class_table(matrix, names)
    c1, c5 = correct_at(true, top)
    f1 = f1_rows(np.diag(matrix), matrix.sum(axis=0), matrix.sum(axis=1))
    macro = macro_rows(f1)
    n = max(len(true), 1)
    return {
        "top1": float(c1.sum() / n),
        "top5": float(c5.sum() / n),
        "macro_f1": None if np.isnan(macro) else float(macro),
        "per_class": {name: row["recall"] for name, row in table.items() if row["support"] > 0},
        "per_class_metrics": {name: {k: row[k] for k in ("precision", "recall", "f1", "support")}
                              for name, row in table.items()},
        "confusion_matrix": {"labels": list(map(str, names)), "rows": "predicted", "columns": "true",
                             "matrix": matrix.tolist()},
    }
