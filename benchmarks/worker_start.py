"""How long a worker takes to be ready: the pool's fork server against spawned processes, side by side.

A ``WorkerPool`` of one real worker (``daemon.jobs.worker_main``: torch and ultralytics imported, the
offline settings applied) is started, then its worker is replaced ``--replacements`` times, as after a
kill, a cancel or a timeout. Each figure is the wall time until the ``ready`` message is read. The
baseline is the same pool with multiprocessing's ``spawn`` context, which the pool used before it forked
its workers from a fork server that has imported ``workers.PRELOAD``. Each pool runs in a fresh process
(a daemon start: no fork server yet), the two one after the other, ``--rounds`` times, alternating which
goes first.

    .venv/bin/python benchmarks/worker_start.py [--replacements 3] [--rounds 2]

What a replacement costs matters when a job is cancelled or times out (its worker is killed) and after
a worker dies: the pool is one worker short until the replacement is ready.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from daemon.jobs.workers import WorkerPool  # noqa: E402


async def measure(method: str, replacements: int, state_dir: str) -> tuple[float, list[float]]:
    """(first worker ready, each replacement ready), in seconds, for a pool using ``method``."""
    pool = WorkerPool(1, state_dir, device="cpu", torch_threads=1)
    if method == "spawn":
        pool._ctx = multiprocessing.get_context("spawn")  # the baseline: what the pool did before
    started = time.perf_counter()
    await pool.start()
    first = time.perf_counter() - started
    replaced = []
    try:
        for _ in range(replacements):
            started = time.perf_counter()
            await pool._replace(pool._workers[0])
            replaced.append(time.perf_counter() - started)
    finally:
        await pool.close()
    return first, replaced


def run_fresh(method: str, replacements: int) -> tuple[float, list[float]]:
    """``measure`` in a new Python process, as a daemon start would run it."""
    out = subprocess.run([sys.executable, __file__, "--one", method, "--replacements", str(replacements)],
                         check=True, capture_output=True, text=True).stdout
    first, replaced = json.loads(out.strip().splitlines()[-1])
    return first, replaced


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--replacements", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--one", choices=("forkserver", "spawn"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        with tempfile.TemporaryDirectory() as state_dir:
            print(json.dumps(asyncio.run(measure(args.one, args.replacements, state_dir))))
        return
    results: dict[str, tuple[list[float], list[float]]] = {"forkserver": ([], []), "spawn": ([], [])}
    for i in range(args.rounds):
        for method in ("forkserver", "spawn") if i % 2 == 0 else ("spawn", "forkserver"):
            first, replaced = run_fresh(method, args.replacements)
            results[method][0].append(first)
            results[method][1].extend(replaced)
            print(f"round {i + 1} {method}: first {first:.2f} s, replacements "
                  f"{', '.join(f'{r:.2f}' for r in replaced)} s", flush=True)
    (fork_first, fork_rep), (spawn_first, spawn_rep) = results["forkserver"], results["spawn"]
    print(f"first worker ready: fork server median {statistics.median(fork_first):.2f} s, spawn "
          f"{statistics.median(spawn_first):.2f} s")
    print(f"replacement ready:  fork server median {statistics.median(fork_rep):.2f} s, spawn "
          f"{statistics.median(spawn_rep):.2f} s, ratio {statistics.median(fork_rep) / statistics.median(spawn_rep):.2f}")


if __name__ == "__main__":
    main()
