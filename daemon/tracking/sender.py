"""The outbox sender: one asyncio task that drains ``mlflow_outbox`` to MLflow, in order, with backoff.

Contract:

- off the job path: jobs only insert records (``store.outbox.enqueue``, in their own write); every
  MLflow call runs here, in a daemon thread, so a slow or dead server holds up nothing else, not even
  the daemon's exit;
- in order: the oldest pending record is sent first; a failed send keeps it at the head and every
  later record waits behind it;
- backoff: after a send that may succeed later (``Sink.transient``) the head waits
  ``Backoff.delay(attempts)`` (1 s, 2 s, 4 s ... up to 30 s) and is retried for as long as it takes;
  one that cannot succeed (MLflow refused it, its file is gone) is given up after ``GIVE_UP_AFTER``
  attempts, logged, and the records behind it go on;
- the loop wakes for ``wake()`` (a record was committed), when the head is due, and every
  ``idle_poll_s`` otherwise; ``drain`` sends what is due now, under the injected clock (tests call it
  directly: no sleeps);
- ``status`` (outbox depth, failed records, last error, last success) is what /healthz and /metrics show.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, replace
from datetime import datetime, timedelta
from typing import Any, Protocol, TypeVar

from daemon.clock import Clock, iso, utcnow
from store import outbox
from store.database import Database

log = logging.getLogger(__name__)
T = TypeVar("T")
GIVE_UP_AFTER = 3  # attempts of a send that cannot succeed as it is


class Sink(Protocol):
    def send(self, kind: str, payload: Mapping[str, Any]) -> None: ...


@dataclass(frozen=True)
class Backoff:
    """Delay before retrying the head after its ``attempts``-th failed send: doubling, capped."""

    first_s: float = 1.0
    max_s: float = 30.0

    def delay(self, attempts: int) -> float:
        return min(self.max_s, self.first_s * 2 ** max(0, attempts - 1))


DEFAULT_BACKOFF = Backoff()


@dataclass(frozen=True)
class TrackingStatus:
    """The sender's state for /healthz and /metrics. Times are ISO-8601 UTC; None: not yet."""

    outbox_depth: int = 0  # records waiting to be sent, as the last pass over the outbox counted them
    outbox_failed: int = 0  # records given up
    send_errors: int = 0  # failed sends since the daemon started
    last_error: str | None = None
    last_error_at: str | None = None
    last_success_at: str | None = None

    def public(self) -> dict[str, Any]:
        return asdict(self)


class OutboxSender:
    """Drains the outbox to a ``Sink`` (see module contract)."""

    def __init__(self, db: Database, sink: Sink, transient: Callable[[BaseException], bool], clock: Clock = utcnow,
                 backoff: Backoff = DEFAULT_BACKOFF, idle_poll_s: float = 30.0) -> None:
        self.db = db
        self.sink = sink
        self.transient = transient
        self.clock = clock
        self.backoff = backoff
        self.idle_poll_s = idle_poll_s
        self.status = TrackingStatus()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Start the loop on the running event loop (it sends what an earlier run left pending first)."""
        self._task = asyncio.create_task(self._run(), name="mlflow-outbox")

    async def close(self) -> None:
        """Stop the loop; a send in flight finishes in its thread, and its record stays pending (sent again
        next time, idempotently)."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    def wake(self) -> None:
        """A record was committed: look at the outbox now."""
        self._wake.set()

    async def drain(self) -> int:
        """Send every record that is due, oldest first, until one must wait or none is due; returns how
        many were sent. Never raises for a failed send."""
        sent = 0
        while (record := await self.db.read(outbox.head)) is not None \
                and record.next_attempt_at <= iso(self.clock()):
            outcome = await self._send(record)
            if outcome == "wait":
                break
            sent += outcome == "done"
        counts = await self.db.read(outbox.counts)
        self.status = replace(self.status, outbox_depth=counts["pending"], outbox_failed=counts["failed"])
        return sent

    async def _send(self, record: outbox.OutboxRecord) -> str:
        """Send one record and write the outcome: ``done``, ``failed`` (given up) or ``wait`` (retried later)."""
        try:
            await _in_daemon_thread(lambda: self.sink.send(record.kind, record.payload))
        except Exception as exc:  # noqa: BLE001 - every failure is the record's, written below
            return await self._failed(record, exc)
        now = iso(self.clock())
        await self.db.write(lambda c: outbox.mark_done(c, record.id, now))
        self.status = replace(self.status, last_success_at=now)
        return "done"

    async def _failed(self, record: outbox.OutboxRecord, exc: Exception) -> str:
        moment = self.clock()
        error = f"{type(exc).__name__}: {exc}"[:2000]
        attempts = record.attempts + 1
        self.status = replace(self.status, send_errors=self.status.send_errors + 1, last_error=error,
                              last_error_at=iso(moment))
        if not self.transient(exc) and attempts >= GIVE_UP_AFTER:
            log.error("MLflow: gave up %s record %d after %d attempts: %s", record.kind, record.id, attempts, error)
            await self.db.write(lambda c: outbox.fail(c, record.id, error, iso(moment)))
            return "failed"
        retry_at = iso(moment + timedelta(seconds=self.backoff.delay(attempts)))
        # Once per record at warning level: an outage of hours is one line, and /healthz tells the rest.
        log.log(logging.WARNING if attempts == 1 else logging.DEBUG, "MLflow: %s record %d not sent "
                "(attempt %d, next at %s): %s", record.kind, record.id, attempts, retry_at, error)
        await self.db.write(lambda c: outbox.retry(c, record.id, error, retry_at))
        return "wait"

    async def _run(self) -> None:
        while True:
            self._wake.clear()
            try:
                await self.drain()
                delay = await self._until_due()
            except Exception:  # noqa: BLE001 - the database is closing or failing: try again later
                log.exception("MLflow outbox: cannot read or write the outbox")
                delay = self.idle_poll_s
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), delay)

    async def _until_due(self) -> float:
        """Seconds until the head is due (at most ``idle_poll_s``)."""
        record = await self.db.read(outbox.head)
        if record is None:
            return self.idle_poll_s
        due = datetime.fromisoformat(record.next_attempt_at)
        return min(self.idle_poll_s, max(0.0, (due - self.clock()).total_seconds()))


async def _in_daemon_thread(fn: Callable[[], T]) -> T:
    """``fn()`` in a new daemon thread, awaited: unlike the loop's executor, a call stuck on a dead server
    never holds up the interpreter's exit."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[T] = loop.create_future()

    def settle(value: Any, exc: BaseException | None) -> None:
        if future.done():  # the awaiting task was cancelled
            return
        if exc is not None:
            future.set_exception(exc)
        else:
            future.set_result(value)

    def target() -> None:
        try:
            value, exc = fn(), None
        except BaseException as caught:  # noqa: BLE001 - handed to the awaiting task
            value, exc = None, caught
        with contextlib.suppress(RuntimeError):  # the loop has closed: nobody is waiting
            loop.call_soon_threadsafe(settle, value, exc)

    threading.Thread(target=target, name="mlflow-send", daemon=True).start()
    return await future
