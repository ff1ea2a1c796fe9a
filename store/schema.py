"""Schema and forward migrations, versioned with ``PRAGMA user_version``.

Each migration is applied once, in order, inside the writer's transaction;
a database newer than this code is refused rather than misread.
"""

from __future__ import annotations

import sqlite3

_V1 = """
CREATE TABLE jobs (
    seq            INTEGER PRIMARY KEY AUTOINCREMENT,   -- FIFO order
    id             TEXT NOT NULL UNIQUE,
    kind           TEXT NOT NULL CHECK (kind IN ('eval', 'compare', 'train')),
    status         TEXT NOT NULL CHECK (status IN ('queued', 'running', 'completed', 'failed', 'cancelled')),
    trigger        TEXT NOT NULL CHECK (trigger IN ('api', 'watcher', 'train', 'compare')),
    params         TEXT NOT NULL,                       -- JSON
    progress       REAL NOT NULL DEFAULT 0,
    result         TEXT,                                -- JSON
    error          TEXT,
    attempts       INTEGER NOT NULL DEFAULT 0,
    max_attempts   INTEGER NOT NULL DEFAULT 2,
    cancel_requested INTEGER NOT NULL DEFAULT 0,
    created_at     TEXT NOT NULL,
    started_at     TEXT,
    completed_at   TEXT
);
CREATE INDEX jobs_status_seq ON jobs (status, seq);
CREATE INDEX jobs_kind_seq ON jobs (kind, seq);

CREATE TABLE eval_results (
    id                  INTEGER PRIMARY KEY AUTOINCREMENT,
    job_id              TEXT,
    trigger             TEXT NOT NULL,
    model_name          TEXT NOT NULL,
    model_version       INTEGER,
    model_path          TEXT NOT NULL,
    dataset             TEXT NOT NULL,
    dataset_fingerprint TEXT NOT NULL,
    checkpoint_sha256   TEXT NOT NULL,
    cache_key           TEXT NOT NULL,
    imgsz               INTEGER NOT NULL,
    batch               INTEGER NOT NULL,
    device              TEXT NOT NULL,
    device_kind         TEXT NOT NULL,
    ultralytics_version TEXT NOT NULL,
    torch_version       TEXT NOT NULL,
    mAP50               REAL,
    mAP50_95            REAL,
    precision           REAL,
    recall              REAL,
    f1                  REAL,
    conf_threshold      REAL,
    per_class           TEXT NOT NULL,                  -- JSON {class: AP50}
    per_class_metrics   TEXT NOT NULL,                  -- JSON
    inference_ms        REAL,
    preprocess_ms       REAL,
    postprocess_ms      REAL,
    small_object_recall  REAL,
    medium_object_recall REAL,
    large_object_recall  REAL,
    small_object_count  INTEGER,
    medium_object_count INTEGER,
    large_object_count  INTEGER,
    model_size_mb       REAL,
    score               REAL,
    weights             TEXT NOT NULL,                  -- JSON, the applied weights
    predictions_path    TEXT,
    evidence_path       TEXT,
    result_json         TEXT NOT NULL,                  -- the full result as returned
    created_at          TEXT NOT NULL
);
CREATE INDEX eval_results_cache ON eval_results (cache_key, id);
CREATE INDEX eval_results_model ON eval_results (model_name, id);
CREATE INDEX eval_results_sha ON eval_results (checkpoint_sha256, dataset_fingerprint);

-- The best evaluation of each model on each dataset: the leaderboard's rows, kept on insert.
CREATE TABLE leaderboard_best (
    model_name TEXT NOT NULL,
    dataset    TEXT NOT NULL,
    eval_id    INTEGER NOT NULL REFERENCES eval_results (id),
    score      REAL,
    PRIMARY KEY (model_name, dataset)
);
CREATE INDEX leaderboard_best_score ON leaderboard_best (score DESC, eval_id);
CREATE INDEX leaderboard_best_dataset ON leaderboard_best (dataset, score DESC, eval_id);

CREATE TABLE promotions (
    id                INTEGER PRIMARY KEY AUTOINCREMENT,
    model_name        TEXT NOT NULL,
    eval_id           INTEGER REFERENCES eval_results (id),
    timestamp         TEXT NOT NULL,
    decision          TEXT NOT NULL CHECK (decision IN ('promoted', 'refused', 'rollback')),
    actor             TEXT NOT NULL,
    reason            TEXT NOT NULL,
    dataset           TEXT,
    version           INTEGER,
    previous_sha256   TEXT,
    new_sha256        TEXT,
    previous_score    REAL,
    new_score         REAL,
    details           TEXT                              -- JSON: gates, weights, job id
);
CREATE INDEX promotions_model ON promotions (model_name, id);

-- Which job owns each checkpoint content of a model: the watcher never evaluates
-- a claimed checkpoint again, and a train job claims its output before publishing it.
CREATE TABLE checkpoint_claims (
    model_name TEXT NOT NULL,
    sha256     TEXT NOT NULL,
    job_id     TEXT NOT NULL,
    path       TEXT NOT NULL,
    created_at TEXT NOT NULL,
    PRIMARY KEY (model_name, sha256)
);

-- Checkpoints the watcher saw but could not evaluate, with the reason.
CREATE TABLE skipped_checkpoints (
    path       TEXT PRIMARY KEY,
    model_name TEXT NOT NULL,
    sha256     TEXT,
    reason     TEXT NOT NULL,
    created_at TEXT NOT NULL
);
"""

