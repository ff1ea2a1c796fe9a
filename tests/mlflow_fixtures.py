"""A real ``mlflow server`` for tests, and a daemon-shaped harness that feeds a ``Tracker``.

``MlflowServer``: ``mlflow server`` on a SQLite file and a free port, one
uvicorn worker and no job runner (the server's background job consumers cost
seconds of CPU and are not used); ``stop()`` then ``start()`` keeps its port,
database and artifacts, as an operator's restart would.

``TrackedDaemon``: writes evaluations and decisions the way the daemon does
(``store.results.insert`` / ``store.promotions.insert`` with the record in the
same write) with results shaped like ``evaluation.evaluate``'s and decisions
built by ``daemon.promote.decision.Decision``, under a clock the test moves.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

from daemon.clock import iso
from daemon.promote.decision import Decision
from daemon.tracking.sender import Backoff
from daemon.tracking.tracker import Tracker
from evaluation.analysis_store import build_artifacts, write_artifacts
from evaluation.curves import CurveArrays
from evaluation.size_recall import ImageBoxes
from store import promotions, results
from store.database import Database
from vocab.config import MlflowConfig
from vocab.scoring import DEFAULT_WEIGHTS, composite_score

START_TIMEOUT_S = 180.0  # a cold start on a loaded 2-core machine took ~30 s
CLASSES = ["red", "green", "blue"]
FAST_BACKOFF = Backoff(first_s=1, max_s=8)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class MlflowServer:
    """``mlflow server`` in its own process group (see module contract)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.port = _free_port()
        self.uri = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        log = open(self.root / "server.log", "ab")  # noqa: SIM115 - the child holds it
        cmd = [str(Path(sys.executable).with_name("mlflow")), "server",
               "--backend-store-uri", f"sqlite:///{self.root / 'mlflow.db'}",
               "--default-artifact-root", str(self.root / "artifacts"),
               "--host", "127.0.0.1", "--port", str(self.port), "--workers", "1"]
        env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
        self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
        log.close()
        deadline = time.monotonic() + START_TIMEOUT_S
        while not self.up():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                tail = (self.root / "server.log").read_text(errors="replace")[-3000:]
                raise RuntimeError(f"mlflow server did not come up on {self.uri}:\n{tail}")
            time.sleep(0.25)

    def up(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.uri}/health", timeout=2) as response:
                return bool(response.status == 200)
        except OSError:
            return False

    def stop(self) -> None:
        """SIGTERM to the server's process group (the CLI and its uvicorn), SIGKILL after 15 s."""
        if self.proc is None:
            return
        for sig, wait_s in ((signal.SIGTERM, 15), (signal.SIGKILL, 10)):
            try:
                os.killpg(self.proc.pid, sig)
            except ProcessLookupError:
                break
            try:
                self.proc.wait(wait_s)
                break
            except subprocess.TimeoutExpired:
                continue
        self.proc = None


class FakeClock:
    """The daemon's clock, moved by the test."""

    def __init__(self) -> None:
        self.now = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


