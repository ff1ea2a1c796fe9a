"""Host names and origins as the daemon compares them: one reading for the config, the CLI and the HTTP guard."""

from __future__ import annotations

import functools
import ipaddress
from urllib.parse import urlsplit

DEFAULT_PORTS = {"http": 80, "https": 443}


def normalise_host(host: str) -> str:
    """A host name or address as compared here: lower case, no trailing dot, no IPv6 brackets."""
    return host.strip().lower().rstrip(".").removeprefix("[").removesuffix("]")


def split_host_header(value: str) -> str:
    """The host part of a ``Host`` header value (``name``, ``name:port``, ``[v6]:port``)."""
    value = value.strip()
    if value.startswith("["):
        return normalise_host(value.split("]", 1)[0] + "]")
    return normalise_host(value.rsplit(":", 1)[0] if value.count(":") == 1 else value)


@functools.lru_cache(maxsize=256)  # asked on every request, with the few Host values a daemon sees
def is_loopback_host(host: str) -> bool:
    """``localhost``, a ``.localhost`` name (RFC 6761: always loopback) or a loopback address."""
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def parse_origin(origin: str) -> tuple[str, str, int] | None:
    """``scheme://host[:port]`` as (scheme, host, port); None when it is not such an origin."""
    try:
        parts = urlsplit(origin.strip())
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    if scheme not in DEFAULT_PORTS or not parts.hostname or parts.path not in ("", "/") or parts.query:
        return None
    return scheme, normalise_host(parts.hostname), port if port is not None else DEFAULT_PORTS[scheme]