# Times the daemon died under a running job: counted instead of an attempt ([jobs] max_interruptions).
_JOB_INTERRUPTIONS = """
ALTER TABLE jobs ADD COLUMN interruptions INTEGER NOT NULL DEFAULT 0;
"""

# The watcher's state of each checkpoint content it queued (issue 15): evaluated, waiting to retry an
# outside failure (when), or failed for a fault of its own (waits until its bytes change).
_CHECKPOINT_STATES = """
CREATE TABLE checkpoint_states (
    model_name    TEXT NOT NULL,
    sha256        TEXT NOT NULL,
    path          TEXT NOT NULL,
    state         TEXT NOT NULL CHECK (state IN ('queued', 'evaluated', 'retry', 'failed', 'cancelled')),
    last_error    TEXT,
    attempts      INTEGER NOT NULL DEFAULT 0,                -- failed attempts so far
    next_retry_at TEXT,                                      -- ISO time; state 'retry' only
    job_id        TEXT,
    updated_at    TEXT NOT NULL,
    PRIMARY KEY (model_name, sha256)
);
CREATE INDEX checkpoint_states_job ON checkpoint_states (job_id);
"""

# A running job's progress detail (JSON): a train job's latest epoch report.
_JOBS_PROGRESS_DETAIL = """
ALTER TABLE jobs ADD COLUMN progress_detail TEXT;
"""
# Evaluations of other splits than val, of ONNX exports, and square-padded reference evaluations of a
# checkpoint for the parity check of a static export (issue 12): each row says which.
_SPLIT_AND_FORMAT = """
ALTER TABLE eval_results ADD COLUMN split TEXT NOT NULL DEFAULT 'val';
ALTER TABLE eval_results ADD COLUMN format TEXT NOT NULL DEFAULT 'pt';
ALTER TABLE eval_results ADD COLUMN rect INTEGER NOT NULL DEFAULT 1;
CREATE INDEX eval_results_split ON eval_results (split, dataset, model_name, score);
"""

