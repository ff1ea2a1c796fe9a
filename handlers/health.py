"""``/healthz`` (can the daemon do its work: database, workers, watcher), the same at ``/health`` (where
LlamaFarm's server probes its runtime), and ``/metrics`` (Prometheus)."""

from __future__ import annotations

from aiohttp import web
from prometheus_client import CONTENT_TYPE_PLAIN_0_0_4

from handlers.context import json_response, service


async def healthz(request: web.Request) -> web.Response:
    report = service(request).health()
    return json_response(report, status=200 if report["ok"] else 503)


async def metrics(request: web.Request) -> web.Response:
    body = await service(request).metrics_exposition()
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_PLAIN_0_0_4,
                                            "X-Content-Type-Options": "nosniff"})


def routes() -> list[web.RouteDef]:
    return [web.get("/healthz", healthz), web.get("/health", healthz), web.get("/metrics", metrics)]
