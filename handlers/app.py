"""The aiohttp application: middleware in order, every resource's routes, one service object."""

from __future__ import annotations

import logging
import secrets
from typing import Any

from aiohttp import web
from aiohttp.web_protocol import RequestHandler

from handlers import dashboard, evals, evaluation_routes, health, jobs, leaderboard, models, openapi, proxy, train
from handlers.browser_guard import BrowserGuard
from handlers.context import MAX_BODY_BYTES, SERVICE
from handlers.facade import Facade
from handlers.middleware import auth_middleware, error_middleware, json_error, request_id_middleware
from handlers.telemetry import telemetry_middleware

log = logging.getLogger("vision_evald.http")


def make_app(svc: Facade) -> web.Application:
    cfg = svc.http
    guard = BrowserGuard(cfg.host, cfg.allowed_hosts, cfg.allowed_origins)
    app = web.Application(
        client_max_size=cfg.max_body_bytes,
        # The browser guard runs before auth and before any handler reads a body: a refused
        # cross-site or rebound request has no effect at all.
        middlewares=[telemetry_middleware, request_id_middleware, error_middleware, guard.middleware(),
                     auth_middleware(cfg.auth_token)],
    )
    app[SERVICE] = svc
    app[MAX_BODY_BYTES] = cfg.max_body_bytes
    for module in (health, openapi, leaderboard, evaluation_routes, evals, jobs, train, models, dashboard):
        app.add_routes(module.routes())
    if cfg.upstream_url:  # last: it takes only what no route above takes
        proxy.install(app, cfg.upstream_url, own_token=bool(cfg.auth_token))
    return app


class _JsonErrorRequestHandler(RequestHandler):
    """aiohttp answers a request it cannot parse (bad request line, over-long URL or header, bad
    chunking...) itself, before any middleware runs: answer those in JSON ``{"detail": ...}`` too."""

    __slots__ = ()

    def handle_error(self, request: Any, status: int = 500, exc: BaseException | None = None,
                     message: str | None = None) -> web.StreamResponse:
        if status >= 500:
            super().handle_error(request, status, exc, message)  # logs the traceback; raises if already sent
            detail = f"internal error ({status}); see the daemon log"
        else:
            if request.writer.output_size > 0:
                raise ConnectionError("response already sent; cannot send the error")
            reason = (message or (str(exc) if exc else "") or "bad request").strip().splitlines()[0]
            detail = f"malformed HTTP request: {reason[:200]}"
            log.info("malformed HTTP request from %s answered %d: %s", request.remote, status, detail)
        response = json_error(status, detail, {"X-Request-Id": secrets.token_hex(8)})
        response.force_close()
        return response


class _JsonErrorServer(web.Server):
    def __call__(self) -> RequestHandler:
        return _JsonErrorRequestHandler(self, loop=self._loop, **self._kwargs)


class JsonErrorAppRunner(web.AppRunner):
    """An ``AppRunner`` whose connections answer even unparseable requests with a JSON error."""

    async def _make_server(self) -> web.Server:
        server = await super()._make_server()
        server.__class__ = _JsonErrorServer  # same state, our connection handler
        return server
