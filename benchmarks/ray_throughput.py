"""Throughput of queued evaluations on the Ray backend with 1 and 2 actors, against local workers (issue 13).

Three daemons in turn, each warm before timing: local workers (count 1, the
baseline), Ray with 1 actor, Ray with 2 actors. Each gets the same N
evaluations at once (N datasets of the same size, so the cache never
answers) and the time from the first POST to the last completion is taken.
Prints each wall time, the ratio to the local baseline, and the per-job
overhead of Ray against local workers ((ray1 - local) / N).

    .venv/bin/python benchmarks/ray_throughput.py [--jobs 8] [--images 16]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.daemon_fixtures import STRONG_PT, Daemon, make_dataset, place_model  # noqa: E402

IMGSZ = 320


def run_batch(root: Path, name: str, workers: dict[str, object], datasets: list[Path]) -> float:
    daemon = Daemon(root / name, config={"workers": workers})
    place_model(daemon.models_root, "bench", STRONG_PT)
    daemon.start()
    try:
        warm = daemon.submit_eval(model="bench", dataset=str(datasets[0]), imgsz=IMGSZ, batch_size=1)
        daemon.wait_job(warm["job_id"])
        t0 = time.perf_counter()
        jobs = [daemon.submit_eval(model="bench", dataset=str(d), imgsz=IMGSZ, batch_size=4) for d in datasets]
        for job in jobs:
            done = daemon.wait_job(job["job_id"], timeout=1800)
            assert done["status"] == "completed", done
        return time.perf_counter() - t0
    finally:
        daemon.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=8)
    parser.add_argument("--images", type=int, default=16)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-ray-") as tmp:
        root = Path(tmp)
        datasets = [make_dataset(root / f"data{i}", n_val=args.images, seed=100 + i) for i in range(args.jobs)]
        local = run_batch(root, "local", {"count": 1}, datasets)
        ray1 = run_batch(root, "ray1", {"count": 1, "backend": "ray"}, datasets)
        ray2 = run_batch(root, "ray2", {"count": 2, "backend": "ray"}, datasets)
    print(f"{args.jobs} evaluations of {args.images} images at imgsz {IMGSZ}, batch 4")
    print(f"local workers, 1 process: {local:7.2f} s  (baseline)")
    print(f"ray, 1 actor:             {ray1:7.2f} s  ratio {ray1 / local:.2f}")
    print(f"ray, 2 actors:            {ray2:7.2f} s  ratio {ray2 / local:.2f}  speed-up over 1 actor {ray1 / ray2:.2f}")
    print(f"ray overhead per job against local workers: {(ray1 - local) / args.jobs * 1000:+.0f} ms")


if __name__ == "__main__":
    main()
