"""The OpenAPI document's component schemas: requests, jobs, models and decisions (results live in
``handlers.openapi_results``). Data only; ``handlers.openapi`` assembles the document."""

from __future__ import annotations

from typing import Any

from handlers.openapi_results import INT as _INT
from handlers.openapi_results import NUM as _NUM
from handlers.openapi_results import RESULT_SCHEMAS
from handlers.openapi_results import STR as _STR
from vocab.scoring import WEIGHT_KEYS
from vocab.terms import BATCH_MAX, BATCH_MIN, IMGSZ_MAX, IMGSZ_MIN, JOB_KINDS, JOB_STATUSES

# -- schemas -----------------------------------------------------------------------------------

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
            "kind": {"type": "string", "enum": list(JOB_KINDS)},
            "status": {"type": "string", "enum": list(JOB_STATUSES)},
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
            "attempts": {"type": "integer", "minimum": 0,
                         "description": "Runs started and charged (a run cut short by the daemon's death is not)."},
            "max_attempts": {"type": "integer", "minimum": 1},
            "interruptions": {"type": "integer", "minimum": 0,
                              "description": "Times the daemon died while the job ran (it was requeued)."},
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
            "imgsz": {"type": "integer", "minimum": IMGSZ_MIN, "maximum": IMGSZ_MAX, "default": 640},
            "batch_size": {"type": "integer", "minimum": BATCH_MIN, "maximum": BATCH_MAX, "default": 16},
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
            "imgsz": {"type": "integer", "minimum": IMGSZ_MIN, "maximum": IMGSZ_MAX, "default": 640},
            "batch_size": {"type": "integer", "minimum": BATCH_MIN, "maximum": BATCH_MAX, "default": 16},
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
            "batch_size": {"type": "integer", "minimum": BATCH_MIN, "maximum": BATCH_MAX, "default": 16},
            "imgsz": {"type": "integer", "minimum": IMGSZ_MIN, "maximum": IMGSZ_MAX, "default": 640},
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
            "batch_size": {"type": "integer", "minimum": BATCH_MIN, "maximum": BATCH_MAX},
            "imgsz": {"type": "integer", "minimum": IMGSZ_MIN, "maximum": IMGSZ_MAX},
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
