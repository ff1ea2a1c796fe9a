"""Typed queries on ``eval_results`` and the leaderboard kept beside it."""

from __future__ import annotations

import json
import sqlite3
from typing import Any

_COLUMNS = (
    "job_id", "trigger", "model_name", "model_version", "model_path", "dataset", "dataset_fingerprint",
    "checkpoint_sha256", "cache_key", "imgsz", "batch", "device", "device_kind", "ultralytics_version",
    "torch_version", "mAP50", "mAP50_95", "precision", "recall", "f1", "conf_threshold", "per_class",
    "per_class_metrics", "inference_ms", "preprocess_ms", "postprocess_ms", "small_object_recall",
    "medium_object_recall", "large_object_recall", "small_object_count", "medium_object_count",
    "large_object_count", "model_size_mb", "score", "weights", "predictions_path", "evidence_path",
    "result_json", "created_at", "split", "format", "rect",
)
_JSON_COLUMNS = ("per_class", "per_class_metrics", "weights")

LEADERBOARD_FIELDS = (
    "rank", "model_name", "score", "mAP50", "mAP50_95", "precision", "recall", "f1", "inference_ms",
    "small_object_recall", "medium_object_recall", "large_object_recall", "dataset", "timestamp",
    "eval_id", "version", "checkpoint_sha256", "split",
)


def insert(conn: sqlite3.Connection, row: dict[str, Any]) -> int:
    """Insert one evaluation and update the leaderboard (``.pt`` evaluations only); returns its id."""
    values = []
    row = {"split": "val", "format": "pt", **{k: v for k, v in row.items() if v is not None}}
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
        "INSERT INTO leaderboard_best (model_name, dataset, eval_id, score) VALUES (?, ?, ?, ?) "
        "ON CONFLICT (model_name, dataset) DO UPDATE SET eval_id = excluded.eval_id, score = excluded.score "
        "WHERE excluded.score IS NOT NULL AND (leaderboard_best.score IS NULL OR excluded.score > leaderboard_best.score)",
        (row["model_name"], row["dataset"], eval_id, row.get("score")),
    )
    return eval_id


def result_of(row: sqlite3.Row) -> dict[str, Any]:
    """The stored result mapping of a row, with its ``eval_id`` and ``timestamp``."""
    result = json.loads(row["result_json"])
    result["eval_id"] = row["id"]
    result["timestamp"] = row["created_at"] or None  # '' : an imported row without one
    return result


def get(conn: sqlite3.Connection, eval_id: int) -> sqlite3.Row | None:
    return conn.execute("SELECT * FROM eval_results WHERE id = ?", (eval_id,)).fetchone()


