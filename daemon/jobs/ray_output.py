"""Ray's raw output, through the daemon's logger: what Ray writes to this process's stdout and stderr itself.

Ray's C++ core writes its warnings and errors straight to file descriptor 2
(``[<time> E <pid> <tid>] rpc_client.h:204: ...``) and its driver thread prints
cluster errors to stdout (``(raylet) A worker died ...``): lines neither in the
daemon's text format nor JSON. While ``RawOutput`` runs, descriptors 1 and 2 are
pipes; each line read from them becomes one record of the ``ray.stdout`` or
``ray.stderr`` logger, at the level Ray's prefix gives (I, W, E, F), else
WARNING, with the prefix's time, pid and thread id dropped (the record has its
own). The daemon's own log handlers are moved to the original descriptors, so
records never loop back. Anything else written to stdout or stderr meanwhile
is relayed the same way.

A line Ray writes just before it ends the process may be lost (the relay is a
thread); Ray keeps its own copy in the session's log folder.
"""

from __future__ import annotations

import logging
import os
import re
import sys
import threading
from typing import IO, Any

_GLOG = re.compile(r"\[\d{4}-\d\d-\d\d \d\d:\d\d:\d\d[,.]\d+ ([IWEF]) \d+ \d+\] ?")
_ANSI = re.compile(r"\x1b\[[0-9;]*m")
LEVELS = {"I": logging.INFO, "W": logging.WARNING, "E": logging.ERROR, "F": logging.CRITICAL}


def parse_line(text: str, last_level: int) -> tuple[int, str]:
    """The level and message of one raw line; a line without Ray's prefix that starts with white space
    continues the previous one (``last_level``), any other line is a WARNING."""
    text = _ANSI.sub("", text).rstrip()
    match = _GLOG.search(text)
    if match:
        return LEVELS[match.group(1)], (text[:match.start()] + text[match.end():]).strip()
    return (last_level if text[:1].isspace() else logging.WARNING), text.strip()


class RawOutput:
    """Relays descriptors 1 and 2 to loggers while started (see module contract). ``start`` and ``stop``
    are idempotent; ``stop`` restores both descriptors and the handlers."""

    def __init__(self) -> None:
        self._saved: dict[int, int] = {}  # descriptor -> a duplicate of the original
        self._moved: list[tuple[logging.StreamHandler[Any], IO[str]]] = []  # handler -> its original stream
        self._threads: list[threading.Thread] = []

    def start(self) -> None:
        if self._saved:
            return
        for stream in (sys.stdout, sys.stderr):
            stream.flush()
        for fd in (1, 2):
            self._saved[fd] = os.dup(fd)
        self._move_handlers()
        for fd, name in ((1, "ray.stdout"), (2, "ray.stderr")):
            read, write = os.pipe()
            os.dup2(write, fd)
            os.close(write)
            thread = threading.Thread(target=_relay, args=(read, logging.getLogger(name)), daemon=True,
                                      name=f"relay-{name}")
            thread.start()
            self._threads.append(thread)

    def _move_handlers(self) -> None:
        """Point every handler that writes to descriptor 1 or 2 at a duplicate of the original."""
        for handler in logging.getLogger().handlers:
            if not isinstance(handler, logging.StreamHandler):
                continue
            try:
                fd = handler.stream.fileno()
            except (AttributeError, OSError, ValueError):
                continue
            if fd in self._saved:
                original = handler.setStream(os.fdopen(os.dup(self._saved[fd]), "w", buffering=1,
                                                       encoding="utf-8", errors="backslashreplace"))
                if original is not None:
                    self._moved.append((handler, original))

    def stop(self) -> None:
        if not self._saved:
            return
        for stream in (sys.stdout, sys.stderr):
            stream.flush()
        for fd, saved in self._saved.items():
            os.dup2(saved, fd)  # the pipe's last writer in this process closes: its relay reads to the end
            os.close(saved)
        self._saved.clear()
        for handler, original in self._moved:
            handler.setStream(original).close()  # type: ignore[union-attr]  # the duplicate set in start
        self._moved.clear()
        for thread in self._threads:
            thread.join(timeout=2.0)  # a child process still holding the pipe keeps it open: do not wait
        self._threads.clear()


def _relay(fd: int, logger: logging.Logger) -> None:
    level = logging.WARNING
    with os.fdopen(fd, "rb") as pipe:
        for raw in pipe:
            try:
                level, message = parse_line(raw.decode("utf-8", "backslashreplace"), level)
                if message:
                    logger.log(level, "%s", message)
            except Exception:  # noqa: BLE001 - the relay must never stop: a full pipe would block the daemon
                pass
