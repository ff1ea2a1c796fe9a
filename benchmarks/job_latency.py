"""Job latency on a warm daemon against a warm in-process ``YOLO(ckpt).val()``, side by side (issues 5, 26).

Ours: ``POST /v1/vision/eval`` -> poll ``GET /v1/vision/jobs/{id}`` every ``--poll-ms`` until
``completed``, on a daemon (``vision-evald``, one local worker) whose worker is already warm.
Baseline: ``YOLO(ckpt).val()`` with the same checkpoint, data, imgsz, batch and device in this
process, after a warm-up val (imports and first-call costs paid). Every round evaluates a new
checkpoint (strong.pt re-saved with another ``date``: new bytes, the same weights), as the watcher
sees them, so the daemon's cache never answers; the dataset stays the same. Pairs alternate their
order (ABBA). Prints both medians, the per-pair ratios and their spread; target: ratio <= 1.2.

    .venv/bin/python benchmarks/job_latency.py [--rounds 7] [--images 32] [--imgsz 320] [--batch 8]
        [--poll-ms 20] [--torch-threads 0] [--workers 1]
"""

from __future__ import annotations

import argparse
import gc
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from evaluation.offline import apply_settings, configure_environment  # noqa: E402
from tests.daemon_fixtures import STRONG_PT, Daemon, make_dataset  # noqa: E402
from vocab.config import WorkersConfig  # noqa: E402

TARGET = 1.2


def variants(source: Path, folder: Path, count: int) -> list[Path]:
    """``count`` copies of a checkpoint with other bytes (its ``date`` field) and the same weights."""
    import torch

    ckpt = torch.load(source, map_location="cpu", weights_only=False)
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for i in range(count):
        ckpt["date"] = f"job-latency-benchmark-{i}"
        path = folder / f"v{i + 1}.pt"
        torch.save(ckpt, path)
        out.append(path)
    return out


def ours(daemon: Daemon, ckpt: Path, dataset: Path, imgsz: int, batch: int, poll_s: float) -> float:
    """Seconds from POST to a completed job seen by polling every ``poll_s``."""
    http = daemon.http
    t0 = time.perf_counter()
    r = http.post("/v1/vision/eval", json={"model": str(ckpt), "name": "bench", "dataset": str(dataset),
                                             "imgsz": imgsz, "batch_size": batch})
    assert r.status_code == 202, (r.status_code, r.text)
    job_id = r.json()["job_id"]
    while True:
        job = http.get(f"/v1/vision/jobs/{job_id}").json()
        if job["status"] in ("completed", "failed", "cancelled"):
            break
        time.sleep(poll_s)
    elapsed = time.perf_counter() - t0
    assert job["status"] == "completed" and not job["result"]["cached"], job
    return elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--images", type=int, default=32)
    parser.add_argument("--imgsz", type=int, default=320)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--poll-ms", type=float, default=20.0)
    parser.add_argument("--torch-threads", type=int, default=0, help="[workers] torch_threads of the daemon")
    parser.add_argument("--workers", type=int, default=1, help="[workers] count of the daemon")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-latency-") as tmp:
        tmp_path = Path(tmp)
        configure_environment(tmp_path / "yolo-state")
        from ultralytics import YOLO  # after configure_environment

        apply_settings(tmp_path / "yolo-state")
        from evaluation.datasets import load_dataset

        dataset = make_dataset(tmp_path / "data", n_val=args.images, seed=11)
        sanitised = load_dataset(dataset).write_sanitised(tmp_path / "sanitised")
        ckpts = variants(STRONG_PT, tmp_path / "ckpts", 2 * args.rounds + 2)
        counter = iter(range(10**6))

        def bare(ckpt: Path) -> float:
            t0 = time.perf_counter()
            YOLO(str(ckpt)).val(data=str(sanitised), imgsz=args.imgsz, batch=args.batch, device="cpu",
                                plots=False, verbose=False, save_dir=str(tmp_path / f"bare-{next(counter)}"))
            return time.perf_counter() - t0

        daemon = Daemon(tmp_path / "daemon", config={  # the workers' priority of a real daemon, not a test's
            "workers": {"count": args.workers, "device": "cpu", "torch_threads": args.torch_threads,
                        "nice": WorkersConfig.nice}})
        daemon.start()
        poll_s = args.poll_ms / 1e3
        try:
            ours(daemon, ckpts[0], dataset, args.imgsz, args.batch, poll_s)  # warm-up of both sides
            bare(ckpts[1])
            a: list[float] = []
            b: list[float] = []
            for i in range(args.rounds):
                mine, theirs = ckpts[2 + 2 * i], ckpts[3 + 2 * i]
                gc.collect()
                if i % 2 == 0:
                    a.append(ours(daemon, mine, dataset, args.imgsz, args.batch, poll_s))
                    b.append(bare(theirs))
                else:
                    b.append(bare(theirs))
                    a.append(ours(daemon, mine, dataset, args.imgsz, args.batch, poll_s))
                print(f"pair {i + 1}: daemon {a[-1]:.3f} s, in-process val {b[-1]:.3f} s, "
                      f"ratio {a[-1] / b[-1]:.3f}", flush=True)
        finally:
            daemon.stop()
    ma, mb = statistics.median(a), statistics.median(b)
    ratios = sorted(x / y for x, y in zip(a, b))
    print(f"images={args.images} imgsz={args.imgsz} batch={args.batch} poll={args.poll_ms:g} ms "
          f"workers={args.workers} torch_threads={args.torch_threads} rounds={args.rounds} cpus={os.cpu_count()} "
          f"load average {os.getloadavg()[0]:.2f}")
    print(f"daemon POST->completed (warm worker): median {ma:.3f} s  {[round(x, 3) for x in a]}")
    print(f"in-process YOLO().val() (warm):       median {mb:.3f} s  {[round(x, 3) for x in b]}")
    print(f"ratio of medians {ma / mb:.3f}; per-pair ratios median {statistics.median(ratios):.3f} "
          f"(min {ratios[0]:.3f}, max {ratios[-1]:.3f}); daemon adds {ma - mb:+.3f} s")
    print(f"target <= {TARGET}: {'met' if ma / mb <= TARGET else 'NOT met'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
