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
from vocab.tasks import DEFAULT_TASK, canonical_task


def _csv_response(rows: list[dict[str, Any]], kind: str, filename: str) -> web.Response:
    return web.Response(text=to_csv(rows, CSV_FIELDS[kind]), content_type="text/csv", charset="utf-8",
                        headers={"Content-Disposition": f'attachment; filename="{filename}.csv"'})


def _ranking(raw: str | None, task: str | None) -> tuple[dict[str, float] | None, str | None]:
    """The ranking's applied weights from ``?weights=`` (JSON text; None: each task's defaults) and the task
    it ranks (custom weights are one task's: ``?task=``, detection when none is given)."""
    value: Any = None if raw is None else parse_json(raw, "query parameter 'weights'")
    task = canonical_task(task) if task else None
    if value is None:
        return None, task
    task = task or DEFAULT_TASK
    return resolve_weights(value, task), task


async def leaderboard(request: web.Request) -> web.Response:
    query = parse_query(request, LeaderboardQuery)
    weights, task = _ranking(query.weights, query.task)
    body = await service(request).leaderboard_json(query.dataset, query.limit, weights,
                                                   all_content=query.content == "all", split=query.split, task=task)
    if query.format == "csv":
        return _csv_response(json.loads(body), "leaderboard", "leaderboard")
    return web.Response(body=body, content_type="application/json")


async def history(request: web.Request) -> web.Response:
    query = parse_query(request, HistoryQuery)
    weights, task = _ranking(query.weights, query.task)
    rows = await service(request).history(request.match_info["model_name"], query.limit, weights, query.split, task)
    return _csv_response(rows, "history", "history") if query.format == "csv" else json_response(rows)


def routes() -> list[web.RouteDef]:
    return [
        web.get("/v1/vision/eval/leaderboard", leaderboard),
        web.get("/v1/vision/eval/leaderboard/{model_name}", history),
    ]
