"""``/v1/vision/models``: versions, current checkpoint, evaluations, decisions; manual promote and rollback."""

from __future__ import annotations

from aiohttp import web

from handlers.body import parse_body
from handlers.context import json_response, service
from vocab.contract.requests import PromoteRequest, RollbackRequest


async def list_models(request: web.Request) -> web.Response:
    return json_response(await service(request).list_models())


async def get_model(request: web.Request) -> web.Response:
    return json_response(await service(request).model_detail(request.match_info["name"]))


async def promote(request: web.Request) -> web.Response:
    body = await parse_body(request, PromoteRequest)
    return json_response(await service(request).promote(request.match_info["name"], body))


async def rollback(request: web.Request) -> web.Response:
    body = await parse_body(request, RollbackRequest) if request.body_exists else RollbackRequest()
    return json_response(await service(request).rollback(request.match_info["name"], body.reason))


def routes() -> list[web.RouteDef]:
    return [
        web.get("/v1/vision/models", list_models),
        web.get("/v1/vision/models/{name}", get_model),
        web.post("/v1/vision/models/{name}/promote", promote),
        web.post("/v1/vision/models/{name}/rollback", rollback),
    ]
