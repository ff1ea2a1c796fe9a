"""Typed queries on ``eval_results``, the leaderboard kept beside it and the dataset contents seen.

A row is one result as asked: the requested model name and path, dataset
path, weights and options (``request_key``), pointing at the evaluation that
computed its metrics (``source_eval_id``; NULL when it is that evaluation).
``score`` is the score under the request's weights; ``default_score`` the
score under the default weights, by which ``leaderboard_best`` keeps each
model's best row per dataset path and content.
"""

from __future__ import annotations

import json
import sqlite3
from typing import Any

from vocab.tasks import ALL_METRICS, DEFAULT_TASK

_COLUMNS = (
    "job_id", "trigger", "model_name", "model_version", "model_path", "dataset", "dataset_fingerprint",
    "checkpoint_sha256", "cache_key", "imgsz", "batch", "device", "device_kind", "ultralytics_version",
    "torch_version", "mAP50", "mAP50_95", "precision", "recall", "f1", "conf_threshold", "per_class",
    "per_class_metrics", "inference_ms", "preprocess_ms", "postprocess_ms", "small_object_recall",
    "medium_object_recall", "large_object_recall", "small_object_count", "medium_object_count",
    "large_object_count", "model_size_mb", "score", "weights", "predictions_path", "evidence_path",
    "result_json", "created_at", "split", "format", "rect", "default_score", "request_key", "source_eval_id",
    "imgsz_requested", "batch_requested", "task",
    *(m for m in ALL_METRICS if m not in ("mAP50", "mAP50_95", "precision", "recall", "f1")),
)
_JSON_COLUMNS = ("per_class", "per_class_metrics", "weights")



def insert(conn: sqlite3.Connection, row: dict[str, Any], seen_at: str | None = None) -> int:
    """Insert one result, update the leaderboard and the dataset's content; returns its id.

    ``seen_at`` is when the dataset's fingerprint was read (default: the row's ``created_at``).
    """
    values = []
    row = {"split": "val", "format": "pt", "task": DEFAULT_TASK, **{k: v for k, v in row.items() if v is not None}}
    row["rect"] = 1 if row.get("rect", True) else 0
    for col in _COLUMNS:
        v = row.get(col)
        if col in _JSON_COLUMNS:
            v = json.dumps(v if v is not None else {})
        values.append(v)
    cur = conn.execute(
        f"INSERT INTO eval_results ({', '.join(_COLUMNS)}) VALUES ({', '.join('?' * len(_COLUMNS))})", values
    )
    eval_id = int(cur.lastrowid)  # type: ignore[arg-type]
    if row["format"] != "pt" or row["split"] != "val" or not row["rect"]:
        return eval_id  # kept for val checkpoints only; the other splits' leaderboards are queried
    conn.execute(
        "INSERT INTO leaderboard_best (model_name, dataset, fingerprint, task, imgsz, eval_id, score) "
        "VALUES (?, ?, ?, ?, ?, ?, ?) "
        "ON CONFLICT (model_name, dataset, fingerprint, task, imgsz) DO UPDATE SET eval_id = excluded.eval_id, "
        "score = excluded.score WHERE excluded.score IS NOT NULL "
        "AND (leaderboard_best.score IS NULL OR excluded.score > leaderboard_best.score)",
        (row["model_name"], row["dataset"], row["dataset_fingerprint"], row["task"], row["imgsz"], eval_id,
         row.get("default_score")),
    )
    note_content(conn, row["dataset"], row["dataset_fingerprint"], seen_at or row["created_at"])
    return eval_id


def note_content(conn: sqlite3.Connection, dataset: str, fingerprint: str, seen_at: str) -> None:
    """Record ``fingerprint`` as the content of ``dataset`` unless a later reading is recorded."""
    conn.execute(
        "INSERT INTO dataset_contents (dataset, fingerprint, seen_at) VALUES (?, ?, ?) "
        "ON CONFLICT (dataset) DO UPDATE SET fingerprint = excluded.fingerprint, seen_at = excluded.seen_at "
        "WHERE excluded.seen_at >= dataset_contents.seen_at",
        (dataset, fingerprint, seen_at),
    )


