"""Adopting a LlamaFarm eval.db at start (issue 10, item 1), and refusing a file that is not ours.

The LlamaFarm file is built from LlamaFarm's exact DDL (tests/llamafarm_fixtures.py)
with nulls, a malformed per_class and an eval_id of 0. Imported rows are checked
against the backup read with plain sqlite3, not against our own code. The one
fault-injection test replaces ``results.insert`` to fail mid-migration (there is
no other way to make a valid file fail half-way here).
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import pytest

from store import adopt_llamafarm, promotions, rankings, results
from store.adopt_llamafarm import inspect, prepare
from store.database import Database
from store.schema import MIGRATIONS
from tests.daemon_fixtures import vision_evald_command, write_toml
from tests.inprocess import InProcessDaemon
from tests.llamafarm_fixtures import (
    lf_promotions,
    lf_rows,
    make_llamafarm_db,
    sha256_of,
)
from vocab.errors import DatabaseRefused

NOW = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)
# The fixture rows' default-weights scores (docs/metrics.md: .35 mAP50_95 + .20 mAP50 + .20 small recall + .15 f1
# + .10 speed, speed = 1 at 12.5 ms), which rank the leaderboard; LlamaFarm's stored scores were 0.6 / 0.512.
DEFAULT_DETECTOR = 0.35 * 0.42 + 0.20 * 0.61 + 0.20 * 0.0 + 0.15 * 0.616 + 0.10 * 1.0
DEFAULT_OTHER = 0.35 * 0.42 + 0.20 * 0.70 + 0.20 * 0.0 + 0.15 * 0.616 + 0.10 * 1.0


@pytest.fixture
def lf_db(tmp_path: Path) -> Path:
    path = tmp_path / "eval.db"
    make_llamafarm_db(path, lf_rows(tmp_path / "models", "/data/set/data.yaml"), lf_promotions())
    return path


def lf_table(path: Path, table: str) -> list[dict]:
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    conn.row_factory = sqlite3.Row
    try:
        return [dict(r) for r in conn.execute(f"SELECT * FROM {table} ORDER BY id")]
    finally:
        conn.close()


def listing(folder: Path) -> dict[str, str]:
    return {p.name: sha256_of(p) for p in sorted(folder.iterdir()) if p.is_file()}


# -- what is found ---------------------------------------------------------------------------------
def test_inspect_tells_the_kinds_apart(tmp_path: Path, lf_db: Path) -> None:
    assert inspect(tmp_path / "absent.db").kind == "new"
    (tmp_path / "empty.db").write_bytes(b"")
    assert inspect(tmp_path / "empty.db").kind == "new"
    assert inspect(lf_db).kind == "llamafarm"
    ours = Database(tmp_path / "ours.db")
    ours.close()
    assert inspect(tmp_path / "ours.db").kind == "ours"
    (tmp_path / "text.db").write_text("hello, not a database\n")
    assert inspect(tmp_path / "text.db").kind == "foreign"
    other = sqlite3.connect(tmp_path / "other.db")
    other.execute("CREATE TABLE eval_results (id INTEGER PRIMARY KEY, model_name TEXT)")  # same name, not LlamaFarm's
    other.commit()
    other.close()
    assert inspect(tmp_path / "other.db").kind == "foreign"
    newer = sqlite3.connect(tmp_path / "newer.db")
    newer.execute(f"PRAGMA user_version = {len(MIGRATIONS) + 1}")
    newer.close()
    assert inspect(tmp_path / "newer.db").kind == "newer"


@pytest.mark.parametrize("kind", ["text", "other-sqlite", "newer", "extra-table"])
def test_refused_file_names_itself_and_nothing_is_written(tmp_path: Path, kind: str) -> None:
    folder = tmp_path / "home"
    folder.mkdir()
    path = folder / "eval.db"
    if kind == "text":
        path.write_text("not a database at all\n")
    else:
        if kind == "extra-table":  # LlamaFarm's tables plus one of someone else's: not ours to migrate
            make_llamafarm_db(path, [], [])
        conn = sqlite3.connect(path)
        if kind == "newer":
            conn.execute("CREATE TABLE jobs (id TEXT)")
            conn.execute(f"PRAGMA user_version = {len(MIGRATIONS) + 3}")
        else:
            conn.execute("CREATE TABLE notes (body TEXT)")
            conn.execute("INSERT INTO notes VALUES ('keep me')")
        conn.commit()
        conn.close()
    before = listing(folder)
    with pytest.raises(DatabaseRefused) as info:
        Database(path)
    assert str(path) in info.value.detail
    assert "\n" not in info.value.detail
    assert ("newer" in info.value.detail) == (kind == "newer")
    assert listing(folder) == before  # same files (no -wal, -shm or backup), same bytes


# -- adoption --------------------------------------------------------------------------------------
def test_adoption_imports_every_row_and_keeps_a_byte_identical_backup(lf_db: Path) -> None:
    original = sha256_of(lf_db)
    backup = prepare(lf_db, NOW)
    assert backup is not None and backup.name == "eval.db.llamafarm-20260301T120000Z.bak"
    assert sha256_of(backup) == original
    lf_evals, lf_decisions = lf_table(backup, "eval_results"), lf_table(backup, "promotions")
    assert len(lf_evals) == 4 and len(lf_decisions) == 3

    db = Database(lf_db)
    try:
        assert db.read_sync(lambda c: c.execute("PRAGMA user_version").fetchone()[0]) == len(MIGRATIONS)
        imported = db.read_sync(lambda c: c.execute("SELECT * FROM eval_results ORDER BY id").fetchall())
        assert len(imported) == len(lf_evals)
        by_lf_id = {}
        for lf, row in zip(lf_evals, imported):
            result = results.result_of(row)
            by_lf_id[lf["id"]] = row["id"]
            assert result["source"] == "llamafarm" and result["llamafarm_eval_id"] == lf["id"]
            assert result["model_name"] == lf["model_name"]
            assert result["model_path"] == lf["model_path"] and result["dataset"] == lf["dataset"]
            for ours, theirs in (("precision", "precision_val"), ("recall", "recall_val"), ("mAP50", "mAP50"),
                                 ("mAP50_95", "mAP50_95"), ("f1", "f1"), ("score", "score"),
                                 ("inference_ms", "inference_ms"), ("small_object_recall", "small_object_recall"),
                                 ("large_object_recall", "large_object_recall"), ("model_size_mb", "model_size_mb")):
                assert result[ours] == lf[theirs], ours
                assert row[ours] == lf[theirs]
            # Nothing LlamaFarm never measured is invented.
            for never in ("conf_threshold", "imgsz", "batch", "device", "checkpoint_sha256", "weights",
                          "small_object_count"):
                assert result[never] is None, never
            assert result["llamafarm_timestamp"] == lf["timestamp"] and result["timestamp_zone"] == "local"
            if lf["timestamp"]:
                local = datetime.fromisoformat(lf["timestamp"]).astimezone()
                assert datetime.fromisoformat(result["timestamp"]) == local
                assert result["timestamp"] == local.isoformat()  # carries this machine's offset
            else:
                assert result["timestamp"] is None
            try:
                parsed = json.loads(lf["per_class"]) if lf["per_class"] else None
            except ValueError:
                parsed = None
                assert result["warnings"] and "per_class" in result["warnings"][0]
            assert result["per_class"] == parsed
        full = results.result_of(imported[0])
        assert full["per_class"] == {"person": 0.45, "car": 0.39}
        assert imported[0]["model_version"] == 3 and imported[2]["model_version"] is None  # v3.pt; current.pt

        # History and the leaderboard show them.
        history = db.read_sync(lambda c: rankings.history(c, "lf-detector", 50))
        assert sorted(h["llamafarm_eval_id"] for h in history) == [1, 2, 3]
        assert sorted(h["request_score"] for h in history if h["request_score"] is not None) == [0.48, 0.512]
        board = db.read_sync(lambda c: rankings.leaderboard(c, "/data/set/data.yaml", 20))
        # Ranked under the default weights, rescored from the stored metrics (LlamaFarm's own score stays
        # in each result as it was): speed term 1 at 12.5 ms.
        assert [(r["model_name"], r["score"]) for r in board] == [
            ("lf-other", pytest.approx(DEFAULT_OTHER)), ("lf-detector", pytest.approx(DEFAULT_DETECTOR))]

        # Every promotion is a ledger row; eval_id 0 (LlamaFarm's bug) names no evaluation.
        ledger = db.read_sync(lambda c: promotions.history(c, "lf-detector", 50))[::-1]
        ledger += db.read_sync(lambda c: promotions.history(c, "lf-other", 50))
        assert len(ledger) == len(lf_decisions)
        for lf, row in zip(lf_decisions, ledger):
            assert row["model_name"] == lf["model_name"] and row["actor"] == "llamafarm"
            assert row["decision"] == "promoted" and row["reason"] == (lf["reason"] or "")
            assert row["eval_id"] == by_lf_id.get(lf["eval_id"])
            assert row["details"]["llamafarm_eval_id"] == lf["eval_id"]
        assert ledger[1]["eval_id"] is None and ledger[1]["details"]["llamafarm_eval_id"] == 0
        assert ledger[0]["new_score"] == 0.512 and ledger[0]["version"] == 3
    finally:
        db.close()
    assert inspect(lf_db).kind == "ours"
    assert prepare(lf_db, NOW) is None  # adopted once only


def test_rows_still_in_the_wal_are_checkpointed_before_the_copy(tmp_path: Path) -> None:
    path = tmp_path / "eval.db"
    rows = lf_rows(tmp_path / "models", "/d.yaml")
    writer = make_llamafarm_db(path, rows, lf_promotions(), keep_open=True)
    assert writer is not None
    try:
        assert Path(f"{path}-wal").stat().st_size > 0  # the rows live in the WAL only
        backup = prepare(path, NOW)
    finally:
        writer.close()
    assert backup is not None and len(lf_table(backup, "eval_results")) == len(rows)
    db = Database(path)
    try:
        assert db.read_sync(lambda c: c.execute("SELECT COUNT(*) FROM eval_results").fetchone()[0]) == len(rows)
    finally:
        db.close()


def test_a_failure_half_way_rolls_back_and_leaves_the_file_byte_identical(
        lf_db: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    original = sha256_of(lf_db)
    calls = {"n": 0}
    real_insert = results.insert

    def failing_insert(conn: sqlite3.Connection, row: dict) -> int:
        calls["n"] += 1
        if calls["n"] == 3:
            raise sqlite3.IntegrityError("injected failure")
        return real_insert(conn, row)

    monkeypatch.setattr(adopt_llamafarm.results, "insert", failing_insert)
    with pytest.raises(DatabaseRefused, match="injected failure") as info:
        prepare(lf_db, NOW)
    assert "left unchanged" in info.value.detail and str(lf_db) in info.value.detail
    assert sha256_of(lf_db) == original
    assert inspect(lf_db).kind == "llamafarm"
    monkeypatch.setattr(adopt_llamafarm.results, "insert", real_insert)
    second = prepare(lf_db, NOW)  # a second start adopts it; the first copy is not overwritten
    assert second is not None and second.name.endswith("-1.bak") and sha256_of(second) == original


def test_daemon_refuses_a_foreign_file_with_one_line_and_exit_2(tmp_path: Path) -> None:
    path = tmp_path / "eval.db"
    path.write_text("someone else's notes\n")
    config = write_toml(tmp_path / "c.toml", {
        "server": {"port": 11999}, "paths": {"models_root": str(tmp_path / "m"), "db_path": str(path),
                                             "state_dir": str(tmp_path / "s")},
        "watch": {"enabled": False},
    })
    proc = subprocess.run([*vision_evald_command(), "--config", str(config)], check=False, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr
    errors = [line for line in proc.stderr.splitlines() if "cannot use the database" in line]
    assert len(errors) == 1 and str(path) in errors[0] and "not a SQLite database" in errors[0], proc.stderr
    assert proc.stderr.strip().splitlines()[-1] == errors[0]  # the last word, after at most the config line
    assert path.read_text() == "someone else's notes\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.toml", "eval.db"]


def test_a_started_daemon_adopts_and_serves_the_rows(tmp_path: Path) -> None:
    """The real ``Service`` (in this process: ``tests.inprocess.InProcessDaemon``) adopts the file at start,
    keeps a byte-identical backup, and serves the adopted rows over HTTP."""
    daemon = InProcessDaemon(tmp_path)
    make_llamafarm_db(daemon.db_path, lf_rows(daemon.models_root, "/data/set/data.yaml"), lf_promotions())
    original = sha256_of(daemon.db_path)
    try:
        daemon.start(wait_workers=False)
        backups = sorted(tmp_path.glob("eval.db.llamafarm-*.bak"))
        assert len(backups) == 1 and sha256_of(backups[0]) == original
        history = daemon.http.get("/v1/vision/eval/leaderboard/lf-detector", timeout=10).json()
        assert sorted(h["llamafarm_eval_id"] for h in history) == [1, 2, 3]
        assert all(h["source"] == "llamafarm" for h in history)
        board = daemon.http.get("/v1/vision/eval/leaderboard", timeout=10).json()
        assert [(r["model_name"], r["score"]) for r in board][:2] == [
            ("lf-other", pytest.approx(DEFAULT_OTHER)), ("lf-detector", pytest.approx(DEFAULT_DETECTOR))]
    finally:
        daemon.stop()
    assert "Traceback" not in daemon.log(), daemon.log_tail()
    assert "adopted the LlamaFarm database" in daemon.log()
