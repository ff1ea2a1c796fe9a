"""Typed queries on the ``jobs`` table. Every function takes a connection; writers run them
through ``Database.write`` (one transaction each)."""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from typing import Any

from vocab.terms import ACTIVE_STATUSES, FINISHED_STATUSES, JOB_KINDS, JOB_STATUSES

ACTIVE = ACTIVE_STATUSES
FINISHED = FINISHED_STATUSES
STATUSES = JOB_STATUSES
KINDS = JOB_KINDS
# What a job is about, as shown to clients (the rest of its params are internal).
_REQUEST_KEYS = ("model", "model_a", "model_b", "dataset_path", "imgsz", "batch", "epochs", "auto_promote")


@dataclass
class Job:
    seq: int
    id: str
    kind: str
    status: str
    trigger: str
    params: dict[str, Any]
    progress: float
    result: dict[str, Any] | None
    error: str | None
    attempts: int
    max_attempts: int
    cancel_requested: bool
    created_at: str
    started_at: str | None
    completed_at: str | None
    interruptions: int = 0  # times the daemon died while this job was running
    progress_detail: dict[str, Any] | None = None

    def public(self) -> dict[str, Any]:
        """The job as the API returns it; a train job also carries its epoch fields."""
        out = {
            "job_id": self.id,
            "kind": self.kind,
            "status": self.status,
            "created_at": self.created_at,
            "started_at": self.started_at,
            "completed_at": self.completed_at,
            "progress": self.progress,
            "request": {k: self.params[k] for k in _REQUEST_KEYS if self.params.get(k) is not None},
            "trigger": self.trigger,
            "result": self.result,
            "error": self.error,
            "attempts": self.attempts,  # runs started and charged (a daemon's death mid-run is refunded)
            "max_attempts": self.max_attempts,
            "interruptions": self.interruptions,  # times the daemon died while it ran
        }
        if self.kind == "train":
            out.update(self.epoch_fields())
        return out

    def epoch_fields(self) -> dict[str, Any]:
        """``current_epoch`` and ``epoch`` (epochs finished, 0 before the first), ``total_epochs``,
        ``loss`` (the latest epoch's total training loss, null before) and ``metrics`` (its numbers),
        as LlamaFarm's runtime and designer read them."""
        d = self.progress_detail or {}
        done = int(d.get("current_epoch") or 0)
        return {"current_epoch": done, "epoch": done,
                "total_epochs": d.get("total_epochs") or self.params.get("epochs"),
                "loss": d.get("loss"), "metrics": d.get("metrics") or {}}


def _job(row: sqlite3.Row) -> Job:
    return Job(
        seq=row["seq"], id=row["id"], kind=row["kind"], status=row["status"], trigger=row["trigger"],
        params=json.loads(row["params"]), progress=row["progress"],
        result=json.loads(row["result"]) if row["result"] else None, error=row["error"],
        attempts=row["attempts"], max_attempts=row["max_attempts"],
        cancel_requested=bool(row["cancel_requested"]), created_at=row["created_at"],
        started_at=row["started_at"], completed_at=row["completed_at"], interruptions=row["interruptions"],
        progress_detail=json.loads(row["progress_detail"]) if row["progress_detail"] else None,
    )


def insert(
    conn: sqlite3.Connection, *, job_id: str, kind: str, trigger: str, params: dict[str, Any],
    created_at: str, max_attempts: int,
) -> Job:
    """Insert a queued job and return it."""
    conn.execute(
        "INSERT INTO jobs (id, kind, status, trigger, params, created_at, max_attempts) "
        "VALUES (?, ?, 'queued', ?, ?, ?, ?)",
        (job_id, kind, trigger, json.dumps(params), created_at, max_attempts),
    )
    job = get(conn, job_id)
    assert job is not None
    return job


def get(conn: sqlite3.Connection, job_id: str) -> Job | None:
    row = conn.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone()
    return _job(row) if row else None


def count_queued(conn: sqlite3.Connection) -> int:
    return int(conn.execute("SELECT COUNT(*) FROM jobs WHERE status = 'queued'").fetchone()[0])


def counts(conn: sqlite3.Connection) -> dict[tuple[str, str], int]:
    """Number of jobs by (kind, status)."""
    rows = conn.execute("SELECT kind, status, COUNT(*) AS n FROM jobs GROUP BY kind, status").fetchall()
    return {(r["kind"], r["status"]): r["n"] for r in rows}


def claim_next(conn: sqlite3.Connection, now: str) -> Job | None:
    """The oldest queued job, now running with one more attempt; None when nothing is queued."""
    row = conn.execute(
        "UPDATE jobs SET status = 'running', attempts = attempts + 1, started_at = ?, progress = 0, "
        "progress_detail = NULL "
        "WHERE seq = (SELECT seq FROM jobs WHERE status = 'queued' ORDER BY seq LIMIT 1) RETURNING *",
        (now,),
    ).fetchone()
    return _job(row) if row else None


def set_progress(conn: sqlite3.Connection, job_id: str, progress: float) -> None:
    conn.execute(
        "UPDATE jobs SET progress = ? WHERE id = ? AND status = 'running'",
        (min(1.0, max(0.0, progress)), job_id),
    )


def set_progress_detail(conn: sqlite3.Connection, job_id: str, detail: dict[str, Any]) -> None:
    conn.execute("UPDATE jobs SET progress_detail = ? WHERE id = ?", (json.dumps(detail), job_id))


