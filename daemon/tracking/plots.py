"""The confusion-matrix PNG of an evaluation's run, drawn from its ``errors.json`` matrix.

matplotlib's object API with the Agg renderer (no pyplot state, safe in a
thread), with the DejaVu font matplotlib ships: nothing is downloaded.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

_ANNOTATE_MAX = 20  # counts are written in the cells up to this many labels


def confusion_matrix_png(confusion: Mapping[str, Any], path: Path) -> None:
    """Draw ``confusion`` (``{labels, rows, columns, matrix}``, ``evaluation.error_analysis``) into ``path``."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    labels = [str(label) for label in confusion["labels"]]
    matrix = confusion["matrix"]
    side = min(24.0, max(4.0, 0.35 * len(labels) + 2.5))
    fig = Figure(figsize=(side, side), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    image = ax.imshow(matrix, cmap="Blues", interpolation="nearest")
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
    ticks = range(len(labels))
    ax.set_xticks(ticks, labels, rotation=90, fontsize=8)
    ax.set_yticks(ticks, labels, fontsize=8)
    ax.set_xlabel(str(confusion.get("columns", "true")))
    ax.set_ylabel(str(confusion.get("rows", "predicted")))
    ax.set_title("Confusion matrix")
    if len(labels) <= _ANNOTATE_MAX:
        top = max((max(row) for row in matrix if row), default=0)
        for i, row in enumerate(matrix):
            for j, count in enumerate(row):
                if count:
                    ax.text(j, i, str(count), ha="center", va="center", fontsize=7,
                            color="white" if count > top / 2 else "black")
    fig.tight_layout()
    fig.savefig(path, format="png")
