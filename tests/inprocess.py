"""An in-process daemon for tests: the real ``Service`` (SQLite, queue, promotion, HTTP on a free port)
with an executor that runs the real worker tasks (``daemon.jobs.worker_main.TASKS``) in a thread of the
test process instead of worker processes.

``ThreadExecutor`` stands in for ``WorkerPool`` only because starting warm torch processes per test
is slow; what runs is the same code. A thread cannot be killed: a cancelled or timed-out task is
stopped at its next progress report (every batch of an evaluation or a training), where
``WorkerPool`` kills its worker at once; the job's outcome is the same.
``start()`` waits for ``release`` to be set: until then the queue dispatches nothing, so a test can
inspect and cancel queued jobs deterministically.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

from daemon.app.service import Service
from tests.daemon_fixtures import DaemonApi, write_toml
from vocab.config import Config, parse_config
from vocab.errors import InternalError, JobCancelled, JobTimedOut, VisionEvalError


async def _first(*waits: Any) -> None:
    """Wait until the first of ``waits`` (coroutines) is done; cancel the others."""
    tasks = [asyncio.ensure_future(w) for w in waits]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for t in tasks:
            t.cancel()


class _Stopped(BaseException):
    """Raised in a task's thread at its next progress report once nobody waits for it (a BaseException, so
    that no ``except Exception`` on the way swallows it)."""


class ThreadExecutor:
    """The ``Executor`` protocol over ``daemon.jobs.worker_main.TASKS`` run in a thread (see module contract)."""

    def __init__(self, device: str = "cpu", *, released: bool = True) -> None:
        self.device = device
        self.info: dict[str, Any] = {}
        self.release = asyncio.Event()
        if released:
            self.release.set()
        self.gate = asyncio.Event()  # cleared: every task waits to start (InProcessDaemon.paused)
        self.gate.set()

    async def start(self) -> None:
        """What a worker's ``prepare`` does that a thread can: ultralytics' settings (integrations and telemetry
        off: otherwise a training here would import and log to MLflow and Ray Tune), then the worker's info.
        Imports torch: only tests that run tasks get here."""
        from daemon.jobs.worker_main import _info
        from evaluation.offline import apply_settings
        from tests.conftest import OFFLINE_STATE_DIR

        await self.release.wait()
        await asyncio.to_thread(apply_settings, OFFLINE_STATE_DIR)
        self.info = await asyncio.to_thread(_info, self.device)

    async def run(self, kind: str, params: dict[str, Any], *, job_id: str, on_progress: Callable[[float], None],
                  timeout: float, cancel: asyncio.Event,
                  on_detail: Callable[[dict[str, Any]], None] | None = None) -> dict[str, Any]:
        from daemon.jobs.worker_main import TASKS

        loop = asyncio.get_running_loop()
        stop = threading.Event()

        def progress(value: float, detail: dict[str, Any] | None = None) -> None:
            if stop.is_set():
                raise _Stopped  # the task is abandoned: end its thread at this report
            loop.call_soon_threadsafe(on_progress, float(value))
            if detail is not None and on_detail is not None:
                loop.call_soon_threadsafe(on_detail, detail)

        if not self.gate.is_set():
            await _first(self.gate.wait(), cancel.wait())
            if cancel.is_set():
                raise JobCancelled("cancelled by request before it started")
        task = asyncio.ensure_future(asyncio.to_thread(TASKS[kind], params, progress))
        cancelled = asyncio.ensure_future(cancel.wait())
        try:
            done, _ = await asyncio.wait({task, cancelled}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        except asyncio.CancelledError:  # the daemon is stopping: the job goes back to the queue
            stop.set()
            task.add_done_callback(lambda t: t.cancelled() or t.exception())  # ends unawaited, with _Stopped
            raise
        finally:
            cancelled.cancel()
        if task not in done:  # cancelled by request, or past its timeout: stop it at its next progress report
            stop.set()
            await asyncio.gather(task, return_exceptions=True)
            if cancel.is_set():
                raise JobCancelled("cancelled by request; its task was stopped")
            raise JobTimedOut(f"{kind} task ran past its timeout of {timeout:g} s; it was stopped")
        try:
            return task.result()
        except VisionEvalError:
            raise
        except Exception as exc:  # as WorkerPool reports a task's unexpected error
            raise InternalError(f"{type(exc).__name__}: {exc}") from exc

    def healthy(self) -> bool:
        return True

    def available(self) -> bool:
        return True

    async def close(self) -> None:
        return None


def service_config(root: Path, **sections: dict[str, Any]) -> Config:
    """A Config on files under ``root``: port 0 (the OS picks a free one; only tests may ask for it, the
    config file refuses it), no watcher, one CPU worker; ``sections`` override."""
    raw: dict[str, dict[str, Any]] = {
        "paths": {"models_root": str(root / "models"), "state_dir": str(root / "state"),
                  "db_path": str(root / "eval.db")},
        "workers": {"count": 1, "device": "cpu"},
        "watch": {"enabled": False},
    }
    for name, table in sections.items():
        raw.setdefault(name, {}).update(table)
    config = parse_config(raw, environ={})
    return dataclasses.replace(config, server=dataclasses.replace(config.server, port=0))


@asynccontextmanager
async def running_service(root: Path, executor: Any = None, **sections: dict[str, Any]) -> AsyncIterator[Service]:
    """A started ``Service`` on ``service_config(root, **sections)``; closed on exit. ``url(svc)`` is its address.
    Without ``executor``: a ``ThreadExecutor`` never released (jobs stay queued, nothing imports torch)."""
    svc = Service(service_config(root, **sections), executor=executor or ThreadExecutor(released=False))
    try:
        await svc.start()
        yield svc
    finally:
        await svc.close()


def url(svc: Service) -> str:
    """The base URL of a started service."""
    return f"http://127.0.0.1:{svc.bound_port}"


async def wait_job(client: Any, job_id: str, timeout: float = 600.0) -> dict[str, Any]:
    """Poll ``GET /v1/vision/jobs/{id}`` through an aiohttp test ``client`` until the job has finished."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline:
        job = await (await client.get(f"/v1/vision/jobs/{job_id}")).json()
        if job["status"] in ("completed", "failed", "cancelled"):
            return job  # type: ignore[no-any-return]
        await asyncio.sleep(0.1)
    raise AssertionError(f"job {job_id} did not finish within {timeout} s")


