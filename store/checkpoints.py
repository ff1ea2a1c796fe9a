"""A checkpoint's life in the store, in one place: claims, states and skips. Every function takes a connection.

- ``checkpoint_claims``: which job owns each checkpoint content of a model (the watcher never evaluates a
  claimed checkpoint again; a train job claims its output before publishing it);
- ``checkpoint_states``: the watcher's state of each checkpoint content it queued (evaluated, waiting to
  retry an outside failure, or failed for a fault of its own);
- ``skipped_checkpoints``: checkpoint files the watcher saw but could not queue, with the reason.
"""

from __future__ import annotations

import sqlite3
from typing import Any

STATES = ("queued", "evaluated", "retry", "failed", "cancelled")
CAUSES = (None, "dataset", "export")


def get(conn: sqlite3.Connection, model_name: str, sha256: str) -> dict[str, Any] | None:
    row = conn.execute("SELECT * FROM checkpoint_states WHERE model_name = ? AND sha256 = ?",
                       (model_name, sha256)).fetchone()
    return dict(row) if row else None


def for_model(conn: sqlite3.Connection, model_name: str) -> list[dict[str, Any]]:
    rows = conn.execute("SELECT path, sha256, state, last_error, attempts, next_retry_at, job_id, updated_at, cause "
                        "FROM checkpoint_states WHERE model_name = ? ORDER BY path, updated_at",
                        (model_name,)).fetchall()
    return [dict(r) for r in rows]


def put(conn: sqlite3.Connection, model_name: str, sha256: str, path: str, *, state: str, job_id: str | None,
        now: str, last_error: str | None = None, attempts: int | None = None,
        next_retry_at: str | None = None, cause: str | None = None) -> None:
    """Insert or update one checkpoint's state; ``attempts`` None keeps the stored count. ``cause``: what
    its failure or refusal depends on ('dataset', 'export'), so that a change of it brings another look."""
    assert state in STATES, state
    assert cause in CAUSES, cause
    conn.execute(
        "INSERT INTO checkpoint_states (model_name, sha256, path, state, last_error, attempts, next_retry_at, "
        "job_id, updated_at, cause) VALUES (?, ?, ?, ?, ?, COALESCE(?, 0), ?, ?, ?, ?) "
        "ON CONFLICT (model_name, sha256) DO UPDATE SET path = excluded.path, state = excluded.state, "
        "last_error = excluded.last_error, attempts = COALESCE(?, attempts), "
        "next_retry_at = excluded.next_retry_at, job_id = excluded.job_id, updated_at = excluded.updated_at, "
        "cause = excluded.cause",
        (model_name, sha256, path, state, last_error, attempts, next_retry_at, job_id, now, cause, attempts),
    )


def set_queued(conn: sqlite3.Connection, model_name: str, sha256: str, path: str, job_id: str, now: str,
               stamp: str | None = None) -> None:
    """A job was queued for this checkpoint; its last error and attempt count stay visible. ``stamp``: what
    its dataset and export looked like (``daemon.watch.causes``). Written after the job row: when the job
    has already ended (its outcome is recorded under its id), nothing changes."""
    conn.execute(
        "INSERT INTO checkpoint_states (model_name, sha256, path, state, job_id, updated_at, cause_stamp) "
        "VALUES (?, ?, ?, 'queued', ?, ?, ?) ON CONFLICT (model_name, sha256) DO UPDATE SET path = excluded.path, "
        "state = 'queued', next_retry_at = NULL, job_id = excluded.job_id, updated_at = excluded.updated_at, "
        "cause = NULL, cause_stamp = excluded.cause_stamp WHERE checkpoint_states.job_id IS NOT excluded.job_id",
        (model_name, sha256, path, job_id, now, stamp),
    )


def waiting_on_cause(conn: sqlite3.Connection) -> list[dict[str, Any]]:
    """Checkpoints that failed or were refused because of their dataset or export, with the stamp of it."""
    rows = conn.execute("SELECT model_name, sha256, path, cause, cause_stamp FROM checkpoint_states "
                        "WHERE cause IS NOT NULL").fetchall()
    return [dict(r) for r in rows]


