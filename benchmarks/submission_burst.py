"""A burst of concurrent ``POST /v1/vision/eval`` while clients poll (issue 26).

Starts a daemon with a warm worker (``vision-evald``, one local worker), places ``--models`` checkpoints
(strong.pt re-saved with other bytes) and a synthetic dataset of ``--images`` images, then, per round,
sends ``--burst`` submissions at once (one connection each) and measures when each is answered (202,
or 503 once ``[jobs] max_queued`` jobs wait). Meanwhile ``--pollers`` clients poll
``GET /v1/vision/jobs/{id}`` and one polls ``GET /healthz``, each every 20 ms, from just before the burst
until 1 s after its last answer. Between rounds the queued jobs are cancelled. The worker evaluates
the first jobs during the bursts, as it would. Prints p50, p99 and max of each kind.

    .venv/bin/python benchmarks/submission_burst.py [--burst 200] [--rounds 3] [--images 500] [--models 4]

Targets: POST p99 < 250 ms; GET job and /healthz p99 < 50 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.daemon_fixtures import STRONG_PT, Daemon, make_dataset  # noqa: E402

POLL_S = 0.02
POST_TARGET_MS, GET_TARGET_MS = 250.0, 50.0


def checkpoints(models_root: Path, count: int) -> list[str]:
    """``count`` models ``bench-<i>``, each strong.pt re-saved with another ``date`` (other bytes)."""
    import torch

    ckpt = torch.load(STRONG_PT, map_location="cpu", weights_only=False)
    names = []
    for i in range(count):
        ckpt["date"] = f"submission-burst-{i}"
        (models_root / f"bench-{i}").mkdir(parents=True, exist_ok=True)
        torch.save(ckpt, models_root / f"bench-{i}" / "v1.pt")
        names.append(f"bench-{i}")
    return names


def percentiles(values: list[float]) -> str:
    ms = sorted(v * 1000 for v in values)
    if not ms:
        return "none"
    p99 = ms[min(len(ms) - 1, int(len(ms) * 0.99))]
    return f"n={len(ms):5d} p50={statistics.median(ms):7.1f} ms  p99={p99:7.1f} ms  max={ms[-1]:7.1f} ms"


async def burst(url: str, bodies: list[dict], job_id: str, pollers: int) -> dict[str, list[float]]:
    """One burst of POSTs with pollers running; latencies by kind, and the answers' statuses."""
    out: dict[str, list[float]] = {"post": [], "get": [], "healthz": []}
    statuses: dict[int, int] = {}
    done = asyncio.Event()

    async def poll(session: aiohttp.ClientSession, path: str, kind: str) -> None:
        while not done.is_set():
            t0 = time.perf_counter()
            async with session.get(url + path) as resp:
                await resp.read()
                assert resp.status == 200, resp.status
            out[kind].append(time.perf_counter() - t0)
            await asyncio.sleep(POLL_S)

    async def post(session: aiohttp.ClientSession, body: dict) -> None:
        t0 = time.perf_counter()
        async with session.post(url + "/v1/vision/eval", json=body) as resp:
            await resp.read()
            statuses[resp.status] = statuses.get(resp.status, 0) + 1
        out["post"].append(time.perf_counter() - t0)

    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
        polling = [asyncio.create_task(poll(session, f"/v1/vision/jobs/{job_id}", "get")) for _ in range(pollers)]
        polling.append(asyncio.create_task(poll(session, "/healthz", "healthz")))
        await asyncio.sleep(0.2)
        await asyncio.gather(*(post(session, b) for b in bodies))
        await asyncio.sleep(1.0)
        done.set()
        await asyncio.gather(*polling)
    print(f"  answers: {dict(sorted(statuses.items()))}", flush=True)
    assert set(statuses) <= {202, 503}, statuses
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--burst", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--images", type=int, default=500)
    parser.add_argument("--models", type=int, default=4)
    parser.add_argument("--pollers", type=int, default=4)
    args = parser.parse_args()
    totals: dict[str, list[float]] = {"post": [], "get": [], "healthz": []}
    with tempfile.TemporaryDirectory(prefix="bench-burst-") as tmp:
        root = Path(tmp)
        dataset = make_dataset(root / "data", n_val=args.images, seed=3)
        daemon = Daemon(root / "daemon")
        names = checkpoints(daemon.models_root, args.models)
        daemon.start()
        try:
            first = daemon.submit_eval(model=names[0], dataset=str(dataset), imgsz=320)
            for r in range(args.rounds):
                bodies = [{"model": names[i % len(names)], "dataset": str(dataset), "imgsz": 320 + 32 * (i % 3)}
                          for i in range(args.burst)]
                print(f"round {r + 1}: {args.burst} concurrent submissions", flush=True)
                got = asyncio.run(burst(daemon.url, bodies, first["job_id"], args.pollers))
                for kind, values in got.items():
                    print(f"  {kind:8s} {percentiles(values)}", flush=True)
                    totals[kind].extend(values)
                for job in daemon.http.get("/v1/vision/jobs", params={"status": "queued", "limit": 1000}).json()["jobs"]:
                    daemon.http.delete(f"/v1/vision/jobs/{job['job_id']}")
        finally:
            daemon.stop()
    print(f"all rounds ({args.burst} submissions x {args.rounds}, {args.images} images, {args.models} models, "
          f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}):")
    for kind, values in totals.items():
        print(f"  {kind:8s} {percentiles(values)}")
    post99 = sorted(totals["post"])[int(len(totals["post"]) * 0.99)] * 1000
    get99 = max(sorted(v)[int(len(v) * 0.99)] * 1000 for v in (totals["get"], totals["healthz"]))
    print(f"targets: POST p99 < {POST_TARGET_MS:g} ms: {'met' if post99 < POST_TARGET_MS else 'NOT met'}; "
          f"GET and /healthz p99 < {GET_TARGET_MS:g} ms: {'met' if get99 < GET_TARGET_MS else 'NOT met'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
