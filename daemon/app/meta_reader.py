"""Checkpoint metadata read in a helper process, off the daemon's GIL.

``evaluation.checkpoint_meta`` unpickles a checkpoint's ``data.pkl`` with pickle's pure-Python unpickler
(the C one can be made to allocate gigabytes by five bytes): about 28 ms of CPU for yolov8n, all of it
holding the GIL. Done on the daemon's threads, that stalled the event loop: a burst of submissions naming
four checkpoints it had never read waited about 110 ms more for its answers, and so did every poll.

``MetaReader.read`` hands the read to one helper process, forked from the workers' fork server when the
first read comes, and waits for it without the GIL (the caller is a thread, never the event loop). The
daemon installs it with ``checkpoint_meta.use_reader`` at its start and removes it at its stop, so the
cache by file identity stays in the daemon and only its misses cross.

- The helper dies with the daemon (``PR_SET_PDEATHSIG``); ``close()`` stops it and waits.
- A helper that dies is replaced, and the read it took is tried once more in the new one: a read that
  kills that one too (out of memory on a hostile file, say) is a ``CheckpointError`` saying so.
"""

from __future__ import annotations

import concurrent.futures
import multiprocessing
import threading
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path

from daemon.jobs.worker_main import die_with_parent
from evaluation.checkpoint_meta import CheckpointMeta, read_uncached
from vocab.errors import CheckpointError


class MetaReader:
    """Reads checkpoint metadata in a helper process (see module contract). Thread-safe."""

    def __init__(self) -> None:
        self._pool: concurrent.futures.ProcessPoolExecutor | None = None
        self._lock = threading.Lock()
        self._closed = False

    def read(self, path: Path) -> CheckpointMeta:
        """``checkpoint_meta.read_uncached(path)``, run in the helper; its CheckpointError as raised there."""
        for _attempt in range(2):
            pool = self._current()
            try:
                return pool.submit(read_uncached, path).result()
            except BrokenProcessPool:  # the helper died, before this read or during it
                self._forget(pool)
        raise CheckpointError(f"checkpoint {path} could not be read: the process reading it died twice (killed, "
                              "or out of memory on this file)")

    def _current(self) -> concurrent.futures.ProcessPoolExecutor:
        with self._lock:
            if self._closed:
                raise RuntimeError("the checkpoint reader is closed")
            if self._pool is None:
                self._pool = concurrent.futures.ProcessPoolExecutor(
                    1, mp_context=multiprocessing.get_context("forkserver"), initializer=die_with_parent)
            return self._pool

    def _forget(self, pool: concurrent.futures.ProcessPoolExecutor) -> None:
        with self._lock:
            if self._pool is pool:
                self._pool = None
        pool.shutdown(wait=False)

    def close(self) -> None:
        """Stop the helper, after the reads in progress. Idempotent."""
        with self._lock:
            self._closed = True
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True)
