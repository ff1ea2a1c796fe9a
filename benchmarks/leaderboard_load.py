"""Leaderboard under load: 100k stored results, 50 concurrent clients (issue 5, benchmark c).

Fills a fresh database with ``--results`` evaluations (1,000 models x 5
datasets x 20 runs by default), starts the daemon on it, then runs 50
concurrent clients for ``--seconds`` each against
``GET /v1/vision/eval/leaderboard?limit=20``, and, as the baseline measured in
the same run under the same load, against ``GET /healthz``. Prints p50, p99
and requests/s of both and their ratio (target: leaderboard p99 < 50 ms), then
the rate of job submissions (POST /v1/vision/eval, validated and stored).

    .venv/bin/python benchmarks/leaderboard_load.py [--results 100000] [--clients 50] [--seconds 10]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from store import results  # noqa: E402
from store.database import Database  # noqa: E402
from tests.daemon_fixtures import STRONG_PT, Daemon, make_dataset, place_model  # noqa: E402


def fill(db_path: Path, n: int) -> None:
    db = Database(db_path)
    models, datasets = 1000, 5

    def insert_all(conn: object) -> None:
        for i in range(n):
            m, d = i % models, (i // models) % datasets
            score = ((i * 7919) % 10007) / 10007
            row = {
                "job_id": f"job{i}", "trigger": "api", "model_name": f"model-{m}", "model_version": 1,
                "model_path": f"/models/model-{m}/v1.pt", "dataset": f"/data/set{d}.yaml",
                "dataset_fingerprint": f"fp{d}", "checkpoint_sha256": f"{i:064x}", "cache_key": f"k{i}",
                "imgsz": 640, "batch": 16, "device": "cpu", "device_kind": "cpu", "ultralytics_version": "8.4.190",
                "torch_version": "2.14.1", "mAP50": score, "mAP50_95": score / 2, "precision": score,
                "recall": score, "f1": score, "conf_threshold": 0.3, "per_class": {}, "per_class_metrics": {},
                "inference_ms": 40.0, "preprocess_ms": 1.0, "postprocess_ms": 1.0, "small_object_recall": score,
                "medium_object_recall": score, "large_object_recall": score, "small_object_count": 1,
                "medium_object_count": 1, "large_object_count": 1, "model_size_mb": 6.0, "score": score,
                "weights": {}, "result_json": json.dumps({"model_name": f"model-{m}", "score": score}),
                "created_at": "2026-11-27T00:00:00Z", "default_score": score,
            }
            results.insert(conn, row)  # type: ignore[arg-type]

    db.write_sync(insert_all)
    db.close()


async def hammer(url: str, clients: int, seconds: float) -> tuple[list[float], int, float]:
    latencies: list[float] = []
    errors = 0
    deadline = time.perf_counter() + seconds

    async def client(session: aiohttp.ClientSession) -> None:
        nonlocal errors
        while time.perf_counter() < deadline:
            t0 = time.perf_counter()
            async with session.get(url) as resp:
                await resp.read()
                if resp.status != 200:
                    errors += 1
            latencies.append(time.perf_counter() - t0)

    t0 = time.perf_counter()
    connector = aiohttp.TCPConnector(limit=clients)
    async with aiohttp.ClientSession(connector=connector) as session:
        await asyncio.gather(*(client(session) for _ in range(clients)))
    return latencies, errors, time.perf_counter() - t0


def summary(name: str, lat: list[float], errors: int, wall: float) -> tuple[float, float]:
    lat = sorted(lat)
    p50 = statistics.median(lat) * 1000
    p99 = lat[min(len(lat) - 1, int(len(lat) * 0.99))] * 1000
    print(f"{name:<12} requests={len(lat):6d} errors={errors} p50={p50:7.2f} ms  p99={p99:7.2f} ms  "
          f"rate={len(lat) / wall:8.1f} req/s")
    return p50, p99


async def submissions(daemon: Daemon, dataset: Path, n: int) -> float:
    body = {"model": "bench", "dataset": str(dataset), "imgsz": 320}
    t0 = time.perf_counter()
    async with aiohttp.ClientSession() as session:
        for _ in range(n):
            async with session.post(f"{daemon.url}/v1/vision/eval", json=body) as resp:
                assert resp.status == 202, await resp.text()
    return n / (time.perf_counter() - t0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", type=int, default=100_000)
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=10.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-lb-") as tmp:
        root = Path(tmp)
        daemon = Daemon(root / "daemon", config={"jobs": {"max_queued": 10_000}})
        t0 = time.perf_counter()
        fill(daemon.db_path, args.results)
        print(f"filled {args.results} results in {time.perf_counter() - t0:.1f} s")
        dataset = make_dataset(root / "data", n_val=8, seed=5)
        place_model(daemon.models_root, "bench", STRONG_PT)
        daemon.start(wait_workers=False)
        try:
            lb = asyncio.run(hammer(f"{daemon.url}/v1/vision/eval/leaderboard?limit=20", args.clients, args.seconds))
            hz = asyncio.run(hammer(f"{daemon.url}/healthz", args.clients, args.seconds))
            _, lb_p99 = summary("leaderboard", *lb)
            _, hz_p99 = summary("healthz", *hz)
            print(f"p99 ratio leaderboard/healthz = {lb_p99 / hz_p99:.2f}   (target: leaderboard p99 < 50 ms)")
            rate = asyncio.run(submissions(daemon, dataset, 200))
            print(f"job submissions: {rate:.1f} per second (sequential POST /v1/vision/eval, each a durable row)")
        finally:
            daemon.stop()


if __name__ == "__main__":
    main()
