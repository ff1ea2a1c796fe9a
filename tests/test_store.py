"""store/: the SQLite file, its schema, and the typed job and result queries, on real files in tmp_path."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from store import checkpoints, rankings, results
from store import job_table as jobq
from store.database import BUSY_TIMEOUT_MS, Database
from store.schema import MIGRATIONS
from vocab.errors import ServiceClosed

NOW = "2026-02-18T14:30:00Z"


@pytest.fixture
def db(tmp_path: Path):
    database = Database(tmp_path / "sub" / "eval.db")
    yield database
    database.close()


def add_job(db: Database, job_id: str, *, kind: str = "eval", max_attempts: int = 2,
            created_at: str = NOW) -> jobq.Job:
    return db.write_sync(lambda c: jobq.insert(
        c, job_id=job_id, kind=kind, trigger="api", params={"n": job_id}, created_at=created_at,
        max_attempts=max_attempts,
    ))


def claim(db: Database) -> jobq.Job | None:
    return db.write_sync(lambda c: jobq.claim_next(c, NOW))


# --------------------------------------------------------------------------- the database file


def test_write_then_read_round_trip(db: Database, tmp_path: Path) -> None:
    assert (tmp_path / "sub" / "eval.db").is_file()  # parent folder created
    job = add_job(db, "job1")
    assert job is not None and job.status == "queued" and job.params == {"n": "job1"}
    got = db.read_sync(lambda c: jobq.get(c, "job1"))
    assert got == job

    async def via_async() -> jobq.Job | None:
        await db.write(lambda c: jobq.set_progress(c, "job1", 0.5))  # not running: no change
        return await db.read(lambda c: jobq.get(c, "job1"))

    assert asyncio.run(via_async()) == job


def test_close_folds_the_wal_into_the_file_and_leaves_no_wal(tmp_path: Path) -> None:
    path = tmp_path / "eval.db"
    db = Database(path)
    for i in range(20):
        add_job(db, f"j{i}")
    assert db.read_sync(lambda c: jobq.get(c, "j3")) is not None  # a reader connection is open too
    assert (tmp_path / "eval.db-wal").stat().st_size > 0  # the writes so far live in the WAL
    db.close()
    assert not (tmp_path / "eval.db-wal").exists() and not (tmp_path / "eval.db-shm").exists()
    conn = sqlite3.connect(path)  # every write is in the main file
    try:
        assert conn.execute("SELECT COUNT(*) FROM jobs").fetchone()[0] == 20
    finally:
        conn.close()


def test_write_rolls_back_when_fn_raises(db: Database) -> None:
    def boom(conn: sqlite3.Connection) -> None:
        jobq.insert(conn, job_id="lost", kind="eval", trigger="api", params={}, created_at=NOW, max_attempts=2)
        raise ValueError("boom")

    with pytest.raises(ValueError, match="boom"):
        db.write_sync(boom)
    assert db.read_sync(lambda c: jobq.get(c, "lost")) is None
    assert add_job(db, "kept") is not None  # the writer thread survived


def test_wal_mode_busy_timeout_and_schema_version(db: Database) -> None:
    assert db.read_sync(lambda c: c.execute("PRAGMA journal_mode").fetchone()[0]) == "wal"
    assert db.read_sync(lambda c: c.execute("PRAGMA busy_timeout").fetchone()[0]) == BUSY_TIMEOUT_MS > 0
    assert db.write_sync(lambda c: c.execute("PRAGMA busy_timeout").fetchone()[0]) == BUSY_TIMEOUT_MS
    # Independent connection: WAL is a property of the file, and the schema is at the latest version.
    conn = sqlite3.connect(db.path)
    try:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    finally:
        conn.close()
    assert {"jobs", "eval_results", "leaderboard_best", "promotions", "checkpoint_claims"} <= tables


def test_readers_are_read_only(db: Database) -> None:
    with pytest.raises(sqlite3.OperationalError):
        db.read_sync(lambda c: c.execute("DELETE FROM jobs"))


def test_reopen_keeps_data_and_does_not_remigrate(tmp_path: Path) -> None:
    path = tmp_path / "eval.db"
    first = Database(path)
    add_job(first, "persisted")
    first.close()
    second = Database(path)
    try:
        assert second.read_sync(lambda c: jobq.get(c, "persisted")) is not None
        assert second.read_sync(lambda c: c.execute("PRAGMA user_version").fetchone()[0]) == len(MIGRATIONS)
    finally:
        second.close()


def test_close_is_idempotent_and_later_calls_raise(tmp_path: Path) -> None:
    database = Database(tmp_path / "eval.db")
    database.read_sync(lambda c: c.execute("SELECT 1").fetchone())  # open a reader connection too
    database.close()
    database.close()  # idempotent
    assert database.closed
    assert not database.writer_alive()
    with pytest.raises(ServiceClosed):
        database.write_sync(lambda c: None)
    with pytest.raises(ServiceClosed):
        database.read_sync(lambda c: None)

    async def async_calls() -> None:
        with pytest.raises(ServiceClosed):
            await database.write(lambda c: None)
        with pytest.raises(ServiceClosed):
            await database.read(lambda c: None)

    asyncio.run(async_calls())


def test_newer_schema_version_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "future.db"
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA user_version = {len(MIGRATIONS) + 1}")
    conn.commit()
    conn.close()
    with pytest.raises(Exception, match="newer"):
        Database(path)
    # The file is left as it was: not downgraded, not half-migrated.
    conn = sqlite3.connect(path)
    try:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS) + 1
        assert conn.execute("SELECT COUNT(*) FROM sqlite_master WHERE name = 'jobs'").fetchone()[0] == 0
    finally:
        conn.close()


# --------------------------------------------------------------------------- jobs


def test_claim_order_is_fifo(db: Database) -> None:
    for job_id in ("first", "second", "third"):
        add_job(db, job_id)
    a = claim(db)
    assert a is not None and a.id == "first" and a.status == "running" and a.attempts == 1 and a.started_at == NOW
    # A requeued job keeps its place: it is claimed again before the later ones.
    assert db.write_sync(lambda c: jobq.requeue(c, "first", "worker died", refund_attempt=False))
    again = claim(db)
    assert again is not None and again.id == "first" and again.attempts == 2
    assert [claim(db).id, claim(db).id] == ["second", "third"]  # type: ignore[union-attr]
    assert claim(db) is None


def test_requeue_with_refund_keeps_attempts(db: Database) -> None:
    add_job(db, "j")
    claim(db)
    assert db.write_sync(lambda c: jobq.requeue(c, "j", "daemon stopping", refund_attempt=True))
    job = db.read_sync(lambda c: jobq.get(c, "j"))
    assert job.status == "queued" and job.attempts == 0 and job.error == "daemon stopping" and job.started_at is None


def test_checkpoint_claim_is_taken_once(db: Database) -> None:
    """The de-duplication key of the job store (formerly ``jobs.dedupe_key``, now ``checkpoint_claims``)."""
    claim_ = lambda job_id, model="m", sha="sha-abc": db.write_sync(  # noqa: E731
        lambda c: checkpoints.claim_checkpoint(c, model, sha, f"/m/{model}/v1.pt", job_id=job_id, now=NOW))
    assert claim_("one") is True
    assert claim_("two") is False  # same model, same content: already claimed
    assert claim_("three", model="other") is True  # the key is (model, sha256)
    assert claim_("four", sha="sha-def") is True
    assert db.read_sync(lambda c: checkpoints.claimed_shas(c, "m")) == {"sha-abc", "sha-def"}


def test_queue_submit_with_a_taken_claim_returns_none(db: Database) -> None:
    """``JobQueue.submit(claim=...)`` inserts the job and its claim in one transaction, or nothing."""
    from daemon.jobs.queue import JobQueue

    async def scenario() -> tuple[Any, Any]:
        async def never(ctx: Any) -> dict[str, Any]:
            raise AssertionError("the dispatcher is not started in this test")

        q = JobQueue(db, never, concurrency=1, max_queued=10, timeouts={})
        first = await q.submit("eval", {"x": 1}, trigger="watcher", claim=("m", "sha-1", "/m/m/v1.pt"))
        second = await q.submit("eval", {"x": 2}, trigger="watcher", claim=("m", "sha-1", "/m/m/v1.pt"))
        await q.close()
        return first, second

    first, second = asyncio.run(scenario())
    assert first is not None and first.status == "queued"
    assert second is None
    assert [j.id for j in db.read_sync(lambda c: jobq.list_jobs(c))] == [first.id]  # nothing else inserted
    owner = db.read_sync(lambda c: c.execute("SELECT job_id FROM checkpoint_claims").fetchall())
    assert [r[0] for r in owner] == [first.id]


def test_recover_interrupted_charges_no_attempt_and_fails_past_max_interruptions(db: Database) -> None:
    add_job(db, "j", max_attempts=2)
    add_job(db, "waiting")
    for n in (1, 2, 3):
        running = claim(db)  # the job runs (one attempt charged) when the daemon "dies"
        assert running.id == "j" and running.attempts == 1
        requeued, failed = db.write_sync(lambda c: jobq.recover_interrupted(c, NOW, 3))
        assert (requeued, failed) == (["j"], [])
        job = db.read_sync(lambda c: jobq.get(c, "j"))
        assert (job.status, job.attempts, job.interruptions) == ("queued", 0, n)
        assert "daemon stopped" in job.error and "no attempt charged" in job.error
    claim(db)  # the fourth interruption is one more than max_interruptions = 3
    requeued, failed = db.write_sync(lambda c: jobq.recover_interrupted(c, NOW, 3))
    assert (requeued, failed) == ([], ["j"])
    job = db.read_sync(lambda c: jobq.get(c, "j"))
    assert job.status == "failed" and job.completed_at == NOW and job.interruptions == 4
    assert "4 times" in job.error and "max_interruptions = 3" in job.error
    waiting = db.read_sync(lambda c: jobq.get(c, "waiting"))  # a queued job is never touched
    assert (waiting.status, waiting.attempts, waiting.interruptions) == ("queued", 0, 0)
    # Nothing running: recovery is a no-op.
    assert db.write_sync(lambda c: jobq.recover_interrupted(c, NOW, 3)) == ([], [])


def test_recover_interrupted_honours_a_pending_cancel(db: Database) -> None:
    add_job(db, "j")
    claim(db)
    db.write_sync(lambda c: jobq.request_cancel(c, "j", NOW))
    assert db.write_sync(lambda c: jobq.recover_interrupted(c, NOW, 10)) == ([], [])
    assert db.read_sync(lambda c: jobq.get(c, "j")).status == "cancelled"


def test_cancel_semantics(db: Database) -> None:
    add_job(db, "running")
    claim(db)
    add_job(db, "done")
    claim(db)
    assert db.write_sync(lambda c: jobq.complete(c, "done", {"ok": 1}, NOW))
    add_job(db, "queued")

    # A queued job is cancelled at once.
    job = db.write_sync(lambda c: jobq.request_cancel(c, "queued", NOW))
    assert job.status == "cancelled" and job.completed_at == NOW and job.error == "cancelled by request"
    assert claim(db) is None  # a cancelled job is never claimed

    # A running job is only flagged; the queue stops it and marks it.
    job = db.write_sync(lambda c: jobq.request_cancel(c, "running", NOW))
    assert job.status == "running" and job.cancel_requested
    assert db.write_sync(lambda c: jobq.mark_cancelled(c, "running", NOW))
    assert db.read_sync(lambda c: jobq.get(c, "running")).status == "cancelled"
    # Once cancelled, a late result or failure does not overwrite it.
    assert not db.write_sync(lambda c: jobq.complete(c, "running", {"late": True}, NOW))
    assert not db.write_sync(lambda c: jobq.fail(c, "running", "late", NOW))
    assert db.read_sync(lambda c: jobq.get(c, "running")).result is None

    # A finished job is unchanged; an unknown one is None.
    job = db.write_sync(lambda c: jobq.request_cancel(c, "done", NOW))
    assert job.status == "completed" and not job.cancel_requested and job.result == {"ok": 1}
    assert db.write_sync(lambda c: jobq.request_cancel(c, "nope", NOW)) is None


def test_complete_and_fail_only_from_active_states(db: Database) -> None:
    add_job(db, "j")
    assert not db.write_sync(lambda c: jobq.complete(c, "j", {}, NOW))  # queued, not running
    claim(db)
    db.write_sync(lambda c: jobq.set_progress(c, "j", 7.0))  # clamped
    assert db.read_sync(lambda c: jobq.get(c, "j")).progress == 1.0
    assert db.write_sync(lambda c: jobq.complete(c, "j", {"eval_id": 3}, NOW))
    job = db.read_sync(lambda c: jobq.get(c, "j"))
    assert job.status == "completed" and job.result == {"eval_id": 3} and job.progress == 1.0
    assert not db.write_sync(lambda c: jobq.fail(c, "j", "late", NOW))


def test_list_jobs_newest_first_and_filters(db: Database) -> None:
    add_job(db, "e1", kind="eval", created_at="2026-01-01T00:00:01Z")
    add_job(db, "c1", kind="compare", created_at="2026-01-01T00:00:02Z")
    add_job(db, "e2", kind="eval", created_at="2026-01-01T00:00:03Z")
    claim(db)  # e1 running
    ids = lambda **kw: [j.id for j in db.read_sync(lambda c: jobq.list_jobs(c, **kw))]  # noqa: E731
    assert ids() == ["e2", "c1", "e1"]
    assert ids(kind="eval") == ["e2", "e1"]
    assert ids(status="running") == ["e1"]
    assert ids(status="queued", kind="eval") == ["e2"]
    assert ids(limit=2) == ["e2", "c1"]
    public = db.read_sync(lambda c: jobq.get(c, "e1")).public()
    assert {"job_id", "kind", "status", "created_at", "started_at", "completed_at",
            "progress", "result", "error"} <= set(public)
    assert public["job_id"] == "e1" and public["status"] == "running" and public["result"] is None


# --------------------------------------------------------------------------- results and leaderboard


def result_row(model: str, dataset: str, score: float | None, created_at: str) -> dict[str, Any]:
    result = {"model_name": model, "score": score, "mAP50": 0.5}
    return {
        "job_id": None, "trigger": "api", "model_name": model, "model_version": 1,
        "model_path": f"/m/{model}/v1.pt", "dataset": dataset, "dataset_fingerprint": "fp-" + dataset,
        "checkpoint_sha256": f"sha-{model}-{score}", "cache_key": f"key-{model}-{dataset}-{score}",
        "imgsz": 320, "batch": 16, "device": "cpu", "device_kind": "cpu", "ultralytics_version": "8.4.190",
        "torch_version": "2", "mAP50": 0.5, "mAP50_95": 0.3, "precision": 0.6, "recall": 0.4, "f1": 0.48,
        "per_class": {"red": 0.5}, "per_class_metrics": {}, "inference_ms": 10.0, "score": score,
        "weights": {"mAP50": 1.0}, "result_json": json.dumps(result), "created_at": created_at,
        "default_score": score,  # the leaderboard's order; tests/test_rankings.py scores real metrics
    }


def test_leaderboard_keeps_best_per_model_and_dataset_and_ranks_from_one(db: Database) -> None:
    ins = lambda *a: db.write_sync(lambda c: results.insert(c, result_row(*a)))  # noqa: E731
    a1 = ins("alpha", "/d/one.yaml", 0.5, "2026-01-01T00:00:01Z")
    a2 = ins("alpha", "/d/one.yaml", 0.7, "2026-01-01T00:00:02Z")
    a3 = ins("alpha", "/d/one.yaml", 0.6, "2026-01-01T00:00:03Z")  # worse than a2: a2 stays
    b1 = ins("beta", "/d/one.yaml", 0.9, "2026-01-01T00:00:04Z")
    g1 = ins("gamma", "/d/one.yaml", None, "2026-01-01T00:00:05Z")  # no score: ranked last
    a4 = ins("alpha", "/d/two.yaml", 0.3, "2026-01-01T00:00:06Z")  # another dataset: its own row
    assert len({a1, a2, a3, b1, g1, a4}) == 6

    # Each dataset is a setting group of its own, ranked from 1; the group with the newest evaluation first.
    board = db.read_sync(lambda c: rankings.leaderboard(c, None, 20))
    assert [(r["group_index"], r["rank"], r["model_name"], r["eval_id"]) for r in board] == [
        (0, 1, "alpha", a4), (1, 1, "beta", b1), (1, 2, "alpha", a2), (1, 3, "gamma", g1),
    ]
    assert set(rankings.LEADERBOARD_FIELDS) == set(board[0])
    assert board[0]["group"] == {"dataset": "/d/two.yaml", "dataset_fingerprint": "fp-/d/two.yaml",
                                 "task": "detection", "split": "val", "format": "pt", "imgsz": 320}
    assert board[2]["score"] == 0.7 and board[2]["dataset"] == "/d/one.yaml"
    assert board[2]["timestamp"] == "2026-01-01T00:00:02Z"

    one = db.read_sync(lambda c: rankings.leaderboard(c, "/d/one.yaml", 20))
    assert [(r["rank"], r["model_name"]) for r in one] == [(1, "beta"), (2, "alpha"), (3, "gamma")]
    two = db.read_sync(lambda c: rankings.leaderboard(c, "/d/two.yaml", 20))
    assert [(r["rank"], r["eval_id"]) for r in two] == [(1, a4)]
    assert [r["rank"] for r in db.read_sync(lambda c: rankings.leaderboard(c, None, 3))] == [1, 1, 2]  # limit: rows in all
    assert db.read_sync(lambda c: rankings.leaderboard(c, "/d/none.yaml", 20)) == []

    # A later better score takes the model's row over.
    a5 = ins("alpha", "/d/one.yaml", 0.95, "2026-01-01T00:00:07Z")
    one = db.read_sync(lambda c: rankings.leaderboard(c, "/d/one.yaml", 20))
    assert [(r["rank"], r["model_name"], r["eval_id"]) for r in one][:2] == [(1, "alpha", a5), (2, "beta", b1)]

    # Like with like: the same model at another image size is a group of its own, never ranked with 320 px.
    at_352 = {**result_row("alpha", "/d/one.yaml", 0.99, "2026-01-01T00:00:08Z"), "imgsz": 352}
    big = db.write_sync(lambda c: results.insert(c, at_352))
    one = db.read_sync(lambda c: rankings.leaderboard(c, "/d/one.yaml", 20))
    assert [(r["group"]["imgsz"], r["rank"], r["eval_id"]) for r in one] == [
        (352, 1, big), (320, 1, a5), (320, 2, b1), (320, 3, g1)]


def test_history_is_newest_first(db: Database) -> None:
    ids = [db.write_sync(lambda c, s=s, t=t: results.insert(c, result_row("alpha", "/d/one.yaml", s, t)))
           for s, t in ((0.5, "2026-01-01T00:00:01Z"), (0.7, "2026-01-01T00:00:02Z"), (0.6, "2026-01-01T00:00:03Z"))]
    db.write_sync(lambda c: results.insert(c, result_row("beta", "/d/one.yaml", 0.9, "2026-01-01T00:00:04Z")))
    hist = db.read_sync(lambda c: rankings.history(c, "alpha", 50))
    assert [h["eval_id"] for h in hist] == ids[::-1]
    assert [h["score"] for h in hist] == [0.6, 0.7, 0.5]  # under the default weights, like the leaderboard
    assert [h["request_score"] for h in hist] == [0.6, 0.7, 0.5]
    assert [h["timestamp"] for h in hist] == sorted((h["timestamp"] for h in hist), reverse=True)
    assert all(h["model_name"] == "alpha" for h in hist)
    assert [h["eval_id"] for h in db.read_sync(lambda c: rankings.history(c, "alpha", 1))] == [ids[-1]]
    assert db.read_sync(lambda c: rankings.history(c, "nobody", 50)) == []
    # The stored result round-trips with its id and time.
    row = db.read_sync(lambda c: results.get(c, ids[0]))
    assert results.result_of(row) == {"model_name": "alpha", "score": 0.5, "mAP50": 0.5, "eval_id": ids[0],
                                      "timestamp": "2026-01-01T00:00:01Z"}


def test_find_cached_and_find_request(db: Database) -> None:
    def row(model: str, t: str, asked: str) -> dict[str, Any]:
        r = result_row(model, "/d/one.yaml", 0.5, t)
        r["cache_key"], r["request_key"] = "same-content", asked
        return r

    alpha = db.write_sync(lambda c: results.insert(c, row("alpha", "2026-01-01T00:00:01Z", "ask-alpha")))
    beta = db.write_sync(lambda c: results.insert(c, row("beta", "2026-01-01T00:00:02Z", "ask-beta")))
    assert db.read_sync(lambda c: results.find_cached(c, "same-content"))["id"] == beta  # the newest
    assert db.read_sync(lambda c: results.find_cached(c, "other-content")) is None
    assert db.read_sync(lambda c: results.find_request(c, "ask-alpha"))["id"] == alpha
    assert db.read_sync(lambda c: results.find_request(c, "ask-gamma")) is None
