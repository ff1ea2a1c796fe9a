"""What a child process of the daemon shares: it dies with its parent, and reads its parent's requests off a
pipe until told to stop."""

from __future__ import annotations

import ctypes
import os
import signal
import sys
from collections.abc import Iterator
from typing import Any

_PR_SET_PDEATHSIG = 1


def die_with_parent() -> None:
    """SIGKILL this process when its parent exits; exit at once if it exited before the request was made."""
    if sys.platform.startswith("linux"):
        parent = os.getppid()
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
        if os.getppid() != parent:
            os._exit(1)


def requests(conn: Any) -> Iterator[Any]:
    """Each message the parent sends on ``conn``, until it sends None or its end of the pipe closes."""
    while True:
        try:
            msg = conn.recv()
        except (EOFError, OSError):
            return
        if msg is None:
            return
        yield msg
