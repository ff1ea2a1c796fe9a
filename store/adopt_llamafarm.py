"""What is in the database file at start-up, and the adoption of a LlamaFarm ``eval.db``.

LlamaFarm's evaluator keeps its own ``eval.db`` at the path we use
(``~/.llamafarm/models/vision/eval.db``): tables ``eval_results`` (with
``precision_val``/``recall_val``) and ``promotions``, WAL mode, no schema
version. ``prepare(path)`` runs before the database is opened for use:

- no file, an empty file or an empty SQLite database: nothing to do;
- ours (``user_version`` 1..latest with our tables): nothing to do;
- LlamaFarm's: its WAL is checkpointed, the file is copied aside as
  ``<name>.llamafarm-<UTC timestamp>.bak`` (byte for byte, while we hold its
  write lock), then ONE transaction drops its two tables, creates our schema
  and imports every row: each ``eval_results`` row becomes an evaluation
  (``source: "llamafarm"``, nulls for what LlamaFarm never stored), each
  ``promotions`` row a ledger row (actor ``llamafarm``). Any failure rolls
  the transaction back: the file stays byte-identical and ``DatabaseRefused``
  says why;
- anything else (not SQLite, another program's tables, a newer schema of
  ours): ``DatabaseRefused`` naming the file and what was found; nothing is
  written (inspection opens the file read-only, and ``immutable`` when it is
  in WAL mode without a WAL file, so that no side file is created either).

Imported rows fill our NOT NULL columns that LlamaFarm has no value for with
placeholders no lookup matches ('' for checkpoint hash, dataset fingerprint,
device; 0 for imgsz and batch; ``llamafarm:<id>`` as cache key); the result
mapping itself carries null for each. LlamaFarm's timestamps are naive local
time: they are stored with this machine's UTC offset for that date and the
original text is kept as ``llamafarm_timestamp``.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import sqlite3
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from store import promotions, results
from store.schema import MIGRATIONS, apply
from vocab.errors import DatabaseRefused
from vocab.files import fsync_dir
from vocab.scoring import DEFAULT_WEIGHTS, composite_score

_SQLITE_MAGIC = b"SQLite format 3\x00"
_LF_TABLES = {"eval_results", "promotions", "sqlite_sequence"}
_LF_EVAL_COLUMNS = {"id", "model_name", "model_path", "dataset", "timestamp", "mAP50", "mAP50_95", "precision_val",
                    "recall_val", "f1", "per_class", "inference_ms", "score"}
_LF_PROMOTION_COLUMNS = {"id", "model_name", "eval_id", "promoted_at", "reason"}
_OURS = {"jobs", "eval_results", "promotions"}
# LlamaFarm's metric columns that keep their name in ours.
_SAME_NAME = ("mAP50", "mAP50_95", "f1", "inference_ms", "preprocess_ms", "postprocess_ms", "model_size_mb",
              "small_object_recall", "medium_object_recall", "large_object_recall", "score")
# Fields of our result that LlamaFarm never stored: null in an imported result.
_NEVER_STORED = ("conf_threshold", "per_class_metrics", "small_object_count", "medium_object_count",
                 "large_object_count", "small_object_found", "medium_object_found", "large_object_found",
                 "images", "device", "device_kind", "imgsz", "batch", "ultralytics_version", "torch_version",
                 "weights", "checkpoint_sha256", "dataset_fingerprint", "class_names")
log = logging.getLogger(__name__)
_VERSION_FILE = re.compile(r"^v(\d+)\.pt$")
_CHECKPOINT_TRIES = 3
BUSY_TIMEOUT_S = 5.0


@dataclass(frozen=True)
class Found:
    """What a database file holds: ``kind`` is new, ours, llamafarm, newer or foreign."""

    kind: str
    description: str


def prepare(path: Path, now: datetime | None = None) -> Path | None:
    """Make ``path`` usable as our database (see module contract); the backup's path when adopted."""
    if refuse_unusable(path).kind != "llamafarm":
        return None
    return adopt(path, now or datetime.now(UTC))


def refuse_unusable(path: Path) -> Found:
    """What ``path`` holds; ``DatabaseRefused`` for a foreign or newer file. Writes nothing (the daemon
    calls it before it takes its home lock, whose files would be writes too)."""
    found = inspect(path)
    if found.kind in ("foreign", "newer"):
        raise DatabaseRefused(f"{path}: {found.description}")
    return found


