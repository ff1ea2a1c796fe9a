"""Middleware: request ids, bearer auth, body limits, and the one error-to-HTTP table.

Every error leaves as JSON ``{"detail": ...}`` with the status of its class in
``STATUS``; an unexpected exception is logged with its request id and answered
500 without internals. Bad input never reaches the 500 branch.
"""

from __future__ import annotations

import hmac
import logging
import secrets
from collections.abc import Awaitable, Callable

from aiohttp import web

from handlers.body import UnsupportedMediaType
from handlers.context import MAX_BODY_BYTES
from vocab import errors, log_context

log = logging.getLogger("vision_evald.http")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

# The one mapping of error classes to HTTP statuses (most specific first).
STATUS: tuple[tuple[type[errors.VisionEvalError], int], ...] = (
    (UnsupportedMediaType, 415),
    (errors.InvalidRequest, 400),
    (errors.PathNotAllowed, 403),
    (errors.NotFound, 404),
    (errors.Conflict, 409),
    (errors.QueueFull, 503),
    (errors.StoreBusy, 503),
    (errors.ServiceClosed, 503),
)


def json_error(status: int, detail: str, headers: dict[str, str] | None = None) -> web.Response:
    return web.json_response({"detail": detail}, status=status, headers=headers)


def status_of(exc: errors.VisionEvalError) -> int:
    for cls, status in STATUS:
        if isinstance(exc, cls):
            return status
    return 500


REQUEST_ID = web.RequestKey("request_id", str)  # the id logged with a request and echoed as X-Request-Id


@web.middleware
async def request_id_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    rid = request.headers.get("X-Request-Id", "")
    if not (0 < len(rid) <= 64 and rid.replace("-", "").isalnum()):
        rid = secrets.token_hex(8)
    request[REQUEST_ID] = rid
    with log_context.bind(request_id=rid):
        response = await handler(request)
    response.headers["X-Request-Id"] = rid
    return response


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except errors.VisionEvalError as exc:
        status = status_of(exc)
        headers = ({"Retry-After": str(exc.retry_after_s)}
                   if isinstance(exc, (errors.QueueFull, errors.StoreBusy)) else None)
        if isinstance(exc, errors.ServiceClosed):
            headers = {"Retry-After": "10"}
        return json_error(status, exc.detail, headers)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        detail = {
            404: f"no such endpoint: {request.method} {request.path}",
            405: f"method {request.method} not allowed on {request.path}",
            413: f"request body too large (limit {request.app[MAX_BODY_BYTES]} bytes)",
        }.get(exc.status, exc.reason)
        headers = {k: v for k, v in exc.headers.items() if k.lower() == "allow"}
        return json_error(exc.status, detail, headers)
    except Exception:
        log.exception("request %s %s failed (request id %s)", request.method, request.path, request.get(REQUEST_ID))
        return json_error(500, f"internal error (request id {request.get(REQUEST_ID)}); see the daemon log")


# Served without the token: the health probe and the dashboard's static files (they hold no data).
# Open even when a bearer token is set: the health probes (ours, and /health where LlamaFarm's server
# probes its runtime) and the dashboard's static files.
PUBLIC_PATHS = frozenset({"/healthz", "/health", "/"})
PUBLIC_PREFIX = "/dashboard/"


def is_public(path: str) -> bool:
    return path in PUBLIC_PATHS or path.startswith(PUBLIC_PREFIX)


def auth_middleware(token: str) -> Callable[..., Awaitable[web.StreamResponse]]:
    """Require ``Authorization: Bearer <token>`` on everything but ``PUBLIC_PATHS``, when a token is set."""
    expected = f"Bearer {token}".encode()

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        if token and not is_public(request.path):
            given = request.headers.get("Authorization", "").encode()
            if not hmac.compare_digest(given, expected):
                return json_error(401, "missing or wrong bearer token", {"WWW-Authenticate": "Bearer"})
        return await handler(request)

    return middleware
