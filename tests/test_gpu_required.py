"""``[workers] require_gpu = true``: /healthz fails, saying why, while the workers run on the CPU
(``device = "auto"`` falls back to it silently otherwise); what the host lacks is read from its device
nodes (``daemon.jobs.gpu_check``)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx

from daemon.jobs.gpu_check import cpu_fallback_reason
from tests.inprocess import ThreadExecutor, running_service, url


def _dev(root: Path, *names: str) -> Path:
    root.mkdir()
    for name in names:
        (root / name).touch()
    return root


def test_the_reason_names_what_the_host_lacks(tmp_path: Path) -> None:
    assert "no NVIDIA GPU device node" in cpu_fallback_reason(_dev(tmp_path / "none", "null", "nvme0"))
    no_uvm = cpu_fallback_reason(_dev(tmp_path / "no-uvm", "nvidia0", "nvidiactl"))
    assert f"{tmp_path / 'no-uvm' / 'nvidia-uvm'} missing" in no_uvm and "nvidia-modprobe -u" in no_uvm
    complete = cpu_fallback_reason(_dev(tmp_path / "all", "nvidia0", "nvidia1", "nvidiactl", "nvidia-uvm"))
    assert "nvidia0, nvidia1 present" in complete and "driver" in complete


async def test_health_fails_while_the_workers_run_on_the_cpu(tmp_path: Path) -> None:
    """A real worker (the in-process executor runs the worker's own set-up) asked for device "auto"."""
    executor = ThreadExecutor(device="auto")
    async with running_service(tmp_path, executor, workers={"device": "auto", "require_gpu": True}) as svc:
        async with httpx.AsyncClient(base_url=url(svc), timeout=30) as client:
            for _ in range(600):  # the worker's torch import: bounded, not timed
                r = await client.get("/healthz")
                if r.json()["workers"] == "ready":
                    break
                await asyncio.sleep(0.1)
            body = r.json()
    on_gpu = executor.info["device_kind"].startswith("cuda")
    assert body["workers"] == "ready" and r.status_code == (200 if on_gpu else 503), body
    if not on_gpu:
        assert body["reason"] == (f"[workers] require_gpu = true but the workers run on {executor.info['device']}: "
                                  f"{cpu_fallback_reason()}")


async def test_without_require_gpu_the_cpu_is_healthy(tmp_path: Path) -> None:
    async with running_service(tmp_path, ThreadExecutor(device="cpu"), workers={"device": "cpu"}) as svc:
        async with httpx.AsyncClient(base_url=url(svc), timeout=30) as client:
            for _ in range(600):
                r = await client.get("/healthz")
                if r.json()["workers"] == "ready":
                    break
                await asyncio.sleep(0.1)
    assert r.status_code == 200 and "reason" not in r.json(), r.json()
