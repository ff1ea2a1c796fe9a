"""A burst of connections is held by the kernel until the event loop accepts them (``LISTEN_BACKLOG``).

With aiohttp's default listen backlog (128) a burst of 200 submissions lost part of its connections: the
kernel drops a SYN while the accept queue is full, and the client sends it again only a second later.
"""

from __future__ import annotations

import select
import socket
import time
from pathlib import Path

from daemon.app.service import LISTEN_BACKLOG
from tests.inprocess import running_service

BURST = 300  # more than aiohttp's default of 128, fewer than LISTEN_BACKLOG


async def test_a_burst_of_connections_completes_while_the_loop_is_busy(tmp_path: Path) -> None:
    assert BURST < LISTEN_BACKLOG
    async with running_service(tmp_path) as svc:
        # This coroutine does not yield until the end: the service's loop accepts nothing meanwhile, so
        # every connection below waits in the kernel's accept queue, as in a burst the loop cannot keep up with.
        pending: list[socket.socket] = []
        for _ in range(BURST):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.setblocking(False)
            s.connect_ex(("127.0.0.1", svc.bound_port))
            pending.append(s)
        try:
            connected: list[socket.socket] = []
            deadline = time.monotonic() + 5.0  # a dropped SYN would be resent after 1 s, then 3 s
            while pending and time.monotonic() < deadline:
                _, writable, _ = select.select([], pending, [], deadline - time.monotonic())
                for s in writable:
                    assert s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == 0
                    pending.remove(s)
                    connected.append(s)
            assert not pending, f"{len(pending)} of {BURST} connections were not taken while the loop was busy"
        finally:
            for s in pending + connected:
                s.close()
