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
from handlers.openapi_schemas import SCHEMAS
from vocab.terms import JOB_KINDS, JOB_STATUSES

JSON = "application/json"
FORM_URLENCODED = "application/x-www-form-urlencoded"
MULTIPART = "multipart/form-data"

# In the form encodings every value is text: objects (weights, config) are JSON text.
_FORM_OBJECT_FIELDS = {"weights", "eval_weights", "config", "gates"}


def _form_schema(name: str) -> dict[str, Any]:
    schema = copy.deepcopy(SCHEMAS[name])
    for key in _FORM_OBJECT_FIELDS & set(schema["properties"]):
        schema["properties"][key] = {"type": "string", "description": f"``{key}`` as JSON text"}
    return schema


# -- responses ---------------------------------------------------------------------------------
ERROR_TEXT = {
    400: "The request is malformed (at the HTTP level too: an over-long URL or header, a body that does "
         "not parse) or a value is out of range; the detail says which.",
    401: "A bearer token is configured and the request lacks it or has a wrong one.",
    403: "A path lies outside the configured allowed roots, or the request is cross-site (a foreign Origin, "
         "Sec-Fetch-Site: cross-site on a state change) or names a Host that is not this daemon's.",
    404: "No such model, job, version, evaluation or endpoint.",
    409: "The request conflicts with the current state.",
    413: "The request body is larger than [server] max_body_bytes.",
    415: "The body is neither JSON nor form data.",
    503: "The job queue is full or the daemon is shutting down (see Retry-After).",
}


def _ref(name: str) -> dict[str, Any]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict[str, Any]) -> dict[str, Any]:
    return {JSON: {"schema": schema}}


def _responses(ok: int, ok_desc: str, ok_content: dict[str, Any], errors: tuple[int, ...]) -> dict[str, Any]:
    out: dict[str, Any] = {str(ok): {"description": ok_desc, "content": ok_content}}
    for status in sorted({400, 401, 403, 503, *errors}):
        out[str(status)] = {"description": ERROR_TEXT[status], "content": _json(_ref("Error"))}
    return out


def _body(name: str, *, required: bool = True) -> dict[str, Any]:
    form = _form_schema(name)
    return {
        "required": required,
        "content": {JSON: {"schema": _ref(name)}, FORM_URLENCODED: {"schema": form}, MULTIPART: {"schema": form}},
    }


def _path_param(name: str, description: str, **schema: Any) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "description": description,
            "schema": {"type": "string", **schema}}


def _query(name: str, schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "description": description, "schema": schema}


