"""Warm worker processes behind a small executor interface.

``Executor`` is what the job runner needs from whatever runs heavy tasks:
today a pool of local worker processes (``WorkerPool``); later, perhaps a
distributed engine on a GPU cluster. A task is ``(kind, params)`` as in
``daemon.jobs.worker_main.TASKS``; it returns a JSON-able dict or raises a
``VisionEvalError`` (the worker's own, re-raised here by class name),
``WorkerDied``, ``JobTimedOut`` or ``JobCancelled``.

A worker that dies or is killed (timeout, cancel) is replaced at once; the
pool never shrinks. The HTTP process never imports torch: only the children
do. Workers are forked from multiprocessing's fork server, which imports
``PRELOAD`` once (about 5 s of CPU on this project's CUDA build of torch): a
worker, the first one and every replacement, then starts from those imports
instead of paying for them again. The fork server exits with the daemon
(multiprocessing closes its pipe) and the workers with the fork server
(``PR_SET_PDEATHSIG``, see ``daemon.jobs.worker_main``).
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import multiprocessing
import os
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

from daemon.jobs.worker_main import worker_main
from vocab import errors
from vocab.errors import InternalError, JobCancelled, JobTimedOut, VisionEvalError, WorkerDied

log = logging.getLogger(__name__)
_DIED = object()
_CANCELLED = object()
_TIMED_OUT = object()
READY_TIMEOUT_S = 600.0  # importing torch on a cold disk can be slow
RESTART_BACKOFF_S = 1.0  # the first retry of a replacement that failed to start; doubled after each failure
RESTART_BACKOFF_MAX_S = 60.0
# What the fork server imports for every worker: only modules whose import reads no configuration
# (ultralytics and matplotlib read theirs from the environment each worker sets up first). torchvision is
# what ultralytics' validator imports first thing, and it brings in torch._dynamo: 2.4 s of CPU on its own.
PRELOAD = ("torch", "torchvision")

ProgressFn = Callable[[float], None]
T = TypeVar("T")
DetailFn = Callable[[dict[str, Any]], None]


class Executor(Protocol):
    """Runs heavy tasks somewhere else than the event loop."""

    info: dict[str, Any]

    async def start(self) -> None: ...

    async def run(
        self, kind: str, params: dict[str, Any], *, job_id: str, on_progress: ProgressFn, timeout: float,
        cancel: asyncio.Event, on_detail: DetailFn | None = None,
    ) -> dict[str, Any]: ...

    def healthy(self) -> bool: ...

    def available(self) -> bool:
        """Whether tasks can run now; False makes /healthz answer 503 (e.g. the Ray head is unreachable)."""
        ...

    async def close(self) -> None: ...


@dataclass
class _Worker:
    process: Any
    conn: Any
    inbox: asyncio.Queue[Any] = field(default_factory=asyncio.Queue)
    job_id: str | None = None


def error_from(msg: dict[str, Any]) -> VisionEvalError:
    cls = getattr(errors, msg.get("error_type", ""), None)
    if isinstance(cls, type) and issubclass(cls, VisionEvalError):
        return cls(msg["detail"])
    return InternalError(msg.get("detail", "unknown worker error"))


async def take_idle(idle: asyncio.Queue[T], cancel: asyncio.Event) -> T:
    """The next idle worker of a pool, waiting for one; JobCancelled (the worker back in the queue) if
    ``cancel`` is set first."""
    getter = asyncio.ensure_future(idle.get())
    waiter = asyncio.ensure_future(cancel.wait())
    await asyncio.wait({getter, waiter}, return_when=asyncio.FIRST_COMPLETED)
    waiter.cancel()
    if not getter.done():
        getter.cancel()
        raise JobCancelled("cancelled by request before it started")
    item = getter.result()
    if cancel.is_set():
        idle.put_nowait(item)
        raise JobCancelled("cancelled by request before it started")
    return item


def available_cpus() -> int:
    """The CPUs this process may run on (its affinity mask: a cpuset or ``taskset`` counts, not the host's)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not Linux
        return os.cpu_count() or 1


def threads_per_worker(torch_threads: int, workers: int, cpus: int | None = None) -> int:
    """The torch threads of each of ``workers`` workers: ``[workers] torch_threads`` when set (> 0); else
    ``OMP_NUM_THREADS`` when the environment sets a positive count (the convention every BLAS and torch
    follow); else the CPUs (``cpus``, default ``available_cpus()``) shared out evenly, at least one each, so
    that the workers together never run more threads than there are cores."""
    if torch_threads > 0:
        return torch_threads
    omp = os.environ.get("OMP_NUM_THREADS", "")
    if omp.isdigit() and int(omp) > 0:
        return int(omp)
    return max(1, (cpus or available_cpus()) // max(1, workers))


def describe_exit(exitcode: int | None) -> str:
    if exitcode is None:
        return "still running"
    if exitcode < 0:
        try:
            return f"killed by signal {signal.Signals(-exitcode).name}"
        except ValueError:
            return f"killed by signal {-exitcode}"
    return f"exit code {exitcode}"


class WorkerPool:
    """``size`` warm worker processes (see module contract)."""

    def __init__(self, size: int, state_dir: str, device: str = "auto", torch_threads: int = 0, nice: int = 0,
                 target: Callable[..., None] = worker_main) -> None:
        """``torch_threads``: per worker, 0 for the CPUs shared out (``threads_per_worker``); ``nice``: the
        workers' steps below this process's CPU priority; ``target`` is the worker process's body
        (``worker_main``; tests give a light stand-in that speaks the same protocol)."""
        self.size = size
        self.state_dir = state_dir
        self.device = device
        self.torch_threads = threads_per_worker(torch_threads, size)
        self.nice = nice
        self.target = target
        self.info: dict[str, Any] = {}
        self.restarts = 0
        self._ctx = multiprocessing.get_context("forkserver")
        self._ctx.set_forkserver_preload(list(PRELOAD))
        self._idle: asyncio.Queue[_Worker] = asyncio.Queue()
        self._workers: list[_Worker] = []
        self._task_ids = itertools.count(1)
        self._restarting: set[asyncio.Task[None]] = set()
        self._closed = False

    # -- lifecycle -----------------------------------------------------------------------------
    async def start(self) -> None:
        """Spawn every worker and wait until each has imported torch and ultralytics."""
        for _ in range(self.size):
            worker = self._spawn()
            await self._wait_ready(worker)
            self._idle.put_nowait(worker)

    def _spawn(self) -> _Worker:
        parent, child = self._ctx.Pipe()
        process = self._ctx.Process(
            target=self.target, args=(child, self.state_dir, self.device, self.torch_threads, self.nice),
            name="vision-evald-worker",
        )
        process.start()
        child.close()
        worker = _Worker(process, parent)
        asyncio.get_running_loop().add_reader(parent.fileno(), self._on_readable, worker)
        self._workers.append(worker)
        log.info("worker pid %s started", process.pid)
        return worker

    async def _wait_ready(self, worker: _Worker) -> None:
        msg = await asyncio.wait_for(worker.inbox.get(), READY_TIMEOUT_S)
        if msg is _DIED or msg.get("type") != "ready":
            raise WorkerDied(f"worker process failed to start ({describe_exit(worker.process.exitcode)})")
        self.info = msg["info"]

    def _on_readable(self, worker: _Worker) -> None:
        try:
            while worker.conn.poll():
                worker.inbox.put_nowait(worker.conn.recv())
        except (EOFError, OSError):
            asyncio.get_running_loop().remove_reader(worker.conn.fileno())
            worker.inbox.put_nowait(_DIED)

    def _discard(self, worker: _Worker) -> None:
        """Kill a worker (if alive) and forget it."""
        loop = asyncio.get_running_loop()
        try:
            loop.remove_reader(worker.conn.fileno())
        except (ValueError, OSError):
            pass
        if worker.process.is_alive():
            worker.process.kill()
        worker.process.join(timeout=10)
        worker.conn.close()
        if worker in self._workers:
            self._workers.remove(worker)

    async def _replace(self, worker: _Worker) -> None:
        """Kill ``worker`` and start another. Only a worker whose ready message has been read ever enters
        the idle queue: a replacement that fails to start is retried in the background, with backoff, so
        its late ready message can never be taken for a task's answer, nor a healthy worker for a dead one."""
        self._discard(worker)
        if self._closed:
            return
        self.restarts += 1
        if not await self._start_one():
            task = asyncio.create_task(self._restart_with_backoff(), name="worker-restart")
            self._restarting.add(task)
            task.add_done_callback(self._restarting.discard)

    async def _start_one(self) -> bool:
        """Spawn a worker and put it in the idle queue once it is ready; False (nothing queued) if it failed."""
        worker = self._spawn()
        try:
            await self._wait_ready(worker)
        except (TimeoutError, WorkerDied):
            log.exception("a replacement worker failed to start")
            self._discard(worker)
            return False
        self._idle.put_nowait(worker)
        return True

    async def _restart_with_backoff(self) -> None:
        """Start a replacement until one is ready (or the pool closes), waiting longer after each failure."""
        for attempt in itertools.count():
            await asyncio.sleep(min(RESTART_BACKOFF_MAX_S, RESTART_BACKOFF_S * 2 ** attempt))
            if self._closed or await self._start_one():
                return

    async def close(self) -> None:
        """Stop every worker: ask politely, then kill. Idempotent."""
        if self._closed:
            return
        self._closed = True
        for task in list(self._restarting):
            task.cancel()
        await asyncio.gather(*self._restarting, return_exceptions=True)
        for worker in list(self._workers):
            try:
                worker.conn.send(None)
            except (OSError, ValueError):
                pass
        deadline = time.monotonic() + 5
        for worker in list(self._workers):
            worker.process.join(timeout=max(0.0, deadline - time.monotonic()))
            self._discard(worker)

    def healthy(self) -> bool:
        """Every worker of the pool is there and alive (False while a replacement is being restarted)."""
        return not self._closed and len(self._workers) == self.size and all(w.process.is_alive() for w in self._workers)

    def available(self) -> bool:
        return not self._closed  # a dead local worker is replaced at once: never a reason to refuse

    # -- running tasks -------------------------------------------------------------------------
    async def run(
        self, kind: str, params: dict[str, Any], *, job_id: str, on_progress: ProgressFn, timeout: float,
        cancel: asyncio.Event, on_detail: DetailFn | None = None,
    ) -> dict[str, Any]:
        """Run one task on an idle worker (waiting for one); see the module contract.

        A progress message's ``detail`` (a train task's epoch report) goes to ``on_detail``.

        Setting ``cancel`` at any moment -- before a worker is free, or while it
        works -- stops the task: its worker is killed and replaced.
        """
        worker = await self._dispatch(kind, params, job_id, cancel)
        started = False  # the worker acknowledged the task: from then on its death is the job's
        deadline = time.monotonic() + timeout
        while True:
            msg = await self._next_message(worker, cancel, deadline)
            if msg is _DIED and not started:  # it died before taking the task: never charge the job
                await self._replace(worker)
                worker = await self._dispatch(kind, params, job_id, cancel)
                continue
            if msg is _CANCELLED:
                _kill(worker.process.pid)
                await self._replace(worker)
                raise JobCancelled("cancelled by request; its worker was stopped")
            if msg is _TIMED_OUT:
                await self._replace(worker)
                raise JobTimedOut(f"{kind} task ran past its timeout of {timeout:g} s; its worker was killed")
            if msg is _DIED:
                worker.process.join(timeout=5)
                exit_desc = describe_exit(worker.process.exitcode)
                await self._replace(worker)
                raise WorkerDied(f"the worker process running this {kind} task died ({exit_desc})")
            if msg.get("type") == "started":
                started = True
                continue
            if msg.get("type") == "progress":
                on_progress(msg["value"])
                if on_detail is not None and msg.get("detail") is not None:
                    on_detail(msg["detail"])
                continue
            worker.job_id = None
            self._idle.put_nowait(worker)
            if msg.get("type") == "result":
                return msg["result"]
            if msg.get("traceback"):
                log.error("worker task %s failed:\n%s", kind, msg["traceback"])
            raise error_from(msg)

    async def _dispatch(self, kind: str, params: dict[str, Any], job_id: str, cancel: asyncio.Event) -> _Worker:
        """Send the task to an idle, live worker (replacing any found dead on the way); returns that worker."""
        while True:
            worker = await self._acquire(cancel)
            worker.job_id = job_id
            try:
                worker.conn.send({"task_id": next(self._task_ids), "kind": kind, "params": params})
                return worker
            except (OSError, ValueError):  # it died idle just now: replace it, never charge the job
                await self._replace(worker)

    async def _acquire(self, cancel: asyncio.Event) -> _Worker:
        """An idle, live worker; JobCancelled if ``cancel`` is set first."""
        while True:
            worker = await take_idle(self._idle, cancel)
            if worker.process.is_alive() and worker.inbox.empty():
                return worker
            await self._replace(worker)  # it died while idle: never charge a job for that

    async def _next_message(self, worker: _Worker, cancel: asyncio.Event, deadline: float) -> Any:
        """The worker's next message, or _CANCELLED, or _TIMED_OUT."""
        getter = asyncio.ensure_future(worker.inbox.get())
        waiter = asyncio.ensure_future(cancel.wait())
        done, _ = await asyncio.wait({getter, waiter}, timeout=max(0.0, deadline - time.monotonic()),
                                     return_when=asyncio.FIRST_COMPLETED)
        waiter.cancel()
        if getter in done:
            return getter.result()
        getter.cancel()
        return _CANCELLED if waiter in done else _TIMED_OUT


def _kill(pid: int | None) -> None:
    if pid is None:
        return
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