# -- inspection --------------------------------------------------------------------------------
def inspect(path: Path) -> Found:
    """Classify the file at ``path`` without writing anything."""
    try:
        with open(path, "rb") as f:
            header = f.read(100)
    except FileNotFoundError:
        return Found("new", "no database yet")
    except OSError as exc:
        return Found("foreign", f"cannot be read ({exc.strerror or exc})")
    if not header:
        return Found("new", "an empty file")
    if not header.startswith(_SQLITE_MAGIC):
        return Found("foreign", f"not a SQLite database (it starts with {header[:16]!r})")
    wal_mode = len(header) > 19 and header[18] == 2 and header[19] == 2
    immutable = wal_mode and not Path(f"{path}-wal").exists()
    uri = f"{Path(path).resolve().as_uri()}?mode=ro" + ("&immutable=1" if immutable else "")
    try:
        conn = sqlite3.connect(uri, uri=True, timeout=BUSY_TIMEOUT_S)
        try:
            return classify(conn)
        finally:
            conn.close()
    except sqlite3.Error as exc:
        return Found("foreign", f"a SQLite file that cannot be read ({exc})")


def classify(conn: sqlite3.Connection) -> Found:
    """Classify an open database by its ``user_version`` and tables."""
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    latest = len(MIGRATIONS)
    if version > latest:
        return Found("newer", f"a vision-evald database of schema version {version}, newer than this "
                              f"program's {latest}; upgrade vision-evald or use another [paths] db_path")
    if version == 0 and not tables:
        return Found("new", "an empty SQLite database")
    if version >= 1 and _OURS <= tables:
        return Found("ours", f"vision-evald schema version {version}")
    if version == 0 and _is_llamafarm(conn, tables):
        return Found("llamafarm", "a LlamaFarm evaluation database")
    listed = ", ".join(sorted(tables)) or "none"
    return Found("foreign", f"a SQLite database that is neither vision-evald's nor LlamaFarm's (user_version "
                            f"{version}, tables: {listed}); move it away or set another [paths] db_path")


def _columns(conn: sqlite3.Connection, table: str) -> set[str]:
    return {r[1] for r in conn.execute(f"PRAGMA table_info({table})")}


def _is_llamafarm(conn: sqlite3.Connection, tables: set[str]) -> bool:
    if "eval_results" not in tables or not tables <= _LF_TABLES:
        return False
    if not _LF_EVAL_COLUMNS <= _columns(conn, "eval_results"):
        return False
    return "promotions" not in tables or _LF_PROMOTION_COLUMNS <= _columns(conn, "promotions")


# -- adoption ----------------------------------------------------------------------------------
def adopt(path: Path, now: datetime) -> Path:
    """Back up and migrate a LlamaFarm database in one transaction; the backup's path."""
    conn = sqlite3.connect(path, isolation_level=None, timeout=BUSY_TIMEOUT_S)
    backup: Path | None = None
    try:
        conn.row_factory = sqlite3.Row
        conn.execute("PRAGMA foreign_keys=ON")
        _lock_checkpointed(conn, path)
        try:
            backup = _copy_aside(path, now)
            found = classify(conn)
            if found.kind != "llamafarm":  # changed between inspection and the lock
                raise DatabaseRefused(f"{path}: {found.description}")
            counts = _migrate(conn)
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
    except DatabaseRefused:
        raise
    except Exception as exc:  # noqa: BLE001 - any failure leaves the file as it was, said in one line
        kept = f"; a copy is at {backup}" if backup else ""
        raise DatabaseRefused(f"{path}: a LlamaFarm database that could not be adopted ({exc}); "
                              f"it was left unchanged{kept}") from None
    finally:
        conn.close()
    log.warning("adopted the LlamaFarm database %s: %d evaluations and %d promotions imported; "
                "the original is kept at %s", path, counts[0], counts[1], backup)
    return backup


def _lock_checkpointed(conn: sqlite3.Connection, path: Path) -> None:
    """Fold the WAL into the file, then hold the write lock with the WAL still empty."""
    for _ in range(_CHECKPOINT_TRIES):
        busy = conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()[0]
        conn.execute("BEGIN IMMEDIATE")
        wal = Path(f"{path}-wal")
        if not busy and (not wal.exists() or wal.stat().st_size == 0):
            return
        conn.execute("ROLLBACK")
    raise DatabaseRefused(f"{path}: a LlamaFarm database that another process keeps writing to; "
                          "stop LlamaFarm's runtime and start vision-evald again")


def _copy_aside(path: Path, now: datetime) -> Path:
    """Copy the file to ``<name>.llamafarm-<UTC timestamp>[-n].bak``, durably; never overwrite one."""
    stamp = now.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")
    for n in range(100):
        target = path.with_name(f"{path.name}.llamafarm-{stamp}{f'-{n}' if n else ''}.bak")
        try:
            out = open(target, "xb")  # noqa: SIM115 - closed below
        except FileExistsError:
            continue
        with out, open(path, "rb") as src:
            shutil.copyfileobj(src, out)
            out.flush()
            os.fsync(out.fileno())
        fsync_dir(path.parent)
        return target
    raise OSError(f"no free backup name for {path}")


