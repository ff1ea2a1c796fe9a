"""``/v1/vision/train``: train a new version, with optional auto-eval and auto-promote.

Both forms of the spec work: JSON with a ``config`` object
(``{"config": {"epochs": 10, ...}}``) and flat form fields (``epochs=10``).
A flat field and the same key in ``config`` may not disagree.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from handlers.body import (
    get_bool,
    get_float,
    get_int,
    get_object,
    get_split,
    get_str,
    query_params,
    read_body,
    reject_unknown,
    require_str,
)
from handlers.context import json_response, service
from handlers.facade import TrainSubmission
from handlers.jobs import STATUSES
from vocab.errors import InvalidRequest
from vocab.terms import BATCH_MAX, BATCH_MIN, IMGSZ_MAX, IMGSZ_MIN

CONFIG_FIELDS = ("epochs", "batch_size", "imgsz", "learning_rate", "patience")
TOP_FIELDS = ("model", "dataset", "task", "config", "base_model", "auto_eval", "auto_promote", "eval_weights",
              "gates", "split")


def _merged_config(data: dict[str, Any]) -> dict[str, Any]:
    nested = get_object(data, "config") or {}
    reject_unknown(nested, CONFIG_FIELDS)
    merged = {k: data[k] for k in CONFIG_FIELDS if k in data}
    for key, value in nested.items():
        if key in merged and str(merged[key]) != str(value):
            raise InvalidRequest(f"{key!r} is given both flat ({merged[key]!r}) and in config ({value!r})")
        merged[key] = value
    return merged


async def submit_train(request: web.Request) -> web.Response:
    svc = service(request)
    data, _ = await read_body(request)
    reject_unknown(data, TOP_FIELDS + CONFIG_FIELDS)
    cfg = _merged_config(data)
    job = await svc.submit_train(TrainSubmission(
        model=require_str(data, "model"),
        dataset=require_str(data, "dataset"),
        task=get_str(data, "task") or "detection",
        epochs=get_int(cfg, "epochs", default=10, lo=1, hi=1000),
        batch=get_int(cfg, "batch_size", default=16, lo=BATCH_MIN, hi=BATCH_MAX),
        imgsz=get_int(cfg, "imgsz", default=640, lo=IMGSZ_MIN, hi=IMGSZ_MAX),
        learning_rate=get_float(cfg, "learning_rate", default=0.01, lo=0, hi=1, lo_open=True),
        patience=get_int(cfg, "patience", default=50, lo=0, hi=500),
        base_model=get_str(data, "base_model"),
        auto_eval=get_bool(data, "auto_eval"),
        auto_promote=get_bool(data, "auto_promote"),
        eval_weights=get_object(data, "eval_weights"),
        gates=get_object(data, "gates"),
        split=get_split(data) or svc.defaults.split,
    ))
    return json_response(job.public(), status=202)


async def get_train_job(request: web.Request) -> web.Response:
    job = await service(request).job(request.match_info["job_id"], ("train",))
    return json_response(job.public())


async def list_train_jobs(request: web.Request) -> web.Response:
    query = query_params(request, ("status", "limit"))
    status = get_str(query, "status")
    if status is not None and status not in STATUSES:
        raise InvalidRequest(f"invalid status {status!r}; one of {', '.join(STATUSES)}")
    jobs, total = await service(request).list_jobs(status, "train",
                                                   get_int(query, "limit", default=50, lo=1, hi=1000))
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
