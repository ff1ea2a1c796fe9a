"""``/v1/vision/eval``: submit an evaluation, poll it, fetch its predictions; compare two models."""

from __future__ import annotations

from aiohttp import web

from handlers.body import parse_body
from handlers.context import json_response, service
from vocab.contract.requests import CompareRequest, EvalRequest


async def submit_eval(request: web.Request) -> web.Response:
    job = await service(request).submit_eval(await parse_body(request, EvalRequest))
    return json_response(job.public(), status=202)


async def get_job(request: web.Request) -> web.Response:
    job = await service(request).job(request.match_info["job_id"], ("eval", "compare"))
    return json_response(job.public())


async def get_predictions(request: web.Request) -> web.StreamResponse:
    path = await service(request).predictions_path(request.match_info["job_id"])
    return web.FileResponse(path, headers={"Content-Type": "application/json"})


async def submit_compare(request: web.Request) -> web.Response:
    job = await service(request).submit_compare(await parse_body(request, CompareRequest))
    return json_response(job.public(), status=202)


def routes() -> list[web.RouteDef]:
    # Fixed paths before parameterised ones: /eval/leaderboard must never be read as a job id.
    return [
        web.post("/v1/vision/eval", submit_eval),
        web.post("/v1/vision/eval/compare", submit_compare),
        web.get("/v1/vision/eval/{job_id}/predictions", get_predictions),
        web.get("/v1/vision/eval/{job_id}", get_job),
    ]
