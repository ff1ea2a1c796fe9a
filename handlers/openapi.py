"""``GET /openapi.json``: the OpenAPI 3.1 description of every route.

Written here: each route's path, method, summary, the contract models it takes and answers, and its error
statuses. Every schema is generated from ``vocab.contract`` (``vocab.contract.json_schema``), so the
document's bounds are those the handlers enforce (tests/test_contract_bounds.py); tests/test_openapi.py
holds the app to it. Every POST takes JSON and the form encodings (object-valued fields as JSON text).
Behind the bearer token when one is configured, like every route but ``/healthz``, ``/health`` and the
dashboard's static files.
"""

from __future__ import annotations

import copy
from typing import Any

from aiohttp import web

from handlers.context import json_response
from handlers.openapi_parts import POST_ERRORS, SCHEMAS, array_of, body, json_content, op, path_param, public_op, ref
from vocab.contract import requests as rq
from vocab.contract.fields import NAME_PATTERN
from vocab.contract.json_schema import parameters as params_of

JOB_ID = path_param("job_id", "The job id returned when the job was submitted.", minLength=1, maxLength=64)
MODEL_NAME = path_param("name", "A model name: a folder under the models root.", pattern=NAME_PATTERN)
EVAL_ID = params_of(rq.EvaluationPath, "path")[0]
IMAGE = path_param("image", "An image name the evaluation lists (its errors' ``images``), relative to the val "
                            "folder. Nothing else is served.", minLength=1)
JOB = (200, "The job.", json_content(ref("Job")))
QUEUED = (202, "The job, queued: poll it by its job_id.", json_content(ref("Job")))
CANCELLED = (200, "The job after the cancel request.", json_content(ref("Job")))
OBJECT = json_content({"type": "object", "additionalProperties": True})
HEALTH = {"200": {"description": "Healthy.", "content": json_content(ref("Health"))},
          "503": {"description": "Unhealthy: the body says which part is down.", "content": json_content(ref("Health"))}}
TEXT = {"schema": {"type": "string"}}
CSV = {"text/csv": TEXT}  # ?format=csv


def _analysis(base: str, param: dict[str, Any]) -> dict[str, Any]:
    """The curves, error analysis and images of one evaluation, by eval job or by evaluation id."""
    return {
        f"{base}/curves": {"get": op("Curves of an evaluation: PR per class and all, P/R/F1 against confidence (at "
                                     "most 101 points each), with the operating point.", (200, "The curves.", OBJECT),
                                     (404, 409), parameters=[param])},
        f"{base}/errors": {"get": op("Error analysis of an evaluation at its operating point: error types overall, "
                                     "per class and per size bucket, confusion matrix, failure examples.",
                                     (200, "The error analysis.", OBJECT), (404, 409),
                                     parameters=[param, *params_of(rq.ErrorsQuery)])},
        base + "/images/{image}": {"get": op(
            "An image of the evaluation's dataset, by a name the evaluation lists.",
            (200, "The image file.", {"image/*": {"schema": {"type": "string", "format": "binary"}}}), (404, 409),
            parameters=[param, IMAGE])},
    }


