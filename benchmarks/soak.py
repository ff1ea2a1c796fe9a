"""Soak: jobs keep flowing while the daemon is kill -9'd at random moments (issue 15, by hand, not a test).

For ``--minutes``: checkpoints are dropped into the watched models folder (a
new model folder each time, with a pipeline.json naming one of a few small
synthetic datasets), API evaluations are submitted (a few active at a time;
batch sizes vary so the cache rarely answers) and polled, and the daemon is
``kill -9``'d at exponentially distributed moments and restarted at once on
the same files. Then, for ``--calm-minutes``, the load goes on without kills
(the window in which the last incarnation's memory and descriptors are
watched), and finally every job is given time to finish.

Reports: jobs lost (a 202'd job missing from the database or not finished,
or a dropped checkpoint with no job: must be 0), jobs failed (with their
errors), kills and interruptions counted, resident memory and open file
descriptors of the daemon (HTTP) process -- growth within each incarnation,
measured from WARM_UP_S after its start, and the final incarnation, which
also runs the drain -- and the database size.

    .venv/bin/python benchmarks/soak.py [--minutes 10] [--calm-minutes 3] [--kill-mean-s 45] [--seed 0]
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.daemon_fixtures import STRONG_PT, WEAK_PT, Daemon, make_dataset, place_model  # noqa: E402

CHECKPOINTS = (STRONG_PT, WEAK_PT)
WARM_UP_S = 30.0  # memory and fd growth are measured from this long after each start (past worker start-up)
FINISHED = ("completed", "failed", "cancelled")


class Soak:
    def __init__(self, root: Path, args: argparse.Namespace) -> None:
        self.rng = random.Random(args.seed)
        self.args = args
        self.datasets = [make_dataset(root / f"data{i}", n_val=args.images, seed=100 + i) for i in range(3)]
        self.daemon = Daemon(root, config={
            "watch": {"enabled": True, "settle_seconds": 0.5, "rescan_interval_s": 5.0},
            "eval": {"imgsz": 320, "batch": 8},
            "paths": {"allowed_roots": [str(root)]},
        })
        for ckpt in CHECKPOINTS:
            place_model(self.daemon.models_root, f"api-{ckpt.stem}", ckpt)
        self.api_jobs: list[str] = []
        self.dropped: list[str] = []
        self.kills = 0
        self.samples: list[list[tuple[float, int, int]]] = []  # per incarnation: (time, rss bytes, fds)
        self.calm_from = 0  # the incarnation that runs the calm phase and the drain

    # -- the daemon ----------------------------------------------------------------------------
    def start(self) -> None:
        self.daemon.start(wait_workers=False)
        self.samples.append([])
        self.sample()

    def sample(self) -> None:
        try:
            proc = psutil.Process(self.daemon.pid)
            self.samples[-1].append((time.monotonic(), proc.memory_info().rss, proc.num_fds()))
        except psutil.NoSuchProcess:
            pass

    def kill_and_restart(self) -> None:
        self.sample()
        self.daemon.kill9()
        self.kills += 1
        self.start()

    # -- the load ------------------------------------------------------------------------------
    def drop_checkpoint(self) -> None:
        name = f"drop-{len(self.dropped):04d}"
        folder = self.daemon.models_root / name
        folder.mkdir()
        dataset = self.datasets[len(self.dropped) % len(self.datasets)]
        (folder / "pipeline.json").write_text(json.dumps({"dataset": str(dataset)}), encoding="utf-8")
        tmp = folder / ".v1.pt.part"
        shutil.copyfile(self.rng.choice(CHECKPOINTS), tmp)
        tmp.rename(folder / "v1.pt")
        self.dropped.append(name)

    def active_api_jobs(self) -> int:
        r = httpx.get(f"{self.daemon.url}/v1/vision/jobs", params={"limit": 1000}, timeout=30)
        r.raise_for_status()
        return sum(1 for j in r.json()["jobs"] if j["job_id"] in self.api_jobs and j["status"] not in FINISHED)

    def submit(self) -> None:
        body = {"model": f"api-{self.rng.choice(CHECKPOINTS).stem}", "dataset": str(self.rng.choice(self.datasets)),
                "imgsz": 320, "batch_size": self.rng.randint(1, 32)}
        r = httpx.post(f"{self.daemon.url}/v1/vision/eval", json=body, timeout=30)
        if r.status_code == 202:
            self.api_jobs.append(r.json()["job_id"])

    def run(self) -> None:
        """``--minutes`` of load with random kills, then ``--calm-minutes`` of load without (the growth window)."""
        self.start()
        self.load(self.args.minutes * 60, kills=True)
        self.calm_from = len(self.samples) - 1
        self.load(self.args.calm_minutes * 60, kills=False)

    def load(self, seconds: float, *, kills: bool) -> None:
        deadline = time.monotonic() + seconds
        next_kill = time.monotonic() + self.rng.expovariate(1 / self.args.kill_mean_s) if kills else float("inf")
        next_drop = time.monotonic()
        while time.monotonic() < deadline:
            try:
                if time.monotonic() >= next_drop:
                    self.drop_checkpoint()
                    next_drop = time.monotonic() + self.rng.uniform(5, 20)
                if self.active_api_jobs() < 3:
                    self.submit()
            except httpx.TransportError:
                pass  # the daemon is starting: try again at the next tick
            if time.monotonic() >= next_kill:
                self.kill_and_restart()
                next_kill = time.monotonic() + self.rng.expovariate(1 / self.args.kill_mean_s)
            self.sample()
            time.sleep(1.0)

    def drain(self) -> float:
        """No more kills or load: wait until every known job has finished; returns the seconds it took."""
        t0 = time.monotonic()
        limit = t0 + self.args.drain_minutes * 60
        while time.monotonic() < limit:
            self.sample()
            rows = self.daemon.query("SELECT status FROM jobs")
            watcher = self.daemon.query("SELECT COUNT(DISTINCT json_extract(params, '$.model_name')) FROM jobs "
                                        "WHERE trigger = 'watcher'")[0][0]
            if all(r["status"] in FINISHED for r in rows) and watcher >= len(self.dropped):
                break
            time.sleep(2.0)
        self.sample()
        return time.monotonic() - t0

    # -- the report ----------------------------------------------------------------------------
    def report(self, drain_s: float) -> dict[str, Any]:
        d = self.daemon
        jobs = {r["id"]: dict(r) for r in d.query("SELECT id, status, trigger, error, attempts, interruptions, "
                                                  "json_extract(params, '$.model_name') AS model FROM jobs")}
        lost_api = [j for j in self.api_jobs if j not in jobs or jobs[j]["status"] not in FINISHED]
        watched = {j["model"] for j in jobs.values() if j["trigger"] == "watcher"}
        lost_drops = [m for m in self.dropped if m not in watched]
        unfinished = [j for j in jobs.values() if j["status"] not in FINISHED]
        failed = [j for j in jobs.values() if j["status"] == "failed"]
        warm = [[x for x in s if x[0] >= s[0][0] + WARM_UP_S] for s in self.samples]
        growth = [(s[-1][1] - s[0][1], s[-1][2] - s[0][2]) for s in warm if len(s) >= 2]
        last = warm[-1] or self.samples[-1]
        assert len(self.samples) - 1 == self.calm_from, "the calm phase and the drain run in one incarnation"
        db_bytes = sum(p.stat().st_size for p in d.db_path.parent.glob(d.db_path.name + "*") if p.is_file())
        return {
            "minutes": self.args.minutes, "kills": self.kills, "incarnations": len(self.samples),
            "api_jobs_accepted": len(self.api_jobs), "checkpoints_dropped": len(self.dropped),
            "jobs_in_db": len(jobs), "by_status": dict(Counter(j["status"] for j in jobs.values())),
            "jobs_lost": len(lost_api) + len(lost_drops) + len(unfinished),
            "lost_detail": {"api": lost_api, "dropped_without_job": lost_drops,
                            "unfinished": [j["id"] for j in unfinished]},
            "jobs_failed": len(failed), "failed_errors": dict(Counter((j["error"] or "")[:120] for j in failed)),
            "interruptions_total": sum(j["interruptions"] for j in jobs.values()),
            "jobs_with_more_than_one_attempt": sum(1 for j in jobs.values() if j["attempts"] > 1),
            "drain_s": round(drain_s, 1),
            "calm_minutes_measured": round((last[-1][0] - last[0][0]) / 60, 1),
            "daemon_rss_mib_final_incarnation_warm_then_end": [round(last[0][1] / 2**20, 1),
                                                               round(last[-1][1] / 2**20, 1)],
            "daemon_fds_final_incarnation_warm_then_end": [last[0][2], last[-1][2]],
            "max_rss_growth_mib_within_an_incarnation": round(max((g[0] for g in growth), default=0) / 2**20, 1),
            "max_fd_growth_within_an_incarnation": max((g[1] for g in growth), default=0),
            "database_bytes": db_bytes,
        }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--kill-mean-s", type=float, default=45.0, help="mean seconds between kill -9s")
    parser.add_argument("--calm-minutes", type=float, default=3.0, help="load without kills afterwards")
    parser.add_argument("--drain-minutes", type=float, default=15.0)
    parser.add_argument("--images", type=int, default=8, help="validation images per synthetic dataset")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="soak-") as tmp:
        soak = Soak(Path(tmp), args)
        try:
            soak.run()
            drain_s = soak.drain()
            result = soak.report(drain_s)
        finally:
            soak.daemon.stop()
    print(json.dumps(result, indent=2))
    return 0 if result["jobs_lost"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