def find_cached(conn: sqlite3.Connection, cache_key: str, model_name: str | None = None) -> sqlite3.Row | None:
    """The most recent evaluation with this cache key, preferring one stored under ``model_name``."""
    return conn.execute(
        "SELECT * FROM eval_results WHERE cache_key = ? ORDER BY model_name = ? DESC, id DESC LIMIT 1",
        (cache_key, model_name),
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


def has_checkpoint(conn: sqlite3.Connection, sha256: str) -> bool:
    return conn.execute("SELECT 1 FROM eval_results WHERE checkpoint_sha256 = ? LIMIT 1", (sha256,)).fetchone() is not None


_SUMMARY_COLUMNS = (
    "id", "model_name", "score", "mAP50", "mAP50_95", "precision", "recall", "f1", "inference_ms",
    "small_object_recall", "medium_object_recall", "large_object_recall", "dataset", "created_at",
    "model_version", "checkpoint_sha256", "split",
)


def leaderboard(conn: sqlite3.Connection, dataset: str | None, limit: int, split: str = "val") -> list[dict[str, Any]]:
    """One row per model and dataset (its best ``.pt`` evaluation on ``split``), ranked by score, rank from 1.

    For val, the top ``limit`` come straight off the ``(score DESC, eval_id)`` index (SQLite sorts NULL
    scores last in descending order); only those rows are joined, without their large columns.
    """
    if split != "val":
        return _split_leaderboard(conn, dataset, limit, split)
    where = "WHERE dataset = ?" if dataset else ""
    args: tuple[Any, ...] = (dataset, limit) if dataset else (limit,)
    cols = ", ".join(f"r.{c}" for c in _SUMMARY_COLUMNS)
    rows = conn.execute(
        f"SELECT {cols} FROM (SELECT eval_id, score FROM leaderboard_best {where} "
        "ORDER BY score DESC, eval_id LIMIT ?) b JOIN eval_results r ON r.id = b.eval_id "
        "ORDER BY b.score DESC, b.eval_id",
        args,
    ).fetchall()
    return [{"rank": i, **summary(row)} for i, row in enumerate(rows, start=1)]


def _split_leaderboard(conn: sqlite3.Connection, dataset: str | None, limit: int, split: str) -> list[dict[str, Any]]:
    """The leaderboard of a split other than val: the best row per (model, dataset), queried."""
    cols = ", ".join(f"r.{c}" for c in _SUMMARY_COLUMNS)
    where = "AND r.dataset = ?" if dataset else ""
    args: tuple[Any, ...] = (split, dataset, limit) if dataset else (split, limit)
    rows = conn.execute(
        f"SELECT {cols} FROM eval_results r WHERE r.split = ? AND r.format = 'pt' AND r.rect = 1 {where} AND r.id = ("
        "SELECT b.id FROM eval_results b WHERE b.model_name = r.model_name AND b.dataset = r.dataset "
        "AND b.split = r.split AND b.format = 'pt' AND b.rect = 1 ORDER BY b.score IS NULL, b.score DESC, b.id "
        "LIMIT 1) "
        "ORDER BY r.score IS NULL, r.score DESC, r.id LIMIT ?",
        args,
    ).fetchall()
    return [{"rank": i, **summary(row)} for i, row in enumerate(rows, start=1)]


def summary(row: sqlite3.Row) -> dict[str, Any]:
    """The leaderboard/history fields of one evaluation."""
    return {
        "model_name": row["model_name"],
        "score": row["score"],
        "mAP50": row["mAP50"],
        "mAP50_95": row["mAP50_95"],
        "precision": row["precision"],
        "recall": row["recall"],
        "f1": row["f1"],
        "inference_ms": row["inference_ms"],
        "small_object_recall": row["small_object_recall"],
        "medium_object_recall": row["medium_object_recall"],
        "large_object_recall": row["large_object_recall"],
        "dataset": row["dataset"],
        "timestamp": row["created_at"] or None,
        "eval_id": row["id"],
        "version": row["model_version"],
        "checkpoint_sha256": row["checkpoint_sha256"],
        "split": row["split"],
    }


def history(conn: sqlite3.Connection, model_name: str, limit: int, split: str | None = None) -> list[dict[str, Any]]:
    """Every evaluation of a model (on ``split``, or every split), newest first, each with its full result."""
    where, args = ("AND split = ?", (model_name, split, limit)) if split else ("", (model_name, limit))
    rows = conn.execute(
        f"SELECT * FROM eval_results WHERE model_name = ? {where} ORDER BY id DESC LIMIT ?", args
    ).fetchall()
    return [{**result_of(r), **summary(r), "job_id": r["job_id"], "trigger": r["trigger"]} for r in rows]


def latest_for_model(conn: sqlite3.Connection, model_name: str, limit: int = 10) -> list[dict[str, Any]]:
    rows = conn.execute(
        "SELECT * FROM eval_results WHERE model_name = ? ORDER BY id DESC LIMIT ?", (model_name, limit)
    ).fetchall()
    return [summary(r) for r in rows]


# A .pt evaluated with rectangular batches: never an ONNX export's row or a square-padded parity reference.
_LIKE = "dataset_fingerprint = ? AND imgsz = ? AND batch = ? AND device_kind IS ? AND format = 'pt' AND rect = 1"


def like_settings(result: dict[str, Any]) -> tuple[Any, ...]:
    """What makes two evaluations comparable (like with like): the dataset content fingerprint, the
    effective image size and batch, and the device kind, read from a stored result."""
    return (result["dataset_fingerprint"], int(result["imgsz"]), int(result["batch"]), result.get("device_kind"))


def find_like(conn: sqlite3.Connection, sha256: str, settings: tuple[Any, ...]) -> sqlite3.Row | None:
    """The most recent evaluation of a checkpoint's content measured with ``settings`` (``like_settings``)."""
    return conn.execute(
        f"SELECT * FROM eval_results WHERE checkpoint_sha256 = ? AND {_LIKE} ORDER BY id DESC LIMIT 1",
        (sha256, *settings),
    ).fetchone()


def best_score_like(conn: sqlite3.Connection, settings: tuple[Any, ...], exclude_sha256: str) -> sqlite3.Row | None:
    """The best-scored evaluation among other checkpoints measured with ``settings`` (``like_settings``):
    the ``dataset_best`` baseline, on the same dataset content and settings only."""
    return conn.execute(
        f"SELECT * FROM eval_results WHERE {_LIKE} AND checkpoint_sha256 != ? AND score IS NOT NULL "
        "ORDER BY score DESC, id ASC LIMIT 1",
        (*settings, exclude_sha256),
    ).fetchone()
