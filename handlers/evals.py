"""``/v1/vision/eval``: submit an evaluation, poll it, fetch its predictions; compare two models."""

from __future__ import annotations

from aiohttp import web

from handlers.body import (
    get_bool,
    get_imgsz,
    get_int,
    get_object,
    get_split,
    get_str,
    read_body,
    reject_unknown,
    require_str,
)
from handlers.context import json_response, service
from handlers.facade import CompareSubmission, EvalSubmission
from vocab.terms import BATCH_MAX, BATCH_MIN

EVAL_FIELDS = ("model", "dataset", "imgsz", "batch_size", "weights", "allow_class_mismatch", "auto_promote", "gates",
               "name", "format", "split")
COMPARE_FIELDS = ("model_a", "model_b", "dataset", "imgsz", "batch_size", "weights",
                  "bootstrap_resamples", "bootstrap_seed", "name_a", "name_b", "split")


async def submit_eval(request: web.Request) -> web.Response:
    svc = service(request)
    data, _ = await read_body(request)
    reject_unknown(data, EVAL_FIELDS)
    job = await svc.submit_eval(EvalSubmission(
        model=require_str(data, "model"),
        dataset=require_str(data, "dataset"),
        imgsz=get_imgsz(data),
        batch=get_int(data, "batch_size", default=svc.defaults.batch, lo=BATCH_MIN, hi=BATCH_MAX),
        weights=get_object(data, "weights"),
        allow_class_mismatch=get_bool(data, "allow_class_mismatch"),
        auto_promote=get_bool(data, "auto_promote"),
        gates=get_object(data, "gates"),
        name=get_str(data, "name", max_len=128),
        fmt=get_str(data, "format", max_len=16),
        split=get_split(data) or svc.defaults.split,
    ))
    return json_response(job.public(), status=202)


async def get_job(request: web.Request) -> web.Response:
    job = await service(request).job(request.match_info["job_id"], ("eval", "compare"))
    return json_response(job.public())


async def get_predictions(request: web.Request) -> web.StreamResponse:
    path = await service(request).predictions_path(request.match_info["job_id"])
    return web.FileResponse(path, headers={"Content-Type": "application/json"})


async def submit_compare(request: web.Request) -> web.Response:
    svc = service(request)
    data, _ = await read_body(request)
    reject_unknown(data, COMPARE_FIELDS)
    job = await svc.submit_compare(CompareSubmission(
        model_a=require_str(data, "model_a"),
        model_b=require_str(data, "model_b"),
        dataset=require_str(data, "dataset"),
        imgsz=get_imgsz(data),
        batch=get_int(data, "batch_size", default=svc.defaults.batch, lo=BATCH_MIN, hi=BATCH_MAX),
        weights=get_object(data, "weights"),
        bootstrap_resamples=get_int(data, "bootstrap_resamples", default=svc.defaults.bootstrap_resamples,
                                    lo=0, hi=100_000),
        bootstrap_seed=get_int(data, "bootstrap_seed", default=svc.defaults.bootstrap_seed, lo=0, hi=2**32 - 1),
        name_a=get_str(data, "name_a", max_len=128),
        name_b=get_str(data, "name_b", max_len=128),
        split=get_split(data) or svc.defaults.split,
    ))
    return json_response(job.public(), status=202)


def routes() -> list[web.RouteDef]:
    # Fixed paths before parameterised ones: /eval/leaderboard must never be read as a job id.
    return [
        web.post("/v1/vision/eval", submit_eval),
        web.post("/v1/vision/eval/compare", submit_compare),
        web.get("/v1/vision/eval/{job_id}/predictions", get_predictions),
        web.get("/v1/vision/eval/{job_id}", get_job),
    ]
