"""``/v1/vision/models``: versions, current checkpoint, evaluations, decisions; manual promote and rollback."""

from __future__ import annotations

from aiohttp import web

from handlers.body import get_int, get_str, read_body, reject_unknown
from handlers.context import json_response, service
from vocab.errors import InvalidRequest


async def list_models(request: web.Request) -> web.Response:
    return json_response(await service(request).list_models())


async def get_model(request: web.Request) -> web.Response:
    return json_response(await service(request).model_detail(request.match_info["name"]))


async def promote(request: web.Request) -> web.Response:
    data, _ = await read_body(request)
    reject_unknown(data, ("version", "reason"))
    if data.get("version") in (None, ""):
        raise InvalidRequest("field 'version' is required: the v<n> to promote, e.g. {\"version\": 3}")
    version = get_int(data, "version", default=0, lo=1, hi=10**9)
    decision = await service(request).promote(request.match_info["name"], version, get_str(data, "reason", max_len=500))
    return json_response(decision)


async def rollback(request: web.Request) -> web.Response:
    data, _ = await read_body(request) if request.body_exists else ({}, False)
    reject_unknown(data, ("reason",))
    decision = await service(request).rollback(request.match_info["name"], get_str(data, "reason", max_len=500))
    return json_response(decision)


def routes() -> list[web.RouteDef]:
    return [
        web.get("/v1/vision/models", list_models),
        web.get("/v1/vision/models/{name}", get_model),
        web.post("/v1/vision/models/{name}/promote", promote),
        web.post("/v1/vision/models/{name}/rollback", rollback),
    ]
