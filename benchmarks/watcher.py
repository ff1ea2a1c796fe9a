"""Watcher latency and idle cost (issue 5, benchmark d).

1. Latency: a checkpoint is written into a watched model folder (written,
   flushed, fsynced, closed); we measure from the end of that last write to
   the moment its eval job row exists, over ``--rounds`` files. The baseline
   is the configured ``settle_seconds`` (target: latency < settle + 0.5 s).
2. Idle CPU: with ``--folders`` model folders each holding an already
   handled ``v1.pt`` (hard links of one checkpoint, so the disk stays small),
   after the start-up catch-up, the daemon process's CPU time over
   ``--idle-seconds`` (workers excluded) as a percentage of one core
   (target < 1%), with the periodic rescan at ``--rescan`` seconds.

    .venv/bin/python benchmarks/watcher.py [--rounds 5] [--folders 1000] [--idle-seconds 30]
"""

from __future__ import annotations

import argparse
import io
import os
import statistics
import sys
import tempfile
import time
import zipfile
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.daemon_fixtures import STRONG_PT, Daemon, make_dataset  # noqa: E402

SETTLE_S = 1.0


def write_checkpoint(path: Path, data: bytes) -> float:
    """Write, fsync and close ``path``; returns the time of the end of the last write."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    return time.perf_counter()


def variant(data: bytes, i: int) -> bytes:
    """The same checkpoint with a distinct zip comment: other content, still a valid checkpoint."""
    buf = io.BytesIO(data)
    with zipfile.ZipFile(buf, "a") as zf:
        zf.comment = f"benchmark round {i}".encode()
    return buf.getvalue()


def latency(daemon: Daemon, rounds: int) -> list[float]:
    data = STRONG_PT.read_bytes()
    out = []
    for i in range(rounds):
        t_end = write_checkpoint(daemon.models_root / f"lat{i}" / "v1.pt", variant(data, i))
        daemon.wait_for(lambda i=i: daemon.query("SELECT 1 FROM jobs WHERE params LIKE ?", (f'%lat{i}/v1.pt%',)),
                        30, f"job for lat{i}", interval=0.01)
        out.append(time.perf_counter() - t_end)
    return out


def idle_cpu(daemon: Daemon, folders: int, seconds: float) -> float:
    for i in range(folders):
        d = daemon.models_root / f"idle{i:04d}"
        d.mkdir(parents=True, exist_ok=True)
        os.link(STRONG_PT, d / "v1.pt")
        os.link(STRONG_PT, d / "current.pt")  # already current: each catch-up decision is a cheap refusal
    # Catch-up: one claim per folder (the same content under each name) and its job (a cache hit and a
    # first-version promotion), then quiet: measure only once no job is queued or running.
    daemon.wait_for(lambda: daemon.query("SELECT COUNT(*) AS n FROM checkpoint_claims WHERE model_name LIKE 'idle%'")[0]["n"]
                    >= folders, 1800, "claims of all folders", interval=1.0)
    daemon.wait_for(lambda: daemon.query("SELECT COUNT(*) AS n FROM jobs WHERE status IN ('queued', 'running')")[0]["n"]
                    == 0, 3600, "catch-up jobs to finish", interval=1.0)
    time.sleep(5)
    proc = psutil.Process(daemon.pid)
    t0, c0 = time.perf_counter(), proc.cpu_times()
    time.sleep(seconds)
    t1, c1 = time.perf_counter(), proc.cpu_times()
    return 100.0 * ((c1.user - c0.user) + (c1.system - c0.system)) / (t1 - t0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--folders", type=int, default=1000)
    parser.add_argument("--idle-seconds", type=float, default=30.0)
    parser.add_argument("--rescan", type=float, default=10.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-watch-") as tmp:
        root = Path(tmp)
        dataset = make_dataset(root / "data", n_val=8, seed=9)
        daemon = Daemon(root / "daemon", config={
            "watch": {"enabled": True, "settle_seconds": SETTLE_S, "rescan_interval_s": args.rescan,
                      "default_dataset": str(dataset)},
            "jobs": {"max_queued": 100_000},
        })
        daemon.start()
        try:
            lat = latency(daemon, args.rounds)
            cpu = idle_cpu(daemon, args.folders, args.idle_seconds)
        finally:
            daemon.stop()
    med = statistics.median(lat)
    print(f"last write -> job queued: median {med:.3f} s, max {max(lat):.3f} s over {len(lat)} files "
          f"(settle {SETTLE_S} s; ratio median/settle = {med / SETTLE_S:.2f}; target < settle + 0.5 s)")
    print(f"idle daemon CPU with {args.folders} model folders (rescan every {args.rescan:g} s): "
          f"{cpu:.2f}% of one core over {args.idle_seconds:g} s (target < 1%)")


if __name__ == "__main__":
    main()
