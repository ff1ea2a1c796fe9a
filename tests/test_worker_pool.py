"""The local worker pool's protocol under failures, with real child processes whose body is a light
stand-in for ``worker_main`` (same messages, no torch): the pool's own logic is what is under test.

A replacement worker that fails to start is retried in the background; only a worker whose ``ready``
message has been read ever enters the idle queue, so that message is never taken for a task's answer
and a healthy worker is never killed for holding it.

Workers, replacements included, are forked from a fork server that has imported ``workers.PRELOAD``: a
stand-in that imports nothing finds those modules loaded, and its parent is not the pool's process.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import pytest

from daemon.jobs import workers
from daemon.jobs.workers import WorkerPool
from vocab.errors import WorkerDied

FAIL_STARTS = "fail-starts"  # in the state dir: how many of the next worker starts fail before "ready"


def stand_in_worker(conn: Any, state_dir: str, device: str, torch_threads: int, nice: int) -> None:
    """``worker_main``'s protocol: ready once, then per task started + result; ``die`` exits mid-task."""
    counter = Path(state_dir) / FAIL_STARTS
    left = int(counter.read_text()) if counter.exists() else 0
    if left > 0:
        counter.write_text(str(left - 1))
        os._exit(3)  # dies before its ready message
    conn.send({"type": "ready", "info": {"pid": os.getpid()}})
    while (msg := conn.recv()) is not None:
        conn.send({"type": "started", "task_id": msg["task_id"]})
        if msg["kind"] == "die":
            os._exit(1)
        conn.send({"type": "result", "task_id": msg["task_id"], "result": {"echo": msg["params"], "pid": os.getpid()}})


def preloaded_worker(conn: Any, state_dir: str, device: str, torch_threads: int, nice: int) -> None:
    """Says which of ``workers.PRELOAD`` it started with, and who its parent is; imports nothing itself."""
    conn.send({"type": "ready", "info": {"preloaded": [m for m in workers.PRELOAD if m in sys.modules],
                                         "parent": os.getppid(), "pid": os.getpid()}})
    while (msg := conn.recv()) is not None:
        conn.send({"type": "started", "task_id": msg["task_id"]})
        os._exit(1)


async def _run(pool: WorkerPool, kind: str, params: dict[str, Any]) -> dict[str, Any]:
    import asyncio

    return await pool.run(kind, params, job_id="j", on_progress=lambda _: None, timeout=60, cancel=asyncio.Event())


async def test_a_replacement_that_fails_to_start_never_answers_for_a_task(tmp_path: Path,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(workers, "RESTART_BACKOFF_S", 0.05)
    pool = WorkerPool(1, str(tmp_path), target=stand_in_worker)
    await pool.start()
    try:
        (tmp_path / FAIL_STARTS).write_text("1")  # the next start fails: the first replacement
        with pytest.raises(WorkerDied):
            await _run(pool, "die", {})
        assert not pool.healthy()  # one worker short while its replacement is restarted
        answers = [await _run(pool, "echo", {"n": n}) for n in range(5)]
        assert [a["echo"] for a in answers] == [{"n": n} for n in range(5)]  # never a stray "ready"
        assert len({a["pid"] for a in answers}) == 1  # the healthy replacement was never killed
        assert pool.restarts == 1 and pool.healthy()
        assert (tmp_path / FAIL_STARTS).read_text() == "0"  # the failed start did happen
    finally:
        await pool.close()


async def test_workers_and_their_replacements_start_from_the_fork_servers_imports(tmp_path: Path) -> None:
    pool = WorkerPool(1, str(tmp_path), target=preloaded_worker)
    await pool.start()
    try:
        first = pool.info
        assert first["preloaded"] == list(workers.PRELOAD), first
        assert first["parent"] != os.getpid()  # forked by the fork server, not by this process
        with pytest.raises(WorkerDied):
            await _run(pool, "die", {})  # its replacement is forked from the same server
        assert pool.restarts == 1 and pool.info["pid"] != first["pid"]
        assert (pool.info["preloaded"], pool.info["parent"]) == (list(workers.PRELOAD), first["parent"])
    finally:
        await pool.close()