def complete(conn: sqlite3.Connection, job_id: str, result: dict[str, Any], now: str) -> bool:
    cur = conn.execute(
        "UPDATE jobs SET status = 'completed', progress = 1, result = ?, error = NULL, completed_at = ? "
        "WHERE id = ? AND status = 'running'",
        (json.dumps(result), now, job_id),
    )
    return cur.rowcount == 1


def fail(conn: sqlite3.Connection, job_id: str, error: str, now: str) -> bool:
    cur = conn.execute(
        "UPDATE jobs SET status = 'failed', error = ?, completed_at = ? WHERE id = ? AND status IN ('queued', 'running')",
        (error, now, job_id),
    )
    return cur.rowcount == 1


def requeue(conn: sqlite3.Connection, job_id: str, note: str | None, *, refund_attempt: bool) -> bool:
    """Put a running job back in the queue (at its original place: FIFO by seq)."""
    cur = conn.execute(
        "UPDATE jobs SET status = 'queued', progress = 0, started_at = NULL, error = ?, "
        "attempts = attempts - ? WHERE id = ? AND status = 'running'",
        (note, 1 if refund_attempt else 0, job_id),
    )
    return cur.rowcount == 1


def request_cancel(conn: sqlite3.Connection, job_id: str, now: str) -> Job | None:
    """Cancel a queued job at once, or flag a running one; returns the job after the change."""
    conn.execute(
        "UPDATE jobs SET status = 'cancelled', completed_at = ?, error = 'cancelled by request' "
        "WHERE id = ? AND status = 'queued'",
        (now, job_id),
    )
    conn.execute("UPDATE jobs SET cancel_requested = 1 WHERE id = ? AND status = 'running'", (job_id,))
    return get(conn, job_id)


def mark_cancelled(conn: sqlite3.Connection, job_id: str, now: str) -> bool:
    cur = conn.execute(
        "UPDATE jobs SET status = 'cancelled', error = 'cancelled by request', completed_at = ? "
        "WHERE id = ? AND status = 'running'",
        (now, job_id),
    )
    return cur.rowcount == 1


def recover_interrupted(
    conn: sqlite3.Connection, now: str, max_interruptions: int
) -> tuple[list[str], list[str]]:
    """Start-up: requeue jobs left 'running' by a daemon that died under them.

    The daemon's death is not the job's fault: the attempt charged when the job
    started is refunded and the job's ``interruptions`` count goes up instead;
    a job interrupted more than ``max_interruptions`` times (a crash loop, e.g.
    a job that takes the whole daemon down) fails with an error saying so. Must
    run before any worker starts and before the HTTP server binds: at that
    point no job can legitimately be running. Returns (requeued ids, failed ids).
    """
    rows = conn.execute("SELECT id, interruptions, cancel_requested FROM jobs WHERE status = 'running'").fetchall()
    requeued, failed = [], []
    for r in rows:
        count = r["interruptions"] + 1
        if r["cancel_requested"]:
            conn.execute(
                "UPDATE jobs SET status = 'cancelled', error = 'cancelled by request', completed_at = ? WHERE id = ?",
                (now, r["id"]),
            )
        elif count <= max_interruptions:
            conn.execute(
                "UPDATE jobs SET status = 'queued', progress = 0, started_at = NULL, attempts = MAX(attempts - 1, 0), "
                "interruptions = ?, error = ? WHERE id = ?",
                (count, (f"requeued: the daemon stopped while this job was running (interruption {count} of "
                         f"at most {max_interruptions}; no attempt charged)"), r["id"]),
            )
            requeued.append(r["id"])
        else:
            conn.execute(
                "UPDATE jobs SET status = 'failed', completed_at = ?, interruptions = ?, error = ? WHERE id = ?",
                (now, count, (f"the daemon stopped while this job was running {count} times, more than "
                              f"[jobs] max_interruptions = {max_interruptions}; not retried again (a job that "
                              "keeps taking the daemon down with it: see the daemon log)"), r["id"]),
            )
            failed.append(r["id"])
    return requeued, failed


def _filter(status: str | None, kind: str | None) -> tuple[str, list[str]]:
    clauses, args = [], []
    if status:
        clauses.append("status = ?")
        args.append(status)
    if kind:
        clauses.append("kind = ?")
        args.append(kind)
    return (f"WHERE {' AND '.join(clauses)}" if clauses else ""), args


def list_jobs(
    conn: sqlite3.Connection, *, status: str | None = None, kind: str | None = None, limit: int = 50
) -> list[Job]:
    """Newest first, optionally filtered."""
    where, args = _filter(status, kind)
    rows = conn.execute(f"SELECT * FROM jobs {where} ORDER BY seq DESC LIMIT ?", (*args, limit)).fetchall()
    return [_job(r) for r in rows]


def count_jobs(conn: sqlite3.Connection, *, status: str | None = None, kind: str | None = None) -> int:
    """How many jobs match the filter of ``list_jobs``."""
    where, args = _filter(status, kind)
    return int(conn.execute(f"SELECT COUNT(*) FROM jobs {where}", args).fetchone()[0])


def prune_finished(conn: sqlite3.Connection, older_than: str) -> int:
    """Delete finished jobs completed before ``older_than`` (ISO time); returns how many."""
    cur = conn.execute(
        "DELETE FROM jobs WHERE status IN ('completed', 'failed', 'cancelled') AND completed_at < ?",
        (older_than,),
    )
    return cur.rowcount
