"""The outbox payloads the daemon writes: one JSON object per evaluation, comparison and decision. Pure.

Each payload holds everything its send needs, so a record sent days later
(after an outage) still says what was true when it was written:

- evaluation: ``{eval_id, job_id, created_at, artifacts_dir, result}``; ``result`` is the
  result as the API answers it (``eval_id``, ``timestamp``, job, trigger and version added);
  ``artifacts_dir`` holds its ``curves.json`` and ``errors.json`` (None: none).
- comparison: ``{job_id, created_at, comparison}``; ``comparison`` is the compare job's result
  (``eval_id_a``, ``eval_id_b``, ``metrics``, optional ``statistics``).
- decision: ``{model_name, job_id, created_at, decision}``; ``decision`` is
  ``daemon.promote.decision.Decision.public()`` with its ledger ``promotion_id`` set.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any


def evaluation_record(eval_id: int, row: Mapping[str, Any]) -> dict[str, Any]:
    """The payload of the ``eval_results`` row ``row`` (as given to ``store.results.insert``) stored as
    ``eval_id``."""
    result = {**json.loads(row["result_json"]), "eval_id": eval_id, "timestamp": row["created_at"],
              "job_id": row.get("job_id"), "trigger": row.get("trigger"), "model_version": row.get("model_version")}
    predictions = row.get("predictions_path")
    return {"eval_id": eval_id, "job_id": row.get("job_id"), "created_at": row["created_at"],
            "artifacts_dir": str(Path(predictions).parent) if predictions else None, "result": result}


def comparison_record(job_id: str, comparison: Mapping[str, Any], now: str) -> dict[str, Any]:
    """The payload of a compare job's result (``daemon.runner.JobRunner.compare_job``)."""
    return {"job_id": job_id, "created_at": now, "comparison": dict(comparison)}


def decision_record(model_name: str, decision: Mapping[str, Any], job_id: str | None, now: str) -> dict[str, Any]:
    """The payload of a promotion decision (``Decision.public()``, its ``promotion_id`` set)."""
    if decision.get("promotion_id") is None:
        raise ValueError("a decision is recorded with its ledger row's promotion_id")
    return {"model_name": model_name, "job_id": job_id, "created_at": now, "decision": dict(decision)}
