"""``/v1/vision/jobs``: list jobs (newest first), read one, cancel one."""

from __future__ import annotations

from aiohttp import web

from handlers.body import parse_query
from handlers.context import json_response, service
from vocab.contract.requests import JobsQuery


async def list_jobs(request: web.Request) -> web.Response:
    query = parse_query(request, JobsQuery)
    jobs, total = await service(request).list_jobs(query.status, query.kind, query.limit)
    return json_response({"jobs": [j.public() for j in jobs], "total": total})


async def get_job(request: web.Request) -> web.Response:
    job = await service(request).job(request.match_info["job_id"])
    return json_response(job.public())


async def cancel_job(request: web.Request) -> web.Response:
    job = await service(request).cancel(request.match_info["job_id"])
    return json_response(job.public())


def routes() -> list[web.RouteDef]:
    return [
        web.get("/v1/vision/jobs", list_jobs),
        web.get("/v1/vision/jobs/{job_id}", get_job),
        web.delete("/v1/vision/jobs/{job_id}", cancel_job),
    ]
