"""An in-process daemon for HTTP tests: the real ``Service`` (SQLite in tmp_path, queue, HTTP
app), with worker tasks run in this process.

``InlineExecutor`` runs the very task functions a warm worker runs
(``daemon.worker_main.TASKS``: real ultralytics, real files) in a thread of
this process instead of a spawned child; only the process boundary is
skipped. ``NoWorkers`` never becomes ready, so submitted jobs stay queued:
for tests of what the door accepts or refuses.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from daemon.config import (
    Config,
    EvalConfig,
    PathsConfig,
    ServerConfig,
    WatchConfig,
    WorkersConfig,
)
from daemon.service import Service


class InlineExecutor:
    """The worker's task functions, run in a thread of this process (see module contract)."""

    def __init__(self) -> None:
        self.info: dict[str, Any] = {}

    async def start(self) -> None:
        from daemon.worker_main import _info

        self.info = await asyncio.to_thread(_info, "cpu")

    async def run(self, kind: str, params: dict[str, Any], *, job_id: str, on_progress: Callable[[float], None],
                  timeout: float, cancel: asyncio.Event) -> dict[str, Any]:
        from daemon.worker_main import TASKS

        loop = asyncio.get_running_loop()

        def progress(value: float) -> None:
            loop.call_soon_threadsafe(on_progress, value)

        return await asyncio.to_thread(TASKS[kind], params, progress)

    def healthy(self) -> bool:
        return True

    async def close(self) -> None:
        return None


class NoWorkers:
    """An executor that never gets ready: jobs are accepted and stay queued."""

    def __init__(self) -> None:
        self.info: dict[str, Any] = {}

    async def start(self) -> None:
        await asyncio.Event().wait()

    async def run(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        raise AssertionError("NoWorkers runs nothing")

    def healthy(self) -> bool:
        return False

    async def close(self) -> None:
        return None


def config_for(root: Path, **eval_settings: int) -> Config:
    return Config(
        server=ServerConfig(host="127.0.0.1", port=0),
        paths=PathsConfig(models_root=str(root / "models"), state_dir=str(root / "state"),
                          db_path=str(root / "eval.db"), allowed_roots=(str(root),)),
        workers=WorkersConfig(count=1, device="cpu"),
        eval=EvalConfig(**eval_settings),
        watch=WatchConfig(enabled=False),
    )


@asynccontextmanager
async def running(root: Path, executor: Any, **eval_settings: int) -> AsyncIterator[Service]:
    """A started service on ``root`` (workers awaited unless ``executor`` is ``NoWorkers``)."""
    svc = Service(config_for(root, **eval_settings), executor=executor)
    await svc.start()
    try:
        if not isinstance(executor, NoWorkers):
            await asyncio.wait_for(svc.workers_ready.wait(), 300)
        yield svc
    finally:
        await svc.close()


async def wait_job(client: Any, job_id: str, timeout: float = 600.0) -> dict[str, Any]:
    """Poll ``GET /v1/vision/jobs/{id}`` until the job is finished; return it."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline:
        resp = await client.get(f"/v1/vision/jobs/{job_id}")
        job = await resp.json()
        if job["status"] in ("completed", "failed", "cancelled"):
            return job  # type: ignore[no-any-return]
        await asyncio.sleep(0.1)
    raise AssertionError(f"job {job_id} did not finish within {timeout} s")
