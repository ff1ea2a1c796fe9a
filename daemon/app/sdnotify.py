"""systemd's notify protocol in a few lines, with no dependency (man sd_notify).

``notify("READY=1")`` is a no-op outside systemd (no ``NOTIFY_SOCKET``).
"""

from __future__ import annotations

import os
import socket


def notify(message: str) -> bool:
    """Send one datagram to ``$NOTIFY_SOCKET``; False when not under systemd or on failure."""
    address = os.environ.get("NOTIFY_SOCKET")
    if not address:
        return False
    if address.startswith("@"):
        address = "\0" + address[1:]
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.connect(address)
            sock.sendall(message.encode())
        return True
    except OSError:
        return False


def watchdog_interval_s() -> float | None:
    """Half of systemd's ``WATCHDOG_USEC`` (the recommended ping period), if a watchdog is set."""
    usec = os.environ.get("WATCHDOG_USEC")
    pid = os.environ.get("WATCHDOG_PID")
    if not usec or (pid and pid != str(os.getpid())):
        return None
    try:
        return int(usec) / 2_000_000
    except ValueError:
        return None
