"""The Ray backend of the ``Executor`` protocol: one warm actor per worker slot, on a Ray cluster.

Same contract as ``daemon.jobs.workers.WorkerPool``: a task is ``(kind, params)``,
it returns the task's result or raises the worker's ``VisionEvalError``,
``WorkerDied`` (the actor or its node died), ``JobTimedOut`` or
``JobCancelled``; an actor that dies or is killed (cancel, timeout) is
replaced. The daemon stays the only SQLite writer and the only place that
promotes: actors compute and return results and file bytes, and this module
writes those files where a local worker would have (``daemon.jobs.ray_actor``).

While the Ray head cannot be reached, ``available()`` is False (``/healthz``
answers 503) and tasks wait for it instead of failing. ``ray`` is imported
only when this backend is configured.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from pathlib import Path
from typing import Any

from daemon.jobs.ray_actor import ROLES, TaskActor
from daemon.jobs.workers import DetailFn, ProgressFn, error_from, take_idle
from vocab.errors import JobCancelled, JobTimedOut, WorkerDied
from vocab.files import atomic_write_bytes

log = logging.getLogger(__name__)
PROGRESS_POLL_S = 0.5
HEAD_PROBE_S = 5.0
READY_TIMEOUT_S = 600.0


class RayExecutor:
    """``count`` actors on the cluster at ``address`` (empty: a local head); see module contract."""

    def __init__(self, count: int, device: str, torch_threads: int, *, address: str = "",
                 gpus_per_worker: float = -1.0, local_gpus: int = -1, local_cpus: int = 0) -> None:
        self.count = count
        self.device = device
        self.torch_threads = torch_threads
        self.address = address
        self.gpus_per_worker = gpus_per_worker
        self.local_gpus = local_gpus
        self.local_cpus = local_cpus
        self.info: dict[str, Any] = {"backend": "ray"}
        self.restarts = 0
        self.jobs_per_actor: dict[str, int] = {}
        self._actor_cls: Any = None
        self._idle: asyncio.Queue[Any] = asyncio.Queue()
        self._actors: dict[Any, dict[str, Any]] = {}  # actor handle -> its info
        self._connected = asyncio.Event()
        self._prober: asyncio.Task[None] | None = None
        self._closed = False

    # -- lifecycle -----------------------------------------------------------------------------
    async def start(self) -> None:
        """Join (or start) the cluster and wait until every actor has imported torch and ultralytics."""
        import ray

        os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # no usage report leaves the machine
        kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False, "configure_logging": False}
        if self.address:
            kwargs["address"] = self.address
        else:
            if self.local_gpus >= 0:
                kwargs["num_gpus"] = self.local_gpus  # declared, so GPU pinning works even where none exists
            if self.local_cpus > 0:
                kwargs["num_cpus"] = self.local_cpus
        await asyncio.to_thread(ray.init, **kwargs)
        gpus = self.gpus_per_worker
        if gpus < 0:
            gpus = 1.0 if ray.cluster_resources().get("GPU", 0) > 0 else 0.0
        # ray's stub lacks max_concurrency (a threaded actor: progress answers while run works)
        self._actor_cls = ray.remote(num_gpus=gpus, max_concurrency=2)(TaskActor)  # type: ignore[call-overload]
        self._connected.set()
        for _ in range(self.count):
            self._idle.put_nowait(await self._spawn())
        self.info = {"backend": "ray", "address": self.address or "local head", "gpus_per_worker": gpus,
                     **self._summary()}
        self._prober = asyncio.create_task(self._probe_head(), name="ray-head-probe")

    async def _spawn(self) -> Any:
        actor = self._actor_cls.remote(self.device, self.torch_threads)
        info = await asyncio.wait_for(actor.info.remote(), READY_TIMEOUT_S)
        self._actors[actor] = info
        log.info("ray actor pid %s ready on %s (GPUs %s)", info["pid"], info["node"], info["gpu_ids"] or "none")
        return actor

    def _summary(self) -> dict[str, Any]:
        """What /healthz shows: the first actor's versions and device, and every actor's node, GPUs and jobs."""
        infos = list(self._actors.values())
        first = infos[0] if infos else {}
        keys = ("pid", "ultralytics_version", "torch_version", "device", "device_kind", "onnxruntime_version",
                "onnx_cuda")
        return {**{k: first[k] for k in keys if k in first},
                "actors": [{"node": i["node"], "pid": i["pid"], "gpu_ids": i["gpu_ids"],
                            "jobs": self.jobs_per_actor.get(f"{i['node']}/{i['pid']}", 0)} for i in infos]}

    async def _replace(self, actor: Any) -> None:
        import ray

        self._actors.pop(actor, None)
        try:
            ray.kill(actor, no_restart=True)
        except Exception:  # noqa: BLE001 - it may be gone already
            pass
        if self._closed:
            return
        self.restarts += 1
        await self._connected.wait()
        self._idle.put_nowait(await self._spawn())
        self.info.update(self._summary())

    async def _probe_head(self) -> None:
        """Keep ``available()`` true only while the cluster answers; log each change."""
        import ray

        while not self._closed:
            try:
                await asyncio.wait_for(asyncio.to_thread(ray.cluster_resources), HEAD_PROBE_S)
                ok = True
            except Exception:  # noqa: BLE001 - any failure means the head cannot be used now
                ok = False
            if ok != self._connected.is_set():
                log.warning("ray head %s", "reachable again" if ok else "unreachable: jobs wait until it returns")
                (self._connected.set if ok else self._connected.clear)()
            self.info["head"] = "connected" if ok else "unreachable"
            await asyncio.sleep(HEAD_PROBE_S)

    async def close(self) -> None:
        """Kill the actors and leave the cluster (a local head stops). Idempotent."""
        if self._closed:
            return
        self._closed = True
        if self._prober is not None:
            self._prober.cancel()
        import ray

        for actor in list(self._actors):
            try:
                ray.kill(actor, no_restart=True)
            except Exception:  # noqa: BLE001
                pass
        self._actors.clear()
        if ray.is_initialized():
            await asyncio.to_thread(ray.shutdown)

    def healthy(self) -> bool:
        return not self._closed and self._connected.is_set()

    def available(self) -> bool:
        return self.healthy()

    # -- running tasks -------------------------------------------------------------------------
    async def run(
        self, kind: str, params: dict[str, Any], *, job_id: str, on_progress: ProgressFn, timeout: float,
        cancel: asyncio.Event, on_detail: DetailFn | None = None,
    ) -> dict[str, Any]:
        """Run one task on an idle actor (waiting for one, and for the head); see the module contract.

        With ``on_detail``, the actor's latest progress detail (a train task's epoch report) is polled
        too, and passed on when it changes (once more after the task, so the last one is not missed).
        """
        import ray

        deadline = time.monotonic() + timeout
        actor = await self._acquire(cancel)
        info = self._actors.get(actor, {})
        roles = ROLES.get(kind)
        inputs = {k: await asyncio.to_thread(Path(params[k]).read_bytes) for k in (roles.inputs if roles else ())}
        task = asyncio.ensure_future(_await(actor.run.remote(kind, params, inputs)))
        last_detail: list[Any] = [None]
        while True:
            await asyncio.wait({task}, timeout=PROGRESS_POLL_S)
            if task.done():
                try:
                    msg = task.result()
                except (ray.exceptions.RayActorError, ray.exceptions.ActorUnavailableError) as exc:
                    await self._replace(actor)
                    raise WorkerDied(f"the Ray actor running this {kind} task on {info.get('node', '?')} died "
                                     f"({type(exc).__name__})") from None
                await _relay_detail(actor, on_detail, last_detail)
                break
            if cancel.is_set() or time.monotonic() > deadline:
                task.cancel()
                await self._replace(actor)
                if cancel.is_set():
                    raise JobCancelled("cancelled by request; its Ray actor was stopped")
                raise JobTimedOut(f"{kind} task ran past its timeout of {timeout:g} s; its Ray actor was killed")
            try:
                on_progress(await asyncio.wait_for(_await(actor.progress.remote()), PROGRESS_POLL_S * 4))
                await _relay_detail(actor, on_detail, last_detail)
            except Exception:  # noqa: BLE001 - progress is advisory; a dead actor shows up on the task itself
                pass
        key = f"{info.get('node', '?')}/{info.get('pid', '?')}"
        self.jobs_per_actor[key] = self.jobs_per_actor.get(key, 0) + 1
        self.info.update(self._summary())
        self._idle.put_nowait(actor)
        if msg["type"] != "result":
            if msg.get("traceback"):
                log.error("ray task %s failed:\n%s", kind, msg["traceback"])
            raise error_from(msg)
        return await asyncio.to_thread(_land_files, params, msg)

    async def _acquire(self, cancel: asyncio.Event) -> Any:
        """An idle actor once the head is reachable; JobCancelled if ``cancel`` is set first."""
        while True:
            actor = await take_idle(self._idle, cancel)
            if self._connected.is_set():
                return actor
            self._idle.put_nowait(actor)
            await self._connected.wait()  # the head is away: wait for it, do not fail the job


async def _relay_detail(actor: Any, on_detail: DetailFn | None, last: list[Any]) -> None:
    """Pass the actor's progress detail to ``on_detail`` when it changed since ``last[0]`` (advisory)."""
    if on_detail is None:
        return
    try:
        detail = await asyncio.wait_for(_await(actor.detail.remote()), PROGRESS_POLL_S * 4)
    except Exception:  # noqa: BLE001 - advisory, like progress
        return
    if detail is not None and detail != last[0]:
        last[0] = detail
        on_detail(detail)


async def _await(ref: Any) -> Any:
    return await ref


def _land_files(params: dict[str, Any], msg: dict[str, Any]) -> dict[str, Any]:
    """Write the files a task made on its node where a local worker would have; return the result."""
    result = msg["result"]
    for key, files in msg.get("outputs", {}).items():
        folder = Path(params[key]).parent
        folder.mkdir(parents=True, exist_ok=True)
        for name, data in files.items():
            atomic_write_bytes(folder / name, data)
    for key, f in msg.get("result_files", {}).items():
        base = Path(params[f["param"]])
        base = base if f["param"] in ROLES_SCRATCH else base.parent
        dest = base / f["relative"]
        dest.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(dest, f["data"])
        result[key] = str(dest)
    return result


ROLES_SCRATCH = {key for roles in ROLES.values() for key in roles.scratch}