def claim(conn: sqlite3.Connection, model_name: str, sha256: str) -> dict[str, Any] | None:
    """The claim on a checkpoint content with its job's kind and status (None when the job is gone)."""
    row = conn.execute(
        "SELECT c.job_id, c.path, j.kind, j.status FROM checkpoint_claims c LEFT JOIN jobs j ON j.id = c.job_id "
        "WHERE c.model_name = ? AND c.sha256 = ?", (model_name, sha256)).fetchone()
    return dict(row) if row else None


def claims_of_job(conn: sqlite3.Connection, job_id: str) -> list[dict[str, Any]]:
    rows = conn.execute("SELECT model_name, sha256, path FROM checkpoint_claims WHERE job_id = ?",
                        (job_id,)).fetchall()
    return [dict(r) for r in rows]


def release_claim(conn: sqlite3.Connection, model_name: str, sha256: str) -> None:
    conn.execute("DELETE FROM checkpoint_claims WHERE model_name = ? AND sha256 = ?", (model_name, sha256))


def set_claim_path(conn: sqlite3.Connection, job_id: str, sha256: str, path: str) -> None:
    conn.execute("UPDATE checkpoint_claims SET path = ? WHERE job_id = ? AND sha256 = ?", (path, job_id, sha256))


def unsettled(conn: sqlite3.Connection) -> list[dict[str, Any]]:
    """States still 'queued' whose job has finished or is gone (a crash between the two writes),
    with the job's status and error."""
    rows = conn.execute(
        "SELECT s.model_name, s.sha256, s.path, s.attempts, s.job_id, j.status, j.error FROM checkpoint_states s "
        "LEFT JOIN jobs j ON j.id = s.job_id WHERE s.state = 'queued' "
        "AND (j.id IS NULL OR j.status IN ('completed', 'failed', 'cancelled'))").fetchall()
    return [dict(r) for r in rows]


def claim_checkpoint(conn: sqlite3.Connection, model_name: str, sha256: str, path: str, *, job_id: str, now: str) -> bool:
    """Record that ``job_id`` owns this checkpoint content of ``model_name``; False if already claimed."""
    cur = conn.execute(
        "INSERT INTO checkpoint_claims (model_name, sha256, job_id, path, created_at) VALUES (?, ?, ?, ?, ?) "
        "ON CONFLICT (model_name, sha256) DO NOTHING",
        (model_name, sha256, job_id, path, now),
    )
    return cur.rowcount == 1


def claimed_shas(conn: sqlite3.Connection, model_name: str) -> set[str]:
    rows = conn.execute("SELECT sha256 FROM checkpoint_claims WHERE model_name = ?", (model_name,)).fetchall()
    return {r["sha256"] for r in rows}


def record_skip(conn: sqlite3.Connection, path: str, model_name: str, sha256: str | None, reason: str, now: str) -> None:
    conn.execute(
        "INSERT INTO skipped_checkpoints (path, model_name, sha256, reason, created_at) VALUES (?, ?, ?, ?, ?) "
        "ON CONFLICT (path) DO UPDATE SET sha256 = excluded.sha256, reason = excluded.reason, "
        "created_at = excluded.created_at",
        (path, model_name, sha256, reason, now),
    )


def clear_skip(conn: sqlite3.Connection, path: str) -> None:
    conn.execute("DELETE FROM skipped_checkpoints WHERE path = ?", (path,))


def skipped(conn: sqlite3.Connection, model_name: str) -> list[dict[str, Any]]:
    rows = conn.execute(
        "SELECT path, sha256, reason, created_at FROM skipped_checkpoints WHERE model_name = ? ORDER BY path",
        (model_name,),
    ).fetchall()
    return [dict(r) for r in rows]


def skip_of(conn: sqlite3.Connection, path: str) -> dict[str, Any] | None:
    row = conn.execute("SELECT sha256, reason, created_at FROM skipped_checkpoints WHERE path = ?", (path,)).fetchone()
    return dict(row) if row else None
