"""Checkpoint metadata read in a helper process, off the daemon's GIL.

``evaluation.checkpoint_meta`` unpickles a checkpoint's ``data.pkl`` with pickle's pure-Python unpickler
(the C one can be made to allocate gigabytes by five bytes): about 28 ms of CPU for yolov8n, all of it
holding the GIL. Done on the daemon's threads, that stalled the event loop: a burst of submissions naming
four checkpoints it had never read waited about 110 ms more for its answers, and so did every poll.

``MetaReader.read`` hands the read to one helper process and waits for its answer without the GIL (the
caller is a thread, never the event loop). The daemon installs it with ``checkpoint_meta.use_reader`` at its
start and removes it at its stop, so the cache by file identity stays in the daemon and only its misses
cross. The helper is a fresh interpreter (``spawn``, about 0.1 s; ``start()`` at the daemon's start, so a
first burst does not wait for it) that imports the reader only, on a pipe of its own:

- it exits when the daemon closes the pipe or dies (the pipe's end, and ``PR_SET_PDEATHSIG``);
- a helper that dies is replaced, and the read it took is tried once more in the new one: a read that
  kills that one too (out of memory on a hostile file, say) is a ``CheckpointError`` saying so.
"""

from __future__ import annotations

import multiprocessing
import threading
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from daemon.children import die_with_parent, requests
from evaluation.checkpoint_meta import CheckpointMeta, read_uncached
from vocab.errors import CheckpointError, InternalError, VisionEvalError

STOP_TIMEOUT_S = 10.0


def serve(conn: Connection) -> None:
    """The helper's body: answer each path with ``(True, meta)`` or ``(False, error)`` until told to stop."""
    die_with_parent()
    for path in requests(conn):
        try:
            answer: tuple[bool, Any] = (True, read_uncached(Path(path)))
        except VisionEvalError as exc:
            answer = (False, exc)
        except Exception as exc:  # noqa: BLE001 - a bug of the reader, handed to the daemon's caller
            answer = (False, InternalError(f"reading checkpoint {path} failed: {type(exc).__name__}: {exc}"))
        conn.send(answer)


class MetaReader:
    """Reads checkpoint metadata in a helper process (see module contract). Thread-safe: one read at a time."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._process: Any = None
        self._conn: Connection | None = None
        self._closed = False

    def start(self) -> None:
        """Start the helper now rather than at the first read."""
        with self._lock:
            self._running()

    def read(self, path: Path) -> CheckpointMeta:
        """``checkpoint_meta.read_uncached(path)``, run in the helper; its error as raised there."""
        with self._lock:
            for _attempt in range(2):
                conn = self._running()
                try:
                    conn.send(str(path))
                    ok, value = conn.recv()  # the helper's answer: (True, CheckpointMeta) or (False, error)
                except (EOFError, OSError):  # the helper died, before this read or during it
                    self._stop()
                    continue
                if ok:
                    return value
                raise value
        raise CheckpointError(f"checkpoint {path} could not be read: the process reading it died twice (killed, "
                              "or out of memory on this file)")

    def _running(self) -> Connection:
        if self._closed:
            raise RuntimeError("the checkpoint reader is closed")
        if self._conn is None:
            ctx = multiprocessing.get_context("spawn")
            ours, theirs = ctx.Pipe()
            self._process = ctx.Process(target=serve, args=(theirs,), name="vision-evald-checkpoint-reader",
                                        daemon=True)
            self._process.start()
            theirs.close()
            self._conn = ours
        return self._conn

    def _stop(self) -> None:
        """Ask the helper to exit, and wait (kill it if it does not); under ``_lock``."""
        conn, process, self._conn, self._process = self._conn, self._process, None, None
        if conn is None:
            return
        try:
            conn.send(None)
        except OSError:
            pass
        conn.close()
        process.join(STOP_TIMEOUT_S)
        if process.is_alive():
            process.kill()
            process.join()

    def close(self) -> None:
        """Stop the helper, after the read in progress. Idempotent."""
        with self._lock:
            self._closed = True
            self._stop()
