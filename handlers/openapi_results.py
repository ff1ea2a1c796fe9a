"""The OpenAPI schemas of what jobs produce and the leaderboard lists, field by field.

Part of ``handlers.openapi``'s document (merged into its ``components.schemas``);
``tests/test_openapi_results.py`` validates real answers against them.
"""

from __future__ import annotations

from typing import Any

from store.rankings import LEADERBOARD_FIELDS
from vocab.terms import COMPARED_METRICS as COMPARED

NUM = {"type": "number", "nullable": True}
INT = {"type": "integer", "nullable": True}
STR = {"type": "string", "nullable": True}
SIZES = ("small", "medium", "large")

RESULT_SCHEMAS: dict[str, Any] = {
    "LeaderboardEntry": {
        "type": "object",
        "description": "The best result of one model on one dataset path (and content), ranked by its score "
                       "under one weighting: the default weights, or ?weights=.",
        "required": list(LEADERBOARD_FIELDS),
        "additionalProperties": True,
        "properties": {
            "rank": {"type": "integer", "minimum": 1, "description": "1 is the best score."},
            "model_name": {"type": "string"},
            "score": {**NUM, "description": "The composite score of its stored metrics under `weights`."},
            "weights": {"type": "object", "additionalProperties": {"type": "number"},
                        "description": "The weights that ranked this row (the default weights unless ?weights=)."},
            "dataset_fingerprint": {"type": "string"},
            "current_content": {"type": "boolean",
                                "description": "Whether this is the dataset path's latest content seen."},
            "imgsz": INT, "batch": INT,
            "mAP50": NUM, "mAP50_95": NUM, "precision": NUM, "recall": NUM, "f1": NUM,
            "inference_ms": {**NUM, "description": "ms per image; null when the validator reported none."},
            "small_object_recall": NUM, "medium_object_recall": NUM, "large_object_recall": NUM,
            "dataset": {"type": "string", "description": "The dataset YAML's resolved path."},
            "timestamp": {**STR, "description": "When it was evaluated (ISO 8601)."},
            "eval_id": {"type": "integer"},
            "version": {**INT, "description": "The v<n> evaluated, when known."},
            "checkpoint_sha256": STR,
        },
    },
    # -- job results ---------------------------------------------------------------------------
    "EvalResult": {
        "type": "object",
        "description": "One evaluation (an eval job's result; also a train job's ``evaluation``). Every "
                       "number comes from one ultralytics validator pass; null where it has no value.",
        "required": ["model_name", "model_path", "dataset", "mAP50", "mAP50_95", "precision", "recall", "f1",
                     "per_class", "inference_ms", "small_object_recall", "medium_object_recall",
                     "large_object_recall", "model_size_mb", "score", "eval_id", "timestamp", "weights"],
        "additionalProperties": True,
        "properties": {
            "model_name": {"type": "string"},
            "model_path": {"type": "string", "description": "The checkpoint file evaluated."},
            "model_version": {**INT, "description": "Its v<n>, when it was one."},
            "dataset": {"type": "string", "description": "The dataset YAML's resolved path."},
            "eval_id": {"type": "integer"},
            "timestamp": {"type": "string", "description": "When it was evaluated (ISO 8601, UTC)."},
            "cached": {"type": "boolean", "description": "Answered from an identical earlier evaluation."},
            "source_eval_id": {"type": "integer", "description": "On a cached answer stored as a row of its own "
                               "(another name, path or weights): the evaluation whose metrics it shares."},
            "mAP50": NUM, "mAP50_95": NUM,
            "precision": {**NUM, "description": "Mean precision at conf_threshold."},
            "recall": {**NUM, "description": "Mean recall at conf_threshold."},
            "f1": {**NUM, "description": "2PR/(P+R) of the mean precision and recall."},
            "conf_threshold": {**NUM, "description": "The operating point: argmax of the smoothed mean F1."},
            "per_class": {"type": "object", "nullable": True, "additionalProperties": NUM,
                          "description": "AP50 of each class with ground truth."},
            "per_class_metrics": {"type": "object", "nullable": True, "additionalProperties": {
                "type": "object", "properties": {"ap50": NUM, "ap50_95": NUM, "precision": NUM,
                                                 "recall": NUM, "support": INT}}},
            "inference_ms": {**NUM, "description": "ms per image; null when the validator reported none "
                                                    "(its score term is then dropped, never scored as 0 ms)."},
            "inference_ms_iqr": {**NUM, "description": "Interquartile range of the kept batches' per-image ms."},
            "inference_batches": {**INT, "description": "How many batches inference_ms is measured over."},
            "preprocess_ms": NUM, "postprocess_ms": NUM,
            **{f"{b}_object_recall": {**NUM, "description": f"Recall of {b} ground-truth boxes; null "
                                                             "when there are none."} for b in SIZES},
            **{f"{b}_object_count": INT for b in SIZES},
            **{f"{b}_object_found": INT for b in SIZES},
            "size_recall_max_dets": INT,
            "model_size_mb": NUM,
            "images": INT,
            "device": STR, "device_kind": STR, "imgsz": INT, "batch": INT,
            "ultralytics_version": STR, "torch_version": STR,
            "weights": {"type": "object", "nullable": True, "additionalProperties": {"type": "number"},
                        "description": "The applied scoring weights (summing to 1)."},
            "score": {**NUM, "description": "sum(w_k * m_k) over the terms with a value, renormalised."},
            "checkpoint_sha256": STR, "dataset_fingerprint": STR,
            "class_names": {"type": "array", "nullable": True, "items": {"type": "string"}},
            "warnings": {"type": "array", "items": {"type": "string"}},
            "promotion": {"$ref": "#/components/schemas/PromotionDecision",
                          "description": "With auto_promote: the decision (promoted or refused) and why."},
        },
    },
    "CompareMetric": {
        "type": "object",
        "required": ["a", "b", "diff", "better"],
        "properties": {
            "a": NUM, "b": NUM,
            "diff": {**NUM, "description": "a - b; null when either is null."},
            "better": {"type": "string", "enum": ["a", "b", "tie"], "nullable": True,
                       "description": "Lower is better for inference_ms, higher for the rest."},
        },
    },
    "CompareResult": {
        "type": "object",
        "description": "A compare job's result: both models on one dataset.",
        "required": ["model_a", "model_b", "winner", "score_diff", "metrics", "eval_id_a", "eval_id_b", "dataset"],
        "additionalProperties": True,
        "properties": {
            "model_a": {"type": "string"}, "model_b": {"type": "string"},
            "winner": {**STR, "description": "The model with the higher score, \"tie\", or null if unscored."},
            "score_diff": {**NUM, "description": "|score a - score b|."},
            "metrics": {"type": "object", "required": list(COMPARED),
                        "properties": {m: {"$ref": "#/components/schemas/CompareMetric"} for m in COMPARED}},
            "eval_id_a": INT, "eval_id_b": INT,
            "dataset": {"type": "string"},
            "statistics": {"type": "object", "additionalProperties": True,
                           "description": "With bootstrap_resamples > 0: the paired image-level bootstrap "
                                          "(differences a - b, as in metrics), per metric and per class."},
            "winner_significant": {"type": "boolean",
                                   "description": "Whether the accuracy-score interval excludes 0."},
        },
    },
    "TrainResult": {
        "type": "object",
        "description": "A train job's result: the new version and, with auto_eval / auto_promote, its "
                       "evaluation and promotion decision.",
        "required": ["model_name", "version", "checkpoint", "checkpoint_sha256", "training", "epochs", "onnx",
                     "onnx_error", "pipeline"],
        "additionalProperties": True,
        "properties": {
            "model_name": {"type": "string"},
            "version": {"type": "integer", "minimum": 1, "description": "The new v<n>.pt."},
            "checkpoint": {"type": "string"}, "checkpoint_sha256": {"type": "string"},
            "training": {"type": "object", "additionalProperties": {"type": "number"},
                         "description": "ultralytics' final metrics (of best.pt), under its names."},
            "epochs": {"type": "integer", "minimum": 1},
            "onnx": {**STR, "description": "The v<n>.onnx export; null if the export failed."},
            "onnx_error": STR,
            "pipeline": {"type": "string", "description": "The pipeline.json written."},
            "evaluation": {"$ref": "#/components/schemas/EvalResult"},
            "promotion": {"$ref": "#/components/schemas/PromotionDecision"},
        },
    },
    "PromotionDecision": {
        "type": "object",
        "description": "One promotion decision, automatic (a job result's promotion) or manual (promote, rollback), "
                       "as recorded in the ledger. Every decision has every field; what it lacks is null.",
        "required": ["decision", "reason", "promotion_id", "new_sha256", "previous_sha256", "new_score",
                     "previous_score", "gates", "gain"],
        "additionalProperties": False,
        "properties": {
            "decision": {"type": "string", "enum": ["promoted", "refused", "rollback"]},
            "reason": {"type": "string"}, "promotion_id": {"type": "integer"}, "version": INT,
            "new_sha256": STR, "previous_sha256": STR, "new_score": NUM, "previous_score": NUM,
            "eval_id": {**INT, "description": "The candidate's evaluation."},
            "baseline_eval_id": {**INT, "description": "The evaluation the candidate was judged against."},
            "dataset": STR,
            "weights": {"type": "object", "nullable": True, "additionalProperties": {"type": "number"}},
            "baseline": {**STR, "description": "current or dataset_best (automatic decisions)."},
            "gate_settings": {"type": "object", "nullable": True, "additionalProperties": True},
            "gates": {"type": "array", "items": {"type": "object", "additionalProperties": True},
                      "description": "The gates that failed ([] when none did)."},
            "gain": {"type": "object", "nullable": True, "additionalProperties": True,
                     "description": "The candidate's gain in one quantity (basis: score, or accuracy_score when "
                                    "speed cannot be resampled, with the speed part beside it), and the "
                                    "bootstrap interval of that same quantity."},
            "significance": {"type": "object", "nullable": True, "additionalProperties": True,
                             "description": "The paired bootstrap's score intervals (diff: candidate - baseline)."},
            "export_parity": {"type": "object", "nullable": True, "additionalProperties": True},
        },
    },
}