# One weighting per ranking, results as asked, effective settings (issue 16).
# - default_score: the score under the default weights, the leaderboard's order
#   (the SQL below computes it once for rows stored before; new rows get it from
#   vocab.scoring). It uses detection's default weights (docs/metrics.md, "Default weights"):
#   mAP50_95 .35, mAP50 .20, small_object_recall .20, f1 .15, speed .10,
#   dropping null terms and renormalising the rest.
# - request_key: what was asked (model, path, dataset path, weights, options)
#   on which evaluation; source_eval_id: the row that was computed (NULL: this one).
# - imgsz_requested / batch_requested: the request's values when they differ
#   from what ran.
# - dataset_contents: the latest fingerprint seen for each dataset path.
# - leaderboard_best: the best row by default_score per model, dataset path and content.
_V_NUMBERS = """
ALTER TABLE eval_results ADD COLUMN default_score REAL;
ALTER TABLE eval_results ADD COLUMN request_key TEXT;
ALTER TABLE eval_results ADD COLUMN source_eval_id INTEGER;
ALTER TABLE eval_results ADD COLUMN imgsz_requested INTEGER;
ALTER TABLE eval_results ADD COLUMN batch_requested INTEGER;
UPDATE eval_results SET default_score =
    (COALESCE(0.35 * mAP50_95, 0) + COALESCE(0.20 * mAP50, 0) + COALESCE(0.20 * small_object_recall, 0)
     + COALESCE(0.15 * f1, 0) + COALESCE(0.10 * MIN(1.0, MAX(0.0, (500.0 - inference_ms) / 450.0)), 0))
    / NULLIF((CASE WHEN mAP50_95 IS NULL THEN 0 ELSE 0.35 END) + (CASE WHEN mAP50 IS NULL THEN 0 ELSE 0.20 END)
             + (CASE WHEN small_object_recall IS NULL THEN 0 ELSE 0.20 END)
             + (CASE WHEN f1 IS NULL THEN 0 ELSE 0.15 END) + (CASE WHEN inference_ms IS NULL THEN 0 ELSE 0.10 END), 0);
CREATE INDEX eval_results_request ON eval_results (request_key, id);
CREATE INDEX eval_results_dataset ON eval_results (dataset, dataset_fingerprint);

CREATE TABLE dataset_contents (
    dataset     TEXT PRIMARY KEY,
    fingerprint TEXT NOT NULL,
    seen_at     TEXT NOT NULL
);
INSERT INTO dataset_contents (dataset, fingerprint, seen_at)
    SELECT dataset, dataset_fingerprint, created_at FROM eval_results
    WHERE id IN (SELECT MAX(id) FROM eval_results WHERE split = 'val' AND format = 'pt' AND rect = 1 GROUP BY dataset);

DROP TABLE leaderboard_best;
CREATE TABLE leaderboard_best (
    model_name  TEXT NOT NULL,
    dataset     TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    eval_id     INTEGER NOT NULL REFERENCES eval_results (id),
    score       REAL,
    PRIMARY KEY (model_name, dataset, fingerprint)
);
CREATE INDEX leaderboard_best_score ON leaderboard_best (score DESC, eval_id);
CREATE INDEX leaderboard_best_dataset ON leaderboard_best (dataset, score DESC, eval_id);
INSERT INTO leaderboard_best (model_name, dataset, fingerprint, eval_id, score)
    SELECT model_name, dataset, dataset_fingerprint, id, default_score FROM eval_results r
    WHERE r.split = 'val' AND r.format = 'pt' AND r.rect = 1
      AND id = (SELECT id FROM eval_results o WHERE o.model_name = r.model_name AND o.dataset = r.dataset
                AND o.dataset_fingerprint = r.dataset_fingerprint AND o.split = 'val' AND o.format = 'pt' AND o.rect = 1
                ORDER BY o.default_score IS NULL, o.default_score DESC, o.id LIMIT 1)
"""


