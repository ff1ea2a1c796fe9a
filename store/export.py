"""CSV for spreadsheets: the leaderboard and a model's history, one row per evaluation.

Used by the HTTP routes (``?format=csv``) and by the CLI (``--csv``), so both
write the same columns. Values are written as they are in the JSON (``None``
as an empty cell); nested values are left out.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence
from typing import Any

from store.rankings import LEADERBOARD_FIELDS, SPEC_METRICS
from vocab.tasks import ALL_METRICS

HISTORY_FIELDS: tuple[str, ...] = (
    "eval_id", "timestamp", "model_name", "version", "task", "score", *dict.fromkeys((*SPEC_METRICS, *ALL_METRICS)),
    "conf_threshold", "dataset", "imgsz", "batch", "split", "format", "checkpoint_sha256", "job_id", "trigger",
)
CSV_FIELDS: dict[str, tuple[str, ...]] = {
    # nested values left out: the group's settings are columns of their own (dataset ... imgsz, group_index)
    "leaderboard": tuple(f for f in LEADERBOARD_FIELDS if f not in ("weights", "group")),
    "history": HISTORY_FIELDS,
}


def to_csv(rows: Iterable[dict[str, Any]], fields: Sequence[str]) -> str:
    """A header line, then one line per row with the ``fields`` columns (RFC 4180 quoting)."""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(fields), extrasaction="ignore", lineterminator="\r\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: row.get(k) for k in fields})
    return out.getvalue()
