"""A LlamaFarm ``eval.db`` built with LlamaFarm's own DDL (its schema as LlamaFarm creates it).

The DDL below is LlamaFarm's ``EvalDB`` schema, column for column, and the
file is put in WAL mode as ``EvalDB.__init__`` does. The rows hold what
LlamaFarm really wrote: naive local timestamps, nulls, a per_class that is not
JSON, and promotions with ``eval_id`` 0 (its subprocess evaluator dropped the id).
"""

from __future__ import annotations

import hashlib
import sqlite3
from pathlib import Path
from typing import Any

LLAMAFARM_DDL = """
CREATE TABLE IF NOT EXISTS eval_results (id INTEGER PRIMARY KEY AUTOINCREMENT, model_name TEXT NOT NULL,
  model_path TEXT, dataset TEXT, timestamp TEXT, mAP50 REAL, mAP50_95 REAL, precision_val REAL, recall_val REAL,
  f1 REAL, per_class TEXT, inference_ms REAL, preprocess_ms REAL, postprocess_ms REAL, model_size_mb REAL,
  small_object_recall REAL, medium_object_recall REAL, large_object_recall REAL, score REAL);
CREATE TABLE IF NOT EXISTS promotions (id INTEGER PRIMARY KEY AUTOINCREMENT, model_name TEXT NOT NULL,
  eval_id INTEGER REFERENCES eval_results(id), promoted_at TEXT, reason TEXT);
CREATE INDEX IF NOT EXISTS idx_eval_score ON eval_results(score DESC);
CREATE INDEX IF NOT EXISTS idx_eval_dataset ON eval_results(dataset);
"""

EVAL_COLUMNS = ("model_name", "model_path", "dataset", "timestamp", "mAP50", "mAP50_95", "precision_val",
                "recall_val", "f1", "per_class", "inference_ms", "preprocess_ms", "postprocess_ms", "model_size_mb",
                "small_object_recall", "medium_object_recall", "large_object_recall", "score")


def lf_rows(models_root: Path, dataset: str) -> list[dict[str, Any]]:
    """Four evaluations of two models: full, all-null, malformed per_class, and a better model."""
    full = {
        "model_name": "lf-detector", "model_path": str(models_root / "lf-detector" / "v3.pt"), "dataset": dataset,
        "timestamp": "2026-02-20T10:11:12.123456", "mAP50": 0.61, "mAP50_95": 0.42, "precision_val": 0.7,
        "recall_val": 0.55, "f1": 0.616, "per_class": '{"person": 0.45, "car": 0.39}', "inference_ms": 12.5,
        "preprocess_ms": 0.8, "postprocess_ms": 1.1, "model_size_mb": 6.2, "small_object_recall": 0.0,
        "medium_object_recall": 0.5, "large_object_recall": 0.9, "score": 0.512,
    }
    nulls = {"model_name": "lf-detector"}
    malformed = {**full, "timestamp": "2026-02-21T09:00:00", "per_class": "{person: 0.4,", "score": 0.48,
                 "model_path": str(models_root / "lf-detector" / "current.pt")}
    better = {**full, "model_name": "lf-other", "model_path": str(models_root / "lf-other" / "v1.pt"),
              "timestamp": "2026-02-22T18:30:00.5", "mAP50": 0.7, "score": 0.6, "per_class": "{}"}
    return [full, nulls, malformed, better]


def lf_promotions() -> list[dict[str, Any]]:
    return [
        {"model_name": "lf-detector", "eval_id": 1, "promoted_at": "2026-02-20T10:11:13", "reason": "manual"},
        {"model_name": "lf-detector", "eval_id": 0, "promoted_at": "2026-02-21T09:00:01",
         "reason": "auto-promoted as best model"},
        {"model_name": "lf-other", "eval_id": None, "promoted_at": None, "reason": None},
    ]


def make_llamafarm_db(path: Path, evals: list[dict[str, Any]], decisions: list[dict[str, Any]],
                      *, keep_open: bool = False) -> sqlite3.Connection | None:
    """Write a LlamaFarm eval.db. ``keep_open``: leave the rows in the WAL (not checkpointed) and
    return the open connection, as a running LlamaFarm runtime would."""
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA journal_mode=WAL")
    if keep_open:
        conn.execute("PRAGMA wal_autocheckpoint=0")
    conn.executescript(LLAMAFARM_DDL)
    for row in evals:
        cols = [c for c in EVAL_COLUMNS if c in row]
        conn.execute(f"INSERT INTO eval_results ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})",
                     [row[c] for c in cols])
    for row in decisions:
        conn.execute("INSERT INTO promotions (model_name, eval_id, promoted_at, reason) VALUES (?, ?, ?, ?)",
                     (row["model_name"], row["eval_id"], row["promoted_at"], row["reason"]))
    conn.commit()
    if keep_open:
        return conn
    conn.close()
    return None


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()
