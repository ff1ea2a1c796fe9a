"""Resident memory of the HTTP process and of a warm worker (issue 5, benchmark e).

Starts a daemon, waits for its warm worker, evaluates once (so the worker
holds what a job leaves behind), then reads the RSS of both processes. The
baseline measured in the same run is a bare ``python -c pass`` interpreter.
Also checks that the HTTP process has not imported torch (no libtorch
mapped).

    .venv/bin/python benchmarks/memory.py
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.daemon_fixtures import STRONG_PT, Daemon, make_dataset, place_model  # noqa: E402


def bare_python_rss() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE)
    try:
        import time

        time.sleep(0.5)
        return psutil.Process(proc.pid).memory_info().rss
    finally:
        proc.communicate(b"")


def maps_torch(pid: int) -> bool:
    return any("libtorch" in m.path for m in psutil.Process(pid).memory_maps())


def main() -> None:
    mib = 1024 * 1024
    with tempfile.TemporaryDirectory(prefix="bench-mem-") as tmp:
        root = Path(tmp)
        dataset = make_dataset(root / "data", n_val=16, seed=4)
        daemon = Daemon(root / "daemon")
        place_model(daemon.models_root, "bench", STRONG_PT)
        daemon.start()
        try:
            job = daemon.submit_eval(model="bench", dataset=str(dataset))
            daemon.wait_job(job["job_id"])
            worker_pid = daemon.health()["worker_info"]["pid"]
            http = psutil.Process(daemon.pid).memory_info().rss
            worker = psutil.Process(worker_pid).memory_info().rss
            torch_in_http = maps_torch(daemon.pid)
        finally:
            daemon.stop()
    base = bare_python_rss()
    print(f"bare python:          {base / mib:8.1f} MiB")
    print(f"HTTP process (daemon): {http / mib:8.1f} MiB  ratio to bare python {http / base:.2f}  "
          f"libtorch mapped: {torch_in_http}")
    print(f"warm worker:          {worker / mib:8.1f} MiB  ratio to bare python {worker / base:.2f}")


if __name__ == "__main__":
    main()
