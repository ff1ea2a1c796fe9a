"""``/v1/vision/eval/leaderboard``: ranked best evaluations, and one model's history."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from evaluation.errors import InvalidRequest
from handlers.body import get_int, get_str, reject_unknown
from handlers.context import json_response, service
from handlers.evals import get_split
from store.export import CSV_FIELDS, to_csv


def _wants_csv(query: dict[str, str]) -> bool:
    fmt = query.get("format", "json")
    if fmt not in ("json", "csv"):
        raise InvalidRequest(f"invalid format {fmt!r}; one of json, csv")
    return fmt == "csv"


def _csv_response(rows: list[dict[str, Any]], kind: str, filename: str) -> web.Response:
    return web.Response(text=to_csv(rows, CSV_FIELDS[kind]), content_type="text/csv", charset="utf-8",
                        headers={"Content-Disposition": f'attachment; filename="{filename}.csv"'})


async def leaderboard(request: web.Request) -> web.Response:
    query = dict(request.query)
    reject_unknown(query, ("dataset", "limit", "format", "split"))
    csv = _wants_csv(query)
    body = await service(request).leaderboard_json(
        get_str(query, "dataset"), get_int(query, "limit", default=20, lo=1, hi=1000),
        get_split(query, "val"),  # type: ignore[arg-type]
    )
    if csv:
        return _csv_response(json.loads(body), "leaderboard", "leaderboard")
    return web.Response(body=body, content_type="application/json")


async def history(request: web.Request) -> web.Response:
    query = dict(request.query)
    reject_unknown(query, ("limit", "format", "split"))
    csv = _wants_csv(query)
    rows = await service(request).history(
        request.match_info["model_name"], get_int(query, "limit", default=50, lo=1, hi=1000),
        get_split(query, None),
    )
    return _csv_response(rows, "history", "history") if csv else json_response(rows)


def routes() -> list[web.RouteDef]:
    return [
        web.get("/v1/vision/eval/leaderboard", leaderboard),
        web.get("/v1/vision/eval/leaderboard/{model_name}", history),
    ]