class TrackedDaemon:
    """What the daemon writes, with its MLflow records (see module contract)."""

    def __init__(self, root: Path, config: MlflowConfig, backoff: Backoff = FAST_BACKOFF) -> None:
        self.root = root
        self.model_dir = root / "models" / "det"
        self.model_dir.mkdir(parents=True)
        self.promoted_dir = root / "state" / "promoted"
        self.promoted_dir.mkdir(parents=True)
        self.clock = FakeClock()
        self.db = Database(root / "eval.db")
        self.tracker = Tracker(config, self.db, self.promoted_dir, self.clock, backoff)
        assert self.tracker.sender is not None
        self.sender = self.tracker.sender

    def checkpoint(self, version: int, content: bytes | None = None) -> Path:
        """``v<version>.pt`` with bytes of its own."""
        path = self.model_dir / f"v{version}.pt"
        path.write_bytes(content or f"checkpoint v{version} ".encode() * 100)
        return path

    def evaluate(self, path: Path, map50_95: float, job_id: str = "job-eval") -> tuple[int, dict[str, Any]]:
        """Store an evaluation of ``path`` as ``Evaluations.run`` does, its record in the same write;
        returns (eval_id, result)."""
        result = _result(path, map50_95)
        art = self.root / "state" / "artifacts" / result["checkpoint_sha256"][:12]
        art.mkdir(parents=True)
        write_artifacts(art, _analysis(result))
        row = {**result, "job_id": job_id, "trigger": "watcher", "model_version": int(path.stem[1:]),
               "cache_key": result["checkpoint_sha256"], "per_class": {}, "per_class_metrics": {},
               "predictions_path": str(art / "predictions.json"), "evidence_path": str(art / "evidence.npz"),
               "result_json": json.dumps(result), "created_at": iso(self.clock())}

        def write(conn: Any) -> int:
            eval_id = results.insert(conn, row)
            self.tracker.record_evaluation(conn, eval_id, row)
            return eval_id

        return self.db.write_sync(write), result

    def decide(self, decision: Decision, job_id: str | None = None) -> dict[str, Any]:
        """Write a decision to the ledger as ``Promoter._record`` does, its record in the same write."""
        now = iso(self.clock())
        row = {"model_name": "det", "eval_id": decision.eval_id, "timestamp": now, "decision": decision.decision,
               "actor": "test", "reason": decision.reason, "version": decision.version,
               "previous_sha256": decision.previous_sha256, "new_sha256": decision.new_sha256,
               "details": decision.details(job_id)}

        def write(conn: Any) -> None:
            decision.promotion_id = promotions.insert(conn, row)
            self.tracker.record_decision(conn, "det", decision.public(), job_id, now)

        self.db.write_sync(write)
        return decision.public()

    def keep(self, path: Path) -> str:
        """Copy a checkpoint into the promotion store, as the promoter's swap does; returns its sha256."""
        sha = sha256(path)
        (self.promoted_dir / f"{sha}.pt").write_bytes(path.read_bytes())
        return sha

    def pending(self) -> list[dict[str, Any]]:
        return self.db.read_sync(lambda c: [dict(r) for r in c.execute(
            "SELECT id, kind, state, attempts FROM mlflow_outbox WHERE state != 'done' ORDER BY id")])

    def close(self) -> None:
        self.db.close()


def _result(path: Path, map50_95: float) -> dict[str, Any]:
    """An evaluation result with the keys ``evaluation.evaluate`` returns that MLflow reads."""
    result: dict[str, Any] = {
        "model_name": "det", "model_path": str(path), "checkpoint_sha256": sha256(path),
        "dataset": "/data/synth/data.yaml", "dataset_fingerprint": "fp-synth", "split": "val", "format": "pt",
        "imgsz": 192, "batch": 8, "device": "cpu", "device_kind": "cpu", "rect": True,
        "ultralytics_version": "8.4.190", "torch_version": "2.14.1", "weights": DEFAULT_WEIGHTS,
        "mAP50": map50_95 + 0.2, "mAP50_95": map50_95, "precision": 0.8, "recall": 0.7, "f1": 0.75,
        "conf_threshold": 0.3, "inference_ms": 12.5, "small_object_recall": 0.5, "medium_object_recall": 0.6,
        "large_object_recall": None, "class_names": CLASSES, "images": 3,
    }
    result["score"] = composite_score(result, DEFAULT_WEIGHTS)
    return result


def _analysis(result: dict[str, Any]) -> dict[str, Any]:
    """``errors.json`` and ``curves.json`` as the worker builds them, from three small images."""
    def boxes(det: list[list[float]], cls: list[int], gt: list[list[float]], gt_cls: list[int]) -> ImageBoxes:
        return ImageBoxes(np.array(det, float).reshape(-1, 4), np.linspace(0.9, 0.5, len(det)),
                          np.array(cls), np.array(gt, float).reshape(-1, 4), np.array(gt_cls))

    images = [boxes([[10, 10, 20, 20], [50, 50, 10, 10]], [0, 1], [[10, 10, 20, 20], [50, 52, 10, 10]], [0, 2]),
              boxes([[5, 5, 30, 30]], [2], [[5, 5, 30, 30]], [2]),
              boxes([], [], [[60, 10, 8, 8]], [1])]
    px = np.linspace(0, 1, 11)
    rows = np.tile(1 - px, (3, 1))
    arrays = CurveArrays(px, rows, rows, rows, rows, np.arange(3))
    return build_artifacts(images, ["a.png", "b.png", "c.png"], CLASSES, {"box": arrays}, {"box": result})
