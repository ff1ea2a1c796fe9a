"""``/v1/vision/eval/leaderboard``: ranked best results, and one model's history, under one weighting.

Both rank or score by the default weights, or by ``?weights=`` (a JSON
object, validated and completed like a request's ``weights``); each row
carries the ``weights`` that scored it. The leaderboard ranks each dataset's
current content unless ``?content=all``. ``?format=csv`` gives the same rows
as CSV.
"""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from handlers.body import parse_json, parse_query
from handlers.context import json_response, service
from store.export import CSV_FIELDS, to_csv
from vocab.contract.requests import HistoryQuery, LeaderboardQuery
from vocab.scoring import resolve_weights


def _csv_response(rows: list[dict[str, Any]], kind: str, filename: str) -> web.Response:
    return web.Response(text=to_csv(rows, CSV_FIELDS[kind]), content_type="text/csv", charset="utf-8",
                        headers={"Content-Disposition": f'attachment; filename="{filename}.csv"'})


def _weights(raw: str | None) -> dict[str, float] | None:
    """The ranking's applied weights from ``?weights=`` (JSON text); None for the defaults."""
    value: Any = None if raw is None else parse_json(raw, "query parameter 'weights'")
    return None if value is None else resolve_weights(value)


async def leaderboard(request: web.Request) -> web.Response:
    query = parse_query(request, LeaderboardQuery)
    body = await service(request).leaderboard_json(query.dataset, query.limit, _weights(query.weights),
                                                   all_content=query.content == "all", split=query.split)
    if query.format == "csv":
        return _csv_response(json.loads(body), "leaderboard", "leaderboard")
    return web.Response(body=body, content_type="application/json")


async def history(request: web.Request) -> web.Response:
    query = parse_query(request, HistoryQuery)
    rows = await service(request).history(request.match_info["model_name"], query.limit, _weights(query.weights),
                                          query.split)
    return _csv_response(rows, "history", "history") if query.format == "csv" else json_response(rows)


def routes() -> list[web.RouteDef]:
    return [
        web.get("/v1/vision/eval/leaderboard", leaderboard),
        web.get("/v1/vision/eval/leaderboard/{model_name}", history),
    ]
