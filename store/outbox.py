"""Typed queries on ``mlflow_outbox``: what waits to reach the MLflow tracking server, in order.

A record is written by ``enqueue`` in the same transaction as the row it
reports (an evaluation result, a comparison, a promotion decision), so none
is lost between them. The sender (``daemon.tracking.sender``) takes the
oldest pending record (``head``), sends it, and marks it ``done``; after a
failed send it keeps its place and waits (``retry``), or is given up
(``fail``). Records are sent strictly in ``id`` order: a record waiting to be
retried holds back every later one. Times are ISO-8601 UTC strings
(``daemon.clock.iso``), which sort as they compare.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from typing import Any

KINDS = ("evaluation", "comparison", "decision")


@dataclass(frozen=True)
class OutboxRecord:
    """One pending record: ``payload`` is the JSON object ``enqueue`` was given."""

    id: int
    kind: str
    payload: dict[str, Any]
    attempts: int
    next_attempt_at: str
    last_error: str | None
    created_at: str


def enqueue(conn: sqlite3.Connection, kind: str, payload: dict[str, Any], now: str) -> int:
    """Append one record, due at once; returns its id (its place in the order)."""
    assert kind in KINDS, kind
    cur = conn.execute(
        "INSERT INTO mlflow_outbox (kind, payload, next_attempt_at, created_at) VALUES (?, ?, ?, ?)",
        (kind, json.dumps(payload), now, now),
    )
    return int(cur.lastrowid)  # type: ignore[arg-type]


def head(conn: sqlite3.Connection) -> OutboxRecord | None:
    """The oldest pending record, due or not (None when nothing is pending)."""
    row = conn.execute(
        "SELECT id, kind, payload, attempts, next_attempt_at, last_error, created_at FROM mlflow_outbox "
        "WHERE state = 'pending' ORDER BY id LIMIT 1"
    ).fetchone()
    if row is None:
        return None
    return OutboxRecord(row["id"], row["kind"], json.loads(row["payload"]), row["attempts"], row["next_attempt_at"],
                        row["last_error"], row["created_at"])


def mark_done(conn: sqlite3.Connection, record_id: int, now: str) -> None:
    conn.execute("UPDATE mlflow_outbox SET state = 'done', done_at = ? WHERE id = ?", (now, record_id))


def retry(conn: sqlite3.Connection, record_id: int, error: str, next_attempt_at: str) -> None:
    """Count a failed send; the record stays at the head until ``next_attempt_at``."""
    conn.execute(
        "UPDATE mlflow_outbox SET attempts = attempts + 1, last_error = ?, next_attempt_at = ? WHERE id = ?",
        (error, next_attempt_at, record_id),
    )


def fail(conn: sqlite3.Connection, record_id: int, error: str, now: str) -> None:
    """Give a record up (a send that cannot succeed); the records behind it go on."""
    conn.execute(
        "UPDATE mlflow_outbox SET state = 'failed', attempts = attempts + 1, last_error = ?, done_at = ? WHERE id = ?",
        (error, now, record_id),
    )


def counts(conn: sqlite3.Connection) -> dict[str, int]:
    """Records by state: ``pending`` (the outbox depth), ``done`` and ``failed``, zeros included."""
    rows = conn.execute("SELECT state, COUNT(*) AS n FROM mlflow_outbox GROUP BY state").fetchall()
    return {"pending": 0, "done": 0, "failed": 0, **{r["state"]: r["n"] for r in rows}}


def prune_done(conn: sqlite3.Connection, before: str) -> int:
    """Delete records sent before ``before`` (failed ones stay for inspection); returns how many."""
    cur = conn.execute("DELETE FROM mlflow_outbox WHERE state = 'done' AND done_at < ?", (before,))
    return cur.rowcount
