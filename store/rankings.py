"""The leaderboard and a model's history, each under one weighting.

Every ranked or listed row carries the score of its stored metrics under the
ranking's weights (``weights`` in each row): the default weights unless the
caller gives others. Under the default weights the leaderboard comes straight
off ``leaderboard_best`` (the best row by ``default_score`` per model, dataset
path and content); under other weights every candidate row is rescored here,
with the same ``composite_score`` that scores a job's result.

"Current content" of a dataset path is the latest fingerprint seen for it
(``dataset_contents``); by default the leaderboard ranks only results of it.

Like with like: the leaderboard ranks within one *setting group* -- dataset
path and content, task, split, format and image size (``GROUP_KEYS``). Each
row carries its ``group`` and a ``rank`` that restarts at 1 in every group;
groups come newest first (by their newest evaluation), so the group a model
was last evaluated in leads.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping
from typing import Any

from store.results import result_of
from vocab.scoring import composite_score
from vocab.tasks import ALL_METRICS, ALL_WEIGHT_KEYS, DEFAULT_TASK, SIZE_RECALL_KEYS, TASKS

# The spec's leaderboard fields (every row has them, null where its task has no such metric).
SPEC_METRICS = ("mAP50", "mAP50_95", "precision", "recall", "f1", "inference_ms", *SIZE_RECALL_KEYS)
GROUP_KEYS = ("dataset", "dataset_fingerprint", "task", "split", "format", "imgsz")
LEADERBOARD_FIELDS = (
    "group_index", "rank", "model_name", "task", "score", "weights", *dict.fromkeys((*SPEC_METRICS, *ALL_METRICS)),
    "dataset", "dataset_fingerprint", "current_content", "imgsz", "batch", "split", "format", "timestamp", "eval_id",
    "version", "checkpoint_sha256", "group",
)
_SUMMARY_COLUMNS = (
    "id", "model_name", "default_score", *dict.fromkeys((*SPEC_METRICS, *ALL_METRICS)), "dataset",
    "dataset_fingerprint", "imgsz", "batch", "created_at", "model_version", "checkpoint_sha256", "split", "format",
    "task",
)
_METRIC_COLUMNS = (*ALL_METRICS, *SIZE_RECALL_KEYS, "inference_ms")
_CURRENT = "(SELECT fingerprint FROM dataset_contents c WHERE c.dataset = {t}.dataset)"


def summary(row: sqlite3.Row, score: float | None, weights: Mapping[str, float] | None) -> dict[str, Any]:
    """The leaderboard/history fields of one row, scored ``score`` under ``weights`` (None: its task's
    default weights): the spec's metrics (null where the task has none) and the task's own."""
    task = row["task"] or DEFAULT_TASK
    return {
        "model_name": row["model_name"],
        "task": task,
        "score": score,
        "weights": dict(TASKS[task].default_weights if weights is None else weights),
        **{k: row[k] for k in dict.fromkeys((*SPEC_METRICS, *ALL_METRICS))},  # null where not the task's
        **{k: row[k] for k in ("dataset", "dataset_fingerprint", "imgsz", "batch", "split", "format")},
        "current_content": bool(row["current_content"]),
        "timestamp": row["created_at"] or None,  # '' : an imported row without one
        "eval_id": row["id"],
        "version": row["model_version"],
        "checkpoint_sha256": row["checkpoint_sha256"],
        "group": {k: row[k] for k in GROUP_KEYS},
    }


def _score(row: sqlite3.Row, weights: Mapping[str, float] | None) -> float | None:
    if weights is None:
        return row["default_score"]  # the row's task's default weights
    return composite_score({k: row[k] for k in _METRIC_COLUMNS}, weights)


def leaderboard(conn: sqlite3.Connection, dataset: str | None, limit: int,
                weights: Mapping[str, float] | None = None, all_content: bool = False,
                split: str = "val", task: str | None = None) -> list[dict[str, Any]]:
    """Each model's best ``.pt`` row per setting group (see module contract) on ``split``, ranked under
    ``weights`` (None: each task's default weights) within its group; at most ``limit`` rows in all.

    With ``all_content`` every content a path has had gets its own group, marked
    ``current_content`` true or false; otherwise only the current content is ranked
    (the current content is the val split's: other splits list every content).
    ``task`` keeps one task's rows (required for a custom weighting, whose keys are a task's).
    """
    if weights is not None and dict(weights) == TASKS[task or DEFAULT_TASK].default_weights:
        weights = None  # the default weighting: straight off the stored default scores
    if weights is None and split == "val":
        ids = _best_by_default(conn, dataset, all_content, task)
    else:
        ids = _best_rescored(conn, dataset, weights, all_content or split != "val", split, task)
    groups: dict[tuple[Any, ...], list[sqlite3.Row]] = {}
    for row in _rows(conn, ids):  # in score order: each group's rows stay ranked
        groups.setdefault(tuple(row[k] for k in GROUP_KEYS), []).append(row)
    ordered = sorted(groups.values(), key=lambda rows: -max(r["id"] for r in rows))
    out: list[dict[str, Any]] = []
    for index, rows in enumerate(ordered):
        out += [{"group_index": index, "rank": rank, **summary(row, _score(row, weights), weights)}
                for rank, row in enumerate(rows, start=1)]
    return out[:limit]


def _best_by_default(conn: sqlite3.Connection, dataset: str | None, all_content: bool, task: str | None) -> list[int]:
    """Straight off the ``(score DESC, eval_id)`` index of ``leaderboard_best`` (NULL scores sort last)."""
    clauses, args = [], []
    if dataset:
        clauses.append("b.dataset = ?")
        args.append(dataset)
    if task:
        clauses.append("b.task = ?")
        args.append(task)
    if not all_content:
        clauses.append(f"b.fingerprint = {_CURRENT.format(t='b')}")
    where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
    rows = conn.execute(f"SELECT b.eval_id FROM leaderboard_best b {where} ORDER BY b.score DESC, b.eval_id",
                        args).fetchall()
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
        if key not in ALL_WEIGHT_KEYS:  # names become SQL: only the known metric columns
            raise ValueError(f"unknown weight key {key!r}")
        metric = _SPEED_SQL if key == "speed" else f"r.{key}"
        num.append(f"COALESCE(? * {metric}, 0.0)")
        den.append(f"(CASE WHEN {metric} IS NULL THEN 0.0 ELSE ? END)")
    if not terms:
        return "NULL", []
    args = [w for _, w in terms]
    return f"(({' + '.join(num)}) / NULLIF({' + '.join(den)}, 0.0))", args + args


def _best_rescored(conn: sqlite3.Connection, dataset: str | None, weights: Mapping[str, float] | None,
                   all_content: bool, split: str = "val", task: str | None = None) -> list[int]:
    """Every candidate row rescored under ``weights`` (None: its default score) in SQL; each model's best per
    setting group, in score order.

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
    if task:
        clauses.append("r.task = ?")
        args.append(task)
    if not all_content:
        clauses.append(f"r.dataset_fingerprint = {_CURRENT.format(t='r')}")
    where = f"WHERE {' AND '.join(clauses)}"
    score, score_args = score_sql(weights) if weights is not None else ("r.default_score", [])
    rows = conn.execute(
        f"SELECT id, MAX(s) AS best FROM (SELECT r.id, r.model_name, r.dataset, r.dataset_fingerprint, r.task, "
        f"r.imgsz, {score} AS s FROM eval_results r {where} ORDER BY r.id) "
        "GROUP BY model_name, dataset, dataset_fingerprint, task, imgsz ORDER BY best IS NULL, best DESC, id",
        (*score_args, *args),
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
            weights: Mapping[str, float] | None = None, split: str | None = None,
            task: str | None = None) -> list[dict[str, Any]]:
    """Every result of a model, newest first: its full stored result, scored under ``weights`` (None: its
    task's default weights); ``split`` and ``task`` filter.

    ``score`` and ``weights`` are the ranking's, as on the leaderboard;
    ``request_score`` and ``request_weights`` are what the request that stored
    the row asked for.
    """
    clauses, args = ["r.model_name = ?"], [model_name]
    for column, value in (("split", split), ("task", task)):
        if value:
            clauses.append(f"r.{column} = ?")
            args.append(value)
    rows = conn.execute(
        f"SELECT r.*, r.dataset_fingerprint IS {_CURRENT.format(t='r')} AS current_content "
        f"FROM eval_results r WHERE {' AND '.join(clauses)} ORDER BY r.id DESC LIMIT ?", (*args, limit)
    ).fetchall()
    out = []
    for r in rows:
        stored = result_of(r)
        out.append({**stored, **summary(r, _score(r, weights), weights), "request_score": stored.get("score"),
                    "request_weights": stored.get("weights"), "job_id": r["job_id"], "trigger": r["trigger"]})
    return out


def latest_for_model(conn: sqlite3.Connection, model_name: str, limit: int = 10) -> list[dict[str, Any]]:
    """A model's latest results, newest first, scored under the default weights."""
    cols = ", ".join(f"r.{c}" for c in _SUMMARY_COLUMNS)
    rows = conn.execute(
        f"SELECT {cols}, r.dataset_fingerprint IS {_CURRENT.format(t='r')} AS current_content "
        "FROM eval_results r WHERE r.model_name = ? ORDER BY r.id DESC LIMIT ?", (model_name, limit)
    ).fetchall()
    return [summary(r, r["default_score"], None) for r in rows]
