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
from handlers.openapi_results import INT as _INT
from handlers.openapi_results import NUM as _NUM
from handlers.openapi_results import RESULT_SCHEMAS
from handlers.openapi_results import STR as _STR

JSON = "application/json"
FORM_URLENCODED = "application/x-www-form-urlencoded"
MULTIPART = "multipart/form-data"

# -- schemas -----------------------------------------------------------------------------------
WEIGHT_KEYS = ("mAP50_95", "mAP50", "precision", "recall", "f1", "small_object_recall",
               "medium_object_recall", "large_object_recall", "speed")
JOB_STATUSES = ["queued", "running", "completed", "failed", "cancelled"]
JOB_KINDS = ["eval", "compare", "train"]

_MODEL_NAME_FIELD = {
    "type": "string", "pattern": "^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$",
    "description": "The name to record a checkpoint path under (history, leaderboard); without it a path "
                   "is named by its run (``<run>/weights/best.pt``), its folder (``v<n>.pt``, "
                   "``current.pt``) or its stem. A model name is its own name.",
}

SPLIT_SCHEMA = {"type": "string", "enum": ["val", "test", "train"],
                "description": "The dataset split evaluated (default: [eval] split, val unless configured); "
                               "a dataset YAML without it is a 400."}

SCHEMAS: dict[str, Any] = {
    **RESULT_SCHEMAS,
    "Error": {
        "type": "object",
        "description": "Every error answer: what is wrong and, where possible, how to fix it.",
        "required": ["detail"],
        "properties": {"detail": {"type": "string"}},
    },
    "Weights": {
        "type": "object",
        "description": "Custom scoring weights (each >= 0, sum <= 1); the remaining default weights fill the rest.",
        "additionalProperties": False,
        "properties": {k: {"type": "number", "minimum": 0, "maximum": 1} for k in WEIGHT_KEYS},
    },
    "Job": {
        "type": "object",
        "description": "An asynchronous job, polled by id. ``result`` depends on the kind: an evaluation "
                       "result (eval), the comparison (compare) or the training outcome (train).",
        "required": ["job_id", "kind", "status", "created_at", "started_at", "completed_at", "progress",
                     "result", "error"],
        "properties": {
            "job_id": {"type": "string"},
            "kind": {"type": "string", "enum": JOB_KINDS},
            "status": {"type": "string", "enum": JOB_STATUSES},
            "created_at": {"type": "string"},
            "started_at": _STR,
            "completed_at": _STR,
            "progress": {"type": "number", "minimum": 0, "maximum": 1},
            "request": {"type": "object", "additionalProperties": True,
                        "description": "What the job is about: model(s), dataset, imgsz, batch, ..."},
            "trigger": {"type": "string", "enum": ["api", "watcher", "train", "compare"]},
            "result": {"nullable": True, "description": "Null until the job completes.",
                       "anyOf": [{"$ref": "#/components/schemas/EvalResult"},
                                 {"$ref": "#/components/schemas/CompareResult"},
                                 {"$ref": "#/components/schemas/TrainResult"}]},
            "error": _STR,
            # Train jobs only (LlamaFarm's runtime and designer read these), updated every epoch:
            "current_epoch": {"type": "integer", "minimum": 0, "description": "Train jobs: epochs finished."},
            "epoch": {"type": "integer", "minimum": 0, "description": "Train jobs: the same as current_epoch."},
            "total_epochs": {"type": "integer", "minimum": 1, "description": "Train jobs: epochs asked for."},
            "loss": {**_NUM, "description": "Train jobs: the latest epoch's mean total training loss "
                                            "(the sum of its components); null before the first epoch."},
            "metrics": {"type": "object", "additionalProperties": _NUM,
                        "description": "Train jobs: the latest epoch's loss components (train/...) and "
                                       "validation metrics (metrics/..., val/...), under ultralytics' names."},
        },
    },
    "JobList": {
        "type": "object",
        "required": ["jobs", "total"],
        "properties": {
            "jobs": {"type": "array", "items": {"$ref": "#/components/schemas/Job"}},
            "total": {"type": "integer", "minimum": 0},
        },
    },
    "EvalSummary": {
        "type": "object",
        "description": "The headline numbers of one stored evaluation.",
        "required": ["model_name", "score"],
        "additionalProperties": True,
        "properties": {
            "model_name": {"type": "string"},
            "score": _NUM, "mAP50": _NUM, "mAP50_95": _NUM, "precision": _NUM, "recall": _NUM, "f1": _NUM,
            "inference_ms": _NUM, "small_object_recall": _NUM, "medium_object_recall": _NUM,
            "large_object_recall": _NUM, "dataset": {"type": "string"}, "timestamp": {"type": "string"},
            "weights": {"type": "object", "additionalProperties": {"type": "number"},
                        "description": "The weights that scored this row (the ranking's)."},
            "dataset_fingerprint": {"type": "string"}, "current_content": {"type": "boolean"},
        },
    },
    "HistoryEntry": {
        "description": "One evaluation of a model, with its full result, newest first.",
        "allOf": [
            {"$ref": "#/components/schemas/EvalSummary"},
            {"type": "object", "required": ["eval_id"], "properties": {
                "eval_id": {"type": "integer"}, "job_id": _STR, "trigger": {"type": "string"},
                "per_class": {"type": "object", "additionalProperties": _NUM},
            }},
        ],
    },
    "Detection": {
        "type": "object",
        "description": "One prediction, COCO style, in original image pixels.",
        "required": ["file_name", "category_id", "bbox", "score"],
        "properties": {
            "file_name": {"type": "string"},
            "category_id": {"type": "integer", "minimum": 0},
            "bbox": {"type": "array", "items": {"type": "number"}, "minItems": 4, "maxItems": 4},
            "score": {"type": "number"},
        },
    },
    "ModelSummary": {
        "type": "object",
        "description": "One model, in the shape of LlamaFarm's runtime (name, versions, has_current, size_mb) "
                       "plus its version numbers and latest evaluation.",
        "required": ["name", "versions", "has_current", "size_mb", "version_numbers", "latest_evaluation"],
        "properties": {
            "name": {"type": "string"},
            "versions": {"type": "integer", "minimum": 0, "description": "How many v<n>.pt files it has."},
            "has_current": {"type": "boolean"},
            "size_mb": {"type": "number", "minimum": 0, "description": "All files in its folder, MiB."},
            "version_numbers": {"type": "array", "items": {"type": "integer", "minimum": 1}},
            "latest_evaluation": {"allOf": [{"$ref": "#/components/schemas/EvalSummary"}], "nullable": True},
        },
    },
    "ModelList": {
        "type": "object",
        "required": ["models", "total"],
        "properties": {
            "models": {"type": "array", "items": {"$ref": "#/components/schemas/ModelSummary"}},
            "total": {"type": "integer", "minimum": 0},
        },
    },
    "ModelDetail": {
        "type": "object",
        "required": ["name", "path", "versions", "current", "evaluations", "skipped", "promotions"],
        "properties": {
            "name": {"type": "string"},
            "path": {"type": "string"},
            "versions": {"type": "array", "items": {
                "type": "object", "required": ["version", "path", "sha256"],
                "properties": {"version": {"type": "integer"}, "path": {"type": "string"}, "sha256": _STR,
                               "size_mb": _NUM, "onnx": _STR, "error": {"type": "string"}},
            }},
            "current": {"type": "object", "nullable": True, "required": ["sha256"],
                        "description": "What current.pt holds; sha256 is null (with an error) when it is a "
                                       "link that leaves the models root (never read).",
                        "properties": {"sha256": _STR, "version": _INT, "error": {"type": "string"}}},
            "evaluations": {"type": "array", "items": {"$ref": "#/components/schemas/EvalSummary"}},
            "skipped": {"type": "array", "items": {
                "type": "object", "required": ["path", "reason"],
                "properties": {"path": {"type": "string"}, "sha256": _STR, "reason": {"type": "string"},
                               "created_at": {"type": "string"}},
            }},
            "checkpoints": {"type": "array", "description": "The watcher's state of each checkpoint it queued.",
                            "items": {
                "type": "object", "required": ["path", "sha256", "state", "attempts"],
                "properties": {"path": {"type": "string"}, "sha256": {"type": "string"},
                               "state": {"type": "string",
                                         "enum": ["queued", "evaluated", "retry", "failed", "cancelled"]},
                               "last_error": _STR, "attempts": {"type": "integer"}, "next_retry_at": _STR,
                               "job_id": _STR, "updated_at": {"type": "string"}},
            }},
            "waiting": {"type": "array", "description": "Checkpoints waiting longer than three settle periods.",
                        "items": {
                "type": "object", "required": ["path", "waiting_s", "reason"],
                "properties": {"path": {"type": "string"}, "waiting_s": {"type": "number"},
                               "reason": {"type": "string"}},
            }},
            "promotions": {"type": "array", "items": {"$ref": "#/components/schemas/PromotionRecord"}},
        },
    },
    "PromotionRecord": {
        "type": "object",
        "description": "One row of the promotions audit trail.",
        "required": ["id", "model_name", "timestamp", "decision", "actor", "reason"],
        "additionalProperties": True,
        "properties": {
            "id": {"type": "integer"}, "model_name": {"type": "string"}, "eval_id": _INT,
            "timestamp": {"type": "string"}, "decision": {"type": "string", "enum": ["promoted", "refused", "rollback"]},
            "actor": {"type": "string"}, "reason": {"type": "string"}, "dataset": _STR, "version": _INT,
            "previous_sha256": _STR, "new_sha256": _STR, "previous_score": _NUM, "new_score": _NUM,
            "details": {"type": "object", "additionalProperties": True},
        },
    },
    "PromotionDecision": {
        "type": "object",
        "description": "A manual promotion or rollback, as recorded.",
        "required": ["decision", "reason", "promotion_id", "new_sha256"],
        "additionalProperties": True,
        "properties": {
            "decision": {"type": "string", "enum": ["promoted", "rollback"]},
            "reason": {"type": "string"}, "promotion_id": {"type": "integer"}, "version": _INT,
            "previous_sha256": _STR, "new_sha256": {"type": "string"},
        },
    },
    "Health": {
        "type": "object",
        "required": ["ok", "database", "workers", "watcher"],
        "properties": {
            "ok": {"type": "boolean"},
            "database": {"type": "string", "enum": ["ok", "down"]},
            "workers": {"type": "string", "enum": ["starting", "ready", "restarting"]},
            "watcher": {"type": "string", "enum": ["off", "ok", "down"]},
            "worker_info": {"type": "object", "additionalProperties": True},
        },
    },
    # -- request bodies (JSON form; the form encodings are derived below) ----------------------
    "Gates": {
        "type": "object",
        "description": "Promotion gates for this decision, overriding [promotion] in the config. Judged on a "
                       "paired bootstrap of the candidate against the incumbent.",
        "additionalProperties": False,
        "properties": {
            "require_significant": {"type": "boolean"},
            "min_delta": {"type": "number", "minimum": 0},
            "max_class_regression": {"type": "number", "minimum": 0, "nullable": True},
            "min_class_support": {"type": "integer", "minimum": 0},
            "max_size_recall_regression": {"type": "number", "minimum": 0, "nullable": True},
        },
    },
    "EvalRequest": {
        "type": "object",
        "required": ["model", "dataset"],
        "additionalProperties": False,
        "properties": {
            "model": {"type": "string", "minLength": 1, "maxLength": 4096,
                      "description": "A model name (``<models root>/<name>/current.pt``, else its latest "
                                     "``v<n>.pt``; with format onnx its latest ``v<n>.onnx``) or an absolute "
                                     "path to a .pt or .onnx file under the allowed roots."},
            "dataset": {"type": "string", "minLength": 1, "maxLength": 4096,
                        "description": "Absolute path to a dataset YAML under the allowed roots."},
            "imgsz": {"type": "integer", "minimum": 320, "maximum": 2560, "default": 640},
            "batch_size": {"type": "integer", "minimum": 1, "maximum": 256, "default": 16},
            "weights": {"allOf": [{"$ref": "#/components/schemas/Weights"}], "nullable": True},
            "allow_class_mismatch": {"type": "boolean", "default": False},
            "auto_promote": {"type": "boolean", "default": False},
            "gates": {"allOf": [{"$ref": "#/components/schemas/Gates"}], "nullable": True},
            "name": _MODEL_NAME_FIELD,
            "format": {"type": "string", "enum": ["pt", "onnx"],
                       "description": "What a model name resolves to; a path's suffix decides by itself. "
                                      "A static ONNX export is evaluated only at its own imgsz (omit imgsz)."},
            "split": SPLIT_SCHEMA,
        },
    },
    "CompareRequest": {
        "type": "object",
        "required": ["model_a", "model_b", "dataset"],
        "additionalProperties": False,
        "properties": {
            "model_a": {"type": "string", "minLength": 1, "maxLength": 4096},
            "model_b": {"type": "string", "minLength": 1, "maxLength": 4096},
            "dataset": {"type": "string", "minLength": 1, "maxLength": 4096},
            "imgsz": {"type": "integer", "minimum": 320, "maximum": 2560, "default": 640},
            "batch_size": {"type": "integer", "minimum": 1, "maximum": 256, "default": 16},
            "weights": {"allOf": [{"$ref": "#/components/schemas/Weights"}], "nullable": True},
            "bootstrap_resamples": {"type": "integer", "minimum": 0, "maximum": 100000, "default": 1000},
            "bootstrap_seed": {"type": "integer", "minimum": 0, "maximum": 4294967295, "default": 0},
            "name_a": _MODEL_NAME_FIELD,
            "name_b": _MODEL_NAME_FIELD,
            "split": SPLIT_SCHEMA,
        },
    },
    "TrainConfig": {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "epochs": {"type": "integer", "minimum": 1, "maximum": 1000, "default": 10},
            "batch_size": {"type": "integer", "minimum": 1, "maximum": 256, "default": 16},
            "imgsz": {"type": "integer", "minimum": 320, "maximum": 2560, "default": 640},
            "learning_rate": {"type": "number", "exclusiveMinimum": True, "minimum": 0, "maximum": 1,
                              "default": 0.01},
            "patience": {"type": "integer", "minimum": 0, "maximum": 500, "default": 50},
        },
    },
    "TrainRequest": {
        "type": "object",
        "description": "Training settings go in ``config`` or flat beside the other fields (as form data "
                       "does); a key given both ways must agree.",
        "required": ["model", "dataset"],
        "additionalProperties": False,
        "properties": {
            "model": {"type": "string", "pattern": "^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$",
                      "description": "The model name: the new checkpoint is ``<name>/v<n>.pt``."},
            "dataset": {"type": "string", "minLength": 1, "maxLength": 4096},
            "task": {"type": "string", "enum": ["detection", "detect"], "default": "detection"},
            "config": {"allOf": [{"$ref": "#/components/schemas/TrainConfig"}], "nullable": True},
            "base_model": {"type": "string", "maxLength": 4096, "nullable": True,
                           "description": "A model name, a .pt path, or a bundled architecture like yolov8n.yaml."},
            "auto_eval": {"type": "boolean", "default": False},
            "auto_promote": {"type": "boolean", "default": False},
            "eval_weights": {"allOf": [{"$ref": "#/components/schemas/Weights"}], "nullable": True},
            "gates": {"allOf": [{"$ref": "#/components/schemas/Gates"}], "nullable": True},
            "split": SPLIT_SCHEMA,
            "epochs": {"type": "integer", "minimum": 1, "maximum": 1000},
            "batch_size": {"type": "integer", "minimum": 1, "maximum": 256},
            "imgsz": {"type": "integer", "minimum": 320, "maximum": 2560},
            "learning_rate": {"type": "number", "exclusiveMinimum": True, "minimum": 0, "maximum": 1},
            "patience": {"type": "integer", "minimum": 0, "maximum": 500},
        },
    },
    "PromoteRequest": {
        "type": "object",
        "required": ["version"],
        "additionalProperties": False,
        "properties": {
            "version": {"type": "integer", "minimum": 1, "maximum": 1000000000},
            "reason": {"type": "string", "maxLength": 500},
        },
    },
    "RollbackRequest": {
        "type": "object",
        "additionalProperties": False,
        "properties": {"reason": {"type": "string", "maxLength": 500}},
    },
}

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
                _query("status", {"type": "string", "enum": JOB_STATUSES}, "Only jobs in this state."),
                _query("kind", {"type": "string", "enum": JOB_KINDS}, "Only jobs of this kind."),
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
                _query("status", {"type": "string", "enum": JOB_STATUSES}, "Only jobs in this state."),
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