JOB_ID = _path_param("job_id", "The job id returned when the job was submitted.", minLength=1, maxLength=64)
MODEL_NAME = _path_param("name", "A model name: a folder under the models root.",
                         pattern="^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
LIMIT_1000 = {"type": "integer", "minimum": 1, "maximum": 1000}
POST_ERRORS = (400, 413, 415)
JOB_202 = ("The job, queued: poll it by its job_id.", _json(_ref("Job")))


def _job_ops(kind_desc: str) -> dict[str, Any]:
    return {
        "get": {"summary": f"Poll a {kind_desc} job", "parameters": [JOB_ID],
                "responses": _responses(200, "The job.", _json(_ref("Job")), (404,))},
    }


PATHS: dict[str, Any] = {
    "/healthz": {
        "get": {
            "summary": "Can the daemon do its work (database, workers, watcher)?",
            "description": "Open even when a bearer token is configured.",
            "security": [],
            "responses": {
                "200": {"description": "Healthy.", "content": _json(_ref("Health"))},
                "400": {"description": ERROR_TEXT[400], "content": _json(_ref("Error"))},
                "503": {"description": "Unhealthy: the body says which part is down.", "content": _json(_ref("Health"))},
            },
        },
    },
    "/health": {
        "get": {
            "summary": "The same as /healthz, where LlamaFarm's server probes its runtime.",
            "description": "Open even when a bearer token is configured.",
            "security": [],
            "responses": {
                "200": {"description": "Healthy.", "content": _json(_ref("Health"))},
                "400": {"description": ERROR_TEXT[400], "content": _json(_ref("Error"))},
                "503": {"description": "Unhealthy: the body says which part is down.", "content": _json(_ref("Health"))},
            },
        },
    },
    "/metrics": {
        "get": {
            "summary": "Prometheus text exposition: jobs by kind and status, queue depth, job durations, "
                       "promotions by decision, the promoted checkpoint's score and mAP50-95 per model, "
                       "HTTP requests by route and status, worker restarts, watcher events, build info, "
                       "process and GC metrics.",
            "responses": _responses(200, "Prometheus text format 0.0.4.",
                                    {"text/plain": {"schema": {"type": "string"}}}, ()),
        },
    },
    "/openapi.json": {
        "get": {
            "summary": "This document.",
            "responses": _responses(200, "OpenAPI 3 document.", _json({"type": "object"}), ()),
        },
    },
    "/v1/vision/eval": {
        "post": {
            "summary": "Start a model evaluation job.",
            "requestBody": _body("EvalRequest"),
            "responses": _responses(202, *JOB_202, (*POST_ERRORS, 403, 404)),
        },
    },
    "/v1/vision/eval/compare": {
        "post": {
            "summary": "Head-to-head comparison of two models on the same dataset.",
            "requestBody": _body("CompareRequest"),
            "responses": _responses(202, *JOB_202, (*POST_ERRORS, 403, 404)),
        },
    },
    "/v1/vision/eval/leaderboard": {
        "get": {
            "summary": "Ranked model leaderboard sorted by composite score.",
            "parameters": [
                _query("dataset", {"type": "string", "maxLength": 4096}, "Filter by dataset path."),
                _query("limit", {**LIMIT_1000, "default": 20}, "Max results to return."),
                _query("weights", {"type": "string", "maxLength": 4096},
                       "Rank by these weights (a JSON object, checked like a request's); default weights if absent."),
                _query("content", {"type": "string", "enum": ["current", "all"], "default": "current"},
                       "current: only results of each dataset's latest content; all: every content, marked."),
                _query("split", {"type": "string", "enum": ["val", "test", "train"], "default": "val"},
                       "The split whose evaluations are ranked."),
            ],
            "responses": _responses(200, "Best evaluation of each model (and dataset), ranked.",
                                    _json({"type": "array", "items": _ref("LeaderboardEntry")}), (400,)),
        },
    },
    "/v1/vision/eval/leaderboard/{model_name}": {
        "get": {
            "summary": "Evaluation history for a specific model across all runs.",
            "parameters": [
                _path_param("model_name", "The model name as evaluations recorded it.", minLength=1),
                _query("limit", {**LIMIT_1000, "default": 50}, "Max results to return."),
                _query("weights", {"type": "string", "maxLength": 4096},
                       "Score every row by these weights (a JSON object); default weights if absent."),
                _query("split", {"type": "string", "enum": ["val", "test", "train"]},
                       "Only evaluations of this split (default: every split)."),
            ],
            "responses": _responses(200, "Evaluations of the model, newest first.",
                                    _json({"type": "array", "items": _ref("HistoryEntry")}), (400, 404)),
        },
    },
    "/v1/vision/eval/{job_id}": _job_ops("eval or compare"),
    "/v1/vision/eval/{job_id}/predictions": {
        "get": {
            "summary": "The predictions artifact of a completed eval job (COCO-style detections).",
            "parameters": [JOB_ID],
            "responses": _responses(200, "Every prediction of the evaluation.",
                                    _json({"type": "array", "items": _ref("Detection")}), (404, 409)),
        },
    },
    "/v1/vision/jobs": {
        "get": {
            "summary": "List jobs, newest first.",
            "parameters": [
                _query("status", {"type": "string", "enum": list(JOB_STATUSES)}, "Only jobs in this state."),
                _query("kind", {"type": "string", "enum": list(JOB_KINDS)}, "Only jobs of this kind."),
                _query("limit", {**LIMIT_1000, "default": 50}, "Max jobs to return."),
            ],
            "responses": _responses(200, "The jobs.", _json(_ref("JobList")), (400,)),
        },
    },
    "/v1/vision/jobs/{job_id}": {
        **_job_ops("any"),
        "delete": {
            "summary": "Cancel a queued or running job.",
            "parameters": [JOB_ID],
            "responses": _responses(200, "The job after the cancel request.", _json(_ref("Job")), (404, 409)),
        },
    },
    "/v1/vision/train": {
        "post": {
            "summary": "Train a new version, with optional auto-eval and auto-promote.",
            "requestBody": _body("TrainRequest"),
            "responses": _responses(202, *JOB_202, (*POST_ERRORS, 403, 404)),
        },
        "get": {
            "summary": "List train jobs, newest first.",
            "parameters": [
                _query("status", {"type": "string", "enum": list(JOB_STATUSES)}, "Only jobs in this state."),
                _query("limit", {**LIMIT_1000, "default": 50}, "Max jobs to return."),
            ],
            "responses": _responses(200, "The train jobs.", _json(_ref("JobList")), (400,)),
        },
    },
    "/v1/vision/train/{job_id}": {
        **_job_ops("train"),
        "delete": {
            "summary": "Cancel a queued or running train job.",
            "parameters": [JOB_ID],
            "responses": _responses(200, "The job after the cancel request.", _json(_ref("Job")), (404, 409)),
        },
    },
    "/v1/vision/models": {
        "get": {
            "summary": "Models under the models root, with their versions and latest evaluation.",
            "responses": _responses(200, "The models.", _json(_ref("ModelList")), ()),
        },
    },
    "/v1/vision/models/{name}": {
        "get": {
            "summary": "One model: versions, what current.pt holds, evaluations, skipped files, decisions.",
            "parameters": [MODEL_NAME],
            "responses": _responses(200, "The model.", _json(_ref("ModelDetail")), (400, 403, 404)),
        },
    },
    "/v1/vision/models/{name}/promote": {
        "post": {
            "summary": "Make v<version>.pt the model's current.pt now, whatever its score (audited).",
            "parameters": [MODEL_NAME],
            "requestBody": _body("PromoteRequest"),
            "responses": _responses(200, "The recorded decision.", _json(_ref("PromotionDecision")),
                                    (*POST_ERRORS, 403, 404, 409)),
        },
    },
    "/v1/vision/models/{name}/rollback": {
        "post": {
            "summary": "Restore the checkpoint current.pt held before the last promotion (byte for byte).",
            "parameters": [MODEL_NAME],
            "requestBody": _body("RollbackRequest", required=False),
            "responses": _responses(200, "The recorded rollback.", _json(_ref("PromotionDecision")),
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
