"""``/v1/vision/train``: train a new version, with optional auto-eval and auto-promote.

Both forms of the spec work: JSON with a ``config`` object
(``{"config": {"epochs": 10, ...}}``) and flat form fields (``epochs=10``);
``vocab.contract.requests.TrainRequest`` merges them (a key given both ways
must agree).
"""

from __future__ import annotations

from aiohttp import web

from handlers.body import parse_body, parse_query
from handlers.context import json_response, service
from vocab.contract.requests import TrainJobsQuery, TrainRequest


async def submit_train(request: web.Request) -> web.Response:
    job = await service(request).submit_train(await parse_body(request, TrainRequest))
    return json_response(job.public(), status=202)


async def get_train_job(request: web.Request) -> web.Response:
    job = await service(request).job(request.match_info["job_id"], ("train",))
    return json_response(job.public())


async def list_train_jobs(request: web.Request) -> web.Response:
    query = parse_query(request, TrainJobsQuery)
    jobs, total = await service(request).list_jobs(query.status, "train", query.limit)
    return json_response({"jobs": [j.public() for j in jobs], "total": total})


async def cancel_train_job(request: web.Request) -> web.Response:
    job = await service(request).cancel(request.match_info["job_id"], ("train",))
    return json_response(job.public())


def routes() -> list[web.RouteDef]:
    return [
        web.post("/v1/vision/train", submit_train),
        web.get("/v1/vision/train", list_train_jobs),
        web.get("/v1/vision/train/{job_id}", get_train_job),
        web.delete("/v1/vision/train/{job_id}", cancel_train_job),
    ]
