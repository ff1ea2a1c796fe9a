"""Identical requests in a burst share one computation, never one that began before they arrived.

``Coalescer.run(key, fn)`` awaits ``fn(since)`` (a coroutine function) for
``key``, with at most one run of a key in flight: a caller arriving while a
run is in flight waits for it to end and then shares the next run, which
starts then and serves every caller that arrived meanwhile. So each caller's
answer was computed entirely after it arrived, and a burst of N identical
requests costs two runs, not N. ``since`` is when the last of a run's callers
arrived (a ``time.monotonic()``): work begun since then, such as a cached
check of files, may answer for all of them. Runs of different keys are
independent. An exception is every sharer's answer.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass
from typing import Any

Run = Callable[[float], Awaitable[Any]]


@dataclass
class _Next:
    """The run a key's late callers share: its outcome, what it runs, and when its last caller arrived."""

    outcome: asyncio.Future[Any]
    fn: Run
    since: float


class Coalescer:
    """See module contract."""

    def __init__(self) -> None:
        self._running: set[Hashable] = set()
        self._next: dict[Hashable, _Next] = {}

    async def run(self, key: Hashable, fn: Run) -> Any:
        """``fn(since)``'s result (or exception), from a run that began after this call."""
        arrived = time.monotonic()
        if key not in self._running:
            outcome = asyncio.get_running_loop().create_future()
            self._start(key, fn, outcome, arrived)
        elif key in self._next:
            waiting = self._next[key]
            waiting.since = arrived
            outcome = waiting.outcome
        else:
            outcome = asyncio.get_running_loop().create_future()
            self._next[key] = _Next(outcome, fn, arrived)
        return await asyncio.shield(outcome)

    def _start(self, key: Hashable, fn: Run, outcome: asyncio.Future[Any], since: float) -> None:
        self._running.add(key)
        task = asyncio.ensure_future(fn(since))
        task.add_done_callback(lambda t: self._finished(key, t, outcome))

    def _finished(self, key: Hashable, task: asyncio.Future[Any], outcome: asyncio.Future[Any]) -> None:
        if task.cancelled():
            outcome.cancel()
        elif (exc := task.exception()) is not None:
            outcome.set_exception(exc)
            outcome.exception()  # marked retrieved: sharers that gave up leave no "never retrieved" warning
        else:
            outcome.set_result(task.result())
        self._running.discard(key)
        waiting = self._next.pop(key, None)
        if waiting is not None:
            self._start(key, waiting.fn, waiting.outcome, waiting.since)
