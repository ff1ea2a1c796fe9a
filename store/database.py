"""The one SQLite file: a single writer thread owns the write connection; reads use their own.

Contract (after datasette's ``Database``):

- ``write(fn)`` runs ``fn(conn)`` on the writer thread inside ``BEGIN
  IMMEDIATE`` and commits, or rolls back if ``fn`` raises; writes are
  serialised, so no two writers ever contend for the lock.
- ``read(fn)`` runs ``fn(conn)`` on a reader thread with a thread-local
  read-only connection (``query_only``); readers never block the writer (WAL).
- ``close()`` is idempotent; afterwards ``read``/``write`` raise
  ``ServiceClosed``. It checkpoints the WAL (``TRUNCATE``) and closes every
  connection, the writer's last, so a clean stop leaves no ``-wal`` file.

The schema is migrated forward (``PRAGMA user_version``) when the file opens;
before that, a LlamaFarm ``eval.db`` is adopted and a file that is not ours is
refused (``store.adopt_llamafarm``: ``DatabaseRefused``, nothing written).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import queue
import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from store.adopt_llamafarm import prepare
from store.schema import migrate
from vocab.errors import ServiceClosed, StoreBusy

T = TypeVar("T")
log = logging.getLogger(__name__)

BUSY_TIMEOUT_MS = 5000
_STOP = object()
_CHECKPOINT = object()


def _busy(exc: BaseException) -> BaseException:
    """SQLITE_BUSY/LOCKED past the busy timeout (another process holds the lock) as a StoreBusy."""
    if isinstance(exc, sqlite3.OperationalError) and ("locked" in str(exc) or "busy" in str(exc)):
        busy = StoreBusy(f"the database is locked by another process ({exc}); retry shortly")
        busy.__cause__ = exc
        return busy
    return exc


def _configure(conn: sqlite3.Connection) -> None:
    conn.row_factory = sqlite3.Row
    conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
    conn.execute("PRAGMA foreign_keys=ON")
    conn.execute("PRAGMA temp_store=MEMORY")


class Database:
    """Owns every connection to one SQLite file (see module contract)."""

    def __init__(self, path: Path, readers: int = 4) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._closed = False
        # Bumped after every committed write: readers may cache derived data while it is unchanged.
        self.generation = 0
        self._writes: queue.Queue[Any] = queue.Queue()
        self._local = threading.local()
        self._reader_conns: list[sqlite3.Connection] = []
        self._reader_lock = threading.Lock()
        self._readers = concurrent.futures.ThreadPoolExecutor(readers, thread_name_prefix="db-read")
        ready: concurrent.futures.Future[None] = concurrent.futures.Future()
        self._writer = threading.Thread(target=self._write_loop, args=(ready,), name="db-write", daemon=True)
        self._writer.start()
        ready.result()  # re-raises an open or migration error here

    # -- writer thread -------------------------------------------------------------------------
    def _open_writer(self) -> sqlite3.Connection:
        prepare(self.path)
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        _configure(conn)
        conn.execute("PRAGMA journal_mode=WAL")
        # FULL: a promotion or a job row, once acknowledged, survives a power cut; writes are rare.
        conn.execute("PRAGMA synchronous=FULL")
        migrate(conn)
        return conn

    def _write_loop(self, ready: concurrent.futures.Future[None]) -> None:
        try:
            conn = self._open_writer()
        except BaseException as exc:  # noqa: BLE001 - handed to the constructor
            ready.set_exception(exc)
            return
        ready.set_result(None)
        while True:
            item = self._writes.get()
            if item is _STOP:
                break
            fn, fut = item
            if not fut.set_running_or_notify_cancel():
                continue
            if fn is _CHECKPOINT:  # outside any transaction
                try:
                    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
                except BaseException as exc:  # noqa: BLE001 - delivered to the caller
                    fut.set_exception(exc)
                else:
                    fut.set_result(None)
                continue
            try:
                conn.execute("BEGIN IMMEDIATE")
                try:
                    value = fn(conn)
                except BaseException:
                    conn.execute("ROLLBACK")
                    raise
                conn.execute("COMMIT")
                self.generation += 1
            except BaseException as exc:  # noqa: BLE001 - delivered to the caller
                if conn.in_transaction:  # BEGIN succeeded, COMMIT or ROLLBACK did not (busy)
                    try:
                        conn.execute("ROLLBACK")
                    except sqlite3.Error:
                        pass
                fut.set_exception(_busy(exc))
            else:
                fut.set_result(value)
        try:
            conn.execute("PRAGMA optimize")
            # Fold the WAL into the main file; closing the last connection then removes -wal and -shm.
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        finally:
            conn.close()

    def _submit_write(self, fn: Callable[[sqlite3.Connection], T]) -> concurrent.futures.Future[T]:
        if self._closed:
            raise ServiceClosed("the database is closed")
        fut: concurrent.futures.Future[T] = concurrent.futures.Future()
        self._writes.put((fn, fut))
        return fut

    async def write(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``fn(conn)`` in one write transaction on the writer thread."""
        return await asyncio.wrap_future(self._submit_write(fn))

    def write_sync(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """``write`` for synchronous callers (start-up, CLI, tests)."""
        return self._submit_write(fn).result()

    async def write_checkpoint(self) -> None:
        """Fold the WAL back into the main file (``wal_checkpoint(TRUNCATE)``), on the writer thread."""
        if self._closed:
            raise ServiceClosed("the database is closed")
        fut: concurrent.futures.Future[None] = concurrent.futures.Future()
        self._writes.put((_CHECKPOINT, fut))
        await asyncio.wrap_future(fut)

    # -- readers -------------------------------------------------------------------------------
    def _reader(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, check_same_thread=False)
            _configure(conn)
            conn.execute("PRAGMA query_only=1")
            self._local.conn = conn
            with self._reader_lock:
                self._reader_conns.append(conn)
        return conn

    def _run_read(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        conn = self._reader()
        try:
            return fn(conn)
        except sqlite3.OperationalError as exc:
            raise _busy(exc) from exc

    async def read(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``fn(conn)`` on a reader thread with a read-only connection."""
        if self._closed:
            raise ServiceClosed("the database is closed")
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._readers, self._run_read, fn)

    def read_sync(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        if self._closed:
            raise ServiceClosed("the database is closed")
        return self._readers.submit(self._run_read, fn).result()

    # -- lifecycle -----------------------------------------------------------------------------
    def close(self) -> None:
        """Finish queued writes, stop the writer, close every connection. Idempotent."""
        if self._closed:
            return
        self._closed = True
        # Readers first: the writer's connection must be the last one open, so that its checkpoint
        # and close leave no eval.db-wal behind (a read-only connection cannot remove it).
        self._readers.shutdown(wait=True, cancel_futures=True)
        with self._reader_lock:
            for conn in self._reader_conns:
                conn.close()
            self._reader_conns.clear()
        self._writes.put(_STOP)
        self._writer.join(timeout=30)
        if self._writer.is_alive():
            log.error("database writer thread did not stop within 30 s")

    @property
    def closed(self) -> bool:
        return self._closed

    def writer_alive(self) -> bool:
        return self._writer.is_alive()
