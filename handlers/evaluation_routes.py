"""Curves, error analysis and dataset images of one evaluation, by eval job id or by evaluation id.

- ``GET /v1/vision/eval/{job_id}/curves|errors|images/{image}``: through the eval job;
- ``GET /v1/vision/evaluations/{eval_id}`` (the stored result) and the same
  three sub-routes by evaluation id, for evaluations whose jobs were pruned;
- ``GET /v1/vision/evaluations/{eval_id}/gallery|cells|annotations``: what the
  dashboard pages through, whatever the number of images (failure examples
  of one kind, the images behind a confusion-matrix cell, what was predicted
  and labelled on one image; see ``daemon.app.analyses``).

``errors`` holds the per-box lists (``prediction_types``, one letter per
row of the predictions artifact, and ``missed_boxes``) unless ``?boxes=false``,
and the per-image lists (``images``, ``cells``) unless ``?images=false``. An
image is served only by a name the evaluation lists (see ``daemon.app.analyses``).
"""

from __future__ import annotations

from aiohttp import web

from handlers.body import parse_path, parse_query
from handlers.context import json_object_response, json_response, service
from vocab.contract.requests import AnnotationsQuery, CellQuery, ErrorsQuery, EvaluationPath, GalleryQuery, NoQuery

EVALUATION = "/v1/vision/evaluations/{eval_id}"


async def _eval_id(request: web.Request) -> int:
    if "job_id" in request.match_info:
        return await service(request).eval_id_of_job(request.match_info["job_id"])
    return parse_path(request, EvaluationPath).eval_id


async def evaluation(request: web.Request) -> web.Response:
    return json_response(await service(request).evaluation(await _eval_id(request)))


async def curves(request: web.Request) -> web.Response:
    parse_query(request, NoQuery)
    eval_id = await _eval_id(request)
    return json_object_response(await service(request).curves_json(eval_id), eval_id=eval_id)


async def errors(request: web.Request) -> web.Response:
    q = parse_query(request, ErrorsQuery)
    return json_response(await service(request).errors(await _eval_id(request), full=q.boxes,
                                                         images=q.images))


async def image(request: web.Request) -> web.StreamResponse:
    path, content_type = await service(request).image(await _eval_id(request), request.match_info["image"])
    return web.FileResponse(path, headers={"Content-Type": content_type, "Cache-Control": "private, max-age=3600"})


async def gallery(request: web.Request) -> web.Response:
    q = parse_query(request, GalleryQuery)
    return json_response(await service(request).gallery(await _eval_id(request), q.kind, q.cls, q.offset, q.limit))


async def cells(request: web.Request) -> web.Response:
    q = parse_query(request, CellQuery)
    return json_response(await service(request).cell(await _eval_id(request), q.predicted, q.true, q.offset,
                                                     q.limit))


async def image_annotations(request: web.Request) -> web.Response:
    q = parse_query(request, AnnotationsQuery)
    return json_response(await service(request).annotations(await _eval_id(request), q.image, q.cls))


def routes() -> list[web.RouteDef]:
    out = []
    for base in ("/v1/vision/eval/{job_id}", EVALUATION):
        out += [
            web.get(f"{base}/curves", curves),
            web.get(f"{base}/errors", errors),
            web.get(base + "/images/{image:.+}", image),
        ]
    out += [
        web.get(EVALUATION, evaluation),
        web.get(f"{EVALUATION}/gallery", gallery),
        web.get(f"{EVALUATION}/cells", cells),
        web.get(f"{EVALUATION}/annotations", image_annotations),
    ]
    return out
