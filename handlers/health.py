"""``/healthz``: is the daemon able to do its work (database, workers, watcher)."""

from __future__ import annotations

from aiohttp import web

from handlers.context import json_response, service


async def healthz(request: web.Request) -> web.Response:
    report = service(request).health()
    return json_response(report, status=200 if report["ok"] else 503)


def routes() -> list[web.RouteDef]:
    return [web.get("/healthz", healthz)]
