"""``/v1/vision/eval/leaderboard``: ranked best evaluations, and one model's history."""

from __future__ import annotations

from aiohttp import web

from handlers.body import get_int, get_str, reject_unknown
from handlers.context import json_response, service
from handlers.evals import get_split


async def leaderboard(request: web.Request) -> web.Response:
    query = dict(request.query)
    reject_unknown(query, ("dataset", "limit", "split"))
    body = await service(request).leaderboard_json(
        get_str(query, "dataset"), get_int(query, "limit", default=20, lo=1, hi=1000),
        get_split(query, "val"),  # type: ignore[arg-type]
    )
    return web.Response(body=body, content_type="application/json")


async def history(request: web.Request) -> web.Response:
    query = dict(request.query)
    reject_unknown(query, ("limit", "split"))
    rows = await service(request).history(
        request.match_info["model_name"], get_int(query, "limit", default=50, lo=1, hi=1000),
        get_split(query, None),
    )
    return json_response(rows)


def routes() -> list[web.RouteDef]:
    return [
        web.get("/v1/vision/eval/leaderboard", leaderboard),
        web.get("/v1/vision/eval/leaderboard/{model_name}", history),
    ]
