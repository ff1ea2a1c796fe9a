"""The ``promotions`` audit trail."""

from __future__ import annotations

import json
import sqlite3
from typing import Any


def insert(conn: sqlite3.Connection, row: dict[str, Any]) -> int:
    """Append one decision (promoted, refused or rollback); returns its id."""
    cur = conn.execute(
        "INSERT INTO promotions (model_name, eval_id, timestamp, decision, actor, reason, dataset, version, "
        "previous_sha256, new_sha256, previous_score, new_score, details) "
        "VALUES (:model_name, :eval_id, :timestamp, :decision, :actor, :reason, :dataset, :version, "
        ":previous_sha256, :new_sha256, :previous_score, :new_score, :details)",
        {
            "eval_id": None, "dataset": None, "version": None, "previous_sha256": None,
            "new_sha256": None, "previous_score": None, "new_score": None,
            **row,
            "details": json.dumps(row.get("details") or {}),
        },
    )
    return int(cur.lastrowid)  # type: ignore[arg-type]


def _public(row: sqlite3.Row) -> dict[str, Any]:
    out = dict(row)
    out["details"] = json.loads(out["details"] or "{}")
    return out


def history(conn: sqlite3.Connection, model_name: str, limit: int = 50) -> list[dict[str, Any]]:
    rows = conn.execute(
        "SELECT * FROM promotions WHERE model_name = ? ORDER BY id DESC LIMIT ?", (model_name, limit)
    ).fetchall()
    return [_public(r) for r in rows]


def promoted_history(conn: sqlite3.Connection, model_name: str) -> list[dict[str, Any]]:
    """Decisions that changed current.pt (promoted or rollback), newest first."""
    rows = conn.execute(
        "SELECT * FROM promotions WHERE model_name = ? AND decision IN ('promoted', 'rollback') ORDER BY id DESC",
        (model_name,),
    ).fetchall()
    return [_public(r) for r in rows]


def counts(conn: sqlite3.Connection) -> dict[str, int]:
    rows = conn.execute("SELECT decision, COUNT(*) AS n FROM promotions GROUP BY decision").fetchall()
    return {r["decision"]: r["n"] for r in rows}


def decided_on(conn: sqlite3.Connection, model_name: str, sha256: str) -> bool:
    """Whether a decision (promoted or refused) of ``model_name`` has read this checkpoint content."""
    row = conn.execute("SELECT 1 FROM promotions WHERE model_name = ? AND new_sha256 = ? LIMIT 1",
                       (model_name, sha256)).fetchone()
    return row is not None


def current_evaluations(conn: sqlite3.Connection) -> list[dict[str, Any]]:
    """Per model whose current.pt the daemon set: the checkpoint it holds (the newest promoted or rollback
    decision) with the evaluation behind it, by model name.

    Each row: ``model_name``, ``version`` (of the decision), and the ``eval_results`` row as ``evaluation``:
    the decision's own evaluation, else the newest evaluation of those bytes under that model name, else
    None (a manual promotion of a never-evaluated version).
    """
    rows = conn.execute(
        "SELECT p.model_name, p.version, p.new_sha256, p.eval_id FROM promotions p "
        "WHERE p.id = (SELECT MAX(q.id) FROM promotions q WHERE q.model_name = p.model_name "
        "              AND q.decision IN ('promoted', 'rollback')) "
        "ORDER BY p.model_name"
    ).fetchall()
    out = []
    for r in rows:
        evaluation = None
        if r["eval_id"] is not None:
            evaluation = conn.execute("SELECT * FROM eval_results WHERE id = ?", (r["eval_id"],)).fetchone()
        if evaluation is None and r["new_sha256"] is not None:
            evaluation = conn.execute(
                "SELECT * FROM eval_results WHERE model_name = ? AND checkpoint_sha256 = ? ORDER BY id DESC LIMIT 1",
                (r["model_name"], r["new_sha256"])).fetchone()
        out.append({"model_name": r["model_name"], "version": r["version"],
                    "evaluation": dict(evaluation) if evaluation is not None else None})
    return out


def latest_on(conn: sqlite3.Connection, model_name: str, sha256: str) -> dict[str, Any] | None:
    """The newest decision of ``model_name`` about this checkpoint content (it as the candidate), if any."""
    row = conn.execute("SELECT * FROM promotions WHERE model_name = ? AND new_sha256 = ? ORDER BY id DESC LIMIT 1",
                       (model_name, sha256)).fetchone()
    return _public(row) if row is not None else None
