"""``/v1/vision/jobs``: list jobs (newest first), read one, cancel one."""

from __future__ import annotations

from aiohttp import web

from handlers.body import get_int, get_str, query_params
from handlers.context import json_response, service
from vocab.errors import InvalidRequest
from vocab.terms import JOB_KINDS, JOB_STATUSES

STATUSES = JOB_STATUSES
KINDS = JOB_KINDS


async def list_jobs(request: web.Request) -> web.Response:
    query = query_params(request, ("status", "kind", "limit"))
    status, kind = get_str(query, "status"), get_str(query, "kind")
    if status is not None and status not in STATUSES:
        raise InvalidRequest(f"invalid status {status!r}; one of {', '.join(STATUSES)}")
    if kind is not None and kind not in KINDS:
        raise InvalidRequest(f"invalid kind {kind!r}; one of {', '.join(KINDS)}")
    jobs, total = await service(request).list_jobs(status, kind,
                                                   get_int(query, "limit", default=50, lo=1, hi=1000))
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