PATHS: dict[str, Any] = {
    "/healthz": {"get": public_op("Can the daemon do its work (database, workers, watcher)? Open without the "
                                  "token.", HEALTH)},
    "/health": {"get": public_op("The same as /healthz, where LlamaFarm's server probes its runtime.", HEALTH)},
    "/metrics": {"get": op("Prometheus text exposition: jobs by kind and status, queue depth, job durations, "
                           "promotions by decision, the promoted checkpoint's score and mAP50-95 per model, HTTP "
                           "requests by route and status, worker restarts, watcher events, build info, process "
                           "and GC metrics.", (200, "Prometheus text format 0.0.4.", {"text/plain": TEXT}))},
    "/openapi.json": {"get": op("This document.", (200, "OpenAPI 3.1 document.", json_content({"type": "object"})))},
    "/v1/vision/eval": {"post": op("Start a model evaluation job.", QUEUED, (*POST_ERRORS, 403, 404),
                                   requestBody=body(rq.EvalRequest))},
    "/v1/vision/eval/compare": {"post": op("Head-to-head comparison of two models on the same dataset.", QUEUED,
                                           (*POST_ERRORS, 403, 404), requestBody=body(rq.CompareRequest))},
    "/v1/vision/eval/leaderboard": {"get": op(
        "Ranked model leaderboard sorted by composite score.",
        (200, "Best evaluation of each model (and dataset), ranked.", {**array_of("LeaderboardEntry"), **CSV}),
        parameters=params_of(rq.LeaderboardQuery))},
    "/v1/vision/eval/leaderboard/{model_name}": {"get": op(
        "Evaluation history for a specific model across all runs.",
        (200, "Evaluations of the model, newest first.", {**array_of("HistoryEntry"), **CSV}), (404,),
        parameters=[path_param("model_name", "The model name as evaluations recorded it.", minLength=1),
                    *params_of(rq.HistoryQuery)])},
    "/v1/vision/eval/{job_id}": {"get": op("Poll an eval or compare job.", JOB, (404,), parameters=[JOB_ID])},
    "/v1/vision/eval/{job_id}/predictions": {"get": op(
        "The predictions artifact of a completed eval job (COCO-style detections).",
        (200, "Every prediction of the evaluation.", array_of("Detection")), (404, 409), parameters=[JOB_ID])},
    "/v1/vision/jobs": {"get": op("List jobs, newest first.", (200, "The jobs.", json_content(ref("JobList"))),
                                  parameters=params_of(rq.JobsQuery))},
    "/v1/vision/jobs/{job_id}": {
        "get": op("Poll any job.", JOB, (404,), parameters=[JOB_ID]),
        "delete": op("Cancel a queued or running job.", CANCELLED, (404, 409), parameters=[JOB_ID])},
    "/v1/vision/train": {
        "post": op("Train a new version, with optional auto-eval and auto-promote.", QUEUED,
                   (*POST_ERRORS, 403, 404), requestBody=body(rq.TrainRequest)),
        "get": op("List train jobs, newest first.", (200, "The train jobs.", json_content(ref("JobList"))),
                  parameters=params_of(rq.TrainJobsQuery))},
    "/v1/vision/train/{job_id}": {
        "get": op("Poll a train job.", JOB, (404,), parameters=[JOB_ID]),
        "delete": op("Cancel a queued or running train job.", CANCELLED, (404, 409), parameters=[JOB_ID])},
    "/v1/vision/models": {"get": op("Models under the models root, with their versions and latest evaluation.",
                                    (200, "The models.", json_content(ref("ModelList"))))},
    "/v1/vision/models/{name}": {"get": op(
        "One model: versions, what current.pt holds, evaluations, skipped files, decisions.",
        (200, "The model.", json_content(ref("ModelDetail"))), (404,), parameters=[MODEL_NAME])},
    "/v1/vision/models/{name}/promote": {"post": op(
        "Make v<version>.pt the model's current.pt now, whatever its score (audited).",
        (200, "The recorded decision.", json_content(ref("PromotionDecision"))), (*POST_ERRORS, 404, 409),
        parameters=[MODEL_NAME], requestBody=body(rq.PromoteRequest))},
    "/v1/vision/models/{name}/rollback": {"post": op(
        "Restore the checkpoint current.pt held before the last promotion (byte for byte).",
        (200, "The recorded rollback.", json_content(ref("PromotionDecision"))), (*POST_ERRORS, 404, 409),
        parameters=[MODEL_NAME], requestBody=body(rq.RollbackRequest, required=False))},
    **_analysis("/v1/vision/eval/{job_id}", JOB_ID),
    **_analysis("/v1/vision/evaluations/{eval_id}", EVAL_ID),
    "/v1/vision/evaluations/{eval_id}": {"get": op(
        "A stored evaluation's result, by id (also when its job was pruned).", (200, "The result.", OBJECT), (404,),
        parameters=[EVAL_ID])},
    "/v1/vision/evaluations/{eval_id}/gallery": {"get": op(
        "A page of failure examples of one kind (and class), with the true count of such failures.",
        (200, "The page.", json_content(ref("GalleryPage"))), (404, 409),
        parameters=[EVAL_ID, *params_of(rq.GalleryQuery)])},
    "/v1/vision/evaluations/{eval_id}/cells": {"get": op(
        "A page of the images behind one confusion-matrix cell, each with what was predicted and labelled on it.",
        (200, "The page.", json_content(ref("CellPage"))), (404, 409),
        parameters=[EVAL_ID, *params_of(rq.CellQuery)])},
    "/v1/vision/evaluations/{eval_id}/annotations": {"get": op(
        "What was predicted (at the operating point) and labelled on one image of the evaluation.",
        (200, "The image's predictions and labels.", json_content(ref("Annotations"))), (404, 409),
        parameters=[EVAL_ID, *params_of(rq.AnnotationsQuery)])},
    "/": {"get": public_op("The dashboard (HTML; open without the token: it holds no data).",
                           {"200": {"description": "The page.", "content": {"text/html": TEXT}}})},
    "/dashboard/session": {"get": public_op(
        "Whether API calls need the bearer token (asked by the dashboard before its first call).",
        {"200": {"description": "auth_required", "content": OBJECT}})},
    "/dashboard/{name}": {"get": {**public_op(
        "A static file of the dashboard (a fixed list: app.js, charts.js, widgets.js, overlays.js, pages.js, "
        "evaluation.js, compare.js, style.css).",
        {"200": {"description": "The file.", "content": {"text/javascript": TEXT, "text/css": TEXT}}}, 404),
        "parameters": [path_param("name", "The file name.", minLength=1)]}},
}

DOCUMENT: dict[str, Any] = {
    "openapi": "3.1.0",
    "info": {
        "title": "vision-evald",
        "version": "0.1.0",
        "description": "Evaluate, compare and promote YOLO checkpoints. Every job is asynchronous and polled by "
                       "id. Errors are JSON {\"detail\": string} with the status listed per operation. When "
                       "[server] auth_token is set, every route but /healthz, /health and the dashboard's static "
                       "files (/, /dashboard/*) needs 'Authorization: Bearer <token>'. With [server] upstream_url "
                       "set, every other /v1/ request (a path or method not listed here) is forwarded to "
                       "LlamaFarm's runtime there, its answer streamed back; 502 when it cannot be reached.",
    },
    "servers": [{"url": "/"}],
    "components": {"schemas": SCHEMAS, "securitySchemes": {"bearerToken": {"type": "http", "scheme": "bearer"}}},
    # The token is optional (off unless configured): either no auth, or the bearer token.
    "security": [{}, {"bearerToken": []}],
    "paths": PATHS,
}


def document() -> dict[str, Any]:
    """A copy of the OpenAPI document (callers may mutate it)."""
    return copy.deepcopy(DOCUMENT)


async def openapi_json(request: web.Request) -> web.Response:
    return json_response(DOCUMENT)


def routes() -> list[web.RouteDef]:
    return [web.get("/openapi.json", openapi_json)]
