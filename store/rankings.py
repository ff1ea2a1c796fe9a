"""The leaderboard and a model's history, each under one weighting.

Every ranked or listed row carries the score of its stored metrics under the
ranking's weights (``weights`` in each row): the default weights unless the
caller gives others. Under the default weights the leaderboard comes straight
off ``leaderboard_best`` (the best row by ``default_score`` per model, dataset
path and content); under other weights every candidate row is rescored here,
with the same ``composite_score`` that scores a job's result.

"Current content" of a dataset path is the latest fingerprint seen for it
(``dataset_contents``); by default the leaderboard ranks only results of it.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping
from typing import Any

from store.results import result_of
from vocab.scoring import DEFAULT_WEIGHTS, WEIGHT_KEYS, composite_score

LEADERBOARD_FIELDS = (
    "rank", "model_name", "score", "weights", "mAP50", "mAP50_95", "precision", "recall", "f1", "inference_ms",
    "small_object_recall", "medium_object_recall", "large_object_recall", "dataset", "dataset_fingerprint",
    "current_content", "imgsz", "batch", "timestamp", "eval_id", "version", "checkpoint_sha256", "split",
)
_SUMMARY_COLUMNS = (
    "id", "model_name", "default_score", "mAP50", "mAP50_95", "precision", "recall", "f1", "inference_ms",
    "small_object_recall", "medium_object_recall", "large_object_recall", "dataset", "dataset_fingerprint",
    "imgsz", "batch", "created_at", "model_version", "checkpoint_sha256", "split",
)
_METRIC_COLUMNS = tuple(k for k in WEIGHT_KEYS if k != "speed") + ("inference_ms",)
_CURRENT = "(SELECT fingerprint FROM dataset_contents c WHERE c.dataset = {t}.dataset)"


def is_default(weights: Mapping[str, float] | None) -> bool:
    return weights is None or dict(weights) == DEFAULT_WEIGHTS


def summary(row: sqlite3.Row, score: float | None, weights: Mapping[str, float]) -> dict[str, Any]:
    """The leaderboard/history fields of one row, scored ``score`` under ``weights``."""
    return {
        "model_name": row["model_name"],
        "score": score,
        "weights": dict(weights),
        **{k: row[k] for k in ("mAP50", "mAP50_95", "precision", "recall", "f1", "inference_ms",
                               "small_object_recall", "medium_object_recall", "large_object_recall", "dataset",
                               "dataset_fingerprint", "imgsz", "batch")},
        "current_content": bool(row["current_content"]),
        "timestamp": row["created_at"] or None,  # '' : an imported row without one
        "eval_id": row["id"],
        "version": row["model_version"],
        "checkpoint_sha256": row["checkpoint_sha256"],
        "split": row["split"],
    }


def _score(row: sqlite3.Row, weights: Mapping[str, float] | None) -> float | None:
    if is_default(weights):
        return row["default_score"]
    assert weights is not None  # None is the default weighting
    return composite_score({k: row[k] for k in _METRIC_COLUMNS}, weights)


def leaderboard(conn: sqlite3.Connection, dataset: str | None, limit: int,
                weights: Mapping[str, float] | None = None, all_content: bool = False,
                split: str = "val") -> list[dict[str, Any]]:
    """Each model's best ``.pt`` row per dataset path (and content) on ``split``, ranked under ``weights``;
    rank from 1.

    With ``all_content`` every content a path has had gets its own row, marked
    ``current_content`` true or false; otherwise only the current content is ranked
    (the current content is the val split's: other splits list every content).
    """
    applied = dict(weights) if weights is not None else dict(DEFAULT_WEIGHTS)
    if is_default(weights) and split == "val":
        ids = _best_by_default(conn, dataset, limit, all_content)
    else:
        ids = _best_rescored(conn, dataset, limit, applied, all_content or split != "val", split)
    rows = _rows(conn, ids)
    return [{"rank": i, **summary(row, _score(row, weights), applied)} for i, row in enumerate(rows, start=1)]


def _best_by_default(conn: sqlite3.Connection, dataset: str | None, limit: int, all_content: bool) -> list[int]:
    """Straight off the ``(score DESC, eval_id)`` index of ``leaderboard_best`` (NULL scores sort last)."""
    clauses, args = [], []
    if dataset:
        clauses.append("b.dataset = ?")
        args.append(dataset)
    if not all_content:
        clauses.append(f"b.fingerprint = {_CURRENT.format(t='b')}")
    where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
    rows = conn.execute(
        f"SELECT b.eval_id FROM leaderboard_best b {where} ORDER BY b.score DESC, b.eval_id LIMIT ?",
        (*args, limit),
    ).fetchall()
    return [r[0] for r in rows]


_SPEED_SQL = "MIN(1.0, MAX(0.0, (500.0 - r.inference_ms) / 450.0))"


def score_sql(weights: Mapping[str, float]) -> tuple[str, list[float]]:
    """``composite_score`` under ``weights`` as an SQL expression over ``eval_results r``, and its arguments.

    The same terms in the same order, so the same floating-point operations:
    sum(w_k * m_k) over non-null terms divided by the sum of their weights,
    NULL when none is left (a test checks it equals ``composite_score``).
    """
    num, den = [], []
    terms = [(k, w) for k, w in weights.items() if w > 0]
    for key, _w in terms:
        if key not in WEIGHT_KEYS:  # names become SQL: only the known metric columns
            raise ValueError(f"unknown weight key {key!r}")
        metric = _SPEED_SQL if key == "speed" else f"r.{key}"
        num.append(f"COALESCE(? * {metric}, 0.0)")
        den.append(f"(CASE WHEN {metric} IS NULL THEN 0.0 ELSE ? END)")
    if not terms:
        return "NULL", []
    args = [w for _, w in terms]
    return f"(({' + '.join(num)}) / NULLIF({' + '.join(den)}, 0.0))", args + args


def _best_rescored(conn: sqlite3.Connection, dataset: str | None, limit: int, weights: Mapping[str, float],
                   all_content: bool, split: str = "val") -> list[int]:
    """Every candidate row rescored under ``weights`` in SQL; each group's best, ranked.

    One aggregate pass: with a single ``MAX`` SQLite takes the bare ``id`` from
    the row holding the maximum, the first such row in scan (id) order on a
    tie, so a tie goes to the older row as in ``leaderboard_best`` (a test
    checks it). A window function would state that order explicitly but costs
    about three times as much on 100k rows.
    """
    clauses, args = ["r.split = ?", "r.format = 'pt'", "r.rect = 1"], [split]
    if dataset:
        clauses.append("r.dataset = ?")
        args.append(dataset)
    if not all_content:
        clauses.append(f"r.dataset_fingerprint = {_CURRENT.format(t='r')}")
    where = f"WHERE {' AND '.join(clauses)}"
    score, score_args = score_sql(weights)
    rows = conn.execute(
        f"SELECT id, MAX(s) AS best FROM (SELECT r.id, r.model_name, r.dataset, r.dataset_fingerprint, {score} AS s "
        f"FROM eval_results r {where} ORDER BY r.id) GROUP BY model_name, dataset, dataset_fingerprint "
        "ORDER BY best IS NULL, best DESC, id LIMIT ?",
        (*score_args, *args, limit),
    ).fetchall()
    return [r[0] for r in rows]


def _rows(conn: sqlite3.Connection, ids: list[int]) -> list[sqlite3.Row]:
    """The summary columns of rows ``ids``, in that order, each marked ``current_content``."""
    if not ids:
        return []
    cols = ", ".join(f"r.{c}" for c in _SUMMARY_COLUMNS)
    found = {
        row["id"]: row for row in conn.execute(
            f"SELECT {cols}, r.dataset_fingerprint IS {_CURRENT.format(t='r')} AS current_content "
            f"FROM eval_results r WHERE r.id IN ({', '.join('?' * len(ids))})", ids)
    }
    return [found[i] for i in ids]


def history(conn: sqlite3.Connection, model_name: str, limit: int,
            weights: Mapping[str, float] | None = None, split: str | None = None) -> list[dict[str, Any]]:
    """Every result of a model, newest first: its full stored result, scored under ``weights``.

    ``score`` and ``weights`` are the ranking's (default unless given), as on the
    leaderboard; ``request_score`` and ``request_weights`` are what the request
    that stored the row asked for.
    """
    applied = dict(weights) if weights is not None else dict(DEFAULT_WEIGHTS)
    where, args = ("AND r.split = ?", (model_name, split, limit)) if split else ("", (model_name, limit))
    rows = conn.execute(
        f"SELECT r.*, r.dataset_fingerprint IS {_CURRENT.format(t='r')} AS current_content "
        f"FROM eval_results r WHERE r.model_name = ? {where} ORDER BY r.id DESC LIMIT ?", args
    ).fetchall()
    out = []
    for r in rows:
        stored = result_of(r)
        out.append({**stored, **summary(r, _score(r, weights), applied), "request_score": stored.get("score"),
                    "request_weights": stored.get("weights"), "job_id": r["job_id"], "trigger": r["trigger"]})
    return out


def latest_for_model(conn: sqlite3.Connection, model_name: str, limit: int = 10) -> list[dict[str, Any]]:
    """A model's latest results, newest first, scored under the default weights."""
    cols = ", ".join(f"r.{c}" for c in _SUMMARY_COLUMNS)
    rows = conn.execute(
        f"SELECT {cols}, r.dataset_fingerprint IS {_CURRENT.format(t='r')} AS current_content "
        "FROM eval_results r WHERE r.model_name = ? ORDER BY r.id DESC LIMIT ?", (model_name, limit)
    ).fetchall()
    return [summary(r, r["default_score"], DEFAULT_WEIGHTS) for r in rows]
