"""``/v1/vision/eval/leaderboard``: ranked best results, and one model's history, under one weighting.

Both rank or score by the default weights, or by ``?weights=`` (a JSON
object, validated and completed like a request's ``weights``); each row
carries the ``weights`` that scored it. The leaderboard ranks each dataset's
current content unless ``?content=all``.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from evaluation.errors import InvalidRequest
from evaluation.scoring import resolve_weights
from handlers.body import get_int, get_str, parse_json, query_params
from handlers.context import json_response, service

CONTENT = ("current", "all")


def _weights(query: dict[str, str]) -> dict[str, float] | None:
    """The ranking's applied weights from ``?weights=``; None for the defaults."""
    raw = get_str(query, "weights")
    if raw is None:
        return None
    value: Any = parse_json(raw, "query parameter 'weights'")
    if value is None:
        return None
    return resolve_weights(value)


async def leaderboard(request: web.Request) -> web.Response:
    query = query_params(request, ("dataset", "limit", "weights", "content"))
    content = get_str(query, "content", default="current")
    if content not in CONTENT:
        raise InvalidRequest(f"invalid content {content!r}; one of {', '.join(CONTENT)}")
    body = await service(request).leaderboard_json(
        get_str(query, "dataset"), get_int(query, "limit", default=20, lo=1, hi=1000), _weights(query),
        all_content=content == "all",
    )
    return web.Response(body=body, content_type="application/json")


async def history(request: web.Request) -> web.Response:
    query = query_params(request, ("limit", "weights"))
    rows = await service(request).history(
        request.match_info["model_name"], get_int(query, "limit", default=50, lo=1, hi=1000), _weights(query)
    )
    return json_response(rows)


def routes() -> list[web.RouteDef]:
    return [
        web.get("/v1/vision/eval/leaderboard", leaderboard),
        web.get("/v1/vision/eval/leaderboard/{model_name}", history),
    ]
