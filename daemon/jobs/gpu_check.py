"""Why a worker runs on the CPU where a GPU was wanted, as far as the host's device nodes tell.

``device = "auto"`` falls back to the CPU whenever torch finds no CUDA device;
with ``[workers] require_gpu = true`` that makes ``/healthz`` fail, and this
says what to fix. Reads only ``/dev`` (no torch): the daemon's HTTP process
can call it for local workers, and a Ray actor for its own node.
"""

from __future__ import annotations

from pathlib import Path


def cpu_fallback_reason(dev: Path = Path("/dev")) -> str:
    """What keeps CUDA from this host: no GPU device node, a missing control or unified-memory node (CUDA
    cannot start without ``/dev/nvidia-uvm``), or, when all are there, a driver or build mismatch."""
    gpus = sorted(p.name for p in dev.glob("nvidia[0-9]*"))
    if not gpus:
        return (f"no NVIDIA GPU device node under {dev} (no driver loaded, or the service hides devices: "
                "PrivateDevices=yes, DevicePolicy=closed)")
    missing = [str(dev / name) for name in ("nvidiactl", "nvidia-uvm") if not (dev / name).exists()]
    if missing:
        return (f"{' and '.join(missing)} missing: CUDA cannot start; load the module at boot "
                "(nvidia-modprobe -u -c=0, or nvidia-persistenced) and order vision-evald after it")
    return (f"{', '.join(gpus)} present but no CUDA device usable: check the driver against torch's CUDA "
            "build, CUDA_VISIBLE_DEVICES, and the service's device access (DeviceAllow=)")
