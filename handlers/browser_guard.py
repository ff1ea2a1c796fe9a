"""Refuse what a web page can make the user's browser send: cross-site requests and DNS rebinding.

A daemon on 127.0.0.1 is reachable by every page the user opens. Browsers send
cross-site form POSTs without a preflight (our POSTs take form data), and DNS
rebinding lets a page on ``evil.example`` talk to us under its own name and
read the answers. Contract, checked before any handler, body read or auth
check runs (so a refused request changes nothing):

- ``Host`` (when sent) must name a loopback host (``localhost``,
  ``*.localhost``, ``127.x.y.z``, ``[::1]``), the configured ``[server] host``,
  or one of ``[server] allowed_hosts``; its port is not checked.
- ``Origin`` (when sent) must be the daemon's own origin -- ``http://H:P``
  with ``H`` a host allowed above and ``P`` the port this request arrived on --
  or one of ``[server] allowed_origins``. ``Origin: null`` is foreign.
- A state-changing request (POST, PUT, PATCH, DELETE) with
  ``Sec-Fetch-Site: cross-site`` is refused whatever its ``Origin``.

A refusal is 403 JSON ``{"detail": ...}``, logged with the request id.
Clients that are not browsers (curl, httpx, our CLI) send no ``Origin`` and
``Host: localhost:PORT`` / ``127.0.0.1:PORT``: unaffected.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from aiohttp import web

from handlers.middleware import REQUEST_ID, Handler, json_error
from vocab.hosts import is_loopback_host, normalise_host, parse_origin, split_host_header

log = logging.getLogger("vision_evald.http")
STATE_CHANGING = frozenset({"POST", "PUT", "PATCH", "DELETE"})
class BrowserGuard:
    """The allow-lists of one daemon and the middleware that applies them (see module contract)."""

    def __init__(self, configured_host: str, allowed_hosts: tuple[str, ...], allowed_origins: tuple[str, ...]) -> None:
        self.hosts = {normalise_host(configured_host), *(normalise_host(h) for h in allowed_hosts)}
        self.origins = {o for o in (parse_origin(text) for text in allowed_origins) if o is not None}

    def host_allowed(self, host: str) -> bool:
        return is_loopback_host(host) or host in self.hosts

    def origin_allowed(self, origin: str, served_port: int | None) -> bool:
        parsed = parse_origin(origin)
        if parsed is None:
            return False
        scheme, host, port = parsed
        own = scheme == "http" and port == served_port and self.host_allowed(host)
        return own or parsed in self.origins

    def refusal(self, request: web.Request) -> str | None:
        """Why this request must be refused, or None when it may proceed."""
        host_header = request.headers.get("Host")
        if host_header is not None and not self.host_allowed(split_host_header(host_header)):
            return (f"Host {host_header!r} is not this daemon's (a DNS-rebinding guard); "
                    "add it to [server] allowed_hosts if it is yours")
        origin = request.headers.get("Origin")
        if origin is not None and not self.origin_allowed(origin, _served_port(request)):
            return (f"cross-origin request from {origin!r} refused; "
                    "add the origin to [server] allowed_origins if it is yours")
        if request.method in STATE_CHANGING and request.headers.get("Sec-Fetch-Site", "").lower() == "cross-site":
            return "cross-site request refused (Sec-Fetch-Site: cross-site)"
        return None

    def middleware(self) -> Callable[..., Awaitable[web.StreamResponse]]:
        @web.middleware
        async def browser_guard(request: web.Request, handler: Handler) -> web.StreamResponse:
            reason = self.refusal(request)
            if reason is None:
                return await handler(request)
            log.warning("refused %s %s (request id %s): %s", request.method, request.path,
                        request.get(REQUEST_ID), reason)
            response = json_error(403, reason)
            response.force_close()  # the body was never read: do not parse it as the next request
            return response

        return browser_guard


def _served_port(request: web.Request) -> int | None:
    """The local port this request arrived on (the daemon's real port, even when 0 was configured)."""
    sockname = request.transport.get_extra_info("sockname") if request.transport else None
    return sockname[1] if isinstance(sockname, tuple) and len(sockname) >= 2 else None
