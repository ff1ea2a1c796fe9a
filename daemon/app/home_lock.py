"""One daemon per home: exclusive locks on the database and the models root, held for the process's life.

Two daemons on one database would each take the other's running jobs as
interrupted and run them again, share one queue, and race on ``current.pt``
(the promotion lock is per process). So before anything reads the database,
the daemon takes an ``flock`` on ``<db_path>.lock`` and on
``<models_root>/.vision-evald.lock`` and writes its pid into each. The
kernel drops the locks when the process dies, however it dies (kill -9
included), so a stale lock file never blocks a restart. A second daemon on
either path fails at once with ``HomeInUse`` naming the holder's pid,
whatever its port.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from vocab.errors import HomeInUse

MODELS_LOCK_NAME = ".vision-evald.lock"


def lock_paths(db_path: Path, models_root: Path) -> list[Path]:
    """The lock files of a home: one beside the database, one in the models root."""
    return [db_path.with_name(db_path.name + ".lock"), models_root / MODELS_LOCK_NAME]


class HomeLock:
    """Holds the locks of one home (see module contract). ``acquire`` then, at exit, ``release``."""

    def __init__(self, db_path: Path, models_root: Path) -> None:
        self.paths = lock_paths(db_path, models_root)
        self._fds: list[int] = []

    def acquire(self) -> None:
        """Take every lock, or none: raise ``HomeInUse`` naming the other process."""
        try:
            for path in self.paths:
                self._fds.append(_lock(path))
        except HomeInUse:
            self.release()
            raise

    def release(self) -> None:
        """Drop the locks (the files stay: removing them would race with a starting daemon). Idempotent."""
        for fd in self._fds:
            os.close(fd)  # closing the only descriptor of the open file releases its flock
        self._fds.clear()


def _lock(path: Path) -> int:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip() or "unknown"
        os.close(fd)
        what = "database" if path.name != MODELS_LOCK_NAME else "models root"
        raise HomeInUse(f"another vision-evald (pid {holder}) is already running on this {what} "
                        f"(lock {path}); stop it, or give this one its own [paths]") from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    return fd
