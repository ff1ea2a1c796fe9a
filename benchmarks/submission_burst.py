"""A burst of concurrent ``POST /v1/vision/eval`` while clients poll (issue 26).

Starts a daemon with a warm worker (``vision-evald``, one local worker), places ``--models`` checkpoints
(strong.pt re-saved with other bytes) and a synthetic dataset of ``--images`` images, then, per round,
sends ``--burst`` submissions at once (one connection each) and measures when each is answered (202,
or 503 once ``[jobs] max_queued`` jobs wait). Meanwhile ``--pollers`` clients poll
``GET /v1/vision/jobs/{id}`` and one polls ``GET /healthz``, each every 20 ms on a keep-alive connection,
from just before the burst until 1 s after its last answer. Between rounds the queued jobs are cancelled.
The worker evaluates the first jobs during the bursts, as it would. Prints p50, p99 and max of each kind,
per round and over all rounds (the first round after the start also reads each checkpoint and the dataset
for the first time).

The clients are as light as a client can be, so that the figures are the daemon's: each request is
prepared bytes written to a socket and its answer read back (an HTTP client library costs about 1 ms of
CPU per request, and 200 of them on one event loop made the last answers wait for the client's own
work). The pollers run in a process of their own: a poll's answer never waits for the burst's client.

    .venv/bin/python benchmarks/submission_burst.py [--burst 200] [--rounds 3] [--images 500] [--models 4]

Targets: POST p99 < 250 ms; GET job and /healthz p99 < 50 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import statistics
import sys
import tempfile
import time
from multiprocessing.connection import Connection
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.daemon_fixtures import STRONG_PT, Daemon, make_dataset  # noqa: E402
from vocab.config import WorkersConfig  # noqa: E402

POLL_S = 0.02
POST_TARGET_MS, GET_TARGET_MS = 250.0, 50.0
Latencies = dict[str, list[float]]


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


def http_bytes(method: str, host: str, path: str, body: dict | None = None, close: bool = False) -> bytes:
    """One HTTP/1.1 request, ready to write."""
    payload = b"" if body is None else json.dumps(body).encode()
    head = f"{method} {path} HTTP/1.1\r\nHost: {host}\r\n"
    if body is not None:
        head += f"Content-Type: application/json\r\nContent-Length: {len(payload)}\r\n"
    if close:
        head += "Connection: close\r\n"
    return head.encode() + b"\r\n" + payload


async def read_answer(reader: asyncio.StreamReader) -> int:
    """The status of the answer on ``reader``, read to its end (by Content-Length)."""
    head = await reader.readuntil(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    await reader.readexactly(length)
    return int(head[9:12])


async def post_burst(host: str, port: int, requests: list[bytes]) -> tuple[list[float], dict[int, int]]:
    """Each request on a connection of its own, all at once; their latencies and answers' statuses."""
    latencies: list[float] = []
    statuses: dict[int, int] = {}

    async def one(data: bytes) -> None:
        t0 = time.perf_counter()
        reader, writer = await asyncio.open_connection(host, port)
        writer.write(data)
        status = await read_answer(reader)
        latencies.append(time.perf_counter() - t0)
        statuses[status] = statuses.get(status, 0) + 1
        writer.close()

    await asyncio.gather(*(one(r) for r in requests))
    return latencies, statuses


async def poll_until(conn: Connection, host: str, port: int, targets: list[tuple[str, str]]) -> Latencies:
    """Poll each ``(kind, path)`` every ``POLL_S`` on its own keep-alive connection until ``conn`` is readable."""
    out: Latencies = {kind: [] for kind, _ in targets}
    done = asyncio.Event()
    asyncio.get_running_loop().add_reader(conn.fileno(), done.set)

    async def poll(kind: str, path: str) -> None:
        reader, writer = await asyncio.open_connection(host, port)
        data = http_bytes("GET", host, path)
        while not done.is_set():
            t0 = time.perf_counter()
            writer.write(data)
            status = await read_answer(reader)
            assert status == 200, (path, status)
            out[kind].append(time.perf_counter() - t0)
            await asyncio.sleep(POLL_S)
        writer.close()

    await asyncio.gather(*(poll(kind, path) for kind, path in targets))
    return out


def poller_main(conn: Connection, host: str, port: int, targets: list[tuple[str, str]]) -> None:
    """The pollers' process: per round, poll from a "go" until told to stop, then send the latencies."""
    while conn.recv() == "go":
        got = asyncio.run(poll_until(conn, host, port, targets))
        conn.recv()  # the "stop" that ended the round
        conn.send(got)


def round_of(url: str, bodies: list[dict], pollers: Connection) -> Latencies:
    """One burst of POSTs with the pollers running; latencies by kind."""
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    requests = [http_bytes("POST", host, "/v1/vision/eval", b, close=True) for b in bodies]
    pollers.send("go")
    time.sleep(0.2)
    posts, statuses = asyncio.run(post_burst(host, port, requests))
    time.sleep(1.0)
    pollers.send("stop")
    got = pollers.recv()
    print(f"  answers: {dict(sorted(statuses.items()))}", flush=True)
    assert set(statuses) <= {202, 503}, statuses
    return {"post": posts, **got}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--burst", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--images", type=int, default=500)
    parser.add_argument("--models", type=int, default=4)
    parser.add_argument("--pollers", type=int, default=4)
    args = parser.parse_args()
    totals: Latencies = {"post": [], "get": [], "healthz": []}
    with tempfile.TemporaryDirectory(prefix="bench-burst-") as tmp:
        root = Path(tmp)
        dataset = make_dataset(root / "data", n_val=args.images, seed=3)
        daemon = Daemon(root / "daemon", config={"workers": {"nice": WorkersConfig.nice}})  # a real daemon's
        names = checkpoints(daemon.models_root, args.models)
        daemon.start()
        ours, theirs = multiprocessing.get_context("spawn").Pipe()
        poller = None
        try:
            first = daemon.submit_eval(model=names[0], dataset=str(dataset), imgsz=320)
            parts = urlsplit(daemon.url)
            targets = [("get", f"/v1/vision/jobs/{first['job_id']}")] * args.pollers + [("healthz", "/healthz")]
            poller = multiprocessing.get_context("spawn").Process(
                target=poller_main, args=(theirs, parts.hostname, parts.port, targets), daemon=True)
            poller.start()
            for r in range(args.rounds):
                bodies = [{"model": names[i % len(names)], "dataset": str(dataset), "imgsz": 320 + 32 * (i % 3)}
                          for i in range(args.burst)]
                print(f"round {r + 1}: {args.burst} concurrent submissions", flush=True)
                got = round_of(daemon.url, bodies, ours)
                for kind, values in got.items():
                    print(f"  {kind:8s} {percentiles(values)}", flush=True)
                    totals[kind].extend(values)
                for job in daemon.http.get("/v1/vision/jobs", params={"status": "queued", "limit": 1000}).json()["jobs"]:
                    daemon.http.delete(f"/v1/vision/jobs/{job['job_id']}")
        finally:
            if poller is not None:
                ours.send("exit")
                poller.join(10)
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
