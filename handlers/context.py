"""The typed application key through which handlers reach the daemon's services."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

if TYPE_CHECKING:
    from daemon.service import Service

SERVICE: web.AppKey[Service] = web.AppKey("service")
MAX_BODY_BYTES = web.AppKey("max_body_bytes", int)


def service(request: web.Request) -> Service:
    return request.app[SERVICE]


def json_response(value: object, status: int = 200) -> web.Response:
    from handlers.middleware import dumps

    return web.json_response(value, status=status, dumps=dumps)
