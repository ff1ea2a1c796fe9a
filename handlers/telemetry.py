"""Middleware that counts every answered request and its latency by route template, method and status.

The route label is the matched resource's canonical path (``/v1/vision/jobs/{job_id}``), never the raw
path, so the number of series stays bounded whatever clients ask for; a request no route matched is
counted under ``unmatched``. It runs outermost, so it sees the status the client gets (errors already
turned into JSON answers by the error middleware).
"""

from __future__ import annotations

import time

from aiohttp import web

from handlers.context import service
from handlers.middleware import Handler

UNMATCHED = "unmatched"


def route_template(request: web.Request) -> str:
    """The path template of the route that matched ``request``, else ``unmatched``."""
    resource = request.match_info.route.resource
    return resource.canonical if resource is not None else UNMATCHED


@web.middleware
async def telemetry_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Report each request that gets an answer to the service's ``observe_request(route, method, status,
    seconds)``; a request cancelled because the client went away is not counted."""
    started = time.perf_counter()

    def done(status: int) -> None:
        service(request).observe_request(route_template(request), request.method, status,
                                         time.perf_counter() - started)

    try:
        response = await handler(request)
    except web.HTTPException as exc:
        done(exc.status)
        raise
    except Exception:
        done(500)
        raise
    done(response.status)
    return response
