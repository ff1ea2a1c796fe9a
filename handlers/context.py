"""How handlers reach the daemon (its ``Facade``, handlers.facade, under a typed app key) and answer JSON."""

from __future__ import annotations

import json
import math

from aiohttp import web

from handlers.facade import Facade

SERVICE: web.AppKey[Facade] = web.AppKey("service")
MAX_BODY_BYTES = web.AppKey("max_body_bytes", int)


def service(request: web.Request) -> Facade:
    return request.app[SERVICE]


def json_response(value: object, status: int = 200) -> web.Response:
    return web.json_response(value, status=status, dumps=dumps)


def dumps(value: object) -> str:
    """JSON for responses: NaN and infinities become null (JSON has none). Values without any are dumped as
    they are (walking a large artifact to clean it would cost more than dumping it)."""
    try:
        return json.dumps(value, default=str, allow_nan=False)
    except ValueError:
        return json.dumps(_clean(value), default=str)


def _clean(value: object) -> object:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    return value