def result_of(row: sqlite3.Row) -> dict[str, Any]:
    """The stored result mapping of a row, with its ``eval_id`` and ``timestamp``."""
    result = json.loads(row["result_json"])
    result["eval_id"] = row["id"]
    result["timestamp"] = row["created_at"] or None  # '' : an imported row without one
    return result


def get(conn: sqlite3.Connection, eval_id: int) -> sqlite3.Row | None:
    return conn.execute("SELECT * FROM eval_results WHERE id = ?", (eval_id,)).fetchone()


def find_cached(conn: sqlite3.Connection, cache_key: str) -> sqlite3.Row | None:
    """The most recent result with this cache key (any request's: they share the evaluation)."""
    return conn.execute(
        "SELECT * FROM eval_results WHERE cache_key = ? ORDER BY id DESC LIMIT 1", (cache_key,)
    ).fetchone()


def find_request(conn: sqlite3.Connection, request_key: str) -> sqlite3.Row | None:
    """The most recent result of exactly this request (see ``daemon.jobs.evaluations.request_key``)."""
    return conn.execute(
        "SELECT * FROM eval_results WHERE request_key = ? ORDER BY id DESC LIMIT 1", (request_key,)
    ).fetchone()


def find_for_checkpoint(conn: sqlite3.Connection, sha256: str, fingerprint: str) -> sqlite3.Row | None:
    """The most recent evaluation of a checkpoint's content on a dataset's content (not a square-padded
    parity reference)."""
    return conn.execute(
        "SELECT * FROM eval_results WHERE checkpoint_sha256 = ? AND dataset_fingerprint = ? AND rect = 1 "
        "ORDER BY id DESC LIMIT 1",
        (sha256, fingerprint),
    ).fetchone()


def latest_of_checkpoint(conn: sqlite3.Connection, sha256: str, model_name: str) -> sqlite3.Row | None:
    """The most recent evaluation of a checkpoint's content, preferring one stored under ``model_name``."""
    return conn.execute(
        "SELECT * FROM eval_results WHERE checkpoint_sha256 = ? ORDER BY model_name = ? DESC, id DESC LIMIT 1",
        (sha256, model_name),
    ).fetchone()


# A .pt evaluated with rectangular batches: never an ONNX export's row or a square-padded parity reference.
_LIKE = ("dataset_fingerprint = ? AND imgsz = ? AND batch = ? AND device_kind IS ? AND task = ? AND format = 'pt' "
         "AND rect = 1")


def like_settings(result: dict[str, Any]) -> tuple[Any, ...]:
    """What makes two evaluations comparable (like with like): the dataset content fingerprint, the
    effective image size and batch, the device kind and the task, read from a stored result."""
    return (result["dataset_fingerprint"], int(result["imgsz"]), int(result["batch"]), result.get("device_kind"),
            result.get("task") or DEFAULT_TASK)


def find_like(conn: sqlite3.Connection, sha256: str, settings: tuple[Any, ...]) -> sqlite3.Row | None:
    """The most recent evaluation of a checkpoint's content measured with ``settings`` (``like_settings``)."""
    return conn.execute(
        f"SELECT * FROM eval_results WHERE checkpoint_sha256 = ? AND {_LIKE} ORDER BY id DESC LIMIT 1",
        (sha256, *settings),
    ).fetchone()


def best_score_like(conn: sqlite3.Connection, settings: tuple[Any, ...], exclude_sha256: str) -> sqlite3.Row | None:
    """The best evaluation among other checkpoints measured with ``settings`` (``like_settings``): the
    ``dataset_best`` baseline, on the same dataset content and settings only. Best by the default-weights
    score (the leaderboard's order), whatever weights each row's request used."""
    return conn.execute(
        f"SELECT * FROM eval_results WHERE {_LIKE} AND checkpoint_sha256 != ? AND default_score IS NOT NULL "
        "ORDER BY default_score DESC, id ASC LIMIT 1",
        (*settings, exclude_sha256),
    ).fetchone()
