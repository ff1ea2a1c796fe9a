"""The typed application key through which handlers reach the daemon: its ``Facade`` (handlers.facade)."""

from __future__ import annotations

from aiohttp import web

from handlers.facade import Facade

SERVICE: web.AppKey[Facade] = web.AppKey("service")
MAX_BODY_BYTES = web.AppKey("max_body_bytes", int)


def service(request: web.Request) -> Facade:
    return request.app[SERVICE]


def json_response(value: object, status: int = 200) -> web.Response:
    from handlers.middleware import dumps

    return web.json_response(value, status=status, dumps=dumps)
