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

from handlers.body import get_int, get_split, get_str, parse_json, query_params
from handlers.context import json_response, service
from store.export import CSV_FIELDS, to_csv
from vocab.errors import InvalidRequest
from vocab.scoring import resolve_weights

CONTENT = ("current", "all")


def _wants_csv(query: dict[str, str]) -> bool:
    fmt = query.get("format", "json")
    if fmt not in ("json", "csv"):
        raise InvalidRequest(f"invalid format {fmt!r}; one of json, csv")
    return fmt == "csv"


def _csv_response(rows: list[dict[str, Any]], kind: str, filename: str) -> web.Response:
    return web.Response(text=to_csv(rows, CSV_FIELDS[kind]), content_type="text/csv", charset="utf-8",
                        headers={"Content-Disposition": f'attachment; filename="{filename}.csv"'})


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
    query = query_params(request, ("dataset", "limit", "weights", "content", "format", "split"))
    csv = _wants_csv(query)
    content = get_str(query, "content", default="current")
    if content not in CONTENT:
        raise InvalidRequest(f"invalid content {content!r}; one of {', '.join(CONTENT)}")
    body = await service(request).leaderboard_json(
        get_str(query, "dataset"), get_int(query, "limit", default=20, lo=1, hi=1000), _weights(query),
        all_content=content == "all", split=get_split(query) or "val",
    )
    if csv:
        return _csv_response(json.loads(body), "leaderboard", "leaderboard")
    return web.Response(body=body, content_type="application/json")


async def history(request: web.Request) -> web.Response:
    query = query_params(request, ("limit", "weights", "format", "split"))
    csv = _wants_csv(query)
    rows = await service(request).history(
        request.match_info["model_name"], get_int(query, "limit", default=50, lo=1, hi=1000), _weights(query),
        get_split(query),
    )
    return _csv_response(rows, "history", "history") if csv else json_response(rows)


def routes() -> list[web.RouteDef]:
    return [
        web.get("/v1/vision/eval/leaderboard", leaderboard),
        web.get("/v1/vision/eval/leaderboard/{model_name}", history),
    ]