# Every task (issues 22 and 25) and like with like on every ranking (issue 23):
# - task: the result's task; its own metrics get columns so that any weighting scores them in SQL;
# - leaderboard_best keeps the best row per model, dataset path and content, task and image size: a
#   setting group of the leaderboard never mixes image sizes or tasks (rows stored before are detection).
_TASKS_AND_GROUPS = """
ALTER TABLE eval_results ADD COLUMN task TEXT NOT NULL DEFAULT 'detection';
ALTER TABLE eval_results ADD COLUMN top1 REAL;
ALTER TABLE eval_results ADD COLUMN top5 REAL;
ALTER TABLE eval_results ADD COLUMN macro_f1 REAL;
ALTER TABLE eval_results ADD COLUMN mask_mAP50_95 REAL;
ALTER TABLE eval_results ADD COLUMN mask_mAP50 REAL;
ALTER TABLE eval_results ADD COLUMN mask_precision REAL;
ALTER TABLE eval_results ADD COLUMN mask_recall REAL;
ALTER TABLE eval_results ADD COLUMN pose_mAP50_95 REAL;
ALTER TABLE eval_results ADD COLUMN pose_mAP50 REAL;
ALTER TABLE eval_results ADD COLUMN pose_precision REAL;
ALTER TABLE eval_results ADD COLUMN pose_recall REAL;
CREATE INDEX eval_results_task ON eval_results (task, split, dataset, model_name);

DROP TABLE leaderboard_best;
CREATE TABLE leaderboard_best (
    model_name  TEXT NOT NULL,
    dataset     TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    task        TEXT NOT NULL,
    imgsz       INTEGER NOT NULL,
    eval_id     INTEGER NOT NULL REFERENCES eval_results (id),
    score       REAL,
    PRIMARY KEY (model_name, dataset, fingerprint, task, imgsz)
);
CREATE INDEX leaderboard_best_score ON leaderboard_best (score DESC, eval_id);
CREATE INDEX leaderboard_best_dataset ON leaderboard_best (dataset, score DESC, eval_id);
INSERT INTO leaderboard_best (model_name, dataset, fingerprint, task, imgsz, eval_id, score)
    SELECT model_name, dataset, dataset_fingerprint, task, imgsz, id, default_score FROM eval_results r
    WHERE r.split = 'val' AND r.format = 'pt' AND r.rect = 1
      AND id = (SELECT id FROM eval_results o WHERE o.model_name = r.model_name AND o.dataset = r.dataset
                AND o.dataset_fingerprint = r.dataset_fingerprint AND o.task = r.task AND o.imgsz = r.imgsz
                AND o.split = 'val' AND o.format = 'pt' AND o.rect = 1
                ORDER BY o.default_score IS NULL, o.default_score DESC, o.id LIMIT 1)
"""


# The MLflow outbox (daemon/tracking): records waiting to reach the tracking server, sent in id order;
# one is written in the same transaction as the result, comparison or decision it reports.
_MLFLOW_OUTBOX = """
CREATE TABLE mlflow_outbox (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,   -- the order records are sent in
    kind            TEXT NOT NULL CHECK (kind IN ('evaluation', 'comparison', 'decision')),
    payload         TEXT NOT NULL,                       -- JSON
    state           TEXT NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'done', 'failed')),
    attempts        INTEGER NOT NULL DEFAULT 0,          -- failed sends so far
    next_attempt_at TEXT NOT NULL,                       -- ISO time; pending only
    last_error      TEXT,
    created_at      TEXT NOT NULL,
    done_at         TEXT                                 -- sent, or given up (state 'failed')
);
CREATE INDEX mlflow_outbox_state ON mlflow_outbox (state, id);
"""


# Another look when the cause changes (issue 23): a checkpoint that failed or was refused because of its
# dataset (cause 'dataset') or its export (cause 'export') is queued again once that changes; cause_stamp
# is what the cause looked like when its job was queued (``daemon.watch.causes``).
_CHECKPOINT_CAUSES = """
ALTER TABLE checkpoint_states ADD COLUMN cause TEXT;
ALTER TABLE checkpoint_states ADD COLUMN cause_stamp TEXT
"""


MIGRATIONS: list[str] = [_V1, _JOB_INTERRUPTIONS, _CHECKPOINT_STATES, _JOBS_PROGRESS_DETAIL, _SPLIT_AND_FORMAT,
                         _V_NUMBERS, _TASKS_AND_GROUPS, _MLFLOW_OUTBOX,
                         _CHECKPOINT_CAUSES]


def migrate(conn: sqlite3.Connection) -> int:
    """Bring the schema to the latest version; return it. Refuses a newer database."""
    current = conn.execute("PRAGMA user_version").fetchone()[0]
    latest = len(MIGRATIONS)
    if current > latest:
        raise RuntimeError(f"database schema version {current} is newer than this program ({latest})")
    for version in range(current, latest):
        conn.execute("BEGIN IMMEDIATE")
        try:
            apply(conn, version)
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")
    return latest


def apply(conn: sqlite3.Connection, version: int) -> None:
    """Run migration ``version`` (0-based) and record it, inside the caller's transaction."""
    for statement in _statements(MIGRATIONS[version]):
        conn.execute(statement)
    conn.execute(f"PRAGMA user_version={version + 1}")


def _statements(script: str) -> list[str]:
    """Split a migration script into statements (no semicolons inside our literals)."""
    lines = [line.split("--", 1)[0] for line in script.splitlines()]
    return [s.strip() for s in "\n".join(lines).split(";") if s.strip()]
