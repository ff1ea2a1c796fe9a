"""What jobs produce and the leaderboard lists, field by field (documented answers, ``fields.Answer``).

An evaluation result carries the metrics of its task: detection's are
declared one by one; every other task's metrics (``vocab.tasks``) are
optional fields, so a classification, segmentation, pose or OBB result
conforms as well (``task`` says which it is).
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import ConfigDict, Field, create_model

from vocab.contract.fields import Answer, OneOf
from vocab.tasks import ALL_METRICS, TASKS
from vocab.terms import COMPARED_METRICS, SPLITS

Num = float | None
SIZES = ("small", "medium", "large")
DECISIONS = ("promoted", "refused", "rollback")


class Detection(Answer):
    """One prediction, COCO style, in original image pixels."""

    file_name: str
    category_id: int = Field(ge=0)
    bbox: list[float] = Field(min_length=4, max_length=4)
    score: float


class _LeaderboardEntry(Answer):
    """The best result of one model in one setting group (dataset path and content, task, split, format and
    image size), ranked within its group by its score under one weighting: each task's default weights, or
    ?weights=. Every task's metrics are fields; those its task has not are null."""

    group_index: int = Field(ge=0, description="The row's setting group, 0 first (the newest evaluated).")
    group: dict[str, Any] = Field(description="The setting group: dataset, dataset_fingerprint, task, split, "
                                              "format, imgsz.")
    rank: int = Field(ge=1, description="1 is the best score of its group.")
    model_name: str
    task: str = Field(description=f"The result's task: one of {', '.join(TASKS)}.")
    score: Num = Field(description="The composite score of its stored metrics under `weights`.")
    weights: dict[str, float] = Field(description="The weights that ranked this row.")
    inference_ms: Num = Field(description="ms per image; null when the validator reported none.")
    small_object_recall: Num
    medium_object_recall: Num
    large_object_recall: Num
    dataset: str = Field(description="The dataset's resolved path.")
    dataset_fingerprint: str
    current_content: bool = Field(description="Whether this is the dataset path's latest content seen.")
    imgsz: int | None
    batch: int | None
    split: str
    format: str
    timestamp: str | None = Field(description="When it was evaluated (ISO 8601).")
    eval_id: int
    version: int | None = Field(description="The v<n> evaluated, when known.")
    checkpoint_sha256: str | None


LeaderboardEntry: Any = create_model(
    "LeaderboardEntry", __base__=_LeaderboardEntry, __doc__=_LeaderboardEntry.__doc__,
    **{m: (Num, ...) for m in ALL_METRICS},  # type: ignore[call-overload]
)


class PromotionDecision(Answer):
    """One promotion decision, automatic (a job result's promotion) or manual (promote, rollback), as recorded
    in the ledger. Every decision has every field; what it lacks is null."""

    model_config = ConfigDict(extra="forbid")

    decision: Annotated[str, OneOf(DECISIONS)]
    reason: str
    promotion_id: int
    version: int | None = None
    new_sha256: str | None
    previous_sha256: str | None
    new_score: Num
    previous_score: Num
    eval_id: int | None = Field(None, description="The candidate's evaluation.")
    baseline_eval_id: int | None = Field(None, description="The evaluation the candidate was judged against.")
    dataset: str | None = None
    weights: dict[str, float] | None = None
    baseline: str | None = Field(None, description="current or dataset_best (automatic decisions).")
    gate_settings: dict[str, Any] | None = None
    gates: list[dict[str, Any]] = Field(description="The gates that failed ([] when none did).")
    gain: dict[str, Any] | None = Field(description="The candidate's gain in one quantity (basis: score, or "
                                        "accuracy_score when speed cannot be resampled, with the speed part "
                                        "beside it), and the bootstrap interval of that same quantity.")
    significance: dict[str, Any] | None = None
    export_parity: dict[str, Any] | None = None
    forced: str | None = Field(None, description="A manual promotion with force: the refusal it overrode.")
    cause: str | None = Field(None, description="A refusal new data may change: dataset (judged on that data, "
                                                "looked at again when it changes) or export (the parity gate).")


