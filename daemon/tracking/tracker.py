"""The daemon's MLflow tracking, whole: what the job path enqueues and the sender that drains it.

Off (``[mlflow] tracking_uri`` empty): every method is a no-op and mlflow is
never imported. On: ``record_*`` add one outbox row inside the caller's write
transaction (the one that writes the result, comparison or decision it
reports) and never touch the network; ``wake()`` after that write commits
tells the sender; ``start``/``close`` run the sender with the service.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from daemon.clock import Clock, utcnow
from daemon.tracking.records import comparison_record, decision_record, evaluation_record
from daemon.tracking.sender import DEFAULT_BACKOFF, Backoff, OutboxSender, TrackingStatus
from daemon.tracking.sink import MlflowSink, transient
from store import outbox
from store.database import Database
from vocab.config import MlflowConfig


class Tracker:
    """MLflow tracking for one service (see module contract)."""

    def __init__(self, config: MlflowConfig, db: Database, promoted_dir: Path, clock: Clock = utcnow,
                 backoff: Backoff = DEFAULT_BACKOFF) -> None:
        self.config = config
        self.sender = OutboxSender(db, MlflowSink(config, promoted_dir), transient, clock, backoff) \
            if config.enabled else None

    @property
    def enabled(self) -> bool:
        return self.sender is not None

    # -- the job path: one insert each, inside the caller's transaction -------------------------
    def record_evaluation(self, conn: sqlite3.Connection, eval_id: int, row: Mapping[str, Any]) -> None:
        """``row``: the ``eval_results`` row just inserted as ``eval_id`` (``store.results.insert``'s input)."""
        if self.enabled:
            outbox.enqueue(conn, "evaluation", evaluation_record(eval_id, row), row["created_at"])

    def record_comparison(self, conn: sqlite3.Connection, job_id: str, comparison: Mapping[str, Any],
                          now: str) -> None:
        """``comparison``: a compare job's result, with ``eval_id_a`` and ``eval_id_b``."""
        if self.enabled:
            outbox.enqueue(conn, "comparison", comparison_record(job_id, comparison, now), now)

    def record_decision(self, conn: sqlite3.Connection, model_name: str, decision: Mapping[str, Any],
                        job_id: str | None, now: str) -> None:
        """``decision``: ``Decision.public()`` with the ``promotion_id`` of the ledger row just inserted."""
        if self.enabled:
            outbox.enqueue(conn, "decision", decision_record(model_name, decision, job_id, now), now)

    def wake(self) -> None:
        """After the write holding a ``record_*`` committed: the sender looks now."""
        if self.sender is not None:
            self.sender.wake()

    # -- lifecycle and health ------------------------------------------------------------------
    def start(self) -> None:
        if self.sender is not None:
            self.sender.start()

    async def close(self) -> None:
        if self.sender is not None:
            await self.sender.close()

    def status(self) -> TrackingStatus | None:
        """The sender's state (None when off): the /metrics families' input."""
        return self.sender.status if self.sender is not None else None

    def health(self) -> dict[str, Any]:
        """The ``mlflow`` entry of /healthz. MLflow being down never makes the daemon unhealthy."""
        if self.sender is None:
            return {"enabled": False}
        return {"enabled": True, **self.sender.status.public()}