def _migrate(conn: sqlite3.Connection) -> tuple[int, int]:
    """Inside the caller's transaction: LlamaFarm's rows out, our schema in, the rows imported.

    Returns the numbers of evaluations and promotions imported.
    """
    evals = conn.execute("SELECT * FROM eval_results ORDER BY id").fetchall()
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    decisions = conn.execute("SELECT * FROM promotions ORDER BY id").fetchall() if "promotions" in tables else []
    conn.execute("DROP TABLE IF EXISTS promotions")
    conn.execute("DROP TABLE eval_results")
    for version in range(len(MIGRATIONS)):
        apply(conn, version)
    ours: dict[int, dict[str, Any]] = {}
    for row in evals:
        imported = evaluation_row(row)
        ours[row["id"]] = {**imported, "eval_id": results.insert(conn, imported)}
    for row in decisions:
        promotions.insert(conn, ledger_row(row, ours.get(row["eval_id"])))
    return len(evals), len(decisions)


def local_timestamp(text: str | None) -> str | None:
    """A naive local-time ISO text with this machine's UTC offset for that moment; None if absent.

    Text that does not parse as ISO-8601 is kept as it is.
    """
    if not text:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return text
    return (moment if moment.tzinfo else moment.astimezone()).isoformat()


def _per_class(raw: Any) -> tuple[dict[str, float] | None, str | None]:
    """LlamaFarm's per_class JSON as a mapping, or (None, why it is not one)."""
    if raw in (None, ""):
        return None, None
    try:
        value = json.loads(raw)
    except (TypeError, ValueError):
        return None, f"per_class was not valid JSON: {str(raw)[:80]!r}"
    if not isinstance(value, dict) or not all(isinstance(v, (int, float)) or v is None for v in value.values()):
        return None, f"per_class was not a mapping of class names to numbers: {str(raw)[:80]!r}"
    return {str(k): v for k, v in value.items()}, None


def evaluation_row(lf: sqlite3.Row) -> dict[str, Any]:
    """One LlamaFarm ``eval_results`` row as a ``results.insert`` row (see module contract)."""
    keys = set(lf.keys())
    per_class, problem = _per_class(lf["per_class"])
    path = lf["model_path"]
    match = _VERSION_FILE.match(Path(path).name) if path else None
    result: dict[str, Any] = {k: None for k in _NEVER_STORED}
    result.update({k: lf[k] if k in keys else None for k in _SAME_NAME})
    result.update({
        "model_name": lf["model_name"], "model_path": path, "dataset": lf["dataset"],
        "precision": lf["precision_val"], "recall": lf["recall_val"], "per_class": per_class,
        "source": "llamafarm", "llamafarm_eval_id": lf["id"], "llamafarm_timestamp": lf["timestamp"],
        "timestamp_zone": "local", "warnings": [problem] if problem else [],
    })
    return {
        **result, "job_id": None, "trigger": "llamafarm", "model_version": int(match.group(1)) if match else None,
        "model_path": path or "", "dataset": lf["dataset"] or "", "dataset_fingerprint": "",
        "checkpoint_sha256": "", "cache_key": f"llamafarm:{lf['id']}", "imgsz": 0, "batch": 0, "device": "",
        "device_kind": "", "ultralytics_version": "", "torch_version": "", "per_class_metrics": None,
        "weights": None, "predictions_path": None, "evidence_path": None,
        "result_json": json.dumps(result), "created_at": local_timestamp(lf["timestamp"]) or "",
        "default_score": composite_score(result, DEFAULT_WEIGHTS),  # the leaderboard's order (store.rankings)
    }


def ledger_row(lf: sqlite3.Row, evaluation: dict[str, Any] | None) -> dict[str, Any]:
    """One LlamaFarm ``promotions`` row as a ledger row; ``evaluation`` is the imported row it names.

    LlamaFarm wrote eval_id 0 (no such row) for every automatic promotion: the
    ledger row then names no evaluation.
    """
    ev = evaluation or {}
    return {
        "model_name": lf["model_name"], "eval_id": ev.get("eval_id"),
        "timestamp": local_timestamp(lf["promoted_at"]) or "", "decision": "promoted", "actor": "llamafarm",
        "reason": lf["reason"] or "", "dataset": ev.get("dataset") or None, "version": ev.get("model_version"),
        "new_score": ev.get("score"),
        "details": {"source": "llamafarm", "llamafarm_id": lf["id"], "llamafarm_eval_id": lf["eval_id"],
                    "llamafarm_promoted_at": lf["promoted_at"], "timestamp_zone": "local"},
    }
