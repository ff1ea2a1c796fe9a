"""Helpers for the watcher, promotion and training tests (issue 4) against a real daemon.

A plain module, like ``tests/daemon_fixtures.py`` whose ``Daemon`` it wraps:
the daemon runs as a child process with the watcher ON (short settle time,
frequent rescans), real files are written into its models folder, and the
outcome is read back through the HTTP API and, for counts, from its SQLite
file (read-only). Nothing is mocked.

Every wait is bounded and polls. Where a test must show that something did
NOT happen (no job for a file), it waits for evidence that the watcher has
looked: a log line for a sentinel file, and then further completed rescans,
never a bare sleep.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from tests.daemon_fixtures import API_IMGSZ, REPO_ROOT, DaemonApi, stable_checkpoint

SETTLE_S = 0.5
RESCAN_S = 1.0
WAIT_S = 180.0


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            h.update(block)
    return h.hexdigest()


def watch_config(*, settle_s: float = SETTLE_S, rescan_s: float = RESCAN_S,
                 **sections: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """A daemon config with the watcher on, [eval] imgsz 320 and a small eval batch, plus ``sections``."""
    cfg: dict[str, dict[str, Any]] = {
        "watch": {"enabled": True, "settle_seconds": settle_s, "rescan_interval_s": rescan_s},
        "eval": {"imgsz": API_IMGSZ, "batch": 8},
    }
    for name, table in sections.items():
        cfg.setdefault(name, {}).update(table)
    return cfg


def write_pipeline(model_dir: Path, dataset: Path) -> Path:
    """``<model_dir>/pipeline.json`` naming the dataset the watcher evaluates this model on."""
    model_dir.mkdir(parents=True, exist_ok=True)
    path = model_dir / "pipeline.json"
    path.write_text(json.dumps({"dataset": str(dataset)}), encoding="utf-8")
    return path


_STABLE: set[Path] = set()


def _stable(src: Path) -> None:
    """``stable_checkpoint`` once per source per session (it waits half a second each time)."""
    if src not in _STABLE:
        stable_checkpoint(src)
        _STABLE.add(src)


def copy_file(src: Path, dest: Path) -> Path:
    """A plain copy of a (stable) checkpoint; the folder is created if needed."""
    _stable(src)
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_bytes(src.read_bytes())
    return dest


def copy_chunked(src: Path, dest: Path, *, chunks: int = 8, pause_s: float = 0.15,
                 stall_after: int | None = None, stall_s: float = 0.0) -> None:
    """Write ``src`` to ``dest`` in ``chunks`` pieces, sleeping ``pause_s`` between them (flushed, so
    each piece is visible on disk); after piece ``stall_after`` sleep ``stall_s`` instead."""
    _stable(src)
    data = src.read_bytes()
    step = -(-len(data) // chunks)
    dest.parent.mkdir(parents=True, exist_ok=True)
    with open(dest, "wb") as f:
        for i in range(chunks):
            f.write(data[i * step:(i + 1) * step])
            f.flush()
            os.fsync(f.fileno())
            if i < chunks - 1:
                time.sleep(stall_s if stall_after is not None and i == stall_after else pause_s)


def resave_checkpoint(src: Path, dest: Path, note: str) -> subprocess.Popen[bytes]:
    """Start re-saving ``src`` with torch as ``dest`` with one extra key: the same weights (so the same
    metrics), other bytes (so another sha256). Runs in a child so this process never imports torch;
    call ``.wait()`` and check the return code."""
    _stable(src)
    code = (
        "import sys, torch\n"
        "ck = torch.load(sys.argv[1], map_location='cpu', weights_only=False)\n"
        "ck['test_note'] = sys.argv[3]\n"
        "torch.save(ck, sys.argv[2])\n"
    )
    return subprocess.Popen([sys.executable, "-c", code, str(src), str(dest), note], cwd=str(REPO_ROOT))


class WatchEnv:
    """A running daemon with the watcher on, and what the tests ask of it."""

    def __init__(self, daemon: DaemonApi, dataset: Path | None = None) -> None:
        self.daemon = daemon
        self.dataset = dataset  # the val set the tests evaluate on, when there is one

    @property
    def models_root(self) -> Path:
        return self.daemon.models_root

    @property
    def url(self) -> str:
        return self.daemon.url

    # -- HTTP ----------------------------------------------------------------------------------
    def get(self, path: str, **kw: Any) -> httpx.Response:
        return self.daemon.http.get(path, **kw)

    def post(self, path: str, **kw: Any) -> httpx.Response:
        return self.daemon.http.post(path, timeout=60.0, **kw)

    def model(self, name: str) -> dict[str, Any]:
        r = self.get(f"/v1/vision/models/{name}")
        assert r.status_code == 200, (r.status_code, r.text)
        return r.json()

    def promotions(self, name: str) -> list[dict[str, Any]]:
        """The model's decisions, oldest first (GET /v1/vision/models/{name})."""
        return list(reversed(self.model(name)["promotions"]))

    # -- the daemon's SQLite file (read-only) --------------------------------------------------
    def jobs(self, name: str) -> list[dict[str, Any]]:
        """Every job about model ``name`` (eval: params.model_name; train: params.model), oldest first."""
        rows = self.daemon.query(
            "SELECT id, kind, status, trigger, params, result, error FROM jobs "
            "WHERE json_extract(params, '$.model_name') = ? "
            "OR (kind = 'train' AND json_extract(params, '$.model') = ?) ORDER BY seq", (name, name))
        out = []
        for r in rows:
            d = dict(r)
            d["params"] = json.loads(d["params"])
            d["result"] = json.loads(d["result"]) if d["result"] else None
            out.append(d)
        return out

    def evals(self, name: str) -> list[dict[str, Any]]:
        return [dict(r) for r in self.daemon.query(
            "SELECT id, job_id, trigger, model_name, model_version, checkpoint_sha256, dataset, "
            "dataset_fingerprint, score, format FROM eval_results WHERE model_name = ? ORDER BY id", (name,))]

    def all_jobs_count(self) -> int:
        return int(self.daemon.query("SELECT COUNT(*) AS n FROM jobs")[0]["n"])

    # -- waits ---------------------------------------------------------------------------------
    def wait_jobs(self, name: str, n: int, timeout: float = WAIT_S) -> list[dict[str, Any]]:
        """Wait until model ``name`` has at least ``n`` jobs and all of them are finished."""
        def done() -> list[dict[str, Any]] | None:
            jobs = self.jobs(name)
            if len(jobs) >= n and all(j["status"] in ("completed", "failed", "cancelled") for j in jobs):
                return jobs
            return None
        return self.daemon.wait_for(done, timeout, f"{n} finished job(s) for model {name}")

    def wait_completed(self, name: str, n: int, timeout: float = WAIT_S) -> list[dict[str, Any]]:
        jobs = self.wait_jobs(name, n, timeout)
        bad = [j for j in jobs if j["status"] != "completed"]
        assert not bad, f"jobs of {name} did not complete: {bad}\n{self.daemon.log_tail(80)}"
        return jobs

    def log_mark(self) -> int:
        return len(self.daemon.log())

    def wait_log(self, text: str, *, after: int = 0, timeout: float = WAIT_S) -> int:
        """Wait until ``text`` appears in the daemon's log after offset ``after``; returns the offset past it."""
        def found() -> int | None:
            i = self.daemon.log().find(text, after)
            return i + len(text) if i >= 0 else None
        return self.daemon.wait_for(found, timeout, f"log line {text!r}")

    def wait_rescans(self, n: int = 2, *, timeout: float = 60.0) -> None:
        """Wait until ``n`` more periodic rescans have completed (the watcher has looked again)."""
        start = self.scans()
        self.daemon.wait_for(lambda: self.scans() >= start + n, timeout, f"{n} more watcher rescans")

    def scans(self) -> int:
        """Full scans the watcher has completed (``vision_evald_watcher_scans_total`` of /metrics)."""
        text = self.daemon.http.get("/metrics").text
        return int(float(re.search(r"^vision_evald_watcher_scans_total (\S+)$", text, re.M).group(1)))  # type: ignore[union-attr]

    def skipped(self, name: str) -> list[dict[str, Any]]:
        """The watcher's skip records of model ``name`` (its SQLite table; GET /v1/vision/models/{name}
        shows the same list, but answers 403 while the folder holds a link that leaves the root)."""
        return [dict(r) for r in self.daemon.query(
            "SELECT path, sha256, reason FROM skipped_checkpoints WHERE model_name = ? ORDER BY path", (name,))]

    def wait_skipped(self, name: str, path: Path, timeout: float = WAIT_S) -> dict[str, Any]:
        """Wait until ``path`` is recorded as skipped; returns that record."""
        def found() -> dict[str, Any] | None:
            return next((s for s in self.skipped(name) if s["path"] == str(path)), None)
        return self.daemon.wait_for(found, timeout, f"{path} recorded as skipped")
