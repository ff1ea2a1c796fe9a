"""``GET /openapi.json``: the OpenAPI 3 description of every route, written by hand as data.

The document is the contract that ``tests/test_openapi.py`` holds the app to:
every route of ``handlers.app.make_app`` is described here and nothing else
is; every status a route can answer is listed, with the ``{"detail": ...}``
error body for each error. Every POST takes ``application/json`` and the
form encodings (``application/x-www-form-urlencoded``, ``multipart/form-data``;
object-valued fields such as ``weights`` are then sent as JSON text).

``/openapi.json`` is harmless metadata, but it sits behind the bearer token
like everything else when one is configured: only ``/healthz``, ``/health`` and the
dashboard's static files are open.
"""

from __future__ import annotations

import copy
from typing import Any

from aiohttp import web

from handlers import openapi_analysis
from handlers.context import json_response
from handlers.openapi_parts import (
    ERROR_TEXT,
    JOB_202,
    JOB_ID,
    LIMIT_1000,
    MODEL_NAME,
    POST_ERRORS,
    body,
    json_content,
    path_param,
    query,
    ref,
    responses,
)
from handlers.openapi_schemas import SCHEMAS
from vocab.terms import JOB_KINDS, JOB_STATUSES


def _job_ops(kind_desc: str) -> dict[str, Any]:
    return {
        "get": {"summary": f"Poll a {kind_desc} job", "parameters": [JOB_ID],
                "responses": responses(200, "The job.", json_content(ref("Job")), (404,))},
    }


