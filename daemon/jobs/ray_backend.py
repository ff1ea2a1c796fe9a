"""The Ray backend of the ``Executor`` protocol: one warm actor per worker slot, on a Ray cluster.

Same contract as ``daemon.jobs.workers.WorkerPool``: a task is ``(kind, params)``,
it returns the task's result or raises the worker's ``VisionEvalError``,
``WorkerDied``, ``JobTimedOut`` or ``JobCancelled``. The daemon stays the only
SQLite writer and the only place that promotes: actors compute and return
results and file bytes, and this module writes those files where a local
worker would have (``daemon.jobs.ray_actor``).

Losses, said out loud (each one logged, and shown by ``/healthz``):

- An actor that dies, or whose node dies, fails its task with ``WorkerDied``
  (the queue retries it like any worker death, charging one attempt): Ray
  reports a killed actor within a second, and an actor that answers no
  progress poll for ``actor_silence_s`` (its node died, or is cut off) is
  taken for lost. The replacement starts in the background, retried with
  backoff; jobs wait for it, never the failing job.
- The head (``daemon.jobs.ray_head``) is checked every HEAD_PROBE_S: while it
  is lost, ``available()`` is False (``/healthz`` answers 503) and
  ``info["problem"]`` says why; new tasks wait. A head lost for
  ``head_grace_s`` sets ``lost`` (``daemon.main`` then stops the daemon with
  exit status 3, before Ray would end the process with its own status 1).
- Starting while the head cannot be reached retries every HEAD_RETRY_S,
  naming the configured address.

Ray's raw output goes through the daemon's logger (``daemon.jobs.ray_output``).
``ray`` is imported only when this backend is configured. Calls that need
Ray's head run in daemon threads: one blocked on a lost head never holds up
the event loop, nor the daemon's exit.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import sys
import threading
import time
from pathlib import Path
from typing import Any

from daemon.jobs.ray_actor import ROLES, TaskActor
from daemon.jobs.ray_head import Head, in_thread, prepare_environment, route_ray_logging
from daemon.jobs.ray_output import RawOutput
from daemon.jobs.workers import DetailFn, ProgressFn, error_from, take_idle, threads_per_worker
from vocab.config import WorkersConfig
from vocab.errors import InternalError, JobCancelled, JobTimedOut, WorkerDied
from vocab.files import atomic_write_bytes

log = logging.getLogger(__name__)
PROGRESS_POLL_S = 0.5
HEAD_PROBE_S = 1.0
HEAD_RETRY_S = 5.0
READY_TIMEOUT_S = 600.0  # an actor importing torch on a cold disk, or waiting for a free GPU
RESTART_BACKOFF_S = 1.0
RESTART_BACKOFF_MAX_S = 60.0
CLOSE_TIMEOUT_S = 10.0
EXIT_RAY_HEAD_LOST = 3  # the daemon's exit status after ``lost`` (daemon.main)
RAY_GIVES_UP_AFTER_S = 60.0  # past head_grace_s: Ray ends the process this much later than the daemon stops
# A local head lives on this machine: its raylet is lost when its process exits (seen at once), never for
# missing heartbeats while the cores are saturated (Ray's default: 5 checks of 10 s).
LOCAL_HEAD_SYSTEM_CONFIG = {"health_check_timeout_ms": 30_000, "health_check_failure_threshold": 10}


class RayExecutor:
    """``count`` actors on the cluster at ``address`` (empty: a local head); see module contract."""

    def __init__(self, count: int, device: str, torch_threads: int, *, address: str = "",
                 gpus_per_worker: float = -1.0, local_gpus: int = -1, local_cpus: int = 0,
                 head_grace_s: float = 30.0, actor_silence_s: float = 20.0, require_gpu: bool = False) -> None:
        self.count = count
        self.device = device
        self.torch_threads = torch_threads
        self.gpus_per_worker = gpus_per_worker
        self.local_gpus = local_gpus
        self.local_cpus = local_cpus
        self.head_grace_s = head_grace_s
        self.actor_silence_s = actor_silence_s
        self.require_gpu = require_gpu
        self.head = Head(address)
        self.info: dict[str, Any] = {"backend": "ray", "address": address or "local head",
                                     "problem": f"connecting to {self.head.name()}"}
        self.restarts = 0
        self.jobs_per_actor: dict[str, int] = {}
        self.lost = asyncio.Event()  # set once the head is lost for good: the daemon should stop
        self.lost_reason = ""
        self._actor_cls: Any = None
        self._idle: asyncio.Queue[Any] = asyncio.Queue()
        self._actors: dict[Any, dict[str, Any]] = {}  # live actor handle -> its info
        self._connected = asyncio.Event()
        self._background: set[asyncio.Task[None]] = set()
        self._output = RawOutput()
        self._driver_done = threading.Event()  # set on close: ends the thread that ran ray.init (and a local head)
        self._closed = False

    @classmethod
    def from_config(cls, w: WorkersConfig) -> RayExecutor:
        return cls(w.count, w.device, w.torch_threads, address=w.ray_address, gpus_per_worker=w.gpus_per_worker,
                   local_gpus=w.ray_local_gpus, head_grace_s=w.ray_head_grace_s,
                   actor_silence_s=w.ray_actor_silence_s, require_gpu=w.require_gpu)

    # -- lifecycle -----------------------------------------------------------------------------
    async def start(self) -> None:
        """Join (or start) the cluster, waiting for its head, then start the actors (see module contract)."""
        prepare_environment(self.head.local, self.head_grace_s + RAY_GIVES_UP_AFTER_S)
        self._output.start()
        import ray

        route_ray_logging()
        await self._connect()
        route_ray_logging()  # ray.init may have given Ray's logger a handler of its own
        gpus = self.gpus_per_worker
        if gpus < 0:
            resources = await in_thread(ray.cluster_resources, timeout=CLOSE_TIMEOUT_S)
            gpus = 1.0 if resources.get("GPU", 0) > 0 else 0.0
        # ray's stub lacks max_concurrency (a threaded actor: progress answers while run works)
        self._actor_cls = ray.remote(num_gpus=gpus, num_cpus=self.cpus_per_actor(),  # type: ignore[call-overload]
                                     max_concurrency=2)(TaskActor)
        self.info["gpus_per_worker"] = gpus
        self.info["cpus_per_worker"] = self.cpus_per_actor()
        self._spawn_in_background(self._watch_head(), "ray-head-watch")
        for _ in range(self.count):
            if not await self._start_one():
                self._spawn_in_background(self._restart_with_backoff(), "ray-actor-restart")

    def cpus_per_actor(self) -> int:
        """The CPUs each actor reserves, and runs that many torch threads on: ``[workers] torch_threads`` when
        set; else, on a local head, this machine's CPUs shared out (``threads_per_worker``), and on a cluster
        one, Ray's default for an actor."""
        if self.head.local:
            return threads_per_worker(self.torch_threads, self.count, self.local_cpus or None)
        return threads_per_worker(self.torch_threads, 1, 1)

    async def _connect(self) -> None:
        """``ray.init`` once the head answers; until then retry every HEAD_RETRY_S, saying why."""
        import ray

        kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False, "configure_logging": False}
        if self.head.local:
            kwargs["_system_config"] = LOCAL_HEAD_SYSTEM_CONFIG
            if self.local_gpus >= 0:
                kwargs["num_gpus"] = self.local_gpus  # declared, so GPU pinning works even where none exists
            if self.local_cpus > 0:
                kwargs["num_cpus"] = self.local_cpus
        while True:
            problem = self.head.resolve() or await self.head.reachable()
            if problem is None:
                if not self.head.local:
                    kwargs["address"] = self.head.gcs  # where the head was just found
                try:
                    await in_thread(ray.init, linger=self._driver_done, **kwargs)
                    self.head.connected()
                    self.info["gcs"] = self.head.gcs
                    log.info("connected to %s", self.head.name())
                    self._set_problem(None)
                    return
                except Exception as exc:  # noqa: BLE001 - reported, then retried
                    problem = f"{self.head.name()}: ray.init failed: {type(exc).__name__}: {exc}"
                    await in_thread(ray.shutdown, timeout=CLOSE_TIMEOUT_S)
                    self._driver_done.set()  # the thread that ran ray.init ends; the next one lingers anew
                    self._driver_done = threading.Event()
            self._set_problem(f"{problem}; retrying every {HEAD_RETRY_S:g} s")
            await asyncio.sleep(HEAD_RETRY_S)

    def _set_problem(self, problem: str | None) -> None:
        """Record why tasks cannot run now (None: they can), logging each change."""
        if problem == self.info.get("problem"):
            return
        if problem is None:
            log.info("%s answers: tasks run", self.head.name())
            self.info.pop("problem", None)
            self._connected.set()
        else:
            log.warning("%s", problem)
            self.info["problem"] = problem
            self._connected.clear()

    async def _watch_head(self) -> None:
        """Check the head every HEAD_PROBE_S; set ``lost`` once it is lost for good (see module contract)."""
        lost_since: float | None = None
        while not self._closed:
            problem = await self.head.problem()
            if problem is None:
                lost_since = None
                self._set_problem(None)
            else:
                lost_since = lost_since or time.monotonic()
                if time.monotonic() - lost_since >= self.head_grace_s:
                    log.critical("%s: the daemon stops with exit status %d (before Ray ends it, %g s later)",
                                 problem, EXIT_RAY_HEAD_LOST, RAY_GIVES_UP_AFTER_S)
                    self.info["problem"] = f"{problem}: the daemon is stopping"
                    self.lost_reason = problem
                    self.lost.set()
                    return
                self._set_problem(f"{problem}: tasks wait; the daemon stops unless it answers within "
                                  f"{self.head_grace_s:g} s")
            await asyncio.sleep(HEAD_PROBE_S)

    def _spawn_in_background(self, coro: Any, name: str) -> None:
        task = asyncio.create_task(coro, name=name)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _start_one(self) -> bool:
        """Start an actor and queue it once it answers; False (nothing queued) if it failed to start."""
        await self._connected.wait()
        actor = self._actor_cls.remote(self.device, self.cpus_per_actor())
        try:
            info = await asyncio.wait_for(_await(actor.info.remote()), READY_TIMEOUT_S)
        except Exception as exc:  # noqa: BLE001 - a timeout or any Ray error: retried with backoff
            log.warning("a Ray actor failed to start (%s: %s); retrying", type(exc).__name__, _first_line(exc))
            _kill_quietly(actor)
            return False
        if self._closed:
            _kill_quietly(actor)
            return False
        self._actors[actor] = info
        log.info("ray actor pid %s ready on %s (GPUs %s, device %s)", info["pid"], info["node"],
                 info["gpu_ids"] or "none", info.get("device"))
        if self.require_gpu and not str(info.get("device_kind", "")).startswith("cuda"):
            log.error("ray actor pid %s on %s runs on %s, but [workers] require_gpu = true: /healthz fails "
                      "(%s)", info["pid"], info["node"], info.get("device"), info.get("cuda_problem") or "no CUDA")
        self.info.update(self._summary())
        self._idle.put_nowait(actor)
        return True

    async def _restart_with_backoff(self) -> None:
        """Start a replacement until one is ready (or the executor closes), waiting longer after each failure."""
        for attempt in itertools.count():
            if self._closed or await self._start_one():
                return
            await asyncio.sleep(min(RESTART_BACKOFF_MAX_S, RESTART_BACKOFF_S * 2 ** attempt))

    def _retire(self, actor: Any) -> None:
        """Forget ``actor`` (killed in the background) and start its replacement in the background."""
        self._actors.pop(actor, None)
        _kill_quietly(actor)
        self.info.update(self._summary())
        if not self._closed:
            self.restarts += 1
            self._spawn_in_background(self._restart_with_backoff(), "ray-actor-restart")

    def _summary(self) -> dict[str, Any]:
        """What /healthz shows: the first actor's versions and device, and every live actor's node, GPUs, jobs."""
        infos = list(self._actors.values())
        first = infos[0] if infos else {}
        keys = ("pid", "ultralytics_version", "torch_version", "device", "device_kind", "onnxruntime_version",
                "onnx_cuda", "cuda_problem")
        return {**{k: first.get(k) for k in keys},
                "actors": [{"node": i["node"], "pid": i["pid"], "gpu_ids": i["gpu_ids"],
                            "jobs": self.jobs_per_actor.get(f"{i['node']}/{i['pid']}", 0)} for i in infos]}

    async def close(self) -> None:
        """Kill the actors and leave the cluster (a local head stops), giving up on Ray calls after
        CLOSE_TIMEOUT_S each (a lost head). Idempotent."""
        if self._closed:
            return
        self._closed = True
        for task in list(self._background):
            task.cancel()
        await asyncio.gather(*self._background, return_exceptions=True)
        actors, self._actors = list(self._actors), {}
        if "ray" in sys.modules:
            import ray

            for actor in actors:
                _kill_quietly(actor)
            try:
                if ray.is_initialized():
                    await in_thread(ray.shutdown, timeout=CLOSE_TIMEOUT_S)
            except TimeoutError:
                log.warning("Ray did not shut down within %g s; leaving it", CLOSE_TIMEOUT_S)
        self._driver_done.set()
        self._output.stop()

    def healthy(self) -> bool:
        return self.available() and len(self._actors) == self.count

    def available(self) -> bool:
        return not self._closed and self._connected.is_set()

    # -- running tasks -------------------------------------------------------------------------
    async def run(
        self, kind: str, params: dict[str, Any], *, job_id: str, on_progress: ProgressFn, timeout: float,
        cancel: asyncio.Event, on_detail: DetailFn | None = None,
    ) -> dict[str, Any]:
        """Run one task on an idle actor (waiting for one, and for the head); see the module contract.

        With ``on_detail``, the actor's latest progress detail (a train task's epoch report) is polled
        too, and passed on when it changes (once more after the task, so the last one is not missed).
        """
        deadline = time.monotonic() + timeout
        actor = await self._acquire(cancel)
        info = self._actors.get(actor, {})
        where = f"the Ray actor running this {kind} task (pid {info.get('pid', '?')} on {info.get('node', '?')})"
        roles = ROLES.get(kind)
        inputs = {k: await asyncio.to_thread(Path(params[k]).read_bytes) for k in (roles.inputs if roles else ())}
        task = asyncio.ensure_future(_await(actor.run.remote(kind, params, inputs)))
        last_detail: list[Any] = [None]
        answered = time.monotonic()
        try:
            while not task.done():
                await asyncio.wait({task}, timeout=PROGRESS_POLL_S)
                if task.done():
                    break
                if cancel.is_set() or time.monotonic() > deadline:
                    self._retire(actor)
                    if cancel.is_set():
                        raise JobCancelled("cancelled by request; its Ray actor was stopped")
                    raise JobTimedOut(f"{kind} task ran past its timeout of {timeout:g} s; its Ray actor was killed")
                if time.monotonic() - answered > self.actor_silence_s:
                    self._retire(actor)
                    raise WorkerDied(f"{where} answered nothing for {self.actor_silence_s:g} s: its node died or "
                                     "is cut off; the actor was killed")
                try:
                    on_progress(await asyncio.wait_for(_await(actor.progress.remote()), PROGRESS_POLL_S * 4))
                    answered = time.monotonic()
                    await _relay_detail(actor, on_detail, last_detail)
                except Exception:  # noqa: BLE001 - progress is advisory; a dead actor shows up on the task itself
                    pass
        finally:
            task.cancel()  # a no-op once done
        msg = self._outcome(actor, task, where)
        await _relay_detail(actor, on_detail, last_detail)
        key = f"{info.get('node', '?')}/{info.get('pid', '?')}"
        self.jobs_per_actor[key] = self.jobs_per_actor.get(key, 0) + 1
        self.info.update(self._summary())
        self._idle.put_nowait(actor)
        if msg["type"] != "result":
            if msg.get("traceback"):
                log.error("ray task %s failed:\n%s", kind, msg["traceback"])
            raise error_from(msg)
        return await asyncio.to_thread(_land_files, params, msg)

    def _outcome(self, actor: Any, task: asyncio.Future[Any], where: str) -> dict[str, Any]:
        """The actor's message for a finished task; WorkerDied when Ray failed it (the actor, its node or the
        cluster), InternalError when the actor's own code raised (the actor lives on)."""
        import ray

        try:
            return dict(task.result())
        except ray.exceptions.RayTaskError as exc:
            self._idle.put_nowait(actor)
            raise InternalError(f"{where} raised {_first_line(exc)}") from None
        except ray.exceptions.RayError as exc:
            self._retire(actor)
            raise WorkerDied(f"{where} died ({type(exc).__name__}: {_first_line(exc)})") from None

    async def _acquire(self, cancel: asyncio.Event) -> Any:
        """An idle live actor once the head answers; JobCancelled if ``cancel`` is set first."""
        while True:
            actor = await take_idle(self._idle, cancel)
            if actor not in self._actors:  # retired while idle
                continue
            if self._connected.is_set():
                return actor
            self._idle.put_nowait(actor)
            waiter = asyncio.ensure_future(self._connected.wait())
            stopper = asyncio.ensure_future(cancel.wait())
            await asyncio.wait({waiter, stopper}, return_when=asyncio.FIRST_COMPLETED)
            waiter.cancel()
            stopper.cancel()
            if cancel.is_set():
                raise JobCancelled("cancelled by request while waiting for the Ray head")


def _kill_quietly(actor: Any) -> None:
    """Kill an actor in a daemon thread, ignoring errors (it may be gone, or the head lost)."""
    import ray

    def kill() -> None:
        try:
            ray.kill(actor, no_restart=True)
        except Exception:  # noqa: BLE001 - nothing left to do
            pass

    threading.Thread(target=kill, name="ray-kill", daemon=True).start()


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


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
