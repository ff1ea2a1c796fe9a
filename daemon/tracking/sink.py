"""The MLflow side of the outbox: one record in, the runs, registry versions and alias it describes out.

``MlflowSink.send`` is synchronous (the sender runs it in a thread of its
own) and idempotent: a record sent again, after a send that failed or was cut
off half-way, completes what is missing and duplicates nothing.

- evaluation: the run tagged with its ``eval_id`` is looked up first; a finished one is left as it is,
  a missing one created (start time: the evaluation's), an unfinished one completed: params, metrics
  (timestamped with the evaluation's time, so a metric logged again is the same point), tags,
  artifacts (``result.json``, ``curves.json``, ``errors.json``, ``confusion_matrix.png``), then finished.
- comparison: the same, keyed on the compare job's id, linked to both evaluations' runs.
- every decision: its evaluation's run gets the decision and its reason as tags (the latest decision that
  named that evaluation: a refused candidate's run says so).
- promoted and rollback: the registered model ``<prefix><model>`` holds one version per checkpoint
  content (tag ``checkpoint_sha256``). A checkpoint with no version yet is logged as an artifact
  (``checkpoint/<file>``) of its evaluation's run (of a run of the decision's own when it has none)
  and registered from there, tagged with the decision that registered it; then the alias moves to
  that version. Decisions are sent in ledger order, so the alias ends on what current.pt holds.

The checkpoint file logged is the evaluated file when its bytes are still the decision's, else the
promotion store's copy ``<promoted_dir>/<sha256>.pt`` (every promoted checkpoint is kept there).
mlflow is imported on the first send, never before.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from daemon.tracking import mapping
from daemon.tracking.plots import confusion_matrix_png
from evaluation.analysis_store import CURVES_FILE, ERRORS_FILE
from evaluation.file_cache import file_sha256
from vocab.config import MlflowConfig

log = logging.getLogger(__name__)

# The outbox retries, so the client's own retries (7, for ~4 minutes) are off, and a request gives up after
# 10 s; the client prints no run URLs to stdout. The environment's own values win.
CLIENT_ENVIRONMENT = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0", "MLFLOW_HTTP_REQUEST_TIMEOUT": "10",
                      "MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT": "true"}
CHECKPOINT_DIR = "checkpoint"


def transient(exc: BaseException) -> bool:
    """Whether a failed send may succeed later as it is: the server unreachable, slow, overloaded or
    failing (5xx, 429). A request MLflow refuses (4xx), a missing file or a bug would fail again."""
    if isinstance(exc, FileNotFoundError):
        return False
    if isinstance(exc, OSError):
        return True
    status = getattr(exc, "get_http_status_code", None)  # mlflow.exceptions.MlflowException
    if status is None:
        return False
    code = status()
    return code == 429 or code >= 500


class MlflowSink:
    """Sends outbox records to one MLflow tracking server (see module contract)."""

    def __init__(self, config: MlflowConfig, promoted_dir: Path) -> None:
        self.config = config
        self.promoted_dir = promoted_dir
        self._client: Any = None
        self._experiment_id: str | None = None
        self._registered: set[str] = set()

    @property
    def client(self) -> Any:
        """The ``mlflow.MlflowClient`` (imports mlflow on first use)."""
        if self._client is None:
            for key, value in CLIENT_ENVIRONMENT.items():
                os.environ.setdefault(key, value)
            from mlflow import MlflowClient

            self._client = MlflowClient(tracking_uri=self.config.tracking_uri, registry_uri=self.config.tracking_uri)
        return self._client

    def send(self, kind: str, payload: Mapping[str, Any]) -> None:
        """Bring MLflow up to date with one record; raises what the client raised (see ``transient``)."""
        try:
            {"evaluation": self.evaluation, "comparison": self.comparison, "decision": self.decision}[kind](payload)
        except BaseException:
            self._experiment_id = None  # looked up again: the server may have been replaced
            self._registered.clear()
            raise

    # -- runs ----------------------------------------------------------------------------------
    def experiment_id(self) -> str:
        if self._experiment_id is None:
            self._experiment_id = self._find_or_create_experiment()
        return self._experiment_id

    def _find_or_create_experiment(self) -> str:
        name = self.config.experiment
        found = self.client.get_experiment_by_name(name)
        if found is not None:
            return str(found.experiment_id)
        try:
            return str(self.client.create_experiment(name))
        except Exception as exc:
            if not _already_exists(exc):
                raise
        return str(self.client.get_experiment_by_name(name).experiment_id)  # created meanwhile elsewhere

    def find_run(self, filter_string: str) -> Any:
        """The oldest active run of the experiment matching ``filter_string``, or None."""
        runs = self.client.search_runs([self.experiment_id()], filter_string=filter_string, max_results=1,
                                       order_by=["attributes.start_time ASC"])
        return runs[0] if runs else None

    def _open_run(self, filter_string: str, tags: dict[str, str], created_at: str) -> tuple[str, bool]:
        """(run id, whether it is finished) of the run ``filter_string`` names, created when missing."""
        run = self.find_run(filter_string)
        if run is not None:
            return run.info.run_id, run.info.status == "FINISHED"
        run = self.client.create_run(self.experiment_id(), start_time=mapping.millis(created_at), tags=tags)
        return run.info.run_id, False

    def _log(self, run_id: str, created_at: str, params: Mapping[str, str] | None = None,
             metrics: Mapping[str, float] | None = None, tags: Mapping[str, str] | None = None) -> None:
        """One ``log_batch``; metrics at the record's time, step 0 (logged again: the same point)."""
        from mlflow.entities import Metric, Param, RunTag

        stamp = mapping.millis(created_at)
        self.client.log_batch(run_id, metrics=[Metric(k, v, stamp, 0) for k, v in (metrics or {}).items()],
                              params=[Param(k, v) for k, v in (params or {}).items()],
                              tags=[RunTag(k, v) for k, v in (tags or {}).items()])

    def evaluation(self, record: Mapping[str, Any]) -> None:
        result = record["result"]
        tags = mapping.evaluation_tags(record)
        run_id, finished = self._open_run(mapping.eval_filter(record["eval_id"]), tags, record["created_at"])
        if finished:
            return
        self._log(run_id, record["created_at"], mapping.evaluation_params(result), mapping.evaluation_metrics(result),
                  tags)
        with tempfile.TemporaryDirectory(prefix="vision-evald-mlflow-") as tmp:
            for path in _evaluation_files(record, Path(tmp)):
                self.client.log_artifact(run_id, str(path))
        self.client.set_terminated(run_id)

    def comparison(self, record: Mapping[str, Any]) -> None:
        c = record["comparison"]
        runs = [self.find_run(mapping.eval_filter(c[key])) if c.get(key) is not None else None
                for key in ("eval_id_a", "eval_id_b")]
        tags = mapping.comparison_tags(record, *(r.info.run_id if r is not None else None for r in runs))
        run_id, finished = self._open_run(mapping.comparison_filter(record["job_id"]), tags, record["created_at"])
        if finished:
            return
        self._log(run_id, record["created_at"], mapping.comparison_params(c), mapping.comparison_metrics(c), tags)
        with tempfile.TemporaryDirectory(prefix="vision-evald-mlflow-") as tmp:
            path = Path(tmp) / "comparison.json"
            path.write_text(json.dumps(c, indent=1))
            self.client.log_artifact(run_id, str(path))
        self.client.set_terminated(run_id)

    # -- decisions and the registry ------------------------------------------------------------
    def decision(self, record: Mapping[str, Any]) -> None:
        d = record["decision"]
        eval_run = self.find_run(mapping.eval_filter(d["eval_id"])) if d.get("eval_id") is not None else None
        if eval_run is not None:
            self._log(eval_run.info.run_id, record["created_at"], tags=mapping.decision_tags(d))
        if d["decision"] == "refused":
            return
        if not d.get("new_sha256"):
            log.warning("decision %s of %s names no checkpoint: nothing to register", d["promotion_id"],
                        record["model_name"])
            return
        name = self.config.registered_name(record["model_name"])
        self._ensure_registered(name)
        version = self._version_of(name, d["new_sha256"]) or self._register(name, record, eval_run)
        self.client.set_registered_model_alias(name, self.config.alias, version)

    def _ensure_registered(self, name: str) -> None:
        if name in self._registered:
            return
        try:
            self.client.create_registered_model(name)
        except Exception as exc:
            if not _already_exists(exc):
                raise
        self._registered.add(name)

    def _version_of(self, name: str, sha256: str) -> str | None:
        """The newest version of ``name`` holding these bytes, or None."""
        found = self.client.search_model_versions(mapping.version_filter(name, sha256))
        return str(max(int(v.version) for v in found)) if found else None

    def _register(self, name: str, record: Mapping[str, Any], eval_run: Any) -> str:
        """A new version of ``name`` from the decision's checkpoint, logged under the run that holds it."""
        d = record["decision"]
        sha = d["new_sha256"]
        if eval_run is not None and eval_run.data.params.get("checkpoint_sha256") == sha:
            run_id, evaluated = eval_run.info.run_id, eval_run.data.params.get("checkpoint")
            finished = True  # the evaluation's run: never finished here
        else:
            run_id, finished = self._open_run(mapping.decision_filter(d["promotion_id"]),
                                              mapping.decision_run_tags(record), record["created_at"])
            evaluated = None
        artifact = self._checkpoint_artifact(run_id, sha, evaluated)
        if not finished:
            self.client.set_terminated(run_id)
        version = self.client.create_model_version(
            name, source=f"runs:/{run_id}/{artifact}", run_id=run_id, tags=mapping.version_tags(d),
            description=mapping.version_description(d))
        return str(version.version)

    def _checkpoint_artifact(self, run_id: str, sha256: str, evaluated: str | None) -> str:
        """The run's checkpoint artifact path, logging the checkpoint's file first when it has none."""
        logged = [f.path for f in self.client.list_artifacts(run_id, CHECKPOINT_DIR) if not f.is_dir]
        if logged:
            return str(logged[0])
        path = self._checkpoint_file(sha256, evaluated)
        self.client.log_artifact(run_id, str(path), artifact_path=CHECKPOINT_DIR)
        return f"{CHECKPOINT_DIR}/{path.name}"

    def _checkpoint_file(self, sha256: str, evaluated: str | None) -> Path:
        candidates = [Path(p) for p in (evaluated, self.promoted_dir / f"{sha256}.pt") if p]
        for path in candidates:
            if path.is_file() and file_sha256(path) == sha256:
                return path
        raise FileNotFoundError(f"no file holds checkpoint {sha256[:12]}...: looked at "
                                + ", ".join(str(p) for p in candidates))


def _already_exists(exc: Exception) -> bool:
    return getattr(exc, "error_code", None) == "RESOURCE_ALREADY_EXISTS"


def _evaluation_files(record: Mapping[str, Any], tmp: Path) -> list[Path]:
    """The artifacts of an evaluation's run: the result, its curves and errors, the confusion matrix drawn
    from the errors (each artifact that exists)."""
    result_path = tmp / "result.json"
    result_path.write_text(json.dumps(record["result"], indent=1))
    files = [result_path]
    folder = Path(record["artifacts_dir"]) if record.get("artifacts_dir") else None
    if folder is None:
        return files
    files += [p for p in (folder / CURVES_FILE, folder / ERRORS_FILE) if p.is_file()]
    if (folder / ERRORS_FILE).is_file():
        confusion = json.loads((folder / ERRORS_FILE).read_text()).get("confusion_matrix")
        if confusion and confusion.get("matrix"):
            confusion_matrix_png(confusion, tmp / "confusion_matrix.png")
            files.append(tmp / "confusion_matrix.png")
    return files