PATHS: dict[str, Any] = {
    "/healthz": {
        "get": {
            "summary": "Can the daemon do its work (database, workers, watcher)?",
            "description": "Open even when a bearer token is configured.",
            "security": [],
            "responses": {
                "200": {"description": "Healthy.", "content": json_content(ref("Health"))},
                "400": {"description": ERROR_TEXT[400], "content": json_content(ref("Error"))},
                "503": {"description": "Unhealthy: the body says which part is down.", "content": json_content(ref("Health"))},
            },
        },
    },
    "/health": {
        "get": {
            "summary": "The same as /healthz, where LlamaFarm's server probes its runtime.",
            "description": "Open even when a bearer token is configured.",
            "security": [],
            "responses": {
                "200": {"description": "Healthy.", "content": json_content(ref("Health"))},
                "400": {"description": ERROR_TEXT[400], "content": json_content(ref("Error"))},
                "503": {"description": "Unhealthy: the body says which part is down.", "content": json_content(ref("Health"))},
            },
        },
    },
    "/metrics": {
        "get": {
            "summary": "Prometheus text exposition: jobs by kind and status, queue depth, job durations, "
                       "promotions by decision, the promoted checkpoint's score and mAP50-95 per model, "
                       "HTTP requests by route and status, worker restarts, watcher events, build info, "
                       "process and GC metrics.",
            "responses": responses(200, "Prometheus text format 0.0.4.",
                                    {"text/plain": {"schema": {"type": "string"}}}, ()),
        },
    },
    "/openapi.json": {
        "get": {
            "summary": "This document.",
            "responses": responses(200, "OpenAPI 3 document.", json_content({"type": "object"}), ()),
        },
    },
    "/v1/vision/eval": {
        "post": {
            "summary": "Start a model evaluation job.",
            "requestBody": body("EvalRequest"),
            "responses": responses(202, *JOB_202, (*POST_ERRORS, 403, 404)),
        },
    },
    "/v1/vision/eval/compare": {
        "post": {
            "summary": "Head-to-head comparison of two models on the same dataset.",
            "requestBody": body("CompareRequest"),
            "responses": responses(202, *JOB_202, (*POST_ERRORS, 403, 404)),
        },
    },
    "/v1/vision/eval/leaderboard": {
        "get": {
            "summary": "Ranked model leaderboard sorted by composite score.",
            "parameters": [
                query("dataset", {"type": "string", "maxLength": 4096}, "Filter by dataset path."),
                query("limit", {**LIMIT_1000, "default": 20}, "Max results to return."),
                query("weights", {"type": "string", "maxLength": 4096},
                       "Rank by these weights (a JSON object, checked like a request's); default weights if absent."),
                query("content", {"type": "string", "enum": ["current", "all"], "default": "current"},
                       "current: only results of each dataset's latest content; all: every content, marked."),
                query("split", {"type": "string", "enum": ["val", "test", "train"], "default": "val"},
                       "The split whose evaluations are ranked."),
            ],
            "responses": responses(200, "Best evaluation of each model (and dataset), ranked.",
                                    json_content({"type": "array", "items": ref("LeaderboardEntry")}), (400,)),
        },
    },
    "/v1/vision/eval/leaderboard/{model_name}": {
        "get": {
            "summary": "Evaluation history for a specific model across all runs.",
            "parameters": [
                path_param("model_name", "The model name as evaluations recorded it.", minLength=1),
                query("limit", {**LIMIT_1000, "default": 50}, "Max results to return."),
                query("weights", {"type": "string", "maxLength": 4096},
                       "Score every row by these weights (a JSON object); default weights if absent."),
                query("split", {"type": "string", "enum": ["val", "test", "train"]},
                       "Only evaluations of this split (default: every split)."),
            ],
            "responses": responses(200, "Evaluations of the model, newest first.",
                                    json_content({"type": "array", "items": ref("HistoryEntry")}), (400, 404)),
        },
    },
    "/v1/vision/eval/{job_id}": _job_ops("eval or compare"),
    "/v1/vision/eval/{job_id}/predictions": {
        "get": {
            "summary": "The predictions artifact of a completed eval job (COCO-style detections).",
            "parameters": [JOB_ID],
            "responses": responses(200, "Every prediction of the evaluation.",
                                    json_content({"type": "array", "items": ref("Detection")}), (404, 409)),
        },
    },
    "/v1/vision/jobs": {
        "get": {
            "summary": "List jobs, newest first.",
            "parameters": [
                query("status", {"type": "string", "enum": list(JOB_STATUSES)}, "Only jobs in this state."),
                query("kind", {"type": "string", "enum": list(JOB_KINDS)}, "Only jobs of this kind."),
                query("limit", {**LIMIT_1000, "default": 50}, "Max jobs to return."),
            ],
            "responses": responses(200, "The jobs.", json_content(ref("JobList")), (400,)),
        },
    },
    "/v1/vision/jobs/{job_id}": {
        **_job_ops("any"),
        "delete": {
            "summary": "Cancel a queued or running job.",
            "parameters": [JOB_ID],
            "responses": responses(200, "The job after the cancel request.", json_content(ref("Job")), (404, 409)),
        },
    },
    "/v1/vision/train": {
        "post": {
            "summary": "Train a new version, with optional auto-eval and auto-promote.",
            "requestBody": body("TrainRequest"),
            "responses": responses(202, *JOB_202, (*POST_ERRORS, 403, 404)),
        },
        "get": {
            "summary": "List train jobs, newest first.",
            "parameters": [
                query("status", {"type": "string", "enum": list(JOB_STATUSES)}, "Only jobs in this state."),
                query("limit", {**LIMIT_1000, "default": 50}, "Max jobs to return."),
            ],
            "responses": responses(200, "The train jobs.", json_content(ref("JobList")), (400,)),
        },
    },
    "/v1/vision/train/{job_id}": {
        **_job_ops("train"),
        "delete": {
            "summary": "Cancel a queued or running train job.",
            "parameters": [JOB_ID],
            "responses": responses(200, "The job after the cancel request.", json_content(ref("Job")), (404, 409)),
        },
    },
    "/v1/vision/models": {
        "get": {
            "summary": "Models under the models root, with their versions and latest evaluation.",
            "responses": responses(200, "The models.", json_content(ref("ModelList")), ()),
        },
    },
    "/v1/vision/models/{name}": {
        "get": {
            "summary": "One model: versions, what current.pt holds, evaluations, skipped files, decisions.",
            "parameters": [MODEL_NAME],
            "responses": responses(200, "The model.", json_content(ref("ModelDetail")), (400, 403, 404)),
        },
    },
    "/v1/vision/models/{name}/promote": {
        "post": {
            "summary": "Make v<version>.pt the model's current.pt now, whatever its score (audited).",
            "parameters": [MODEL_NAME],
            "requestBody": body("PromoteRequest"),
            "responses": responses(200, "The recorded decision.", json_content(ref("PromotionDecision")),
                                    (*POST_ERRORS, 403, 404, 409)),
        },
    },
    "/v1/vision/models/{name}/rollback": {
        "post": {
            "summary": "Restore the checkpoint current.pt held before the last promotion (byte for byte).",
            "parameters": [MODEL_NAME],
            "requestBody": body("RollbackRequest", required=False),
            "responses": responses(200, "The recorded rollback.", json_content(ref("PromotionDecision")),
                                    (*POST_ERRORS, 403, 404, 409)),
        },
    },
}

PATHS.update(openapi_analysis.paths())

DOCUMENT: dict[str, Any] = {
    "openapi": "3.0.3",
    "info": {
        "title": "vision-evald",
        "version": "0.1.0",
        "description": "Evaluate, compare and promote YOLO detection checkpoints. Every job is asynchronous "
                       "and polled by id. Errors are JSON {\"detail\": string} with the status listed per "
                       "operation. When [server] auth_token is set, every route but /healthz, /health and the "
                       "dashboard's static files (/, /dashboard/*) needs 'Authorization: Bearer <token>'. "
                       "With [server] upstream_url set, every other /v1/ request (a path or method not listed "
                       "here) is forwarded to LlamaFarm's runtime there, its answer streamed back; 502 when it "
                       "cannot be reached.",
    },
    "servers": [{"url": "/"}],
    "components": {
        "schemas": SCHEMAS,
        "securitySchemes": {"bearerToken": {"type": "http", "scheme": "bearer"}},
    },
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
