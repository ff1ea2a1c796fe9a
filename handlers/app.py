"""The aiohttp application: middleware in order, every resource's routes, one service object."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

from handlers import evals, health, jobs, leaderboard, models, train
from handlers.context import MAX_BODY_BYTES, SERVICE
from handlers.middleware import auth_middleware, error_middleware, request_id_middleware

if TYPE_CHECKING:
    from daemon.service import Service


def make_app(svc: "Service") -> web.Application:
    cfg = svc.config.server
    app = web.Application(
        client_max_size=cfg.max_body_bytes,
        middlewares=[request_id_middleware, error_middleware, auth_middleware(cfg.auth_token)],
    )
    app[SERVICE] = svc
    app[MAX_BODY_BYTES] = cfg.max_body_bytes
    for module in (health, leaderboard, evals, jobs, train, models):
        app.add_routes(module.routes())
    return app
