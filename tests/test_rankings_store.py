"""Store-level rankings: the migration that re-keys the leaderboard by default-weights scores, and
rescoring under custom weights (no model runs here: rows carry hand-made metrics).

Scores are recomputed here with the formula of docs/metrics.md written out, not with vocab.scoring.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

from store import rankings, results
from store.database import Database
from store.schema import MIGRATIONS, _statements

DEFAULT = {"mAP50_95": 0.35, "mAP50": 0.20, "small_object_recall": 0.20, "f1": 0.15, "speed": 0.10}
COLUMNS = ("mAP50_95", "mAP50", "precision", "recall", "f1", "small_object_recall", "medium_object_recall",
           "large_object_recall", "inference_ms")


def recompute(m: dict[str, Any], weights: dict[str, float]) -> float | None:
    num = den = 0.0
    for key, w in weights.items():
        if key == "speed":
            v = None if m["inference_ms"] is None else min(1.0, max(0.0, (500.0 - m["inference_ms"]) / 450.0))
        else:
            v = m.get(key)
        if w > 0 and v is not None:
            num, den = num + w * v, den + w
    return num / den if den else None


def metrics(quality: float, ms: float | None = 40.0, small: float | None = None) -> dict[str, Any]:
    return {"mAP50_95": quality / 2, "mAP50": quality, "precision": quality, "recall": quality, "f1": quality,
            "small_object_recall": quality if small is None else small, "medium_object_recall": quality,
            "large_object_recall": None, "inference_ms": ms}


def row(model: str, dataset: str, fp: str, m: dict[str, Any], t: str, request_score: float = 0.0) -> dict[str, Any]:
    return {
        "job_id": None, "trigger": "api", "model_name": model, "model_version": 1, "model_path": f"/m/{model}.pt",
        "dataset": dataset, "dataset_fingerprint": fp, "checkpoint_sha256": f"sha-{model}", "cache_key": f"k-{model}-{t}",
        "imgsz": 320, "batch": 8, "device": "cpu", "device_kind": "cpu", "ultralytics_version": "8.4.190",
        "torch_version": "2", **m, "per_class": {}, "per_class_metrics": {}, "score": request_score,
        "weights": {"speed": 1.0}, "result_json": json.dumps({"model_name": model, "score": request_score}),
        "created_at": t, "default_score": recompute(m, DEFAULT),
    }


def test_migration_scores_old_rows_by_default_weights_and_rebuilds_the_leaderboard(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    conn = sqlite3.connect(path)
    for statement in _statements(MIGRATIONS[0]):  # a database made before this change
        conn.execute(statement)
    conn.execute("PRAGMA user_version=1")
    old = [("weak", metrics(0.1, ms=20.0), 0.99), ("strong", metrics(0.8, ms=200.0), 0.5),
           ("strong", metrics(0.7, ms=30.0, small=None), 0.9), ("nulls", metrics(0.5, ms=None, small=None), 0.4)]
    old[3][1]["small_object_recall"] = None
    cols = ("job_id", "trigger", "model_name", "model_path", "dataset", "dataset_fingerprint", "checkpoint_sha256",
            "cache_key", "imgsz", "batch", "device", "device_kind", "ultralytics_version", "torch_version",
            *COLUMNS, "per_class", "per_class_metrics", "score", "weights", "result_json", "created_at")
    for i, (model, m, request_score) in enumerate(old):
        values = ("j", "api", model, "/m.pt", "/d.yaml", "fp1", "sha", f"k{i}", 320, 8, "cpu", "cpu", "8", "2",
                  *(m[c] for c in COLUMNS), "{}", "{}", request_score, "{}", "{}", f"2026-01-01T00:00:0{i}Z")
        cur = conn.execute(f"INSERT INTO eval_results ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})",
                           values)
        conn.execute("INSERT INTO leaderboard_best VALUES (?, '/d.yaml', ?, ?) ON CONFLICT DO UPDATE SET "
                     "eval_id = excluded.eval_id, score = excluded.score WHERE excluded.score > score",
                     (model, cur.lastrowid, request_score))
    conn.commit()
    conn.close()

    db = Database(path)
    try:
        stored = db.read_sync(lambda c: c.execute("SELECT model_name, default_score FROM eval_results ORDER BY id")
                              .fetchall())
        for (model, m, _), got in zip(old, stored):
            assert got["default_score"] == recompute(m, DEFAULT), model  # exactly: the same operations in order
        board = db.read_sync(lambda c: rankings.leaderboard(c, None, 20))
        best_strong = max(recompute(old[1][1], DEFAULT), recompute(old[2][1], DEFAULT))
        assert board[0]["model_name"] == "strong" and board[0]["score"] == best_strong
        assert [r["score"] for r in board] == sorted((r["score"] for r in board), reverse=True)
        assert all(r["current_content"] for r in board)
    finally:
        db.close()


def test_custom_weights_rescore_every_row_and_pick_each_models_best(tmp_path: Path) -> None:
    db = Database(tmp_path / "eval.db")
    try:
        rows = [row("fast", "/d.yaml", "fp", metrics(0.3, ms=10.0), "2026-01-01T00:00:01Z"),
                row("fast", "/d.yaml", "fp", metrics(0.6, ms=450.0), "2026-01-01T00:00:02Z"),
                row("accurate", "/d.yaml", "fp", metrics(0.9, ms=480.0), "2026-01-01T00:00:03Z")]
        ids = [db.write_sync(lambda c, r=r: results.insert(c, r)) for r in rows]
        by_default = db.read_sync(lambda c: rankings.leaderboard(c, "/d.yaml", 20))
        assert [(r["model_name"], r["eval_id"]) for r in by_default] == [("accurate", ids[2]), ("fast", ids[1])]
        speed = {**{k: 0.0 for k in DEFAULT}, "speed": 1.0}
        by_speed = db.read_sync(lambda c: rankings.leaderboard(c, "/d.yaml", 20, speed))
        assert [(r["model_name"], r["eval_id"]) for r in by_speed] == [("fast", ids[0]), ("accurate", ids[2])]
        for r in by_speed:
            assert r["weights"] == speed and r["score"] == recompute(rows[ids.index(r["eval_id"])], speed)
        assert db.read_sync(lambda c: rankings.leaderboard(c, "/d.yaml", 1, speed))[0]["eval_id"] == ids[0]
        # Every metric a weight names is null: the row has no score and ranks last.
        large = {**{k: 0.0 for k in DEFAULT}, "large_object_recall": 1.0}
        assert all(r["score"] is None for r in db.read_sync(lambda c: rankings.leaderboard(c, None, 20, large)))
    finally:
        db.close()


def test_content_seen_later_wins_and_earlier_readings_do_not_override(tmp_path: Path) -> None:
    db = Database(tmp_path / "eval.db")
    try:
        db.write_sync(lambda c: results.insert(c, row("a", "/d.yaml", "old", metrics(0.9), "2026-01-01T00:00:01Z")))
        db.write_sync(lambda c: results.insert(c, row("b", "/d.yaml", "new", metrics(0.1), "2026-01-01T00:00:03Z")))
        # A job that read the old content before "new" was seen finishes last: "new" stays current.
        db.write_sync(lambda c: results.insert(c, row("c", "/d.yaml", "old", metrics(0.5), "2026-01-01T00:00:04Z"),
                                               "2026-01-01T00:00:02Z"))
        current = db.read_sync(lambda c: rankings.leaderboard(c, "/d.yaml", 20))
        assert [(r["model_name"], r["dataset_fingerprint"]) for r in current] == [("b", "new")]
        everything = db.read_sync(lambda c: rankings.leaderboard(c, "/d.yaml", 20, all_content=True))
        assert [(r["model_name"], r["current_content"]) for r in everything] == [("a", False), ("c", False), ("b", True)]
    finally:
        db.close()


def test_the_sql_score_is_composite_score_exactly(tmp_path: Path) -> None:
    """Ranking under custom weights happens in SQL; it must be the very number composite_score gives."""
    import random

    from vocab.scoring import WEIGHT_KEYS, composite_score, resolve_weights

    rng = random.Random(7)
    db = Database(tmp_path / "eval.db")
    try:
        stored = []
        for i in range(60):
            m = {k: (None if rng.random() < 0.2 else rng.random()) for k in COLUMNS if k != "inference_ms"}
            m["inference_ms"] = None if rng.random() < 0.2 else rng.uniform(0, 700)
            r = row(f"m{i}", "/d.yaml", "fp", m, f"2026-01-01T00:{i // 60:02d}:{i % 60:02d}Z")
            db.write_sync(lambda c, r=r: results.insert(c, r))
            stored.append(m)
        for _ in range(20):
            keys = rng.sample(WEIGHT_KEYS, rng.randint(1, 4))
            weights = resolve_weights({k: rng.choice([0.0, rng.uniform(0, 1 / len(keys))]) for k in keys}
                                      if rng.random() < 0.9 else {k: 0.0 for k in keys})
            expr, args = rankings.score_sql(weights)
            got = db.read_sync(lambda c, e=expr, a=args: [x[0] for x in c.execute(
                f"SELECT {e} FROM eval_results r ORDER BY r.id", a)])
            assert got == [composite_score(m, weights) for m in stored], weights
    finally:
        db.close()


def test_ties_go_to_the_older_row_under_any_weighting(tmp_path: Path) -> None:
    """Cache-hit rows share their metrics: a model's best among equals is its oldest row, by default or not."""
    db = Database(tmp_path / "eval.db")
    try:
        same = metrics(0.5)
        names = ["b", "a", "b", "a", "b", "c", "a"]
        rows = [row(m, "/d.yaml", "fp", same, f"2026-01-01T00:00:{i:02d}Z") for i, m in enumerate(names)]
        ids = [db.write_sync(lambda c, r=r: results.insert(c, r)) for r in rows]
        oldest = {m: min(i for i, n in zip(ids, names) if n == m) for m in "abc"}
        speed = {**{k: 0.0 for k in DEFAULT}, "speed": 1.0, "mAP50": 0.0}
        for weights in (None, speed, {**DEFAULT, "f1": 0.1, "speed": 0.15}):
            board = db.read_sync(lambda c, w=weights: rankings.leaderboard(c, None, 20, w))
            assert [(r["model_name"], r["eval_id"]) for r in board] == [("b", oldest["b"]), ("a", oldest["a"]),
                                                                        ("c", oldest["c"])], weights
    finally:
        db.close()
