"""Curves, error analysis and dataset images of one evaluation, by eval job id or by evaluation id.

- ``GET /v1/vision/eval/{job_id}/curves|errors|images/{image}``: through the eval job;
- ``GET /v1/vision/evaluations/{eval_id}`` (the stored result) and the same
  three sub-routes by evaluation id, for evaluations whose jobs were pruned.

``errors`` holds the per-box lists (``prediction_types``, one letter per
row of the predictions artifact, and ``missed_boxes``) unless ``?boxes=false``. An image is served only by a name
the evaluation lists (see ``daemon.app.analyses``).
"""

from __future__ import annotations

from aiohttp import web

from handlers.body import parse_path, parse_query
from handlers.context import json_response, service
from vocab.contract.requests import ErrorsQuery, EvaluationPath, NoQuery


async def _eval_id(request: web.Request) -> int:
    if "job_id" in request.match_info:
        return await service(request).eval_id_of_job(request.match_info["job_id"])
    return parse_path(request, EvaluationPath).eval_id


async def evaluation(request: web.Request) -> web.Response:
    return json_response(await service(request).evaluation(await _eval_id(request)))


async def curves(request: web.Request) -> web.Response:
    parse_query(request, NoQuery)
    return json_response(await service(request).artifact(await _eval_id(request), "curves"))


async def errors(request: web.Request) -> web.Response:
    full = parse_query(request, ErrorsQuery).boxes
    return json_response(await service(request).artifact(await _eval_id(request), "errors", full=full))


async def image(request: web.Request) -> web.StreamResponse:
    path, content_type = await service(request).image(await _eval_id(request), request.match_info["image"])
    return web.FileResponse(path, headers={"Content-Type": content_type, "Cache-Control": "private, max-age=3600"})


def routes() -> list[web.RouteDef]:
    out = []
    for base in ("/v1/vision/eval/{job_id}", "/v1/vision/evaluations/{eval_id}"):
        out += [
            web.get(f"{base}/curves", curves),
            web.get(f"{base}/errors", errors),
            web.get(base + "/images/{image:.+}", image),
        ]
    out.append(web.get("/v1/vision/evaluations/{eval_id}", evaluation))
    return out
