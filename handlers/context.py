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


def json_object_response(stored: bytes, **extra: int) -> web.Response:
    """A stored JSON object (text that ``json.dumps`` wrote) answered with ``extra`` keys added last, so they
    win over keys of the same name as an assignment would. The stored bytes are sent as they are unless they
    hold a NaN or an infinity (which JSON has none of): then the object is parsed and cleaned by ``dumps``."""
    body = stored.strip()
    if body.startswith(b"{") and body.endswith(b"}") and b"NaN" not in body and b"Infinity" not in body:
        added = ", ".join(f"{json.dumps(k)}: {v:d}" for k, v in extra.items()).encode()
        inner = body[1:-1].strip()
        return web.Response(body=b"{" + inner + (b", " if inner and added else b"") + added + b"}",
                            content_type="application/json")
    value = json.loads(stored)
    value.update(extra)
    return json_response(value)


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

