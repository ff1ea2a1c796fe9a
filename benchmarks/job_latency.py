"""End-to-end job latency on a warm worker against the ``yolo val`` CLI (issue 5, benchmark b).

Ours: POST /v1/vision/eval -> poll until completed, on a daemon whose worker
is already warm. Baseline: ``yolo val`` on the same checkpoint, dataset,
imgsz and batch, as a fresh process (what a script without a daemon pays).
Rounds alternate; each of our rounds uses another batch size so the cache
never answers. Prints both medians and ours/baseline (target <= 0.8).

    .venv/bin/python benchmarks/job_latency.py [--rounds 5] [--images 32]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from evaluation.datasets import load_dataset  # noqa: E402
from evaluation.offline import configure_environment  # noqa: E402
from tests.daemon_fixtures import STRONG_PT, Daemon, make_dataset, place_model  # noqa: E402

IMGSZ = 320


def ours(daemon: Daemon, dataset: Path, batch: int) -> float:
    t0 = time.perf_counter()
    job = daemon.submit_eval(model="bench", dataset=str(dataset), imgsz=IMGSZ, batch_size=batch)
    done = daemon.wait_job(job["job_id"])
    elapsed = time.perf_counter() - t0
    assert done["status"] == "completed" and not done["result"]["cached"], done
    return elapsed


def yolo_cli(sanitised: Path, batch: int, env: dict[str, str], work: Path) -> float:
    yolo = Path(sys.executable).parent / "yolo"
    cmd = [str(yolo), "val", f"model={STRONG_PT}", f"data={sanitised}", f"imgsz={IMGSZ}", f"batch={batch}",
           "device=cpu", "plots=False", f"project={work}", "name=val", "exist_ok=True"]
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, env=env, cwd=work, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--images", type=int, default=32)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-latency-") as tmp:
        tmp_path = Path(tmp)
        dataset = make_dataset(tmp_path / "data", n_val=args.images, seed=11)
        sanitised = load_dataset(dataset).write_sanitised(tmp_path / "sanitised")
        configure_environment(tmp_path / "yolo-state")  # the same offline environment for the CLI
        env = dict(os.environ)
        daemon = Daemon(tmp_path / "daemon")
        place_model(daemon.models_root, "bench", STRONG_PT)
        daemon.start()
        try:
            ours(daemon, dataset, 1)  # warm-up: first pass of this process
            yolo_cli(sanitised, 1, env, tmp_path)
            a, b = [], []
            for i in range(args.rounds):
                batch = 2 + i
                a.append(ours(daemon, dataset, batch))
                b.append(yolo_cli(sanitised, batch, env, tmp_path))
        finally:
            daemon.stop()
    ma, mb = statistics.median(a), statistics.median(b)
    print(f"images={args.images} imgsz={IMGSZ} rounds={args.rounds}")
    print(f"daemon POST->completed (warm worker): median {ma:.3f} s  {[round(x, 3) for x in a]}")
    print(f"yolo val CLI (fresh process):         median {mb:.3f} s  {[round(x, 3) for x in b]}")
    print(f"ratio daemon/yolo = {ma / mb:.3f}   (target <= 0.8)")


if __name__ == "__main__":
    main()