class InProcessDaemon(DaemonApi):
    """The surface of ``tests.daemon_fixtures.Daemon`` over a real ``Service`` running in a thread of the
    test process, with a ``ThreadExecutor`` (the worker tasks run in the test process, whose torch is
    already warm: no child process, no torch import per daemon).

    For tests that talk to the daemon over HTTP (sync clients, subprocesses such as the CLI or curl) and
    need no process of its own: what needs one (kill -9, SIGTERM, a worker to kill, torch isolation)
    keeps ``Daemon``. Its SQLite file, models folder and HTTP port are real; ``log()`` is what the
    service logged while it ran (INFO and up, tracebacks included).
    """

    def __init__(self, root: Path, *, config: dict[str, dict[str, Any]] | None = None, name: str = "daemon") -> None:
        super().__init__(root, config=config, name=name)
        self.service: Service | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._log = _Records()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, *, wait_workers: bool = True) -> InProcessDaemon:
        assert self.service is None, "already running"
        loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=loop.run_forever, name="in-process-daemon", daemon=True)
        self._thread.start()
        self._loop = loop
        self._log.attach()
        self.service = Service(service_config(self.root, **self.extra), executor=ThreadExecutor())
        asyncio.run_coroutine_threadsafe(self.service.start(), loop).result(timeout=120)
        assert self.service.bound_port is not None
        self.port = self.service.bound_port
        # The config file a client may read (``vision-eval --config``): the service's server and paths.
        write_toml(self.config_path, {
            "server": {**self.extra.get("server", {}), "host": "127.0.0.1", "port": self.port},
            "paths": {"models_root": str(self.models_root), "state_dir": str(self.state_dir),
                      "db_path": str(self.db_path)}})
        if wait_workers:
            self.wait_workers_ready()
        return self

    def stop(self) -> None:
        """Close the service (running jobs requeued, as on SIGTERM) and end its thread. Idempotent."""
        if self.service is None or self._loop is None:
            return
        try:
            asyncio.run_coroutine_threadsafe(self.service.close(), self._loop).result(timeout=120)
            # the task threads end at their next progress report: wait for them, the loop still open
            asyncio.run_coroutine_threadsafe(self._loop.shutdown_default_executor(), self._loop).result(timeout=120)
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            assert self._thread is not None
            self._thread.join(timeout=30)
            self._loop.close()
            self._log.detach()
            self.close_http()
            self.service, self._loop = None, None

    @contextmanager
    def paused(self) -> Iterator[None]:
        """Inside, no task starts: a job submitted meanwhile waits (queued, or running before its task),
        so a cancel sent inside is certain to land before any work is done."""
        executor = self._executor()
        self._call(executor.gate.clear)
        try:
            yield
        finally:
            self._call(executor.gate.set)

    def _executor(self) -> ThreadExecutor:
        assert self.service is not None and isinstance(self.service.executor, ThreadExecutor)
        return self.service.executor

    def _call(self, fn: Callable[[], Any]) -> None:
        """Run ``fn`` on the service's loop and wait for it."""
        assert self._loop is not None

        async def call() -> None:
            fn()

        asyncio.run_coroutine_threadsafe(call(), self._loop).result(timeout=30)

    def log(self) -> str:
        return self._log.text()

    def log_tail(self, n: int = 60) -> str:
        return "\n".join(self.log().splitlines()[-n:])

    def assert_alive(self) -> None:
        assert self.service is not None and self._thread is not None and self._thread.is_alive(), \
            f"the in-process daemon is not running:\n{self.log_tail()}"

    def descendants(self) -> list[Any]:
        return []  # no child process: the worker tasks run in threads of the test process


class _Records(logging.Handler):
    """Every record of the service's loggers (INFO and up) while it runs, formatted as its log file would be."""

    LOGGERS = ("daemon", "handlers", "store", "evaluation", "vision_evald", "aiohttp", "apscheduler")

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        self.lines: list[str] = []
        self._levels: dict[str, int] = {}

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))

    def attach(self) -> None:
        for name in self.LOGGERS:
            logger = logging.getLogger(name)
            self._levels[name] = logger.level
            if logger.getEffectiveLevel() > logging.INFO:
                logger.setLevel(logging.INFO)
            logger.addHandler(self)

    def detach(self) -> None:
        for name, level in self._levels.items():
            logger = logging.getLogger(name)
            logger.removeHandler(self)
            logger.setLevel(level)

    def text(self) -> str:
        return "\n".join(self.lines)