class _EvalResult(Answer):
    """One evaluation (an eval job's result; also a train job's ``evaluation``). Every number comes from one
    validator pass; null where it has no value."""

    model_name: str
    model_path: str = Field(description="The checkpoint file evaluated.")
    model_version: int | None = Field(None, description="Its v<n>, when it was one.")
    dataset: str = Field(description="The dataset's resolved path (a dataset YAML, a folder or a "
                                                "COCO JSON file).")
    task: str | None = Field(None, description=f"The checkpoint's task: one of {', '.join(TASKS)}.")
    split: str | None = Field(None, description=f"The split evaluated: one of {', '.join(SPLITS)}.")
    eval_id: int
    timestamp: str = Field(description="When it was evaluated (ISO 8601, UTC).")
    cached: bool | None = Field(None, description="Answered from an identical earlier evaluation.")
    source_eval_id: int | None = Field(None, description="On a cached answer stored as a row of its own: the "
                                                         "evaluation whose metrics it shares.")
    mAP50: Num = Field(None, description="Box mAP at IoU 0.5 (detection, segmentation, pose, obb).")
    mAP50_95: Num = Field(None, description="Box mAP at IoU 0.50:0.95 (detection, segmentation, pose, obb).")
    precision: Num = Field(None, description="Mean precision at conf_threshold.")
    recall: Num = Field(None, description="Mean recall at conf_threshold.")
    f1: Num = Field(None, description="2PR/(P+R) of the mean precision and recall.")
    conf_threshold: Num = Field(None, description="The operating point: argmax of the smoothed mean F1.")
    per_class: dict[str, Num] | None = Field(description="AP50 of each class with ground truth.")
    per_class_metrics: dict[str, dict[str, Any]] | None = None
    inference_ms: Num = Field(description="ms per image; null when the validator reported none (its score term "
                                          "is then dropped, never scored as 0 ms).")
    inference_ms_iqr: Num = None
    inference_batches: int | None = None
    preprocess_ms: Num = None
    postprocess_ms: Num = None
    small_object_recall: Num = Field(None, description="Where defined (detection, segmentation, pose).")
    medium_object_recall: Num = None
    large_object_recall: Num = None
    model_size_mb: Num
    images: int | None = None
    device: str | None = None
    imgsz: int | None = None
    batch: int | None = None
    weights: dict[str, float] | None = Field(description="The applied scoring weights (summing to 1).")
    score: Num = Field(description="sum(w_k * m_k) over the terms with a value, renormalised.")
    checkpoint_sha256: str | None = None
    dataset_fingerprint: str | None = None
    class_names: list[str] | None = None
    warnings: list[str] = []
    promotion: PromotionDecision | None = Field(None, description="With auto_promote: the decision and why.")


# Every task's metrics and object counts beyond detection's declared ones: optional numbers.
_OPTIONAL = {m for t in TASKS.values() for m in t.metrics} - set(_EvalResult.model_fields)
EvalResult: Any = create_model(
    "EvalResult", __base__=_EvalResult, __doc__=_EvalResult.__doc__,
    **{m: (Num, None) for m in sorted(_OPTIONAL)},  # type: ignore[call-overload]
    **{f"{b}_object_{k}": (int | None, None) for b in SIZES for k in ("count", "found")},
)


class CompareMetric(Answer):
    """One metric of both models."""

    a: Num
    b: Num
    diff: Num = Field(description="a - b; null when either is null.")
    better: str | None = Field(json_schema_extra={"enum": ["a", "b", "tie", None]},
                               description="Lower is better for inference_ms, higher for the rest.")


CompareMetrics: Any = create_model(
    "CompareMetrics", __base__=Answer, __doc__="Each compared metric of both models.",
    **{m: (CompareMetric, ...) for m in COMPARED_METRICS},  # type: ignore[call-overload]
)


class CompareResult(Answer):
    """A compare job's result: both models on one dataset."""

    model_a: str
    model_b: str
    winner: str | None = Field(description='The model with the higher score, "tie", or null if unscored.')
    score_diff: Num = Field(description="|score a - score b|.")
    metrics: CompareMetrics
    eval_id_a: int | None
    eval_id_b: int | None
    dataset: str
    statistics: dict[str, Any] | None = Field(None, description="With bootstrap_resamples > 0: the paired "
                                              "image-level bootstrap (differences a - b), per metric and class.")
    winner_significant: bool | None = Field(None, description="With bootstrap_resamples > 0: whether the paired "
                                            "interval of statistics.gain_basis (the composite score, or the "
                                            "accuracy score when the runs hold no timings) excludes 0.")


class TrainResult(Answer):
    """A train job's result: the new version and, with auto_eval / auto_promote, its evaluation and
    promotion decision."""

    model_name: str
    version: int = Field(ge=1, description="The new v<n>.pt.")
    checkpoint: str
    checkpoint_sha256: str
    training: dict[str, float] = Field(description="ultralytics' final metrics (of best.pt), under its names.")
    epochs: int = Field(ge=1)
    onnx: str | None = Field(description="The v<n>.onnx export; null if the export failed.")
    onnx_error: str | None
    pipeline: str = Field(description="The pipeline.json written.")
    evaluation: EvalResult | None = None
    promotion: PromotionDecision | None = None

